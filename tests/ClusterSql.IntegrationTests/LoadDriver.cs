using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.MySql;
using MySqlConnector;

namespace ClusterSql.IntegrationTests;

/// <summary>One acquire seen by the load: when it started, how long it took, which node served it, or why it failed.</summary>
internal readonly record struct AcquireRecord(TimeSpan StartedAt, TimeSpan Duration, int Node, Exception? Error);

/// <summary>
/// A bounded load: workers that each acquire a connection, read a row of a table (a non-Primary node accepts
/// <c>SELECT 1</c> but not that), and on every fourth round insert a row with a fresh id. An insert is never retried:
/// its id is recorded as acknowledged or as failed, so that every acknowledged insert can be checked exactly once.
/// </summary>
internal sealed class LoadDriver
{
    private readonly ClusterDataSource _cluster;
    private readonly string _table;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly ConcurrentQueue<AcquireRecord> _acquires = new();
    private readonly ConcurrentQueue<Exception> _statementErrors = new();

    public LoadDriver(ClusterDataSource cluster, string table)
    {
        _cluster = cluster;
        _table = table;
    }

    public TimeSpan Now => _clock.Elapsed;

    public ConcurrentBag<string> AcknowledgedInserts { get; } = [];

    public ConcurrentBag<string> FailedInserts { get; } = [];

    public IReadOnlyCollection<AcquireRecord> Acquires => _acquires;

    public IReadOnlyCollection<Exception> StatementErrors => _statementErrors;

    public static async Task CreateTableAsync(ClusterDataSource cluster, string table)
    {
        await using var connection = await cluster.OpenMySqlConnectionAsync();
        await using var command = new MySqlCommand($"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id VARCHAR(40) NOT NULL PRIMARY KEY, worker INT NOT NULL); INSERT INTO {table} VALUES ('seed', -1)", connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Runs <paramref name="workers"/> workers until <paramref name="stop"/> is cancelled; each stops by itself after <paramref name="limit"/>.</summary>
    public Task RunAsync(int workers, CancellationToken stop, TimeSpan limit) =>
        Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(() => WorkerAsync(w, stop, limit))));

    private async Task WorkerAsync(int worker, CancellationToken stop, TimeSpan limit)
    {
        var until = _clock.Elapsed + limit;
        for (var round = 0; !stop.IsCancellationRequested && _clock.Elapsed < until; round++)
        {
            var started = _clock.Elapsed;
            MySqlConnection connection;
            try
            {
                connection = await _cluster.OpenMySqlConnectionAsync();
            }
            catch (Exception ex)
            {
                _acquires.Enqueue(new AcquireRecord(started, _clock.Elapsed - started, 0, ex));
                await Task.Delay(10);
                continue;
            }

            await using (connection)
            {
                _acquires.Enqueue(new AcquireRecord(started, _clock.Elapsed - started, TestCluster.NodeOfHost(connection.DataSource), null));
                try
                {
                    await using (var read = new MySqlCommand($"SELECT id FROM {_table} LIMIT 1", connection) { CommandTimeout = 5 })
                    {
                        await read.ExecuteScalarAsync();
                    }

                    if (round % 4 == 0)
                    {
                        var id = Guid.NewGuid().ToString();
                        try
                        {
                            await using var insert = new MySqlCommand($"INSERT INTO {_table} VALUES ('{id}', {worker})", connection) { CommandTimeout = 5 };
                            await insert.ExecuteNonQueryAsync();
                            AcknowledgedInserts.Add(id);
                        }
                        catch (Exception)
                        {
                            // Reported, never re-run: whether it committed is checked afterwards.
                            FailedInserts.Add(id);
                            throw;
                        }
                    }
                }
                catch (Exception ex)
                {
                    // An error on a connection already handed out reaches the caller unchanged; the load records it.
                    _statementErrors.Enqueue(ex);
                }
            }
        }
    }

    /// <summary>Every acknowledged insert present exactly once; returns the failed inserts that committed anyway.</summary>
    public async Task<(int Missing, int Duplicated, int FailedButPresent)> VerifyInsertsAsync()
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        // A fresh session on galera1 (never faulted), so that wsrep_sync_wait holds: on a pooled session that was reset
        // for reuse MariaDB skips it, and a row still in flight would look missing (see TestCluster.CausalReads).
        await using (var connection = new MySqlConnection(TestCluster.ConnectionString(1, "Pooling=false")))
        {
            await connection.OpenAsync();
            await using var command = new MySqlCommand($"SET SESSION wsrep_sync_wait=1; SELECT id, COUNT(*) FROM {_table} GROUP BY id", connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                counts[reader.GetString(0)] = reader.GetInt32(1);
            }
        }

        var missing = AcknowledgedInserts.Count(id => !counts.ContainsKey(id));
        var duplicated = AcknowledgedInserts.Count(id => counts.TryGetValue(id, out var n) && n != 1);
        var failedButPresent = FailedInserts.Count(counts.ContainsKey);
        return (missing, duplicated, failedButPresent);
    }
}

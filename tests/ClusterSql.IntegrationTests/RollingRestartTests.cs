using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Data.Common;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.MySql;
using MySqlConnector;
using NUnit.Framework;

namespace ClusterSql.IntegrationTests;

/// <summary>
/// The everyday "fault": an operator stops and starts each node in turn (an upgrade), waiting for Synced before the
/// next, while a mixed read/write load runs on MySqlConnector's default pooled settings. With ClusterSql nothing fails
/// and nothing is lost; the same run through MySqlConnector's own multi-host load balancing is measured for comparison.
/// </summary>
[TestFixture]
public sealed class RollingRestartTests : FaultFixture
{
    private const int Writers = 4;
    private const int Readers = 4;

    [Test]
    public async Task RollingRestart_ClusterSql_NoFailedAcquire_NoStaleSession_NothingLost()
    {
        var result = await RunAsync("rolling_cs", multiHost: false);
        Assert.Multiple(() =>
        {
            Assert.That(result.FailedAcquires, Is.Empty, "no acquire fails");
            Assert.That(result.StaleSessionErrors, Is.Empty, "no handed-out connection fails on its first statement (a stale pooled session)");
            Assert.That((result.Missing, result.Duplicated), Is.EqualTo((0, 0)), "every acknowledged write is present exactly once");
            Assert.That(result.BackInUse, Has.All.LessThan(TimeSpan.FromSeconds(30)), "every restarted node serves again");
        });
    }

    /// <summary>The comparison for docs/benchmarks-writes.md: run by hand, it asserts only that nothing acknowledged is lost.</summary>
    [Test]
    [Explicit("A measurement of MySqlConnector's multi-host load balancing for the docs, not a claim about ClusterSql.")]
    public async Task RollingRestart_MySqlConnectorMultiHost_ForComparison()
    {
        var result = await RunAsync("rolling_mh", multiHost: true);
        Assert.That((result.Missing, result.Duplicated), Is.EqualTo((0, 0)));
    }

    private sealed record Outcome(
        List<string> FailedAcquires, List<string> StaleSessionErrors, List<string> InFlightErrors, int Missing, int Duplicated, TimeSpan[] BackInUse);

    private static async Task<Outcome> RunAsync(string table, bool multiHost)
    {
        var name = multiHost ? "MySqlConnector RoundRobin" : "ClusterSql";
        await MySqlConnection.ClearAllPoolsAsync();
        await using var cluster = TestCluster.Build(o => o.ConnectTimeout = TimeSpan.FromSeconds(2));
        await using var multi = new MySqlDataSource(TestCluster.MultiHostConnectionString("LoadBalance=RoundRobin;Connection Timeout=5"));
        await using (var connection = await cluster.OpenMySqlConnectionAsync())
        await using (var create = new MySqlCommand($"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY)", connection))
        {
            await create.ExecuteNonQueryAsync();
        }

        DbDataSource writes = multiHost ? multi : cluster.Writer;
        DbDataSource reads = multiHost ? multi : cluster.Readers;
        var clock = Stopwatch.StartNew();
        var acknowledged = new ConcurrentBag<long>();
        var failedAcquires = new ConcurrentQueue<string>();
        var stale = new ConcurrentQueue<string>();
        var inFlight = new ConcurrentQueue<string>();
        var served = new ConcurrentQueue<(TimeSpan At, int Node)>();
        using var stop = new CancellationTokenSource();

        async Task Worker(int worker, bool writer)
        {
            for (long seq = 0; !stop.IsCancellationRequested && clock.Elapsed < TimeSpan.FromMinutes(4); seq++)
            {
                MySqlConnection connection;
                try
                {
                    connection = (MySqlConnection)await (writer ? writes : reads).OpenConnectionAsync();
                }
                catch (Exception ex)
                {
                    failedAcquires.Enqueue($"{clock.Elapsed.TotalSeconds:0.00}s {ex.GetType().Name}: {ex.Message}");
                    await Task.Delay(5);
                    continue;
                }

                await using (connection)
                {
                    // The node from the server itself: a multi-host connection's DataSource names every host.
                    var node = 0;
                    var id = (worker * 100_000_000L) + seq;
                    var first = true;
                    try
                    {
                        await using var command = new MySqlCommand(
                            writer ? $"INSERT INTO {table} VALUES (@id); SELECT @@wsrep_node_name" : $"SELECT @@wsrep_node_name, COUNT(*) FROM {table} WHERE id = @id",
                            connection);
                        command.Parameters.AddWithValue("@id", id);
                        node = int.Parse(((string)(await command.ExecuteScalarAsync())!)["galera".Length..], System.Globalization.CultureInfo.InvariantCulture);
                        first = false;
                        if (writer)
                        {
                            acknowledged.Add(id);
                        }

                        served.Enqueue((clock.Elapsed, node));
                    }
                    catch (Exception ex) when (ex is MySqlException or IOException or InvalidOperationException)
                    {
                        // The first statement on a connection just handed out failing at the connection level is a stale
                        // pooled session (the server behind it went away); anything else hit a statement in flight.
                        var line = $"{clock.Elapsed.TotalSeconds:0.00}s galera{node} {(ex as MySqlException)?.Number} {ex.Message}";
                        (first && IsConnectionLevel(ex) ? stale : inFlight).Enqueue(line);
                    }
                }
            }
        }

        var workers = Enumerable.Range(0, Writers + Readers).Select(w => Task.Run(() => Worker(w, writer: w < Writers))).ToArray();
        await Task.Delay(TimeSpan.FromSeconds(2));
        var backInUse = new List<TimeSpan>();
        for (var node = 1; node <= TestCluster.NodeCount; node++)
        {
            var stopAt = clock.Elapsed;
            await TestCluster.Harness("stop", TestCluster.NodeName(node));
            await Task.Delay(TimeSpan.FromSeconds(2));
            await TestCluster.Harness("start", TestCluster.NodeName(node));
            var startedAt = clock.Elapsed;
            var waited = Stopwatch.StartNew();
            while (!served.Any(s => s.Node == node && s.At > startedAt) && waited.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(50);
            }

            var firstUse = served.Where(s => s.Node == node && s.At > startedAt).Select(s => s.At).DefaultIfEmpty(TimeSpan.MaxValue).Min();
            backInUse.Add(firstUse == TimeSpan.MaxValue ? TimeSpan.MaxValue : firstUse - startedAt);
            TestContext.Progress.WriteLine($"{name}: galera{node} stopped at {stopAt.TotalSeconds:0.0}s, Synced again at {startedAt.TotalSeconds:0.0}s, served again {(firstUse == TimeSpan.MaxValue ? "never (30 s)" : $"{(firstUse - startedAt).TotalMilliseconds:0} ms later")}");
            await Task.Delay(TimeSpan.FromSeconds(1));
        }

        await stop.CancelAsync();
        await Task.WhenAll(workers);

        var counts = new Dictionary<long, int>();
        await using (var check = new MySqlConnection(TestCluster.ConnectionString(1, "Pooling=false")))
        {
            await check.OpenAsync();
            await using var command = new MySqlCommand($"SET SESSION wsrep_sync_wait=1; SELECT id, COUNT(*) FROM {table} GROUP BY id", check);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                counts[reader.GetInt64(0)] = reader.GetInt32(1);
            }
        }

        var ids = acknowledged.ToArray();
        var outcome = new Outcome(
            [.. failedAcquires], [.. stale], [.. inFlight],
            ids.Count(id => !counts.ContainsKey(id)), ids.Count(id => counts.TryGetValue(id, out var n) && n != 1), [.. backInUse]);
        TestContext.Progress.WriteLine(
            $"{name}: {served.Count} statements served, {ids.Length} writes acknowledged; {outcome.FailedAcquires.Count} failed acquires, " +
            $"{outcome.StaleSessionErrors.Count} stale pooled sessions (first statement failed), {outcome.InFlightErrors.Count} statements in flight when a server shut down; " +
            $"missing {outcome.Missing}, duplicated {outcome.Duplicated}; {string.Join("; ", cluster.Nodes.Select(n => n.GetStatistics()))}");
        foreach (var line in outcome.FailedAcquires.Take(3).Concat(outcome.StaleSessionErrors.Take(3)).Concat(outcome.InFlightErrors.Take(3)))
        {
            TestContext.Progress.WriteLine($"{name}: {line}");
        }

        await using (var connection = await cluster.OpenMySqlConnectionAsync())
        await using (var drop = new MySqlCommand($"DROP TABLE IF EXISTS {table}", connection))
        {
            await drop.ExecuteNonQueryAsync();
        }

        return outcome;
    }

    private static bool IsConnectionLevel(Exception ex) =>
        ex is IOException || ex.InnerException is IOException or System.Net.Sockets.SocketException or EndOfStreamException ||
        ex is MySqlException { Number: 0 or 1053 or 1927 or 2006 or 2013 } or MySqlException { ErrorCode: MySqlErrorCode.UnableToConnectToHost };
}

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.MySql;
using MySqlConnector;

namespace ClusterSql.Benchmarks.Load;

/// <summary>
/// <c>writes [--quick] [--out FILE.md]</c>: the write-heavy scenarios of the Galera roles. Workers increment rows for a
/// fixed time, with writes spread over every node or sent to the writer role, with and without the retry API; then the
/// cost of a causal read per acquire. Writes a Markdown page (docs/benchmarks-writes.md by default). Runs on the healthy
/// cluster under the cluster lock, so that no fault test runs meanwhile.
/// </summary>
internal static class WritesCommand
{
    private const int Workers = 8;
    private const int HotRows = 4;

    private sealed record Mode(string Name, bool WriterRole, bool Retry);

    private sealed record Outcome(string Workload, string Mode, long Commits, long Conflicts, long Failed, double Seconds, double P50Ms, double P99Ms);

    public static async Task<int> RunAsync(string[] args)
    {
        var quick = args.Contains("--quick");
        var output = Path.Combine(TestCluster.RepositoryRoot, "docs", "benchmarks-writes.md");
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--out" && i + 1 < args.Length)
            {
                output = args[++i];
            }
            else if (args[i] != "--quick")
            {
                Console.Error.WriteLine("usage: writes [--quick] [--out FILE.md]");
                return 2;
            }
        }

        var duration = TimeSpan.FromSeconds(quick ? 2 : 10);
        var pairs = quick ? 200 : 2000;
        using var stop = new CancellationTokenSource();
        using var clusterLock = await ClusterLock.AcquireAsync(TimeSpan.FromMinutes(10), stop.Token);
        Console.WriteLine($"writes: cluster lock {ClusterLock.LockPath} {clusterLock.How}");
        var machine = await MachineInfo.GatherAsync();
        var clock = Stopwatch.StartNew();

        Mode[] modes =
        [
            new("spread over 3 nodes, no retry", WriterRole: false, Retry: false),
            new("spread over 3 nodes, retry API", WriterRole: false, Retry: true),
            new("writer role, no retry", WriterRole: true, Retry: false),
            new("writer role, retry API", WriterRole: true, Retry: true),
        ];

        var outcomes = new List<Outcome>();
        foreach (var hot in new[] { true, false })
        {
            foreach (var mode in modes)
            {
                var outcome = await RunWritesAsync(mode, hot, duration);
                Console.WriteLine($"writes: {outcome}");
                outcomes.Add(outcome);
            }
        }

        var causal = new List<(string Name, double P50, double P99, int Stale)>();
        foreach (var on in new[] { false, true })
        {
            var result = await RunCausalAsync(on, pairs);
            Console.WriteLine($"writes: causal {on}: {result}");
            causal.Add(result);
        }

        var md = new StringBuilder();
        md.AppendLine("# Writes through the Galera roles");
        md.AppendLine();
        md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"Measured {DateTimeOffset.UtcNow:yyyy-MM-dd} at commit `{machine.ClusterSqlCommit}` on {machine.Cores} cores ({machine.Cpu}), MariaDB {machine.MariaDb}, Galera {machine.Galera}, MySqlConnector {machine.MySqlConnector}; {(quick ? "quick run" : "full run")}, {clock.Elapsed.TotalSeconds:0} s. Regenerate with:"));
        md.AppendLine();
        md.AppendLine("```");
        md.AppendLine("bash tests/cluster/cluster.sh up");
        md.AppendLine("dotnet run -c Release --project benchmarks/ClusterSql.Benchmarks -- writes   # --quick for a smoke run");
        md.AppendLine("```");
        md.AppendLine();
        md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"{Workers} workers (two independent data sources of four workers each, as two services would have) run for {duration.TotalSeconds:0} s per row, each unit of work a transaction of one `UPDATE ... SET v = v + 1` and its COMMIT, on pooled MySqlConnector connections with default settings. **Hot**: all workers increment {HotRows} shared rows (the case that makes Galera writers collide at certification). **Cold**: each worker increments its own row. \"Spread\" acquires from the plain cluster, which balances over every node; \"writer role\" acquires from `cluster.Writer`. Without the retry API a conflict fails the unit (error 1213); with it the unit runs again. A conflict per 1,000 commits is a failed unit without the API and a retried run with it."));
        md.AppendLine();
        md.AppendLine("| workload | mode | commits/s | conflicts per 1,000 commits | failed units | unit p50 | unit p99 |");
        md.AppendLine("|---|---|---:|---:|---:|---:|---:|");
        foreach (var o in outcomes)
        {
            md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {o.Workload} | {o.Mode} | {o.Commits / o.Seconds:0} | {1000.0 * o.Conflicts / Math.Max(o.Commits, 1):0.0} | {o.Failed} | {o.P50Ms:0.00} ms | {o.P99Ms:0.00} ms |"));
        }

        md.AppendLine();
        md.AppendLine("Cold rows conflict too when writes are spread: a worker's next transaction, on another node, can be certified against its own previous write to the same row before that node has applied it. The writer role removes both kinds; the retry API turns the conflicts that remain (a writer handing over) into retried units instead of errors.");
        md.AppendLine();
        md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"**Causal reads.** One worker writes a row through `cluster.Writer` with the retry API (which records the write's position) and reads it back through `cluster.Readers` on another node, {pairs} times. The cost is the reader acquire (open + the wait for the write) and the SELECT."));
        md.AppendLine();
        md.AppendLine("| reads | acquire + SELECT p50 | p99 | stale reads |");
        md.AppendLine("|---|---:|---:|---:|");
        foreach (var c in causal)
        {
            md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {c.Name} | {c.P50:0.000} ms | {c.P99:0.000} ms | {c.Stale} of {pairs} |"));
        }

        md.AppendLine();
        md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"The causal wait costs {causal[1].P50 - causal[0].P50:0.000} ms at the median here: one round trip on the reader's session for `WSREP_SYNC_WAIT_UPTO_GTID` plus `wsrep_last_committed`, one on a session of ClusterSql's own for Galera's causal read (`wsrep_sync_wait`, which MariaDB skips on the reader's reset session), and whatever time the reader's node still needs to apply the write. The integration tests show 0 stale reads in 168,000 with four writers (ConsistencyTests), and the stale share without the wait."));
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        await File.WriteAllTextAsync(output, md.ToString());
        Console.WriteLine($"writes: {outcomes.Count} write rows and {causal.Count} read rows in {clock.Elapsed.TotalSeconds:0} s; page in {output}");
        return 0;
    }

    private static async Task<Outcome> RunWritesAsync(Mode mode, bool hot, TimeSpan duration)
    {
        var table = "bench_counters";
        var clients = new[] { Build(causal: false), Build(causal: false) };
        try
        {
            await using (var connection = await clients[0].OpenMySqlConnectionAsync())
            await using (var create = new MySqlCommand($"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id INT NOT NULL PRIMARY KEY, v BIGINT NOT NULL)", connection))
            {
                await create.ExecuteNonQueryAsync();
                create.CommandText = $"INSERT INTO {table} VALUES " + string.Join(",", Enumerable.Range(0, Math.Max(HotRows, Workers)).Select(i => $"({i},0)"));
                await create.ExecuteNonQueryAsync();
            }

            foreach (var client in clients)
            {
                await WaitForRanksAsync(client);
            }

            // The DROP and CREATE reach the other nodes as Galera applies them: a worker that started on a node still
            // applying them failed with "table doesn't exist" (3-4 units in some runs), which measured the set-up, not
            // the writes.
            await WaitForSeedRowsEverywhereAsync(clients[0], table, Math.Max(HotRows, Workers));

            long conflicts = 0;
            long failed = 0;
            long commits = 0;
            using var listener = ConflictListener(() => Interlocked.Increment(ref conflicts));
            var latencies = new ConcurrentBag<double>();
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
            {
                var client = clients[w % clients.Length];
                System.Data.Common.DbDataSource source = mode.WriterRole ? client.Writer : client;
                var random = new Random(w);
                while (clock.Elapsed < duration)
                {
                    var id = hot ? random.Next(HotRows) : w;
                    var started = Stopwatch.GetTimestamp();
                    try
                    {
                        if (mode.Retry)
                        {
                            await source.ExecuteTransactionAsync(
                                (connection, transaction, token) => IncrementAsync(connection, transaction, table, id, token),
                                new ClusterRetryOptions { MaxAttempts = 100 });
                        }
                        else
                        {
                            await using var connection = (MySqlConnection)await source.OpenConnectionAsync();
                            await using var transaction = await connection.BeginTransactionAsync();
                            await IncrementAsync(connection, transaction, table, id, CancellationToken.None);
                            await transaction.CommitAsync();
                        }

                        Interlocked.Increment(ref commits);
                        latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    }
                    catch (MySqlException ex) when (ex.ErrorCode == MySqlErrorCode.LockDeadlock && !mode.Retry)
                    {
                        Interlocked.Increment(ref conflicts);
                    }
                    catch (Exception ex)
                    {
                        // What failed, by type and server error code only (a message could quote a connection detail).
                        if (Interlocked.Increment(ref failed) <= 3)
                        {
                            Console.Error.WriteLine($"writes: {mode.Name}: a unit failed: {ex.GetType().Name}{(ex is MySqlException m ? $" ({m.ErrorCode})" : ex.InnerException is MySqlException inner ? $" (inner {inner.ErrorCode})" : string.Empty)}");
                        }
                    }
                }
            })));
            var seconds = clock.Elapsed.TotalSeconds;
            var sorted = latencies.OrderBy(l => l).ToArray();
            return new Outcome(hot ? "hot" : "cold", mode.Name, commits, Interlocked.Read(ref conflicts), failed, seconds,
                sorted.Length == 0 ? 0 : sorted[sorted.Length / 2], sorted.Length == 0 ? 0 : sorted[(int)(sorted.Length * 0.99)]);
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    private static async Task<(string Name, double P50, double P99, int Stale)> RunCausalAsync(bool on, int pairs)
    {
        var table = "bench_causal";
        await using var cluster = Build(causal: on);
        await using (var connection = await cluster.OpenMySqlConnectionAsync())
        await using (var create = new MySqlCommand($"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id INT NOT NULL PRIMARY KEY, v INT NOT NULL); INSERT INTO {table} VALUES (1, -1)", connection))
        {
            await create.ExecuteNonQueryAsync();
        }

        await WaitForRanksAsync(cluster);
        var times = new List<double>(pairs);
        var stale = 0;
        for (var i = 0; i < pairs; i++)
        {
            var value = i;
            await cluster.Writer.ExecuteTransactionAsync(async (connection, transaction, token) =>
            {
                await using var update = new MySqlCommand($"UPDATE {table} SET v = @v WHERE id = 1", connection, transaction);
                update.Parameters.AddWithValue("@v", value);
                await update.ExecuteNonQueryAsync(token);
            });

            var started = Stopwatch.GetTimestamp();
            await using var reader = await cluster.Readers.OpenMySqlConnectionAsync();
            await using var select = new MySqlCommand($"SELECT v FROM {table} WHERE id = 1", reader);
            var read = await select.ExecuteScalarAsync();
            times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            if (read is not int v || v != i)
            {
                stale++;
            }
        }

        times.Sort();
        return (on ? "`CausalReads = true` (waits for the last recorded write)" : "plain `cluster.Readers`", times[times.Count / 2], times[(int)(times.Count * 0.99)], stale);
    }

    private static Task IncrementAsync(MySqlConnection connection, MySqlTransaction transaction, string table, int id, CancellationToken token)
    {
        var update = new MySqlCommand($"UPDATE {table} SET v = v + 1 WHERE id = @id", connection, transaction);
        update.Parameters.AddWithValue("@id", id);
        return ExecuteAndDisposeAsync(update, token);
    }

    private static async Task ExecuteAndDisposeAsync(MySqlCommand command, CancellationToken token)
    {
        await using (command)
        {
            await command.ExecuteNonQueryAsync(token);
        }
    }

    /// <summary>Until every node's own session sees the seeded table with all its rows (at most 10 s).</summary>
    private static async Task WaitForSeedRowsEverywhereAsync(ClusterDataSource cluster, string table, int rows)
    {
        var clock = Stopwatch.StartNew();
        foreach (var node in cluster.Nodes)
        {
            while (true)
            {
                try
                {
                    await using var connection = await node.OpenMySqlConnectionAsync();
                    await using var count = new MySqlCommand($"SELECT COUNT(*) FROM {table}", connection);
                    if (Convert.ToInt64(await count.ExecuteScalarAsync(), CultureInfo.InvariantCulture) == rows)
                    {
                        break;
                    }
                }
                catch (MySqlException ex) when (ex.ErrorCode == MySqlErrorCode.NoSuchTable && clock.Elapsed < TimeSpan.FromSeconds(10))
                {
                    // Not applied there yet.
                }

                if (clock.Elapsed > TimeSpan.FromSeconds(10))
                {
                    throw new TimeoutException($"{node.Name} did not show the seeded table {table} within 10 s.");
                }

                await Task.Delay(5);
            }
        }
    }

    private static ClusterDataSource Build(bool causal)
    {
        var builder = new ClusterDataSourceBuilder();
        for (var node = 1; node <= TestCluster.NodeCount; node++)
        {
            builder.AddMySqlNode(TestCluster.NodeName(node), TestCluster.NodeConnectionString(node, pooled: true, connectTimeoutSeconds: 5));
        }

        builder.UseGaleraHealthProbe().UseGaleraConsistency();
        builder.Options.HealthCheckInterval = TimeSpan.FromMilliseconds(500);
        builder.Options.CausalReads = causal;
        return builder.Build();
    }

    private static async Task WaitForRanksAsync(ClusterDataSource cluster)
    {
        var clock = Stopwatch.StartNew();
        while (!cluster.Nodes.All(n => n.GetStatistics().WriterRank is not null) && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(50);
        }
    }

    /// <summary>Counts the retry API's retried conflicts (clustersql.transaction.retries with reason "conflict").</summary>
    private static MeterListener ConflictListener(Action onConflict)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "ClusterSql" && instrument.Name == "clustersql.transaction.retries")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "clustersql.reason" && (string?)tag.Value == "conflict")
                {
                    onConflict();
                }
            }
        });
        listener.Start();
        return listener;
    }
}

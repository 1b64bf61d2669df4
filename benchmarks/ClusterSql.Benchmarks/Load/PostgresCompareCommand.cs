using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading.Tasks;
using ClusterSql.Npgsql;
using Npgsql;

namespace ClusterSql.Benchmarks.Load;

/// <summary>
/// <c>pg-compare [--quick] [--out FILE.md]</c>: ClusterSql.Npgsql against Npgsql's own multi-host support
/// (<c>Target Session Attributes</c>, hosts tried in order) on the PostgreSQL test nodes of tests/pg/pg.sh, each with its
/// library defaults and a 3 s connect timeout: a hung first host (sequential reads), and a primary failover (the
/// primary crashed, a standby promoted 2 s later, sequential writes). Prints acquire latencies and failures and writes a
/// Markdown page (docs/benchmarks-postgres.md by default). Run it as root under the PostgreSQL lock:
/// <c>flock /tmp/clustersql-pg.lock dotnet ClusterSql.Benchmarks.dll pg-compare</c>; every fault is removed with
/// <c>pg.sh reset</c> in a finally.
/// </summary>
internal static class PostgresCompareCommand
{
    private const string Password = "Cs-pg-pw-3b9d";
    private static readonly TimeSpan s_promoteAfter = TimeSpan.FromSeconds(2);

    private sealed record Outcome(string Scenario, string Client, int Operations, int Failures, double P50Ms, double P99Ms, double MaxMs, string Note);

    public static async Task<int> RunAsync(string[] args)
    {
        var quick = args.Contains("--quick");
        var output = Path.Combine(TestCluster.RepositoryRoot, "docs", "benchmarks-postgres.md");
        string? only = null;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--out" && i + 1 < args.Length)
            {
                output = args[++i];
            }
            else if (args[i] == "--only" && i + 1 < args.Length)
            {
                only = args[++i];
            }
            else if (args[i] != "--quick")
            {
                Console.Error.WriteLine("usage: pg-compare [--quick] [--out FILE.md] [--only TEXT]   (--only: the rows whose client names contain TEXT)");
                return 2;
            }
        }

        var duration = TimeSpan.FromSeconds(quick ? 3 : 12);
        var outcomes = new List<Outcome?>();
        s_only = only;
        await Harness("reset");

        // A hung first host: pg1 (the primary) stops answering after the TCP handshake. Reads of any node.
        outcomes.Add(await HungFirstHost("ClusterSql (any node)", duration, () =>
        {
            var cluster = NpgsqlCluster.CreateDataSource(Hosts(1, 2, 3), configure: o => o.ConnectTimeout = TimeSpan.FromSeconds(3));
            return (async () => await cluster.OpenNpgsqlConnectionAsync(), cluster.DisposeAsync);
        }));
        outcomes.Add(await HungFirstHost("ClusterSql Readers", duration, () =>
        {
            var cluster = NpgsqlCluster.CreateDataSource(Hosts(1, 2, 3), configure: o => o.ConnectTimeout = TimeSpan.FromSeconds(3));
            return (async () => await cluster.Readers.OpenNpgsqlConnectionAsync(), cluster.DisposeAsync);
        }));
        foreach (var attributes in new[] { "any", "prefer-standby" })
        {
            outcomes.Add(await HungFirstHost($"Npgsql TSA={attributes}", duration, () =>
            {
                var source = NpgsqlDataSource.Create(Hosts(1, 2, 3) + $";Target Session Attributes={attributes}");
                return (async () => await source.OpenConnectionAsync(), source.DisposeAsync);
            }));
        }

        // Unpooled: every operation opens a new session, so a client's choice of host shows in every operation, not only
        // in which pooled session it had when the fault came.
        outcomes.Add(await HungFirstHost("ClusterSql (any node), unpooled", duration, () =>
        {
            var cluster = NpgsqlCluster.CreateDataSource(Hosts(1, 2, 3) + ";Pooling=false", configure: o => o.ConnectTimeout = TimeSpan.FromSeconds(3));
            return (async () => await cluster.OpenNpgsqlConnectionAsync(), cluster.DisposeAsync);
        }));
        outcomes.Add(await HungFirstHost("Npgsql TSA=any, unpooled", duration, () =>
        {
            var source = NpgsqlDataSource.Create(Hosts(1, 2, 3) + ";Pooling=false;Target Session Attributes=any");
            return (async () => await source.OpenConnectionAsync(), source.DisposeAsync);
        }));

        // A primary failover: writes (INSERT) to the primary; pg1 crashed, pg2 promoted 2 s later.
        outcomes.Add(await Failover("ClusterSql Writer", duration, () =>
        {
            var cluster = NpgsqlCluster.CreateDataSource(Hosts(1, 2, 3), configure: o => o.ConnectTimeout = TimeSpan.FromSeconds(3));
            return (async () => await cluster.Writer.OpenNpgsqlConnectionAsync(), cluster.DisposeAsync);
        }));
        outcomes.Add(await Failover("Npgsql TSA=primary", duration, () =>
        {
            var source = NpgsqlDataSource.Create(Hosts(1, 2, 3) + ";Target Session Attributes=primary");
            return (async () => await source.OpenConnectionAsync(), source.DisposeAsync);
        }));

        var page = Render([.. outcomes.OfType<Outcome>()], quick, duration);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        await File.WriteAllTextAsync(output, page);
        Console.WriteLine(page);
        Console.WriteLine($"pg-compare: wrote {output}");
        return 0;
    }

    private static string Hosts(params int[] nodes) =>
        $"Host={string.Join(",", nodes.Select(n => $"127.0.0.4{n}:544{n}"))};Username=clustersql;Password={Password};Database=test;Timeout=3;Gss Encryption Mode=Disable";

    private static string? s_only;

    private static async Task<Outcome?> HungFirstHost(string client, TimeSpan duration, Func<(Func<Task<NpgsqlConnection>> Open, Func<ValueTask> Dispose)> create)
    {
        if (s_only is not null && !client.Contains(s_only, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var (open, dispose) = create();
        var latencies = new List<double>();
        var failures = 0;
        string? firstFailure = null;
        try
        {
            await Warm(open);
            await Harness("hang", "1");
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < duration)
            {
                var start = Stopwatch.GetTimestamp();
                try
                {
                    await using var connection = await open();
                    await using var command = new NpgsqlCommand("SELECT 1", connection) { CommandTimeout = 3 };
                    await command.ExecuteScalarAsync();
                    latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                }
                catch (Exception ex) when (ex is ClusterException or NpgsqlException or TimeoutException or InvalidOperationException)
                {
                    latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    failures++;
                    firstFailure ??= Describe(ex, clock.Elapsed);
                }
            }
        }
        finally
        {
            try
            {
                await dispose();
            }
            finally
            {
                await Harness("reset");
            }
        }

        var outcome = Summarize("pg1 (first host) hung", client, latencies, failures, firstFailure ?? "");
        Console.WriteLine(outcome);
        return outcome;
    }

    private static async Task<Outcome?> Failover(string client, TimeSpan duration, Func<(Func<Task<NpgsqlConnection>> Open, Func<ValueTask> Dispose)> create)
    {
        if (s_only is not null && !client.Contains(s_only, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var (open, dispose) = create();
        var latencies = new List<double>();
        var failures = 0;
        double? firstWriteAfterPromote = null;
        var failuresAfterPromote = 0;
        try
        {
            await Warm(open);
            await using (var setup = await open())
            {
                await using var command = new NpgsqlCommand("CREATE TABLE IF NOT EXISTS failover_compare (id bigserial PRIMARY KEY, client text)", setup);
                await command.ExecuteNonQueryAsync();
            }

            await Task.Delay(500); // the standbys replay the table before the primary dies
            await Harness("crash", "1");
            var clock = Stopwatch.StartNew();
            var promote = Task.Run(async () =>
            {
                await Task.Delay(s_promoteAfter);
                await Harness("promote", "2");
                return clock.Elapsed;
            });
            while (clock.Elapsed < duration)
            {
                var start = Stopwatch.GetTimestamp();
                try
                {
                    await using var connection = await open();
                    await using var command = new NpgsqlCommand("INSERT INTO failover_compare (client) VALUES (@c)", connection) { CommandTimeout = 3 };
                    command.Parameters.AddWithValue("c", client);
                    await command.ExecuteNonQueryAsync();
                    latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    if (firstWriteAfterPromote is null && promote.IsCompletedSuccessfully)
                    {
                        firstWriteAfterPromote = (clock.Elapsed - promote.Result).TotalMilliseconds;
                    }
                }
                catch (Exception ex) when (ex is ClusterException or NpgsqlException or TimeoutException or InvalidOperationException)
                {
                    latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    failures++;
                    failuresAfterPromote += promote.IsCompletedSuccessfully ? 1 : 0;

                    // Every client retries at once; a brief pause keeps a fast-failing client from spinning the CPU.
                    await Task.Delay(10);
                }
            }

            await promote;
        }
        finally
        {
            try
            {
                await dispose();
            }
            finally
            {
                await Harness("reset");
            }
        }

        var note = firstWriteAfterPromote is { } ms
            ? $"first write {ms:0} ms after the promote returned; {failuresAfterPromote} failed after it"
            : $"no write succeeded within {(duration - s_promoteAfter).TotalSeconds:0} s of the promote";
        var outcome = Summarize("pg1 (primary) crashed, pg2 promoted 2 s later", client, latencies, failures, note);
        Console.WriteLine(outcome);
        return outcome;
    }

    private static string Describe(Exception ex, TimeSpan at)
    {
        var message = ex.Message.ReplaceLineEndings(" ").Replace("|", "/", StringComparison.Ordinal);
        return $"first failure at {at.TotalSeconds:0.0} s: {ex.GetType().Name}: {(message.Length > 600 ? message[..600] + "..." : message)}";
    }

    private static async Task Warm(Func<Task<NpgsqlConnection>> open)
    {
        // Every client starts healthy: probes ran, pools hold sessions, Npgsql knows each host's state.
        for (var i = 0; i < 30; i++)
        {
            await using var connection = await open();
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync();
            await Task.Delay(i < 10 ? 200 : 0);
        }
    }

    private static Outcome Summarize(string scenario, string client, List<double> latencies, int failures, string note)
    {
        var sorted = latencies.Order().ToArray();
        return new Outcome(scenario, client, sorted.Length, failures,
            ModeResult.Percentile(sorted, 0.50), ModeResult.Percentile(sorted, 0.99), sorted.Length == 0 ? 0 : sorted[^1], note);
    }

    private static string Render(List<Outcome> outcomes, bool quick, TimeSpan duration)
    {
        var text = new StringBuilder();
        text.AppendLine("# ClusterSql.Npgsql against Npgsql multi-host (PostgreSQL 15)");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Generated by `dotnet benchmarks/ClusterSql.Benchmarks/bin/Release/net10.0/ClusterSql.Benchmarks.dll pg-compare{(quick ? " --quick" : "")}` " +
            $"(run as root under `flock /tmp/clustersql-pg.lock`) on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; {Cpu()} ({Environment.ProcessorCount} cores), shared with other work.");
        text.AppendLine();
        text.AppendLine("Servers: tests/pg/pg.sh, a PostgreSQL 15 primary (pg1, 127.0.0.41:5441) and two streaming standbys (pg2, pg3) on loopback. " +
            "Every client gets the same multi-host string `Host=pg1,pg2,pg3` with a 3 s connect timeout (`Timeout=3`; ClusterSql `ConnectTimeout` 3 s), `Gss Encryption Mode=Disable` " +
            "(the servers offer no GSSAPI, and Npgsql's default Kerberos probe stalls an open now and then on this machine: see the README), pooling on, " +
            "and otherwise its library's defaults: ClusterSql health checks every 2 s, Npgsql's `Host Recheck Seconds` 10. " +
            $"Each row: a fresh data source, 30 warm-up operations on the healthy servers, the fault, then operations one after another for {duration.TotalSeconds:0} s; " +
            "an operation is an open (acquire) plus one statement, and its time includes a failure's. The fault is undone with `pg.sh reset` after each row.");
        text.AppendLine();
        text.AppendLine("| scenario | client | operations | failed | p50 ms | p99 ms | max ms | note |");
        text.AppendLine("|---|---|---:|---:|---:|---:|---:|---|");
        foreach (var o in outcomes)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {o.Scenario} | {o.Client} | {o.Operations} | {o.Failures} | {o.P50Ms:0.0} | {o.P99Ms:0.0} | {o.MaxMs:0} | {o.Note} |");
        }

        return text.ToString();
    }

    private static string Cpu()
    {
        try
        {
            return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
        }
        catch (IOException)
        {
            return "unknown CPU";
        }
    }

    private static async Task Harness(params string[] arguments)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(TestCluster.RepositoryRoot, "tests", "pg", "pg.sh"));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"pg.sh {string.Join(' ', arguments)} failed ({process.ExitCode}):\n{await stdout}{await stderr}");
        }
    }
}

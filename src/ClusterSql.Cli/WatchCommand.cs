using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using System.Data.Common;

namespace ClusterSql.Cli;

/// <summary>The outcome of a watch: what the load saw, for how long, and whether the caller's stop condition ended it.</summary>
internal sealed record WatchSummary(long Acquires, long AcquireFailures, long StatementErrors, TimeSpan Slowest, IReadOnlyDictionary<string, long> Wins, TimeSpan Elapsed, bool StoppedByCondition);

/// <summary>One node in one watch interval: its statistics at the end of the interval and the acquires it won in it.</summary>
internal sealed record NodeInterval(ClusterNodeStatistics Statistics, long Wins);

/// <summary>
/// A live table of per-node statistics under a steady, bounded acquire load (each worker: acquire, run the query,
/// release), with the load's throughput and acquire latency. A failover shows as a node's wins stopping and its
/// state turning Ejected or Down. On a terminal the table is redrawn in place; redirected, it prints one block per
/// interval.
/// </summary>
internal static class WatchCommand
{
    private static readonly string[] Header =
        ["node", "source", "state", "role", "wins/s", "share", "wins", "failures", "hedges", "latency", "peak", "hedge delay", "last error / down or drain reason"];

    /// <summary>Runs the load for at most <paramref name="duration"/>; <paramref name="stopWhen"/>, asked after every interval with the time so far, may end it sooner.</summary>
    public static async Task<WatchSummary> RunAsync(
        ClusterDataSource cluster,
        int workers,
        TimeSpan duration,
        TimeSpan interval,
        string query,
        Func<IReadOnlyList<NodeInterval>, TimeSpan, bool>? stopWhen,
        CancellationToken cancellationToken,
        bool json = false)
    {
        var latencies = new ConcurrentQueue<TimeSpan>();
        long acquires = 0, failures = 0, statementErrors = 0;
        var slowest = TimeSpan.Zero;
        var lastError = (string?)null;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(duration);

        async Task Worker()
        {
            while (!stop.IsCancellationRequested)
            {
                var started = Stopwatch.GetTimestamp();
                // Any provider's connection (MySqlConnector or Npgsql): the load only runs the query.
                DbConnection connection;
                try
                {
                    connection = await cluster.OpenConnectionAsync(stop.Token);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }
                catch (ClusterException ex)
                {
                    Interlocked.Increment(ref failures);
                    lastError = ex.Message;
                    await Task.Delay(50, CancellationToken.None);
                    continue;
                }

                var elapsed = Stopwatch.GetElapsedTime(started);
                latencies.Enqueue(elapsed);
                Interlocked.Increment(ref acquires);
                lock (latencies)
                {
                    slowest = elapsed > slowest ? elapsed : slowest;
                }

                await using (connection)
                {
                    try
                    {
                        await using var command = connection.CreateCommand();
                        command.CommandText = query;
                        command.CommandTimeout = 5;
                        await command.ExecuteScalarAsync(CancellationToken.None);
                    }
                    catch (DbException ex)
                    {
                        // An error on a connection already handed out is the caller's to see: it is never re-run.
                        Interlocked.Increment(ref statementErrors);
                        lastError = ex.Message;
                    }
                }
            }
        }

        var load = Enumerable.Range(0, workers).Select(_ => Task.Run(Worker)).ToArray();
        // JSON lines are for programs: never redrawn, no legend.
        var live = json || Console.IsOutputRedirected ? null : new LiveBlock();
        if (!json)
        {
            Console.WriteLine("latency: the node's smoothed open latency (typical); peak: its peak-EWMA estimate, which steers the latency-aware policy");
            Console.WriteLine("source: listed by you, or discovered from the cluster's own member list (--discover); a discovered member that leaves is drained, then removed");
            Console.WriteLine("role: what cluster.Writer / cluster.Readers would use the node for now (writer, reader, lagging: behind by more than MaxReaderLag; -: cannot serve)");
        }
        var clock = Stopwatch.StartNew();
        var stoppedByCondition = false;
        var previous = cluster.Nodes.ToDictionary(n => n.Name, n => n.GetStatistics());
        var previousAt = clock.Elapsed;
        while (!load.All(t => t.IsCompleted))
        {
            await Task.WhenAny(Task.WhenAll(load), Task.Delay(interval, CancellationToken.None));
            var window = new List<TimeSpan>();
            while (latencies.TryDequeue(out var latency))
            {
                window.Add(latency);
            }

            if (window.Count == 0 && load.All(t => t.IsCompleted))
            {
                break;
            }

            // Rates over the time that really passed: the last interval is cut short when the load stops.
            var now = clock.Elapsed;
            var seconds = Math.Max((now - previousAt).TotalSeconds, 0.001);
            window.Sort();
            var nodes = cluster.Nodes
                .Select(n => n.GetStatistics())
                .Select(s => new NodeInterval(s, s.Wins - (previous.GetValueOrDefault(s.Name)?.Wins ?? 0)))
                .ToList();
            var intervalWins = nodes.Sum(n => n.Wins);
            var roles = RoleView.Of(cluster).Rows.ToDictionary(r => r.Name, r => r.Role);
            var rows = nodes.Select(n =>
            {
                var s = n.Statistics;
                return new[]
                {
                    s.Name,
                    s.Discovered ? "discovered" : "listed",
                    s.State.ToString(),
                    roles.GetValueOrDefault(s.Name, "-"),
                    Format.Number(n.Wins / seconds),
                    intervalWins == 0 ? "-" : Format.Percent(n.Wins, intervalWins),
                    s.Wins.ToString(CultureInfo.InvariantCulture),
                    s.Failures.ToString(CultureInfo.InvariantCulture),
                    s.Hedges.ToString(CultureInfo.InvariantCulture),
                    Format.Millis(s.SmoothedLatency),
                    Format.Millis(s.LatencyEstimate),
                    Format.Millis(s.HedgeDelay),
                    s.DownReason ?? s.DrainReason ?? (s.LastErrorType is null ? string.Empty : $"{s.LastErrorType}: {Truncate(s.LastErrorMessage, 60)}"),
                };
            });
            if (json)
            {
                Console.WriteLine(CliJson.Serialize(ToJson(now, window, seconds, Interlocked.Read(ref failures), Interlocked.Read(ref statementErrors), lastError, nodes, roles)));
                Console.Out.Flush();
                previous = nodes.ToDictionary(n => n.Statistics.Name, n => n.Statistics);
                previousAt = now;
                if (!stoppedByCondition && !stop.IsCancellationRequested && stopWhen is not null && stopWhen(nodes, now))
                {
                    stoppedByCondition = true;
                    await stop.CancelAsync();
                }

                continue;
            }

            var lines = new List<string>
            {
                $"t={now.TotalSeconds:0.0}s  acquires/s {Format.Number(window.Count / seconds)}  " +
                $"p50 {Format.Millis(Format.Percentile(window, 0.50))}  p99 {Format.Millis(Format.Percentile(window, 0.99))}  " +
                $"acquire failures {Interlocked.Read(ref failures)}  statement errors {Interlocked.Read(ref statementErrors)}",
            };
            lines.AddRange(Table.Render(Header, rows).Split(Environment.NewLine));
            if (lastError is not null)
            {
                lines.Add($"last load error: {Truncate(lastError, 160)}");
            }

            if (live is not null)
            {
                live.Draw(lines);
            }
            else
            {
                lines.Add(string.Empty);
                Console.WriteLine(string.Join(Environment.NewLine, lines));
            }

            previous = nodes.ToDictionary(n => n.Statistics.Name, n => n.Statistics);
            previousAt = now;
            if (!stoppedByCondition && !stop.IsCancellationRequested && stopWhen is not null && stopWhen(nodes, now))
            {
                stoppedByCondition = true;
                await stop.CancelAsync();
            }
        }

        await Task.WhenAll(load);
        return new WatchSummary(
            Interlocked.Read(ref acquires),
            Interlocked.Read(ref failures),
            Interlocked.Read(ref statementErrors),
            slowest,
            cluster.Nodes.ToDictionary(n => n.Name, n => n.GetStatistics().Wins),
            clock.Elapsed,
            stoppedByCondition);
    }

    /// <summary>One interval as <c>watch --json</c> prints it (a line).</summary>
    /// <summary>
    /// The JSON name of a node state: part of the --json contract, so spelled out here rather than taken from the enum's
    /// ToString(), which a rename in the library would change silently; a state this version does not know is "Unknown".
    /// </summary>
    internal static string StateName(ClusterNodeState state) => state switch
    {
        ClusterNodeState.Healthy => "Healthy",
        ClusterNodeState.Ejected => "Ejected",
        ClusterNodeState.HalfOpen => "HalfOpen",
        ClusterNodeState.Down => "Down",
        ClusterNodeState.Removed => "Removed",
        ClusterNodeState.Disposed => "Disposed",
        ClusterNodeState.Draining => "Draining",
        _ => "Unknown",
    };

    internal static WatchIntervalJson ToJson(
        TimeSpan elapsed,
        List<TimeSpan> sortedLatencies,
        double seconds,
        long acquireFailures,
        long statementErrors,
        string? lastError,
        IReadOnlyList<NodeInterval> nodes,
        IReadOnlyDictionary<string, string> roles)
    {
        var intervalWins = nodes.Sum(n => n.Wins);
        return new WatchIntervalJson(
            CliJson.Version,
            "interval",
            Math.Round(elapsed.TotalSeconds, 3),
            Math.Round(sortedLatencies.Count / seconds, 1),
            CliJson.Millis(Format.Percentile(sortedLatencies, 0.50)),
            CliJson.Millis(Format.Percentile(sortedLatencies, 0.99)),
            acquireFailures,
            statementErrors,
            lastError,
            nodes.Select(n =>
            {
                var s = n.Statistics;
                return new WatchNodeJson(
                    s.Name,
                    StateName(s.State),
                    roles.GetValueOrDefault(s.Name, "-"),
                    Math.Round(n.Wins / seconds, 1),
                    intervalWins == 0 ? null : Math.Round((double)n.Wins / intervalWins, 4),
                    s.Wins,
                    s.Failures,
                    s.Hedges,
                    CliJson.Millis(s.SmoothedLatency),
                    CliJson.Millis(s.LatencyEstimate),
                    CliJson.Millis(s.HedgeDelay),
                    s.LastErrorType is null ? null : $"{s.LastErrorType}: {s.LastErrorMessage}",
                    s.DownReason);
            }).ToList());
    }

    private static string Truncate(string? text, int length) =>
        text is null ? string.Empty : text.Length <= length ? text : text[..(length - 1)] + "…";
}

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.MySql;
using MySqlConnector;

namespace ClusterSql.Cli;

/// <summary>The outcome of a watch: what the load saw.</summary>
internal sealed record WatchSummary(long Acquires, long AcquireFailures, long StatementErrors, TimeSpan Slowest, IReadOnlyDictionary<string, long> Wins);

/// <summary>
/// A live table of per-node statistics under a steady, bounded acquire load (each worker: acquire, run the query,
/// release), with the load's throughput and acquire latency. A failover shows as a node's wins stopping and its
/// state turning Ejected or Down.
/// </summary>
internal static class WatchCommand
{
    public static async Task<WatchSummary> RunAsync(ClusterDataSource cluster, int workers, TimeSpan duration, TimeSpan interval, string query, CancellationToken cancellationToken)
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
                MySqlConnection connection;
                try
                {
                    connection = await cluster.OpenMySqlConnectionAsync(stop.Token);
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
                        await using var command = new MySqlCommand(query, connection) { CommandTimeout = 5 };
                        await command.ExecuteScalarAsync(CancellationToken.None);
                    }
                    catch (MySqlException ex)
                    {
                        // An error on a connection already handed out is the caller's to see: it is never re-run.
                        Interlocked.Increment(ref statementErrors);
                        lastError = ex.Message;
                    }
                }
            }
        }

        var load = Enumerable.Range(0, workers).Select(_ => Task.Run(Worker)).ToArray();
        var live = !Console.IsOutputRedirected;
        var clock = Stopwatch.StartNew();
        var previous = cluster.Nodes.ToDictionary(n => n.Name, n => n.GetStatistics());
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

            window.Sort();
            var current = cluster.Nodes.ToDictionary(n => n.Name, n => n.GetStatistics());
            var rows = current.Values.Select(s =>
            {
                var before = previous.GetValueOrDefault(s.Name);
                return new[]
                {
                    s.Name,
                    s.State.ToString(),
                    Format.Number((s.Wins - (before?.Wins ?? 0)) / interval.TotalSeconds),
                    s.Wins.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    s.Failures.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    s.Hedges.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    Format.Millis(s.LatencyEstimate),
                    Format.Millis(s.HedgeDelay),
                    s.DownReason ?? (s.LastErrorType is null ? string.Empty : $"{s.LastErrorType}: {Truncate(s.LastErrorMessage, 60)}"),
                };
            });
            var table = Table.Render(["node", "state", "wins/s", "wins", "failures", "hedges", "latency", "hedge delay", "last error / down reason"], rows);
            var summary = $"t={clock.Elapsed.TotalSeconds:0.0}s  acquires/s {Format.Number(window.Count / interval.TotalSeconds)}  " +
                $"p50 {Format.Millis(Format.Percentile(window, 0.50))}  p99 {Format.Millis(Format.Percentile(window, 0.99))}  " +
                $"acquire failures {Interlocked.Read(ref failures)}  statement errors {Interlocked.Read(ref statementErrors)}";
            if (live)
            {
                // Redraw in place on a terminal; a log gets one block per interval.
                Console.Write("\u001b[H\u001b[J");
            }

            Console.WriteLine(summary);
            Console.WriteLine(table);
            if (lastError is not null)
            {
                Console.WriteLine($"last load error: {Truncate(lastError, 160)}");
            }

            Console.WriteLine();
            previous = current;
        }

        await Task.WhenAll(load);
        return new WatchSummary(
            Interlocked.Read(ref acquires),
            Interlocked.Read(ref failures),
            Interlocked.Read(ref statementErrors),
            slowest,
            cluster.Nodes.ToDictionary(n => n.Name, n => n.GetStatistics().Wins));
    }

    private static string Truncate(string? text, int length) =>
        text is null ? string.Empty : text.Length <= length ? text : text[..(length - 1)] + "…";
}

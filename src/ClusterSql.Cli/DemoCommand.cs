using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.MySql;

namespace ClusterSql.Cli;

/// <summary>
/// The README's main job: the generated <see cref="LocalCluster"/> checked, then under a steady load, with a closing
/// summary. The load runs for a fixed time, or (eng/demo.sh, which crashes and restarts a node meanwhile) until the
/// named node has gone out of service and come back winning acquires, bounded by a maximum time.
/// </summary>
internal static class DemoCommand
{
    /// <summary>How long the load goes on once the node is back, so that its return shows for a few intervals.</summary>
    private static readonly TimeSpan AfterReturn = TimeSpan.FromSeconds(3);

    public static async Task<int> RunAsync(TimeSpan duration, string? untilNodeWins, int workers, CancellationToken cancellationToken)
    {
        await using var cluster = LocalCluster.Create(LocalCluster.Configuration, builder => builder.UseGaleraHealthProbe());
        var nodes = new[] { cluster.Galera1, cluster.Galera2, cluster.Galera3 };
        if (untilNodeWins is not null && !nodes.Any(n => n.Name == untilNodeWins))
        {
            await Console.Error.WriteLineAsync($"clustersql: --until-node-wins: no node '{untilNodeWins}' (nodes: {string.Join(", ", nodes.Select(n => n.Name))}).");
            return 64;
        }

        Console.WriteLine($"ClusterSql demo: generated cluster {nameof(LocalCluster)} with nodes {LocalCluster.NodeNames.Galera1}, {LocalCluster.NodeNames.Galera2}, {LocalCluster.NodeNames.Galera3}");
        Console.WriteLine($"policy {cluster.DataSource.Options.Policy}, connect timeout {Format.Millis(cluster.DataSource.Options.ConnectTimeout)}, Galera probe every {Format.Millis(cluster.DataSource.Options.HealthCheckInterval)}");
        Console.WriteLine();

        var verdict = await CheckCommand.RunAsync(cluster.DataSource, probed: true, showRoles: false, cancellationToken);
        if (verdict == CheckCommand.Failed)
        {
            Console.WriteLine("demo: the cluster failed its check; start it with tests/cluster/cluster.sh up");
            return verdict;
        }

        Console.WriteLine();
        var watchReturn = untilNodeWins is null ? null : new NodeReturn(untilNodeWins, AfterReturn);
        Console.WriteLine(watchReturn is null
            ? $"demo: {workers} workers acquiring and running a query for {duration.TotalSeconds:0} s ..."
            : $"demo: {workers} workers acquiring and running a query until {untilNodeWins} has gone out of service and won acquires again (at most {duration.TotalSeconds:0} s) ...");
        var summary = await WatchCommand.RunAsync(cluster.DataSource, workers, duration, TimeSpan.FromSeconds(1), "SELECT COUNT(*) FROM clustersql_check", watchReturn is null ? null : watchReturn.ShouldStop, cancellationToken);

        Console.WriteLine($"demo summary ({summary.Elapsed.TotalSeconds:0.0} s of load):");
        Console.WriteLine($"  {summary.Acquires} acquires, {summary.AcquireFailures} failed, slowest {Format.Millis(summary.Slowest)}, {summary.StatementErrors} statement errors (never re-run)");
        foreach (var node in nodes)
        {
            var stats = node.GetStatistics();
            Console.WriteLine($"  {stats.Name}: {stats.Wins} connections handed out, {stats.Failures} failed opens, {stats.Ejections} ejections, now {stats.State}, latency {Format.Millis(stats.SmoothedLatency)}, peak {Format.Millis(stats.LatencyEstimate)}");
        }

        var ok = summary.AcquireFailures == 0 && summary.Acquires > 0;
        Console.WriteLine(ok ? "demo: every acquire succeeded" : "demo: some acquires failed");
        if (watchReturn is not null)
        {
            Console.WriteLine(watchReturn.Describe());
            ok &= watchReturn.Returned;
        }

        return ok ? 0 : 1;
    }

    /// <summary>
    /// Watches one node go out of service (any state but Healthy) and come back: Healthy and winning acquires again
    /// in an interval. Then the load goes on for a short while, so that the return shows, and stops.
    /// </summary>
    private sealed class NodeReturn(string node, TimeSpan afterReturn)
    {
        private TimeSpan? _outAt;
        private ClusterNodeState _outState;
        private TimeSpan? _backAt;

        public bool Returned => _backAt is not null;

        public bool ShouldStop(IReadOnlyList<NodeInterval> nodes, TimeSpan elapsed)
        {
            var mine = nodes.First(n => n.Statistics.Name == node);
            if (_outAt is null)
            {
                if (mine.Statistics.State != ClusterNodeState.Healthy)
                {
                    _outAt = elapsed;
                    _outState = mine.Statistics.State;
                }
            }
            else if (_backAt is null && mine.Statistics.State == ClusterNodeState.Healthy && mine.Wins > 0)
            {
                _backAt = elapsed;
            }

            return elapsed - _backAt >= afterReturn;
        }

        public string Describe() => (_outAt, _backAt) switch
        {
            (null, _) => $"demo: {node} never went out of service, so its return was not shown",
            (_, null) => $"demo: {node} went {_outState} at t={_outAt.Value.TotalSeconds:0.0}s and did not win acquires again before the demo's time ran out",
            _ => $"demo: {node} went {_outState} at t={_outAt.Value.TotalSeconds:0.0}s and was back (Healthy, winning acquires) at t={_backAt.Value.TotalSeconds:0.0}s, {(_backAt.Value - _outAt.Value).TotalSeconds:0.0} s later",
        };
    }
}

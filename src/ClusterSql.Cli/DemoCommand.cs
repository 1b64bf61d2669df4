using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.MySql;

namespace ClusterSql.Cli;

/// <summary>
/// The README's main job: the generated <see cref="LocalCluster"/> checked, then under a steady load for a while,
/// with a closing summary. eng/demo.sh crashes and restarts a node in the middle, so the failover is visible.
/// </summary>
internal static class DemoCommand
{
    public static async Task<int> RunAsync(TimeSpan duration, int workers, CancellationToken cancellationToken)
    {
        await using var cluster = LocalCluster.Create(LocalCluster.Configuration, builder => builder.UseGaleraHealthProbe());
        Console.WriteLine($"ClusterSql demo: generated cluster {nameof(LocalCluster)} with nodes {LocalCluster.NodeNames.Galera1}, {LocalCluster.NodeNames.Galera2}, {LocalCluster.NodeNames.Galera3}");
        Console.WriteLine($"policy {cluster.DataSource.Options.Policy}, connect timeout {Format.Millis(cluster.DataSource.Options.ConnectTimeout)}, Galera probe every {Format.Millis(cluster.DataSource.Options.HealthCheckInterval)}");
        Console.WriteLine();

        var verdict = await CheckCommand.RunAsync(cluster.DataSource, cancellationToken);
        if (verdict == CheckCommand.Failed)
        {
            Console.WriteLine("demo: the cluster failed its check; start it with tests/cluster/cluster.sh up");
            return verdict;
        }

        Console.WriteLine();
        Console.WriteLine($"demo: {workers} workers acquiring and running a query for {duration.TotalSeconds:0} s ...");
        var summary = await WatchCommand.RunAsync(cluster.DataSource, workers, duration, TimeSpan.FromSeconds(1), "SELECT COUNT(*) FROM clustersql_check", cancellationToken);

        Console.WriteLine("demo summary:");
        Console.WriteLine($"  {summary.Acquires} acquires, {summary.AcquireFailures} failed, slowest {Format.Millis(summary.Slowest)}, {summary.StatementErrors} statement errors (never re-run)");
        foreach (var node in new[] { cluster.Galera1, cluster.Galera2, cluster.Galera3 })
        {
            var stats = node.GetStatistics();
            Console.WriteLine($"  {stats.Name}: {stats.Wins} connections handed out, {stats.Failures} failed opens, {stats.Ejections} ejections, now {stats.State}");
        }

        var ok = summary.AcquireFailures == 0 && summary.Acquires > 0;
        Console.WriteLine(ok ? "demo: every acquire succeeded" : "demo: some acquires failed");
        return ok ? 0 : 1;
    }
}

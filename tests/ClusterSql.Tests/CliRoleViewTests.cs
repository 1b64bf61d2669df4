using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.Cli;
using ClusterSql.Tests.Fakes;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>`clustersql check` and `watch`: the roles they show and the reasons they give, from the library's own orders.</summary>
[TestFixture]
public sealed class CliRoleViewTests
{
    private static readonly TimeSpan LongUp = TimeSpan.FromHours(3);

    [Test]
    public async Task Explain_LowestRank_IsTheWriterAheadOfTheNextByRank()
    {
        await using var cluster = await Cluster(
            ("node1", Report(rank: 2)), ("node2", Report(rank: 0)), ("node3", Report(rank: 1)));

        var view = RoleView.Of(cluster);
        var lines = view.Explain();

        Assert.That(view.WriterOrder, Is.EqualTo(new[] { "node2", "node3", "node1" }));
        Assert.That(lines[0], Is.EqualTo("writer: node2 (settled: up 3 h 0 min, priority 0, rank 0; ahead of node3 because rank 0 < 1; ahead of node1 because rank 0 < 2)"));
        Assert.That(lines[2], Does.StartWith("reader order: node1, node3; then, only when none of those can serve: node2 (writer)"));
        Assert.That(view.Rows.Select(r => r.Role), Is.EqualTo(new[] { "reader", "writer", "reader" }));
    }

    [Test]
    public async Task Explain_WriterCandidateNotSettled_NamesTheFailbackDelay()
    {
        await using var cluster = await Cluster(
            ("node1", Report(rank: 0, uptime: TimeSpan.FromSeconds(10))), ("node2", Report(rank: 1)), ("node3", Report(rank: 2)));

        var view = RoleView.Of(cluster);

        Assert.That(view.WriterOrder[0], Is.EqualTo("node2"));
        Assert.That(view.WriterOrder, Is.EqualTo(new[] { "node2", "node3", "node1" }), "settled nodes first, then rank");
        Assert.That(view.Explain()[0], Does.Contain("ahead of node3 because rank 1 < 2; ahead of node1 because node1 has not settled (up 10 s < failback delay 1 min)"));
        Assert.That(view.Rows.Single(r => r.Name == "node1").Settled, Is.False);
    }

    [Test]
    public async Task Explain_PriorityBeforeRank_AndReadOnlyNeverWrites()
    {
        await using var cluster = await Cluster(
            ("node1", Report(rank: 0, readOnly: true)), ("node2", Report(rank: 1)), ("node3", Report(rank: 2, priority: -1)));

        var view = RoleView.Of(cluster);
        var writer = view.Explain()[0];

        Assert.That(writer, Does.StartWith("writer: node3 ("));
        Assert.That(writer, Does.Contain("ahead of node2 because priority -1 < 0").And.Contain("node1 is read-only"));
        Assert.That(view.WriterOrder, Is.EqualTo(new[] { "node3", "node2" }));
    }

    [Test]
    public async Task Table_LaggingAndDownNodes_ShowTheirRoleAndData()
    {
        await using var cluster = await Cluster(
            ("node1", Report(rank: 0)), ("node2", Report(rank: 1, lag: 500)), ("node3", (ClusterNodeHealth.Unhealthy("not Synced"), 0)));

        var view = RoleView.Of(cluster);
        var rows = view.Table().ToDictionary(r => r[0]);

        Assert.That(rows["node1"][1], Is.EqualTo("writer"));
        Assert.That(rows["node2"], Is.EqualTo(new[] { "node2", "lagging", "1", "0", "3 h 0 min", "yes", "500", "no" }));
        Assert.That(rows["node3"][1], Is.EqualTo("-"));
        Assert.That(view.Explain()[0], Does.Contain("node3 cannot serve now"));
        Assert.That(view.Explain()[2], Does.Contain("node2 (lagging)").And.Contain("max reader lag 100"));
    }

    [Test]
    public async Task Explain_NoWritableNode_SaysSo()
    {
        await using var cluster = await Cluster(("node1", Report(rank: 0, readOnly: true)));

        Assert.That(RoleView.Of(cluster).Explain()[0], Is.EqualTo("writer: NONE: no node can take writes now (node1 read-only)"));
    }

    [TestCase(0.5, "500 ms")]
    [TestCase(59, "59 s")]
    [TestCase(600, "10 min")]
    [TestCase(605, "10 min 5 s")]
    [TestCase(3 * 3600 + 300, "3 h 5 min")]
    [TestCase(2 * 86400 + 4 * 3600, "2 d 4 h")]
    public void Duration_ReadsAsAPersonWould(double seconds, string expected) =>
        Assert.That(Format.Duration(TimeSpan.FromSeconds(seconds)), Is.EqualTo(expected));

    [Test]
    public async Task CheckJson_NamesOnlyAReachableNodeAsWriter()
    {
        await using var cluster = await Cluster(("node1", Report(rank: 0)), ("node2", Report(rank: 1)));
        var view = RoleView.Of(cluster);
        Assert.That(view.WriterOrder[0], Is.EqualTo("node1"));
        var replication = new CheckCommand.Replication(false, false, null, [], null, "replication: not checked");

        // Nothing reachable: no writer, although the probe's last data still orders the nodes.
        var none = CheckCommand.ToJson([new CheckCommand.NodeReport("node1"), new CheckCommand.NodeReport("node2")], view, replication, CheckCommand.Failed);
        Assert.That(none.Roles!.Writers, Is.Empty);

        // The first in order unreachable: the writer is the next one the check reached.
        var second = CheckCommand.ToJson([new CheckCommand.NodeReport("node1"), new CheckCommand.NodeReport("node2") { Reachable = true }], view, replication, CheckCommand.Degraded);
        Assert.That(second.Roles!.Writers, Is.EqualTo(new[] { "node2" }));
    }

    [Test]
    public void WatchJson_NodeStateNames_ArePinned()
    {
        var expected = new Dictionary<ClusterNodeState, string>
        {
            [ClusterNodeState.Healthy] = "Healthy",
            [ClusterNodeState.Ejected] = "Ejected",
            [ClusterNodeState.HalfOpen] = "HalfOpen",
            [ClusterNodeState.Down] = "Down",
            [ClusterNodeState.Removed] = "Removed",
            [ClusterNodeState.Disposed] = "Disposed",
            [ClusterNodeState.Draining] = "Draining",
        };
        Assert.That(Enum.GetValues<ClusterNodeState>().ToDictionary(s => s, WatchCommand.StateName), Is.EqualTo(expected), "a new state needs its JSON name (README)");
        Assert.That(WatchCommand.StateName((ClusterNodeState)99), Is.EqualTo("Unknown"));
    }

    private static (ClusterNodeHealth Health, int Priority) Report(long rank, TimeSpan? uptime = null, long lag = 0, bool readOnly = false, int priority = 0) =>
        (ClusterNodeHealth.Healthy with { WriterRank = rank, Uptime = uptime ?? LongUp, ReplicationLag = lag, ReadOnly = readOnly }, priority);

    /// <summary>A cluster whose probe reported once for every node, with a one-minute failback delay.</summary>
    private static async Task<ClusterDataSource> Cluster(params (string Name, (ClusterNodeHealth Health, int Priority) Report)[] nodes)
    {
        var time = new FakeTimeProvider();
        var probe = new FixedProbe(nodes.ToDictionary(n => n.Name, n => n.Report.Health));
        var builder = new ClusterDataSourceBuilder().UseTimeProvider(time).UseHealthProbe(probe);
        builder.Options.WriterFailbackDelay = TimeSpan.FromMinutes(1);
        foreach (var (name, report) in nodes)
        {
            builder.AddNode(name, new FakeNode(name, time, OpenScript.Succeed), new ClusterNodeOptions { Priority = report.Priority });
        }

        var cluster = builder.Build();
        await FakeCluster.WaitFor(
            () => cluster.Nodes.All(n => n.GetStatistics() is var s && (s.Uptime is not null || s.State == ClusterNodeState.Down)),
            "every node's first check applied");
        return cluster;
    }

    private sealed class FixedProbe(Dictionary<string, ClusterNodeHealth> reports) : IClusterNodeHealthProbe
    {
        public ValueTask<ClusterNodeHealth> CheckAsync(ClusterNode node, CancellationToken cancellationToken) => new(reports[node.Name]);
    }
}

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Data.Common;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.Core;
using ClusterSql.Tests.Fakes;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>The writer and reader roles: filters and orders over the same acquire path, from the probe's data.</summary>
[TestFixture]
public sealed class RoleTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);

    [Test]
    public async Task Writer_IsTheLowestRankedUsableNode_AndIndependentDataSourcesAgree()
    {
        // Five data sources with different random seeds and declared orders, one cluster's reports: like five services.
        var probe = new ReportingProbe();
        probe.Set("node1", rank: 2);
        probe.Set("node2", rank: 0);
        probe.Set("node3", rank: 1);
        var clusters = new List<FakeCluster>();
        for (var seed = 1; seed <= 5; seed++)
        {
            clusters.Add(FakeCluster.Create(3, Configure, seed, probe));
        }

        try
        {
            await Reflected(probe, [.. clusters]);
            foreach (var cluster in clusters)
            {
                Assert.That(await WriterOf(cluster, 20), Is.EqualTo(new[] { "node2" }));
                Assert.That(cluster.DataSource.Writer.Nodes[0].Name, Is.EqualTo("node2"));
            }

            // The writer leaves the group: the survivors' ranks are renumbered the same way in every client.
            probe.Down("node2");
            probe.Set("node3", rank: 0);
            probe.Set("node1", rank: 1);
            foreach (var cluster in clusters)
            {
                await Advance(cluster, probe, Interval);
            }

            await Reflected(probe, [.. clusters]);
            foreach (var cluster in clusters)
            {
                Assert.That(await WriterOf(cluster, 20), Is.EqualTo(new[] { "node3" }), "every client moves to the same next writer");
            }
        }
        finally
        {
            foreach (var cluster in clusters)
            {
                await cluster.DisposeAsync();
            }
        }
    }

    [Test]
    public async Task Writer_OpenFailsBeforeTheProbeNotices_MovesToTheNextNodeOfTheSameOrder()
    {
        var probe = new ReportingProbe();
        probe.Set("node1", rank: 0);
        probe.Set("node2", rank: 1);
        probe.Set("node3", rank: 2);
        await using var cluster = FakeCluster.Create(3, Configure, probe: probe);
        await Reflected(probe, cluster);

        cluster["node1"].Script = OpenScript.Fail;
        for (var i = 0; i < 10; i++)
        {
            await using var connection = await cluster.DataSource.Writer.OpenConnectionAsync();
            Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"), "the next in the agreed order, never node3");
        }
    }

    [Test]
    public async Task Writer_NodeThatComesBack_TakesWritesBackOnlyAfterTheFailbackDelay()
    {
        var probe = new ReportingProbe();
        probe.Set("node1", rank: 0, uptime: TimeSpan.FromHours(1));
        probe.Set("node2", rank: 1, uptime: TimeSpan.FromHours(1));
        probe.Set("node3", rank: 2, uptime: TimeSpan.FromHours(1));
        await using var cluster = FakeCluster.Create(3, o =>
        {
            Configure(o);
            o.WriterFailbackDelay = TimeSpan.FromSeconds(60);
        }, probe: probe);
        probe.Clock = cluster.Time;
        await Reflected(probe, cluster);
        Assert.That(await WriterOf(cluster, 5), Is.EqualTo(new[] { "node1" }));

        // node1 restarts: down for one check, then back with a fresh uptime and (new group member) rank 0 again.
        probe.Down("node1");
        await Advance(cluster, probe, Interval);
        Assert.That(await WriterOf(cluster, 5), Is.EqualTo(new[] { "node2" }));
        probe.Set("node1", rank: 0, uptime: TimeSpan.FromSeconds(3));
        await Advance(cluster, probe, Interval);
        Assert.That(cluster.Node("node1").State, Is.EqualTo(ClusterNodeState.Healthy));

        for (var elapsed = 2; elapsed < 56; elapsed += 2)
        {
            Assert.That(await WriterOf(cluster, 2), Is.EqualTo(new[] { "node2" }), $"writes stay on node2 {elapsed} s after node1 came back");
            await Advance(cluster, probe, Interval);
        }

        await Advance(cluster, probe, TimeSpan.FromSeconds(6));
        Assert.That(await WriterOf(cluster, 5), Is.EqualTo(new[] { "node1" }), "node1 settled: the agreed order again");
    }

    [Test]
    public async Task Writer_PartitionHealedWithoutRestart_TakesItsPlaceAgainInEveryClientAlike()
    {
        // Two clients, one of which never saw node1 down (it started after the partition healed): both must agree.
        var probe = new ReportingProbe();
        probe.Set("node1", rank: 0, uptime: TimeSpan.FromHours(1));
        probe.Set("node2", rank: 1, uptime: TimeSpan.FromHours(1));
        await using var old = FakeCluster.Create(2, o =>
        {
            Configure(o);
            o.WriterFailbackDelay = TimeSpan.FromSeconds(30);
        }, probe: probe);
        probe.Clock = old.Time;
        await Reflected(probe, old);

        probe.Verdict("node1", "wsrep_cluster_status is non-Primary");
        await Advance(old, probe, Interval);
        Assert.That(await WriterOf(old, 5), Is.EqualTo(new[] { "node2" }));
        probe.Set("node1", rank: 0, uptime: TimeSpan.FromHours(1));
        await Advance(old, probe, Interval);
        await using var fresh = FakeCluster.Create(2, Configure, seed: 7, probe: probe);
        await Reflected(probe, fresh);
        Assert.That(await WriterOf(old, 5), Is.EqualTo(new[] { "node1" }), "its server never restarted: settled");
        Assert.That(await WriterOf(fresh, 5), Is.EqualTo(new[] { "node1" }), "a client that saw nothing agrees");
    }

    [Test]
    public async Task Writer_RanksOfTwoMembershipVersions_AreNotMixed()
    {
        var probe = new ReportingProbe();
        probe.Set("node1", rank: 0, membership: 5);
        probe.Set("node2", rank: 1, membership: 5);
        probe.Set("node3", rank: 2, membership: 5);
        await using var cluster = FakeCluster.Create(3, Configure, probe: probe);
        await Reflected(probe, cluster);
        Assert.That(cluster.DataSource.Writer.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "node1", "node2", "node3" }));

        // A member joined: node3 is renumbered 0 and node1 1 in version 6, but node2's check still reports version 5 (rank
        // 1). Mixed, the ranks would put node3 first; the previous order stands until every node reports version 6.
        probe.Set("node3", rank: 0, membership: 6);
        probe.Set("node1", rank: 1, membership: 6);
        await Advance(cluster, probe, Interval);
        Assert.That(cluster.DataSource.Writer.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "node1", "node2", "node3" }), "mixed versions: the previous order");

        probe.Set("node2", rank: 2, membership: 6);
        await Advance(cluster, probe, Interval);
        Assert.That(cluster.DataSource.Writer.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "node3", "node1", "node2" }));
    }

    [Test]
    public async Task Writer_SlowOpen_IsNotHedgedToAnotherNode_ButAFailureMovesOn()
    {
        await using var cluster = FakeCluster.Create(3, o => o.HedgeBudget = 1);
        cluster["node1"].Enqueue(OpenScript.SucceedAfter(TimeSpan.FromMilliseconds(900)));
        var open = cluster.DataSource.Writer.OpenConnectionAsync().AsTask();
        var connection = await cluster.RunUntilDone(open, TimeSpan.FromMilliseconds(50));
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node1"), "a slow writer is waited for, not hedged");
        Assert.That(cluster["node2"].OpensStarted + cluster["node3"].OpensStarted, Is.Zero);
        await connection.DisposeAsync();

        // Readers hedge as the cluster does.
        cluster["node2"].Enqueue(OpenScript.SucceedAfter(TimeSpan.FromMilliseconds(900)));
        cluster["node3"].Enqueue(OpenScript.SucceedAfter(TimeSpan.FromMilliseconds(900)));
        var read = cluster.DataSource.Readers.OpenConnectionAsync().AsTask();
        await using var reader = await cluster.RunUntilDone(read, TimeSpan.FromMilliseconds(50));
        Assert.That(cluster["node2"].OpensStarted + cluster["node3"].OpensStarted, Is.EqualTo(2), "the slow reader was hedged to the other reader");
    }

    [Test]
    public async Task Reader_SlowOpen_IsNotHedgedToTheWriter_ButAFailureMovesOn()
    {
        // node1 is the writer (reader tier 1), node2 the only reader: reads go to the writer only when node2 cannot serve.
        await using var cluster = FakeCluster.Create(2, o => o.HedgeBudget = 1);
        cluster["node2"].Enqueue(OpenScript.SucceedAfter(TimeSpan.FromMilliseconds(900)));
        var read = cluster.DataSource.Readers.OpenConnectionAsync().AsTask();
        var connection = await cluster.RunUntilDone(read, TimeSpan.FromMilliseconds(50));
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"), "a slow reader is waited for");
        Assert.That(cluster["node1"].OpensStarted, Is.Zero, "no read was hedged onto the writer");
        await connection.DisposeAsync();

        cluster["node2"].Enqueue(OpenScript.FailAfter(TimeSpan.FromMilliseconds(10)));
        read = cluster.DataSource.Readers.OpenConnectionAsync().AsTask();
        await using var failedOver = await cluster.RunUntilDone(read, TimeSpan.FromMilliseconds(50));
        Assert.That(((FakeConnection)failedOver).Node.Name, Is.EqualTo("node1"), "a failed reader moves on to the writer");
    }

    [Test]
    public async Task Writers_FirstNodeHalfOpenWithItsTrialClaimed_StillCountsTowardsMaxWriters()
    {
        await using var cluster = FakeCluster.Create(3, o => o.MaxWriters = 2);
        var nodes = cluster.DataSource.Writer.Nodes.ToArray();
        Assert.That(nodes.Select(n => n.Name), Is.EqualTo(new[] { "node1", "node2", "node3" }));

        // node1 ejected, then half-open: this acquire holds its trial, so this client's CanServe says no.
        var time = cluster.Time;
        for (var i = 0; i < cluster.DataSource.Options.EjectionThreshold; i++)
        {
            var now = time.GetTimestamp();
            nodes[0].RecordFailure(new FakeDbException("refused"), now, now, trial: 0);
        }

        time.Advance(cluster.DataSource.Options.MaxEjectionTime + TimeSpan.FromSeconds(1));
        var at = time.GetTimestamp();
        Assert.That(nodes[0].TryClaim(at, panic: false, out var trial) && trial != 0, Is.True, "the trial is this acquire's");

        // node2 busy, so node3 is the cheaper: were node1 not counted, node3 would join the writers and come first.
        nodes[1].BeginAttempt(isHedge: false, at);
        var selector = new NodeSelector(cluster.DataSource.Options, time, new Random(1), RoleGroup.Writers);
        var order = selector.Order(nodes, at, exclude: nodes[0], panic: false);
        Assert.That(order.Select(n => n.Name), Is.EqualTo(new[] { "node2", "node3" }), "node2 is the only other writer");
        Assert.That(selector.MayHedgeTo(0, firstExcluded: true), Is.True, "a hedge may go to node2");
        Assert.That(selector.MayHedgeTo(1, firstExcluded: true), Is.False, "never to node3");
    }

    [Test]
    public async Task Writer_ZeroFailbackDelay_FailsBackAtOnce()
    {
        var probe = new ReportingProbe();
        probe.Set("node1", rank: 0, uptime: TimeSpan.FromHours(1));
        probe.Set("node2", rank: 1, uptime: TimeSpan.FromHours(1));
        await using var cluster = FakeCluster.Create(2, o =>
        {
            Configure(o);
            o.WriterFailbackDelay = TimeSpan.Zero;
        }, probe: probe);
        probe.Clock = cluster.Time;
        await Reflected(probe, cluster);
        probe.Down("node1");
        await Advance(cluster, probe, Interval);
        Assert.That(await WriterOf(cluster, 3), Is.EqualTo(new[] { "node2" }));
        probe.Set("node1", rank: 0, uptime: TimeSpan.FromSeconds(1));
        await Advance(cluster, probe, Interval);
        Assert.That(await WriterOf(cluster, 3), Is.EqualTo(new[] { "node1" }));
    }

    [Test]
    public async Task Writer_PriorityOverridesRank_AndReadOnlyNodesNeverWrite()
    {
        var probe = new ReportingProbe();
        probe.Set("node1", rank: 0, readOnly: true);
        probe.Set("node2", rank: 1);
        probe.Set("node3", rank: 2);
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var nodes = Enumerable.Range(1, 3).Select(i => new FakeNode($"node{i}", time, OpenScript.Succeed)).ToArray();
        var builder = new ClusterDataSourceBuilder().UseTimeProvider(time).UseHealthProbe(probe);
        builder.AddNode("node1", nodes[0]);
        builder.AddNode("node2", nodes[1], new ClusterNodeOptions { Priority = 1 });
        builder.AddNode("node3", nodes[2]);
        await using var cluster = builder.Build();
        await Reflected(probe, cluster);

        for (var i = 0; i < 10; i++)
        {
            await using var connection = await cluster.Writer.OpenConnectionAsync();
            Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node3"), "node1 is read-only; node2's priority 1 comes after node3's 0");
        }

        Assert.That(cluster.Writer.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "node3", "node2" }));
        Assert.That(cluster.GetNode("node1")!.GetStatistics().ReadOnly, Is.True);
    }

    [Test]
    public async Task Writer_MaxWritersTwo_SpreadsOverTheFirstTwoOfTheOrder()
    {
        var probe = new ReportingProbe();
        probe.Set("node1", rank: 2);
        probe.Set("node2", rank: 0);
        probe.Set("node3", rank: 1);
        await using var cluster = FakeCluster.Create(3, o =>
        {
            Configure(o);
            o.MaxWriters = 2;
        }, probe: probe);
        await Reflected(probe, cluster);
        var used = await WriterOf(cluster, 200);
        Assert.That(used, Is.EquivalentTo(new[] { "node2", "node3" }));
    }

    [Test]
    public async Task Readers_AvoidTheWriterAndLaggingNodes_AndFallBackToTheWriterWhenNothingElseServes()
    {
        var probe = new ReportingProbe();
        probe.Set("node1", rank: 0);
        probe.Set("node2", rank: 1);
        probe.Set("node3", rank: 2);
        probe.Set("node4", rank: 3, lag: 5_000);
        await using var cluster = FakeCluster.Create(4, Configure, probe: probe);
        await Reflected(probe, cluster);

        var used = await ReaderOf(cluster, 300);
        Assert.That(used, Is.EquivalentTo(new[] { "node2", "node3" }), "not the writer (node1), not the lagging node4");
        Assert.That(cluster.DataSource.Readers.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "node2", "node3", "node1", "node4" }));

        probe.Down("node2");
        probe.Down("node3");
        await Advance(cluster, probe, Interval);
        Assert.That(await ReaderOf(cluster, 10), Is.EqualTo(new[] { "node1" }), "the writer serves reads when no reader can");

        probe.Down("node1");
        await Advance(cluster, probe, Interval);
        Assert.That(await ReaderOf(cluster, 10), Is.EqualTo(new[] { "node4" }), "a lagging node is better than none");
    }

    [Test]
    public async Task Readers_WriterIsAlsoReader_SpreadsOverEveryNode()
    {
        var probe = new ReportingProbe();
        probe.Set("node1", rank: 0);
        probe.Set("node2", rank: 1);
        probe.Set("node3", rank: 2);
        await using var cluster = FakeCluster.Create(3, o =>
        {
            Configure(o);
            o.WriterIsAlsoReader = true;
        }, probe: probe);
        await Reflected(probe, cluster);
        Assert.That(await ReaderOf(cluster, 300), Is.EquivalentTo(new[] { "node1", "node2", "node3" }));
    }

    [Test]
    public async Task Writer_NodeNotYetChecked_IsNeitherWriterNorFailoverTarget()
    {
        // node1 (declared first) is a standby whose first check has not returned; node2 is the primary, node3 a standby.
        var probe = new ReportingProbe();
        probe.Hold("node1");
        probe.Set("node2", rank: 0);
        probe.Set("node3", rank: 0, readOnly: true);
        await using var cluster = FakeCluster.Create(3, Configure, probe: probe);
        await FakeCluster.WaitFor(() => probe.IsReflectedIn(cluster.Node("node2")) && probe.IsReflectedIn(cluster.Node("node3")), "node2 and node3 checked");

        Assert.That(await WriterOf(cluster, 10), Is.EqualTo(new[] { "node2" }));
        Assert.That(cluster.DataSource.Writer.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "node2" }), "an unchecked node has no place in the writer order");

        cluster["node2"].Script = OpenScript.Fail;
        Assert.That(async () => await cluster.DataSource.Writer.OpenConnectionAsync(), Throws.Exception, "no failover to a node whose role is unknown");
        Assert.That(cluster["node1"].OpensStarted, Is.Zero);

        // Its check returns (it is a standby): still no writer; the readers use it.
        cluster["node2"].Script = OpenScript.Succeed;
        probe.Set("node1", rank: 0, readOnly: true);
        probe.Release("node1");
        await FakeCluster.WaitFor(() => probe.IsReflectedIn(cluster.Node("node1")), "node1 checked");
        Assert.That(cluster.DataSource.Writer.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "node2" }));
        Assert.That(await ReaderOf(cluster, 100), Is.EquivalentTo(new[] { "node1", "node3" }));
    }

    [Test]
    public async Task Roles_WithoutAProbe_WriterIsTheFirstDeclaredNode()
    {
        await using var cluster = FakeCluster.Create(3);
        Assert.That(await WriterOf(cluster, 10), Is.EqualTo(new[] { "node1" }));
        Assert.That(await ReaderOf(cluster, 200), Is.EquivalentTo(new[] { "node2", "node3" }));
    }

    [Test]
    public async Task Roles_CreateConnectionAndBatch_AcquireThroughTheirRole()
    {
        await using var cluster = FakeCluster.Create(3);
        await using var connection = cluster.DataSource.Writer.CreateConnection();
        await connection.OpenAsync();
        Assert.That(cluster["node1"].ConnectionsMade, Is.EqualTo(1));
        Assert.That(cluster.DataSource.Writer.ConnectionString, Does.EndWith("(writer)"));
        Assert.That(cluster.DataSource.Readers.ConnectionString, Does.Not.Contain(FakeNode.Secret));
    }

    [Test]
    public async Task Roles_DisposingTheRole_LeavesTheClusterWorking()
    {
        await using var cluster = FakeCluster.Create(2);
        await cluster.DataSource.Writer.DisposeAsync();
        cluster.DataSource.Readers.Dispose();
        await using var connection = await cluster.DataSource.Writer.OpenConnectionAsync();
        Assert.That(connection.State, Is.EqualTo(System.Data.ConnectionState.Open));
        await cluster.DisposeAsync();
        Assert.ThrowsAsync<ObjectDisposedException>(async () => await cluster.DataSource.Readers.OpenConnectionAsync());
    }

    [Test]
    public async Task Writer_FastPath_AllocatesNothing()
    {
        await using var cluster = FakeCluster.Create(3);
        var writer = cluster.DataSource.Writer;
        for (var i = 0; i < 2000; i++)
        {
            await AcquireWithoutAsyncState(writer);
        }

        // FakeNode makes a new connection per open: count what the role itself adds over the plain cluster.
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            await AcquireWithoutAsyncState(cluster.DataSource);
        }

        var plain = GC.GetAllocatedBytesForCurrentThread() - before;
        before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            await AcquireWithoutAsyncState(writer);
        }

        var role = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(role - plain, Is.LessThan(1000), "the role's order is cached: its acquire allocates nothing of its own (less than 1 byte per acquire)");
    }

    [Test]
    public async Task CausalReads_ReaderWaitsForTheLastRecordedWrite_AndATokenPerAcquire()
    {
        var consistency = new FakeConsistency();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var nodes = Enumerable.Range(1, 3).Select(i => new FakeNode($"node{i}", time, OpenScript.Succeed)).ToArray();
        var builder = new ClusterDataSourceBuilder().UseTimeProvider(time).UseConsistency(consistency);
        foreach (var node in nodes)
        {
            builder.AddNode(node.Name, node);
        }

        builder.Options.CausalReads = true;
        await using var cluster = builder.Build();

        // Nothing recorded yet: no wait.
        await using (await cluster.Readers.OpenConnectionAsync())
        {
        }

        Assert.That(consistency.Waits, Is.Empty);

        await using (var writer = await cluster.Writer.OpenConnectionAsync())
        {
            consistency.NextWrite = "7";
            Assert.That(await cluster.RecordWriteAsync(writer), Is.EqualTo("7"));
        }

        cluster.RecordWrite("5");
        Assert.That(cluster.LastWrite, Is.EqualTo("7"), "an older position never replaces a newer one");

        await using (await cluster.Readers.OpenConnectionAsync())
        {
        }

        Assert.That(consistency.Waits.Single(), Is.EqualTo("7"));

        await using (await cluster.Readers.OpenConnectionAsync("9"))
        {
        }

        Assert.That(consistency.Waits.Last(), Is.EqualTo("9"));

        // A node that cannot catch up: the acquire fails, and its connection goes back to its pool.
        consistency.FailWaits = true;
        var alive = nodes.Sum(n => n.Alive);
        Assert.ThrowsAsync<TimeoutException>(async () => await cluster.Readers.OpenConnectionAsync());
        Assert.That(nodes.Sum(n => n.Alive), Is.EqualTo(alive));
    }

    [Test]
    public void CausalReads_WithoutConsistency_FailsToBuildWithAClearError()
    {
        var builder = new ClusterDataSourceBuilder().AddNode("a", new FakeNode("a", new Microsoft.Extensions.Time.Testing.FakeTimeProvider()));
        builder.Options.CausalReads = true;
        var error = Assert.Throws<InvalidOperationException>(() => builder.Build());
        Assert.That(error!.Message, Does.Contain("CausalReads").And.Contain("UseConsistency"));
    }

    [TestCase(0, 5, 10, "MaxWriters")]
    [TestCase(1, -1, 10, "MaxReaderLag")]
    [TestCase(1, 5, -1, "WriterFailbackDelay")]
    public void Options_OutOfRange_NameTheSetting(int maxWriters, long maxLag, int failbackSeconds, string name)
    {
        var builder = new ClusterDataSourceBuilder().AddNode("a", new FakeNode("a", new Microsoft.Extensions.Time.Testing.FakeTimeProvider()));
        builder.Options.MaxWriters = maxWriters;
        builder.Options.MaxReaderLag = maxLag;
        builder.Options.WriterFailbackDelay = TimeSpan.FromSeconds(failbackSeconds);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => builder.Build());
        Assert.That(error!.ParamName, Is.EqualTo(name));
    }

    [Test]
    public void RetryOptions_DelayIsJitteredCappedAndGrows()
    {
        var options = new ClusterRetryOptions { BaseDelay = TimeSpan.FromMilliseconds(10), MaxDelay = TimeSpan.FromMilliseconds(100) };
        var random = new Random(3);
        for (var retry = 1; retry <= 40; retry++)
        {
            var ceiling = Math.Min(10 * Math.Pow(2, Math.Min(retry - 1, 30)), 100);
            var delay = options.DelayBefore(retry, random).TotalMilliseconds;
            Assert.That(delay, Is.InRange(ceiling / 2, ceiling), $"retry {retry}");
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => new ClusterRetryOptions { MaxAttempts = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClusterRetryOptions { MaxDelay = TimeSpan.FromMilliseconds(1) }.Validate());
    }

    private static void Configure(ClusterOptions options)
    {
        options.HealthCheckInterval = Interval;
        options.WriterFailbackDelay = TimeSpan.FromSeconds(60);
    }

    private static async ValueTask AcquireWithoutAsyncState(DbDataSource source)
    {
        var connection = await source.OpenConnectionAsync();
        connection.Close();
    }

    private static async Task<string[]> WriterOf(FakeCluster cluster, int acquires) => await Used(cluster.DataSource.Writer, acquires);

    private static async Task<string[]> ReaderOf(FakeCluster cluster, int acquires) => await Used(cluster.DataSource.Readers, acquires);

    private static async Task<string[]> Used(DbDataSource source, int acquires)
    {
        var used = new SortedSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < acquires; i++)
        {
            await using var connection = await source.OpenConnectionAsync();
            used.Add(((FakeConnection)connection).Node.Name);
        }

        return [.. used];
    }

    private static async Task Advance(FakeCluster cluster, ReportingProbe probe, TimeSpan by)
    {
        // Every node's next check must be armed before the clock moves, or it would be due a whole interval later: each
        // check is followed by one arming, and each node was armed once at the start.
        var runner = cluster.DataSource.Probes!;
        var nodes = cluster.Nodes.Length;
        await FakeCluster.WaitFor(() => runner.Scheduled == probe.ChecksOf(cluster.DataSource) + nodes, "every node's next check armed");
        var checks = probe.ChecksOf(cluster.DataSource);
        cluster.Time.Advance(by);
        await FakeCluster.WaitFor(
            () => probe.ChecksOf(cluster.DataSource) >= checks + nodes && runner.Scheduled == probe.ChecksOf(cluster.DataSource) + nodes,
            "every node checked again and its next check armed");
        await Reflected(probe, cluster);
    }

    /// <summary>Waits until every node of every cluster shows what the probe reports now (its checks ran and were applied).</summary>
    private static Task Reflected(ReportingProbe probe, params FakeCluster[] clusters) =>
        FakeCluster.WaitFor(() => clusters.All(c => c.DataSource.Nodes.All(probe.IsReflectedIn)), "the probe's reports applied");

    private static Task Reflected(ReportingProbe probe, ClusterDataSource cluster) =>
        FakeCluster.WaitFor(() => cluster.Nodes.All(probe.IsReflectedIn), "the probe's reports applied");

    /// <summary>A probe that reports what the test says, as the Galera probe reports what the cluster says.</summary>
    private sealed class ReportingProbe : IClusterNodeHealthProbe
    {
        private readonly ConcurrentDictionary<string, ClusterNodeHealth> _reports = new();
        private readonly ConcurrentDictionary<ClusterNode, int> _checks = new();

        public int ChecksOf(ClusterDataSource cluster) => cluster.Nodes.Sum(n => _checks.TryGetValue(n, out var count) ? count : 0);

        public bool IsReflectedIn(ClusterNode node)
        {
            var report = _reports.TryGetValue(node.Name, out var value) ? value : ClusterNodeHealth.Healthy;
            var statistics = node.GetStatistics();
            return report.IsHealthy
                ? statistics.State != ClusterNodeState.Down && statistics.WriterRank == report.WriterRank && statistics.ReplicationLag == report.ReplicationLag && statistics.ReadOnly == report.ReadOnly
                : statistics.State == ClusterNodeState.Down;
        }

        private readonly ConcurrentDictionary<string, DateTimeOffset> _started = new();

        /// <summary>The servers' clock: a reported uptime grows with it, as a real server's does.</summary>
        public TimeProvider? Clock { get; set; }

        public void Set(string node, long rank, TimeSpan? uptime = null, long? lag = null, bool readOnly = false, long? membership = null)
        {
            if (uptime is { } value && Clock is { } clock)
            {
                _started[node] = clock.GetUtcNow() - value;
            }

            _reports[node] = ClusterNodeHealth.Healthy with { WriterRank = rank, Membership = membership, Uptime = uptime, ReplicationLag = lag ?? 0, ReadOnly = readOnly };
        }

        public void Down(string node) => _reports[node] = ClusterNodeHealth.Unhealthy("not in the primary component");

        public void Verdict(string node, string reason) => _reports[node] = ClusterNodeHealth.Unhealthy(reason);

        private readonly ConcurrentDictionary<string, TaskCompletionSource> _held = new();

        /// <summary>The node's checks do not return until <see cref="Release"/>: a check still running.</summary>
        public void Hold(string node) => _held[node] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release(string node)
        {
            if (_held.TryRemove(node, out var held))
            {
                held.SetResult();
            }
        }

        public ValueTask<ClusterNodeHealth> CheckAsync(ClusterNode node, CancellationToken cancellationToken)
        {
            if (_held.TryGetValue(node.Name, out var held))
            {
                return HeldAsync(held.Task, node, cancellationToken);
            }

            return Report(node);
        }

        private async ValueTask<ClusterNodeHealth> HeldAsync(Task held, ClusterNode node, CancellationToken cancellationToken)
        {
            await held.WaitAsync(cancellationToken);
            return await Report(node);
        }

        private ValueTask<ClusterNodeHealth> Report(ClusterNode node)
        {
            _checks.AddOrUpdate(node, 1, static (_, count) => count + 1);
            var health = _reports.TryGetValue(node.Name, out var report) ? report : ClusterNodeHealth.Healthy;
            if (health.IsHealthy && Clock is { } clock && _started.TryGetValue(node.Name, out var started))
            {
                health = health with { Uptime = clock.GetUtcNow() - started };
            }

            return new ValueTask<ClusterNodeHealth>(health);
        }
    }

    /// <summary>Positions are integers; a wait records what it waited for.</summary>
    private sealed class FakeConsistency : IClusterConsistency
    {
        public string? NextWrite { get; set; }

        public bool FailWaits { get; set; }

        public ConcurrentQueue<string> Waits { get; } = new();

        public ValueTask<string?> ReadLastWriteAsync(DbConnection connection, CancellationToken cancellationToken) => new(NextWrite);

        public int Compare(string x, string y) => long.Parse(x).CompareTo(long.Parse(y));

        public ValueTask WaitForAsync(DbConnection connection, string position, TimeSpan timeout, CancellationToken cancellationToken)
        {
            WaitFor(connection, position, timeout);
            return default;
        }

        public void WaitFor(DbConnection connection, string position, TimeSpan timeout)
        {
            if (FailWaits)
            {
                throw new TimeoutException($"not applied {position}");
            }

            Waits.Enqueue(position);
        }
    }
}

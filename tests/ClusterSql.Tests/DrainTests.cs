using System;
using System.Collections.Concurrent;
using System.Data.Common;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.Tests.Fakes;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>Drain: no new acquires, handed-out connections finish, idle pooled sessions dropped (also when marked down).</summary>
[TestFixture]
public sealed class DrainTests
{
    [Test]
    public async Task Drain_StopsNewAcquires_LetsLeasesFinish_AndReplacesThePoolWhenTheLastComesBack()
    {
        var time = new FakeTimeProvider();
        var clears = new ConcurrentQueue<DbDataSource>();
        var replacements = new ConcurrentQueue<FakeNode>();
        var node1 = new FakeNode("node1", time, OpenScript.Succeed);
        var node2 = new FakeNode("node2", time, OpenScript.Succeed);
        var options = new ClusterNodeOptions
        {
            ClearIdleConnections = (dataSource, _) =>
            {
                clears.Enqueue(dataSource);
                var fresh = new FakeNode("node1", time, OpenScript.Succeed);
                replacements.Enqueue(fresh);
                return new ValueTask<DbDataSource?>(fresh);
            },
        };
        await using var cluster = new ClusterDataSourceBuilder().UseTimeProvider(time).AddNode("node1", node1, options).AddNode("node2", node2).Build();
        var node = cluster.GetNode("node1")!;

        var held = await node.OpenConnectionAsync();
        node.Drain("rolling restart");
        Assert.That(node.State, Is.EqualTo(ClusterNodeState.Draining));
        await FakeCluster.WaitFor(() => node1.DataSourceDisposed, "the first pool replaced at the drain");
        Assert.That(clears.Single(), Is.SameAs(node1));
        Assert.That(node.DataSource, Is.SameAs(replacements.Single()));

        for (var i = 0; i < 20; i++)
        {
            await using var connection = await cluster.OpenConnectionAsync();
            Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"), "a draining node gets no new acquire");
        }

        Assert.That(held.State, Is.EqualTo(System.Data.ConnectionState.Open), "a connection handed out before the drain goes on");
        await held.DisposeAsync();
        await FakeCluster.WaitFor(() => clears.Count == 2, "the pool cleared again when the last connection came back");
        Assert.That(node.GetStatistics().ConnectionsInUse, Is.Zero);

        node.Undrain();
        Assert.That(node.State, Is.EqualTo(ClusterNodeState.Healthy));
        var fromFreshPool = false;
        for (var i = 0; i < 50 && !fromFreshPool; i++)
        {
            // One acquire at a time stays on its warm node (node2) and explores node1 once a tenth of the decay time.
            time.Advance(TimeSpan.FromMilliseconds(100));
            await using var connection = await cluster.OpenConnectionAsync();
            fromFreshPool = ((FakeConnection)connection).Node == node.DataSource;
        }

        Assert.That(node.DataSource, Is.SameAs(replacements.Last()).And.Not.SameAs(node1));
        Assert.That(fromFreshPool, Is.True, "undrained: serves again, from its fresh pool");
    }

    [Test]
    public async Task MarkedDownByTheProbe_DropsIdleSessionsAtOnce_OncePerTransition()
    {
        var time = new FakeTimeProvider();
        var clears = 0;
        var options = new ClusterNodeOptions
        {
            ClearIdleConnections = (_, _) =>
            {
                Interlocked.Increment(ref clears);
                return new ValueTask<DbDataSource?>((DbDataSource?)null);
            },
        };
        await using var cluster = new ClusterDataSourceBuilder().UseTimeProvider(time)
            .AddNode("node1", new FakeNode("node1", time), options).AddNode("node2", new FakeNode("node2", time)).Build();
        var node = cluster.GetNode("node1")!;
        node.SetProbeResult("wsrep_desync is ON, not OFF");
        await FakeCluster.WaitFor(() => Volatile.Read(ref clears) == 1, "idle sessions dropped when the node went down");
        node.SetProbeResult("wsrep_desync is ON, not OFF");
        node.SetProbeResult("wsrep_desync is ON, not OFF");
        await Task.Delay(100);
        Assert.That(Volatile.Read(ref clears), Is.EqualTo(1), "not again on every check while it stays down");
        node.SetProbeResult(null);
        node.SetProbeResult("not Primary");
        await FakeCluster.WaitFor(() => Volatile.Read(ref clears) == 2, "dropped again on the next fall");
    }

    [Test]
    public async Task Drain_OfARemovedNode_DisposesTheReplacementInsteadOfLeakingIt()
    {
        var time = new FakeTimeProvider();
        var release = new TaskCompletionSource();
        var fresh = new FakeNode("node1", time);
        var options = new ClusterNodeOptions
        {
            ClearIdleConnections = async (_, _) =>
            {
                await release.Task;
                return fresh;
            },
        };
        var original = new FakeNode("node1", time);
        await using var cluster = new ClusterDataSourceBuilder().UseTimeProvider(time).AddNode("node1", original, options).AddNode("node2", new FakeNode("node2", time)).Build();
        cluster.GetNode("node1")!.Drain();
        Assert.That(cluster.RemoveNode("node1"), Is.True);
        await FakeCluster.WaitFor(() => original.DataSourceDisposed, "the removed node's data source disposed");
        release.SetResult();
        await FakeCluster.WaitFor(() => fresh.DataSourceDisposed, "the late replacement disposed, not installed");
    }
}

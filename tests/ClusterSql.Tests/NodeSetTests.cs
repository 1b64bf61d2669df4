using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.Tests.Fakes;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace ClusterSql.Tests;

[TestFixture]
public sealed class NodeSetTests
{
    [Test]
    public async Task RemoveNode_ThenAcquire_NeverUsesIt()
    {
        await using var cluster = FakeCluster.Create(3);
        await using var held = await cluster.DataSource.OpenConnectionAsync();

        Assert.That(cluster.DataSource.RemoveNode("NODE2"), Is.True, "names compare case-insensitively");
        Assert.That(cluster.DataSource.RemoveNode("node2"), Is.False);
        var opens = cluster["node2"].OpensStarted;
        for (var i = 0; i < 50; i++)
        {
            await using var connection = await cluster.DataSource.OpenConnectionAsync();
        }

        Assert.That(cluster["node2"].OpensStarted, Is.EqualTo(opens));
        Assert.That(cluster.DataSource.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "node1", "node3" }));
        Assert.That(held.State, Is.EqualTo(System.Data.ConnectionState.Open), "removing a node never breaks a connection handed out");
    }

    [Test]
    public async Task RemoveNode_WithAConnectionOpen_ReleasesItsProviderWhenTheLastIsClosed()
    {
        await using var cluster = FakeCluster.Create(3, o => o.Policy = AcquirePolicy.FailOver);
        var held = await cluster.DataSource.OpenConnectionAsync();
        Assert.That(((FakeConnection)held).Node.Name, Is.EqualTo("node1"));

        Assert.That(cluster.DataSource.RemoveNode("node1"), Is.True);
        Assert.That(cluster.DataSource.RemoveNode("node3"), Is.True);
        await FakeCluster.WaitFor(() => cluster["node3"].DataSourceDisposed, "node3, with nothing open, released at once");
        Assert.That(cluster["node1"].DataSourceDisposed, Is.False, "node1's pool lives while its connection is open");
        Assert.That(held.State, Is.EqualTo(System.Data.ConnectionState.Open));

        await held.DisposeAsync();
        await FakeCluster.WaitFor(() => cluster["node1"].DataSourceDisposed, "node1 released when its last connection closed");
        Assert.That(cluster["node2"].DataSourceDisposed, Is.False);
    }

    [Test]
    public async Task RemoveNode_WhileAHedgedLoserIsOpening_ReleasesItsProviderWhenTheLoserIsBack()
    {
        await using var cluster = FakeCluster.Create(2, o => o.Policy = AcquirePolicy.FailOver);
        cluster["node1"].Script = OpenScript.SucceedAfter(TimeSpan.FromMilliseconds(400));
        var acquire = cluster.DataSource.OpenConnectionAsync().AsTask();
        await using (var winner = await cluster.RunUntilDone(acquire, TimeSpan.FromMilliseconds(10)))
        {
            Assert.That(((FakeConnection)winner).Node.Name, Is.EqualTo("node2"), "hedged away from the slow node1");
        }

        Assert.That(cluster.DataSource.RemoveNode("node1"), Is.True);
        Assert.That(cluster["node1"].DataSourceDisposed, Is.False, "its open is still pending");
        cluster.Time.Advance(TimeSpan.FromMilliseconds(200));
        await FakeCluster.WaitFor(() => cluster["node1"].DataSourceDisposed, "released once the loser's connection is back");
        Assert.That(cluster["node1"].Alive, Is.Zero);
    }

    [Test]
    public async Task DisposeAsync_Nodes_ReportDisposedNotRemoved()
    {
        var cluster = FakeCluster.Create(2);
        var node = cluster.Node("node1");
        cluster.DataSource.RemoveNode("node2");
        var removed = cluster.Node("node1");
        await cluster.DisposeAsync();
        Assert.That(node.State, Is.EqualTo(ClusterNodeState.Disposed));
        Assert.That(cluster["node1"].DataSourceDisposed, Is.True);
        Assert.That(cluster["node2"].DataSourceDisposed, Is.True);
        var error = Assert.ThrowsAsync<ObjectDisposedException>(async () => await cluster.DataSource.OpenConnectionAsync());
        var syncError = Assert.Throws<ObjectDisposedException>(() => cluster.DataSource.CreateConnection());
        Assert.That(error!.Message, Is.EqualTo(syncError!.Message), "one wording for a disposed data source");
        Assert.That(error.ObjectName, Is.EqualTo("ClusterDataSource"));
        Assert.That(removed, Is.SameAs(node));
    }

    [Test]
    public async Task AddNode_WhileInUse_TakesPartInAcquires()
    {
        await using var cluster = FakeCluster.Create(1, o => o.Policy = AcquirePolicy.RoundRobin);
        var added = new FakeNode("late", cluster.Time, OpenScript.Succeed);
        var node = cluster.DataSource.AddNode("late", added);
        for (var i = 0; i < 4; i++)
        {
            await using var connection = await cluster.DataSource.OpenConnectionAsync();
        }

        Assert.That(added.OpensStarted, Is.EqualTo(2));
        Assert.That(node.GetStatistics().Wins, Is.EqualTo(2));
        Assert.That(() => cluster.DataSource.AddNode("LATE", added), Throws.ArgumentException.With.Message.Contains("already has a node named 'late'"));
    }

    [Test]
    public async Task Stress_ConcurrentAcquiresWhileNodesChange_LeakNothingAndNeverHandOutFromRemovedNodes()
    {
        var time = new FakeTimeProvider();
        var made = new List<FakeNode>();
        var builder = new ClusterDataSourceBuilder().UseTimeProvider(time);
        for (var i = 0; i < 3; i++)
        {
            var node = new FakeNode($"n{i}", time, OpenScript.Succeed);
            made.Add(node);
            builder.AddNode(node.Name, node);
        }

        await using var cluster = builder.Build();
        var violations = 0;
        var acquired = 0;
        using var stop = new CancellationTokenSource();

        async Task Worker()
        {
            for (var i = 0; i < 3000; i++)
            {
                DbConnectionHolder holder;
                try
                {
                    holder = new(await cluster.OpenConnectionAsync());
                }
                catch (ClusterException)
                {
                    continue; // every node removed at that instant
                }

                if (((FakeConnection)holder.Connection).MadeAfterRemoval)
                {
                    Interlocked.Increment(ref violations);
                }

                Interlocked.Increment(ref acquired);
                if (i % 7 == 0)
                {
                    await Task.Yield();
                }

                await holder.Connection.DisposeAsync();
            }
        }

        async Task Mutator()
        {
            var next = 3;
            while (!stop.IsCancellationRequested)
            {
                var node = new FakeNode($"n{next++}", time, OpenScript.Succeed);
                lock (made)
                {
                    made.Add(node);
                }

                cluster.AddNode(node.Name, node);
                var victim = cluster.Nodes[0];
                if (cluster.RemoveNode(victim.Name))
                {
                    lock (made)
                    {
                        made.Single(n => n.Name == victim.Name).RemovedFromCluster = true;
                    }
                }

                await Task.Yield();
            }
        }

        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(Worker)).ToArray();
        var mutator = Task.Run(Mutator);
        await Task.WhenAll(workers);
        await stop.CancelAsync();
        await mutator;

        Assert.That(acquired, Is.GreaterThan(10_000));
        Assert.That(violations, Is.Zero, "no connection made after its node's removal was handed out");
        await FakeCluster.WaitFor(() => made.All(n => n.Alive == 0), "every connection disposed");
        Assert.That(cluster.Nodes.Sum(n => n.GetStatistics().PendingOpens), Is.Zero);
    }

    private readonly record struct DbConnectionHolder(System.Data.Common.DbConnection Connection);

    [Test]
    public async Task DisposeAsync_DataSource_DisposesEveryNodeIncludingRemovedOnes()
    {
        var cluster = FakeCluster.Create(3);
        cluster.DataSource.RemoveNode("node3");
        await cluster.DataSource.DisposeAsync();

        Assert.That(cluster.Nodes.Select(n => n.DataSourceDisposed), Is.All.True);
        Assert.That(async () => await cluster.DataSource.OpenConnectionAsync(), Throws.InstanceOf<ObjectDisposedException>());
        Assert.That(() => cluster.DataSource.OpenConnection(), Throws.InstanceOf<ObjectDisposedException>());
        Assert.That(() => cluster.DataSource.AddNode("x", new FakeNode("x", cluster.Time)), Throws.InstanceOf<ObjectDisposedException>());
    }

    [Test]
    public async Task NodeOpenConnectionAsync_OpensOnThatNodeAloneAndCounts()
    {
        await using var cluster = FakeCluster.Create(3);
        await using var connection = await cluster.Node("node3").OpenConnectionAsync();
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node3"));
        Assert.That(cluster.Node("node3").GetStatistics().Successes, Is.EqualTo(1));

        cluster["node2"].Script = OpenScript.Fail;
        Assert.That(async () => await cluster.Node("node2").OpenConnectionAsync(), Throws.TypeOf<FakeDbException>(), "the provider's own error");
        Assert.That(cluster.Node("node2").GetStatistics().Failures, Is.EqualTo(1));
    }

    [Test]
    public async Task Statistics_AfterSuccessAndFailure_DescribeTheNode()
    {
        await using var cluster = FakeCluster.Create(1);
        cluster["node1"].Enqueue(OpenScript.Fail, OpenScript.Takes(TimeSpan.FromMilliseconds(4)));
        Assert.ThrowsAsync<ClusterException>(async () => await cluster.DataSource.OpenConnectionAsync());
        await using (await cluster.DataSource.OpenConnectionAsync())
        {
        }

        var stats = cluster.Node("node1").GetStatistics();
        Assert.That(stats.Opens, Is.EqualTo(2));
        Assert.That(stats.Successes, Is.EqualTo(1));
        Assert.That(stats.Wins, Is.EqualTo(1));
        Assert.That(stats.Failures, Is.EqualTo(1));
        Assert.That(stats.ConsecutiveFailures, Is.Zero);
        Assert.That(stats.LastErrorType, Is.EqualTo(nameof(FakeDbException)));
        Assert.That(stats.LastErrorMessage, Is.EqualTo("node1 refused the connection"));
        Assert.That(stats.LastSuccessAt, Is.EqualTo(cluster.Time.GetUtcNow()));
        Assert.That(stats.SmoothedLatency, Is.EqualTo(TimeSpan.FromMilliseconds(4)));
        Assert.That(stats.ToString(), Does.StartWith("node1: Healthy, opens 2, wins 1, failures 1"));
        Assert.That(cluster.Node("node1").ToString(), Is.EqualTo("node1 (Healthy)"));
        Assert.That(cluster.DataSource.ConnectionString, Is.EqualTo("ClusterSql: node1"));
    }
}

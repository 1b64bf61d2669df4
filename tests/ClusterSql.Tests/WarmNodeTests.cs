using System;
using System.Linq;
using System.Threading.Tasks;
using ClusterSql.Core;
using ClusterSql.Tests.Fakes;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>
/// A client that acquires one connection at a time goes back to the node that served it last (its server session and
/// caches are warm), and leaves it as soon as another node looks clearly cheaper. A client with load to spread is covered
/// by LatencyEstimatorTests.OpenConnectionAsync_ColdFirstOpen_NodeTakesItsShareOnceExplored.
/// </summary>
[TestFixture]
public sealed class WarmNodeTests
{
    [Test]
    public async Task OpenConnectionAsync_OneAtATimeOnEqualNodes_StaysOnTheWarmNode()
    {
        await using var cluster = FakeCluster.Create(3);
        EveryNodeTakes(cluster, OpenScript.Takes(TimeSpan.FromMilliseconds(1)));

        await Sequential(cluster, 30);
        var before = Wins(cluster);
        await Sequential(cluster, 300);
        var wins = Wins(cluster).Select((w, i) => w - before[i]).ToArray();

        // Two random choices among equals would give each node about a third.
        Assert.That(wins.Max(), Is.GreaterThanOrEqualTo(285), $"wins per node: {string.Join(", ", wins)}");
    }

    [Test]
    public async Task Readers_OneAtATimeOnEqualReaders_StaysOnTheWarmReader()
    {
        // node1 is the writer; node2..node4 the readers.
        await using var cluster = FakeCluster.Create(4);
        EveryNodeTakes(cluster, OpenScript.Takes(TimeSpan.FromMilliseconds(1)));

        await Sequential(cluster.DataSource.Readers, 30);
        var before = Wins(cluster);
        await Sequential(cluster.DataSource.Readers, 300);
        var wins = Wins(cluster).Select((w, i) => w - before[i]).ToArray();
        Assert.That(Wins(cluster)[0], Is.Zero, "no read on the writer");
        Assert.That(wins.Max(), Is.GreaterThanOrEqualTo(285), $"wins per node: {string.Join(", ", wins)}");
    }

    [Test]
    public async Task OpenConnectionAsync_WarmNodeTurnsSlower_ClientLeavesIt()
    {
        await using var cluster = FakeCluster.Create(3);
        EveryNodeTakes(cluster, OpenScript.Takes(TimeSpan.FromMilliseconds(1)));

        await Sequential(cluster, 60);
        var warm = Array.IndexOf(Wins(cluster), Wins(cluster).Max());
        var beforeSlow = Wins(cluster);
        await Sequential(cluster, 20);
        Assert.That(Wins(cluster)[warm] - beforeSlow[warm], Is.EqualTo(20), "the warm node serves a sequential client");

        cluster.Nodes[warm].Script = OpenScript.Takes(TimeSpan.FromMilliseconds(3));
        var before = Wins(cluster);
        await Sequential(cluster, 100);
        var onSlow = Wins(cluster)[warm] - before[warm];
        Assert.That(onSlow, Is.LessThanOrEqualTo(3), $"a warm node 3x slower than the others keeps {onSlow} of 100 acquires");
    }

    [Test]
    public async Task OpenConnectionAsync_OneAtATimeWithAsynchronousOpens_StaysOnTheWarmNode()
    {
        // Opens that complete later take the slow path, whose win notes the warm node too.
        await using var cluster = FakeCluster.Create(3);
        EveryNodeTakes(cluster, OpenScript.SucceedAfter(TimeSpan.FromMilliseconds(1)));

        var before = Wins(cluster);
        for (var i = 0; i < 60; i++)
        {
            var open = cluster.DataSource.OpenConnectionAsync().AsTask();
            await using var connection = await cluster.RunUntilDone(open, TimeSpan.FromMilliseconds(1));
            if (i == 19)
            {
                before = Wins(cluster);
            }
        }

        var wins = Wins(cluster).Select((w, i) => w - before[i]).ToArray();
        Assert.That(wins.Max(), Is.GreaterThanOrEqualTo(36), $"wins per node: {string.Join(", ", wins)}");
    }

    [Test]
    public async Task OpenConnectionAsync_OneAtATimeWithASomewhatSlowerNode_ExplorationsDoNotMoveTheClientThere()
    {
        // node1 is 1.3x slower: within WarmAdvantage, so only its explorations (one a second) reach it. An exploration
        // that won must not make it the warm node, or the client would stay there until the next exploration elsewhere.
        await using var cluster = FakeCluster.Create(3);
        EveryNodeTakes(cluster, OpenScript.Takes(TimeSpan.FromMilliseconds(1)));

        cluster["node1"].Script = OpenScript.Takes(TimeSpan.FromMilliseconds(1.3));
        await Sequential(cluster, 30);
        var before = Wins(cluster);
        var end = cluster.Time.GetUtcNow() + TimeSpan.FromSeconds(6);
        var count = 0;
        while (cluster.Time.GetUtcNow() < end)
        {
            await Sequential(cluster, 1);
            count++;
        }

        var onSlow = Wins(cluster)[0] - before[0];
        Assert.That(onSlow, Is.LessThan(count / 20), $"node1 won {onSlow} of {count} acquires");
    }

    [Test]
    public async Task PickFirst_WarmNodeDrained_IsNotPicked()
    {
        await using var cluster = FakeCluster.Create(3);
        await Sequential(cluster, 30);
        var nodes = cluster.DataSource.Nodes.ToArray();
        var selector = new NodeSelector(cluster.DataSource.Options, cluster.Time, new Random(7));
        selector.NoteWin(nodes[0]);
        var now = cluster.Time.GetTimestamp();
        Assert.That(Enumerable.Range(0, 20).Select(i => selector.PickFirst(nodes, now, payFrom: null, out _)), Is.All.SameAs(nodes[0]), "idle and warm: picked");

        nodes[0].Drain();
        Assert.That(Enumerable.Range(0, 20).Select(i => selector.PickFirst(nodes, now, payFrom: null, out _)), Has.None.SameAs(nodes[0]), "drained: never picked");
    }

    private static void EveryNodeTakes(FakeCluster cluster, OpenScript script)
    {
        foreach (var node in cluster.Nodes)
        {
            node.Script = script;
        }
    }

    private static Task Sequential(FakeCluster cluster, int count) => Sequential(cluster.DataSource, count);

    private static async Task Sequential(System.Data.Common.DbDataSource source, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await using var connection = await source.OpenConnectionAsync();
        }
    }

    private static long[] Wins(FakeCluster cluster) =>
        [.. cluster.Nodes.Select(n => cluster.Node(n.Name).GetStatistics().Wins)];
}

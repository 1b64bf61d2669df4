using System;
using System.Data;
using System.Data.Common;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.Core;
using ClusterSql.Tests.Fakes;
using NUnit.Framework;

namespace ClusterSql.Tests;

[TestFixture]
public sealed class AcquireTests
{
    private static readonly TimeSpan Ms = TimeSpan.FromMilliseconds(1);

    [Test]
    public async Task OpenConnectionAsync_HealthyNodes_ReturnsProviderConnectionWithOneAttempt()
    {
        await using var cluster = FakeCluster.Create(3);

        for (var i = 0; i < 30; i++)
        {
            await using var connection = await cluster.DataSource.OpenConnectionAsync();
            Assert.That(connection, Is.TypeOf<FakeConnection>());
        }

        Assert.That(cluster.TotalOpens, Is.EqualTo(30), "latency-aware makes one attempt per acquire");
        Assert.That(cluster.Alive, Is.All.EqualTo(0));
        Assert.That(cluster.DataSource.Nodes.Sum(n => n.GetStatistics().Wins), Is.EqualTo(30));
    }

    [Test]
    public void OpenConnection_Sync_UsesTheSameCore()
    {
        using var cluster = FakeCluster.Create(2).DataSource;
        using var connection = cluster.OpenConnection();
        Assert.That(connection, Is.TypeOf<FakeConnection>());
        Assert.That(cluster.Nodes.Sum(n => n.GetStatistics().Wins), Is.EqualTo(1));
    }

    [Test]
    public async Task OpenConnection_SyncOnOwnThreadWithSlowFirstNode_BlocksUntilHedgeWins()
    {
        await using var cluster = FakeCluster.Create(2, o => o.Policy = AcquirePolicy.FailOver);
        cluster["node1"].Script = OpenScript.Hang;

        // A thread of its own (not the pool's): the caller waits for the async core, which hedges.
        var result = new TaskCompletionSource<System.Data.Common.DbConnection>();
        var thread = new Thread(() => result.SetResult(cluster.DataSource.OpenConnection())) { IsBackground = true };
        thread.Start();
        var open = result.Task;
        await FakeCluster.WaitFor(() => cluster["node1"].OpensStarted == 1, "node1 open");
        var connection = await cluster.RunUntilDone(open, TimeSpan.FromMilliseconds(50));

        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"));
        connection.Dispose();
    }

    [Test]
    public async Task OpenConnection_SyncOnThreadPool_UsesTheProvidersSyncOpenAndFailsOver()
    {
        await using var cluster = FakeCluster.Create(3, o => o.Policy = AcquirePolicy.FailOver);
        cluster["node1"].Script = OpenScript.Fail;

        // On a thread-pool thread no async work is waited for (it would need other pool threads): each node's own
        // synchronous open runs on the caller's thread, and a failure moves on to the next node.
        var (connection, onPool) = await Task.Run(() => (cluster.DataSource.OpenConnection(), Thread.CurrentThread.IsThreadPoolThread));
        Assert.That(onPool, Is.True);
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"));
        Assert.That(cluster["node1"].SyncOpens + cluster["node2"].SyncOpens, Is.EqualTo(2), "both opens were the providers' synchronous ones");
        Assert.That(cluster.Node("node1").GetStatistics().Failures, Is.EqualTo(1), "the failure counts against node1 as on the async path");
        connection.Dispose();

        cluster["node2"].Script = OpenScript.Fail;
        cluster["node3"].Script = OpenScript.Fail;
        var error = await Task.Run(() => Assert.Throws<ClusterException>(() => cluster.DataSource.OpenConnection()));
        Assert.That(error!.NodeErrors.Select(e => e.NodeName), Is.EquivalentTo(new[] { "node1", "node2", "node3" }));
    }

    [Test]
    public async Task Race_AllNodesSucceed_FirstWinsAndEveryLoserIsDisposed()
    {
        await using var cluster = FakeCluster.Create(3, o => o.Policy = AcquirePolicy.Race);
        cluster["node1"].Script = OpenScript.SucceedAfter(30 * Ms);
        cluster["node2"].Script = OpenScript.SucceedAfter(10 * Ms);
        cluster["node3"].Script = OpenScript.SucceedAfter(20 * Ms);

        var connection = await cluster.RunUntilDone(cluster.DataSource.OpenConnectionAsync().AsTask(), Ms);
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"));
        Assert.That(cluster.TotalOpens, Is.EqualTo(3), "race starts every node");

        // The losers finish their handshakes later; then they are disposed, never abandoned.
        cluster.Time.Advance(30 * Ms);
        await FakeCluster.WaitFor(() => cluster["node1"].Disposed == 1 && cluster["node3"].Disposed == 1, "losers disposed");
        Assert.That(cluster["node1"].Cancelled + cluster["node3"].Cancelled, Is.Zero, "losers are not aborted mid-handshake");
        Assert.That(cluster["node2"].Alive, Is.EqualTo(1));
        Assert.That(cluster.Node("node1").GetStatistics().Successes, Is.EqualTo(1), "a loser's open still counts for its node");
        Assert.That(cluster.Node("node1").GetStatistics().Wins, Is.Zero);

        await connection.DisposeAsync();
        Assert.That(cluster.Alive, Is.All.EqualTo(0));
    }

    [Test]
    public async Task OpenConnectionAsync_FirstNodeFails_NextNodeStartsAtOnce()
    {
        await using var cluster = FakeCluster.Create(3, o =>
        {
            o.Policy = AcquirePolicy.FailOver;
            o.MinHedgeDelay = o.MaxHedgeDelay = TimeSpan.FromSeconds(1);
        });
        cluster["node1"].Script = OpenScript.FailAfter(5 * Ms);
        cluster["node2"].Script = OpenScript.Hang;

        var open = cluster.DataSource.OpenConnectionAsync().AsTask();
        cluster.Time.Advance(5 * Ms);

        // No more fake time passes: the failover happens at the instant of the failure, not after a hedge delay.
        await FakeCluster.WaitFor(() => cluster["node2"].OpensStarted == 1, "node2 started");
        Assert.That(cluster["node3"].OpensStarted, Is.Zero);
        Assert.That(cluster.Node("node2").GetStatistics().Hedges, Is.Zero, "a failover is not a hedge");

        cluster["node2"].Script = OpenScript.Succeed;
        cluster.Time.Advance(TimeSpan.FromSeconds(1));
        var connection = await cluster.RunUntilDone(open, Ms);
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node3"), "node2 was slow past its hedge delay, node3 hedged it");
        await connection.DisposeAsync();
    }

    [Test]
    public async Task OpenConnectionAsync_SlowNode_IsHedgedAfterItsDelayAndNotBefore()
    {
        await using var cluster = FakeCluster.Create(2, o =>
        {
            o.Policy = AcquirePolicy.FailOver;
            o.MinHedgeDelay = o.MaxHedgeDelay = 20 * Ms;
        });
        cluster["node1"].Script = OpenScript.SucceedAfter(100 * Ms);

        var open = cluster.DataSource.OpenConnectionAsync().AsTask();
        cluster.Time.Advance(20 * Ms - TimeSpan.FromTicks(1));
        await FakeCluster.Settle(open);
        Assert.That(cluster["node2"].OpensStarted, Is.Zero, "not hedged before the delay");

        cluster.Time.Advance(TimeSpan.FromTicks(1));
        var connection = await cluster.RunUntilDone(open, Ms);
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"));
        Assert.That(cluster.Node("node2").GetStatistics().Hedges, Is.EqualTo(1));
        Assert.That(cluster.Node("node1").GetStatistics().LatencyEstimate, Is.GreaterThanOrEqualTo(20 * Ms), "the hedged node is known to be at least that slow");

        cluster.Time.Advance(100 * Ms);
        await FakeCluster.WaitFor(() => cluster["node1"].Disposed == 1, "slow loser disposed");
        Assert.That(cluster["node1"].Cancelled, Is.Zero);
        await connection.DisposeAsync();
    }

    [Test]
    public async Task OpenConnectionAsync_HedgeDelay_AdaptsToTheNodesLatency()
    {
        await using var cluster = FakeCluster.Create(1, o =>
        {
            o.MinHedgeDelay = Ms;
            o.MaxHedgeDelay = TimeSpan.FromSeconds(1);
        });
        cluster["node1"].Script = OpenScript.Takes(10 * Ms);
        for (var i = 0; i < 50; i++)
        {
            await using var connection = await cluster.DataSource.OpenConnectionAsync();
        }

        var stats = cluster.Node("node1").GetStatistics();
        Assert.That(stats.SmoothedLatency.TotalMilliseconds, Is.EqualTo(10).Within(0.01));
        Assert.That(stats.HedgeDelay.TotalMilliseconds, Is.GreaterThanOrEqualTo(10).And.LessThan(12), "SRTT + 4 x RTTVAR with a steady latency converges on the latency");
    }

    [Test]
    public async Task OpenConnectionAsync_EveryNodeSlow_HedgesStayWithinBudget()
    {
        const int Acquires = 1000;
        await using var cluster = FakeCluster.Create(3, o =>
        {
            o.MinHedgeDelay = o.MaxHedgeDelay = 10 * Ms;
            o.HedgeBudget = 0.1;
        });
        foreach (var node in cluster.Nodes)
        {
            node.Script = OpenScript.SucceedAfter(50 * Ms);
        }

        var opens = Enumerable.Range(0, Acquires).Select(_ => cluster.DataSource.OpenConnectionAsync().AsTask()).ToArray();
        var all = Task.WhenAll(opens);
        await cluster.RunUntilDone(all, 5 * Ms);

        var extra = cluster.TotalOpens - Acquires;
        Assert.That(extra, Is.GreaterThan(0), "slow opens were hedged");
        Assert.That(extra, Is.LessThanOrEqualTo((int)(0.1 * Acquires) + HedgeBudget.Burst), "hedges stay within the budget");
        foreach (var open in opens)
        {
            await (await open).DisposeAsync();
        }

        cluster.Time.Advance(TimeSpan.FromSeconds(1));
        await FakeCluster.WaitFor(() => cluster.Alive.All(a => a == 0), "every connection disposed");
    }

    [Test]
    public async Task OpenConnectionAsync_EveryNodeFails_ThrowsOneExceptionWithEveryNodesError()
    {
        await using var cluster = FakeCluster.Create(3);
        foreach (var node in cluster.Nodes)
        {
            node.Script = OpenScript.Fail;
        }

        var ex = Assert.ThrowsAsync<ClusterException>(async () => await cluster.DataSource.OpenConnectionAsync());
        Assert.That(ex!.NodeErrors.Select(e => e.NodeName), Is.EquivalentTo(new[] { "node1", "node2", "node3" }));
        Assert.That(ex.NodeErrors.Select(e => e.Exception), Is.All.TypeOf<FakeDbException>());
        Assert.That(ex.Message, Does.Contain("node1: FakeDbException: node1 refused the connection"));
        Assert.That(ex.Message, Does.Contain("node3: FakeDbException: node3 refused the connection"));
        Assert.That(ex, Is.InstanceOf<DbException>());
        Assert.That(ex.Message + ex, Does.Not.Contain(FakeNode.Secret));
        Assert.That(cluster.TotalOpens, Is.EqualTo(3));
    }

    [Test]
    public async Task OpenConnectionAsync_NodeHangs_ConnectTimeoutFailsItAndTheNextNodeServes()
    {
        await using var cluster = FakeCluster.Create(2, o =>
        {
            o.Policy = AcquirePolicy.FailOver;
            o.ConnectTimeout = TimeSpan.FromSeconds(2);
            o.HedgeBudget = 0;
        });
        cluster["node1"].Script = OpenScript.Hang;

        var connection = await cluster.RunUntilDone(cluster.DataSource.OpenConnectionAsync().AsTask(), TimeSpan.FromMilliseconds(250));
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"));
        var stats = cluster.Node("node1").GetStatistics();
        Assert.That(stats.Failures, Is.EqualTo(1));
        Assert.That(stats.LastErrorType, Is.EqualTo(nameof(TimeoutException)));
        Assert.That(stats.LastErrorMessage, Does.Contain("timed out after 2000 ms"));
        Assert.That(stats.LastErrorAt, Is.Not.Null);
        Assert.That(cluster["node1"].Cancelled, Is.EqualTo(1), "the hung open was stopped by its connect timeout");
        await connection.DisposeAsync();
    }

    [Test]
    public async Task OpenConnectionAsync_HedgesSpentAndEightAcquiresOnAHungNode_EachMovesOnAtAQuarterOfTheConnectTimeout()
    {
        // A client whose few saved hedges are gone, and eight concurrent acquires started on a node that just hung (as in
        // the real cluster's hang test): none waits out the connect timeout, and each adds at most one login.
        await using var cluster = FakeCluster.Create(2, o =>
        {
            o.Policy = AcquirePolicy.FailOver;
            o.ConnectTimeout = TimeSpan.FromSeconds(2);
            o.HedgeBudget = 0.01;
        });
        while (cluster.DataSource.Context.HedgeBudget.TryWithdraw())
        {
        }

        cluster["node1"].Script = OpenScript.Hang;
        var opens = Enumerable.Range(0, 8).Select(_ => cluster.DataSource.OpenConnectionAsync().AsTask()).ToArray();
        cluster.Time.Advance(TimeSpan.FromMilliseconds(499));
        await FakeCluster.Settle(Task.WhenAny(opens));
        Assert.That(opens.Count(o => o.IsCompleted), Is.Zero, "the budget's wait holds until a quarter of the connect timeout");

        cluster.Time.Advance(TimeSpan.FromMilliseconds(1));
        await FakeCluster.Settle(Task.WhenAll(opens));
        Assert.That(opens.All(o => o.IsCompletedSuccessfully), Is.True, "every acquire moved on at 500 ms, not at 2 s");
        foreach (var open in opens)
        {
            Assert.That(((FakeConnection)await open).Node.Name, Is.EqualTo("node2"));
            await (await open).DisposeAsync();
        }

        Assert.That(cluster["node2"].OpensStarted, Is.EqualTo(8), "one extra login per acquire");
    }

    [Test]
    public async Task OpenConnectionAsync_ProviderIgnoresItsToken_AcquireMovesOnAtTheConnectTimeout()
    {
        await using var cluster = FakeCluster.Create(2, o =>
        {
            o.Policy = AcquirePolicy.FailOver;
            o.ConnectTimeout = TimeSpan.FromSeconds(2);
            o.HedgeBudget = 0;
        });
        cluster["node1"].Script = OpenScript.SucceedAfterIgnoringCancellation(TimeSpan.FromSeconds(10));

        var open = cluster.DataSource.OpenConnectionAsync().AsTask();
        cluster.Time.Advance(TimeSpan.FromSeconds(2) - TimeSpan.FromTicks(1));
        await FakeCluster.Settle(open);
        Assert.That(cluster["node2"].OpensStarted, Is.Zero, "no hedging, and the timeout has not fired");

        cluster.Time.Advance(TimeSpan.FromTicks(1));
        await FakeCluster.WaitFor(() => open.IsCompleted, "acquire completed at the connect timeout");
        var connection = await open;
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"));

        // Charged at the timeout, not whenever the provider returns: one timeout failure, nothing pending any more, and
        // a cost that decays from there instead of growing with the hung open's age.
        var atTimeout = cluster.Node("node1").GetStatistics();
        Assert.That((atTimeout.Failures, atTimeout.PendingOpens, atTimeout.LastErrorType), Is.EqualTo((1L, 0, nameof(TimeoutException))));
        cluster.Time.Advance(TimeSpan.FromSeconds(5));
        Assert.That(cluster.Node("node1").GetStatistics().LatencyEstimate, Is.LessThan(atTimeout.LatencyEstimate));

        // The abandoned open completes later; its connection is disposed and changes nothing more.
        cluster.Time.Advance(TimeSpan.FromSeconds(5));
        await FakeCluster.WaitFor(() => cluster["node1"].Disposed == 1, "late connection disposed");
        var stats = cluster.Node("node1").GetStatistics();
        Assert.That((stats.Failures, stats.Successes, stats.PendingOpens), Is.EqualTo((1L, 0L, 0)));
        Assert.That(stats.LastErrorType, Is.EqualTo(nameof(TimeoutException)));
        await connection.DisposeAsync();
    }

    [Test]
    public async Task HedgedAwayLoser_ProviderIgnoresItsToken_NodeIsChargedAtTheConnectTimeoutAfterTheAcquireEnded()
    {
        await using var cluster = FakeCluster.Create(2, o =>
        {
            o.Policy = AcquirePolicy.FailOver;
            o.ConnectTimeout = TimeSpan.FromSeconds(2);
        });
        cluster["node1"].Script = OpenScript.SucceedAfterIgnoringCancellation(TimeSpan.FromSeconds(60));

        var open = cluster.DataSource.OpenConnectionAsync().AsTask();
        cluster.Time.Advance(new ClusterOptions().MaxHedgeDelay);
        await FakeCluster.WaitFor(() => open.IsCompleted, "node2 won the hedge");
        var connection = await open;
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"));
        Assert.That(cluster.Node("node1").GetStatistics().PendingOpens, Is.EqualTo(1), "the loser still runs");

        // No acquire waits for the loser any more; its node is charged at its connect timeout all the same.
        cluster.Time.Advance(TimeSpan.FromSeconds(2));
        // The failure is counted after the open stops counting as pending (ClusterNode.CompleteAttempt): wait for it.
        await FakeCluster.WaitFor(
            () => cluster.Node("node1").GetStatistics() is { PendingOpens: 0, Failures: 1, LastErrorType: not null },
            "the loser given up and charged");
        var stats = cluster.Node("node1").GetStatistics();
        Assert.That((stats.Failures, stats.Successes, stats.LastErrorType), Is.EqualTo((1L, 0L, nameof(TimeoutException))));

        cluster.Time.Advance(TimeSpan.FromSeconds(60));
        await FakeCluster.WaitFor(() => cluster["node1"].Disposed == 1, "the late connection goes back to its pool");
        Assert.That(cluster.Node("node1").GetStatistics().Failures, Is.EqualTo(1L), "charged once");
        await connection.DisposeAsync();
    }

    [Test]
    public async Task NodeOpenConnectionAsync_ProviderIgnoresItsToken_ThrowsAtTheConnectTimeout()
    {
        await using var cluster = FakeCluster.Create(1, o => o.ConnectTimeout = TimeSpan.FromSeconds(1));
        cluster["node1"].Script = OpenScript.SucceedAfterIgnoringCancellation(TimeSpan.FromSeconds(5));

        var open = cluster.Node("node1").OpenConnectionAsync().AsTask();
        cluster.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.That(async () => await open, Throws.TypeOf<TimeoutException>());

        cluster.Time.Advance(TimeSpan.FromSeconds(5));
        await FakeCluster.WaitFor(() => cluster["node1"].Disposed == 1, "late connection disposed");
    }

    [Test]
    public async Task OpenConnectionAsync_CancelledMidRace_ThrowsAndLeaksNothing()
    {
        await using var cluster = FakeCluster.Create(3, o => o.Policy = AcquirePolicy.Race);
        cluster["node1"].Script = OpenScript.Hang;
        cluster["node2"].Script = OpenScript.SucceedAfter(50 * Ms);
        cluster["node3"].Script = OpenScript.SucceedAfterIgnoringCancellation(50 * Ms);

        using var cts = new CancellationTokenSource();
        var open = cluster.DataSource.OpenConnectionAsync(cts.Token).AsTask();
        cluster.Time.Advance(10 * Ms);
        await cts.CancelAsync();

        Assert.That(async () => await open, Throws.InstanceOf<OperationCanceledException>());
        await FakeCluster.WaitFor(() => cluster["node1"].Cancelled == 1 && cluster["node2"].Cancelled == 1, "attempts cancelled");

        // A provider that ignores the token still opens; that connection is disposed, never leaked.
        cluster.Time.Advance(100 * Ms);
        await FakeCluster.WaitFor(() => cluster["node3"].Disposed == 1, "late connection disposed");
        Assert.That(cluster.Alive, Is.All.EqualTo(0));
        foreach (var node in cluster.DataSource.Nodes)
        {
            var stats = node.GetStatistics();
            Assert.That(stats.Failures, Is.Zero, $"{node.Name}: cancellation is never held against a node");
            Assert.That(stats.PendingOpens, Is.Zero);
        }

        Assert.That(cluster.Node("node1").GetStatistics().Cancellations, Is.EqualTo(1));
    }

    [Test]
    public async Task CancelledByTheCaller_ProviderIgnoresItsToken_NodeIsReleasedAtTheConnectTimeout()
    {
        // The caller gave up; the provider did not stop (a pooled session waiting for a hung server's reply). The open
        // stops counting as pending at its connect timeout (as its stall would, or a half-open node's one trial), not
        // whenever the provider returns; and it stays a cancellation, never held against the node.
        await using var cluster = FakeCluster.Create(1, o => o.ConnectTimeout = TimeSpan.FromSeconds(2));
        cluster["node1"].Script = OpenScript.SucceedAfterIgnoringCancellation(TimeSpan.FromSeconds(60));

        using var cts = new CancellationTokenSource();
        var open = cluster.DataSource.OpenConnectionAsync(cts.Token).AsTask();
        cluster.Time.Advance(100 * Ms);
        await cts.CancelAsync();
        Assert.That(async () => await open, Throws.InstanceOf<OperationCanceledException>());
        Assert.That(cluster.Node("node1").GetStatistics().PendingOpens, Is.EqualTo(1), "the provider has not returned");

        cluster.Time.Advance(TimeSpan.FromSeconds(2) - 100 * Ms - TimeSpan.FromTicks(1));
        await Task.Delay(50);
        Assert.That(cluster.Node("node1").GetStatistics().PendingOpens, Is.EqualTo(1), "not before the connect timeout");

        cluster.Time.Advance(TimeSpan.FromTicks(1));
        await FakeCluster.WaitFor(() => cluster.Node("node1").GetStatistics().Cancellations == 1, "given up at its connect timeout");
        var stats = cluster.Node("node1").GetStatistics();
        Assert.That((stats.Failures, stats.Cancellations, stats.LastErrorType), Is.EqualTo((0L, 1L, (string?)null)));

        // The open completes long after; its connection goes back to the pool and nothing is counted twice.
        cluster.Time.Advance(TimeSpan.FromSeconds(60));
        await FakeCluster.WaitFor(() => cluster["node1"].Disposed == 1, "late connection disposed");
        stats = cluster.Node("node1").GetStatistics();
        Assert.That((stats.Failures, stats.Successes, stats.Cancellations, stats.PendingOpens), Is.EqualTo((0L, 0L, 1L, 0)));
        Assert.That(cluster.Alive, Is.All.EqualTo(0));
    }

    [Test]
    public async Task OpenConnectionAsync_AlreadyCancelled_StartsNothing()
    {
        await using var cluster = FakeCluster.Create(2);
        Assert.That(async () => await cluster.DataSource.OpenConnectionAsync(new CancellationToken(true)), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(cluster.TotalOpens, Is.Zero);
    }

    [Test]
    public async Task LatencyAware_OneNodeTenTimesSlower_SendsAtLeast95PercentElsewhere()
    {
        await using var cluster = FakeCluster.Create(3);
        cluster["node1"].Script = OpenScript.Takes(Ms);
        cluster["node2"].Script = OpenScript.Takes(10 * Ms);
        cluster["node3"].Script = OpenScript.Takes(Ms);

        for (var i = 0; i < 1000; i++)
        {
            await using var connection = await cluster.DataSource.OpenConnectionAsync();
        }

        var slowWins = cluster.Node("node2").GetStatistics().Wins;
        Assert.That(slowWins, Is.LessThanOrEqualTo(50), $"the slow node served {slowWins} of 1000");
        Assert.That(cluster.TotalOpens, Is.EqualTo(1000));
    }

    [Test]
    public async Task LatencyAware_NodeWithAHungOpen_CostsItsAgeAndIsAvoided()
    {
        // node2 works but is slow (50 ms); node1 hangs. Without counting the hung open's age, node1's cost would stay
        // at the few milliseconds it had when hedged, below node2's 50 ms, and every acquire would start on it.
        await using var cluster = FakeCluster.Create(2, o =>
        {
            o.MinHedgeDelay = o.MaxHedgeDelay = 10 * Ms;
            o.ConnectTimeout = TimeSpan.FromMinutes(1);
        });
        cluster["node1"].Script = OpenScript.Hang;
        cluster["node2"].Script = OpenScript.Takes(50 * Ms);

        for (var i = 0; i < 30; i++)
        {
            await using var connection = await cluster.RunUntilDone(cluster.DataSource.OpenConnectionAsync().AsTask(), 5 * Ms);
            Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"));
        }

        // One hung open to start with (or two, when the first two choices both explored); the rest went to node2.
        Assert.That(cluster["node1"].OpensStarted, Is.InRange(1, 3), "the hung node is not chosen again while its opens hang");
        Assert.That(cluster.Node("node1").GetStatistics().PendingOpens, Is.EqualTo(cluster["node1"].OpensStarted));
    }

    [Test]
    public async Task LatencyAware_SlowNodeRecovers_IsExploredAndWinsAgain()
    {
        await using var cluster = FakeCluster.Create(3);
        foreach (var node in cluster.Nodes)
        {
            node.Script = OpenScript.Takes(Ms);
        }

        cluster["node2"].Script = OpenScript.Takes(50 * Ms);
        for (var i = 0; i < 200; i++)
        {
            await using var connection = await cluster.DataSource.OpenConnectionAsync();
        }

        cluster["node2"].Script = OpenScript.Takes(Ms);
        var winsBefore = cluster.Node("node2").GetStatistics().Wins;
        var opensBefore = cluster["node2"].OpensStarted;
        for (var i = 0; i < 3000; i++)
        {
            await using var connection = await cluster.DataSource.OpenConnectionAsync();
        }

        // About 3 s of fake time: one exploration a second at first, then the decayed estimate lets it compete.
        Assert.That(cluster.Node("node2").GetStatistics().Wins - winsBefore, Is.GreaterThanOrEqualTo(3));
        Assert.That(cluster["node2"].OpensStarted - opensBefore, Is.LessThan(3000 / 3 + 100), "it does not take more than its share at once");
    }

    [TestCase(5)]
    [TestCase(50)]
    [TestCase(1000)]
    public async Task LatencyAware_SlowNodeAtAnyAcquireRate_IsExploredOnAtMostOneOpenInTwenty(int acquiresPerSecond)
    {
        await using var cluster = FakeCluster.Create(3);
        foreach (var node in cluster.Nodes)
        {
            node.Script = OpenScript.Takes(Ms);
        }

        // node2 answers, but ten times slower: only an exploration picks it.
        cluster["node2"].Script = OpenScript.Takes(10 * Ms);
        for (var i = 0; i < 300; i++)
        {
            await using var connection = await cluster.DataSource.OpenConnectionAsync();
        }

        // A fleet of small clients is many clients at a low rate: with one exploration per node per second alone, a
        // client making five acquires a second sent one in five to the slow node.
        const int Acquires = 600;
        var gap = TimeSpan.FromSeconds(1.0 / acquiresPerSecond) - Ms;
        var explorationsBefore = cluster["node2"].OpensStarted;
        var opensBefore = cluster.TotalOpens;
        for (var i = 0; i < Acquires; i++)
        {
            await using (var connection = await cluster.DataSource.OpenConnectionAsync())
            {
            }

            if (gap > TimeSpan.Zero)
            {
                cluster.Time.Advance(gap);
            }
        }

        var explorations = cluster["node2"].OpensStarted - explorationsBefore;
        var opens = cluster.TotalOpens - opensBefore;
        var seconds = Acquires / (double)acquiresPerSecond;
        Assert.That(explorations, Is.LessThanOrEqualTo(opens / NodeSelector.ExplorationOpens + 1), "at most one exploration per twenty opens");
        Assert.That(explorations, Is.LessThanOrEqualTo((int)seconds + 1), "at most one exploration a second");
        Assert.That(explorations, Is.GreaterThanOrEqualTo(Math.Min(opens / NodeSelector.ExplorationOpens, (int)seconds) / 2), "still explored, so that a recovery is seen");
    }

    /// <summary>Three nodes whose opens take 1 ms of fake time, node2 learned to be slow (its hedge delay at the 250 ms cap).</summary>
    private static async Task<FakeCluster> ClusterWithASlowNode2()
    {
        var cluster = FakeCluster.Create(3);
        foreach (var node in cluster.Nodes)
        {
            node.Script = OpenScript.Takes(Ms);
        }

        cluster["node2"].Script = OpenScript.Takes(200 * Ms);
        for (var i = 0; i < 300; i++)
        {
            await using var connection = await cluster.DataSource.OpenConnectionAsync();
        }

        Assert.That(cluster.Node("node2").GetStatistics().HedgeDelay, Is.EqualTo(new ClusterOptions().MaxHedgeDelay));
        return cluster;
    }

    [Test]
    public async Task LatencyAware_ExplorationOfASlowNode_StartsTheBestCandidateAtOnce()
    {
        await using var cluster = await ClusterWithASlowNode2();
        cluster["node2"].Script = OpenScript.SucceedAfter(200 * Ms);
        var explored = false;
        for (var i = 0; i < 5000 && !explored; i++)
        {
            var explorationsBefore = cluster["node2"].OpensStarted;
            var started = cluster.Time.GetTimestamp();
            var open = cluster.DataSource.OpenConnectionAsync().AsTask();
            if (cluster["node2"].OpensStarted == explorationsBefore)
            {
                await (await open).DisposeAsync();
                continue;
            }

            // node1 and node3 answer at once (their 1 ms passes synchronously on the fake clock): an acquire that started
            // node2's open and is already complete started another node with it, without waiting for any delay.
            explored = true;
            Assert.That(open.IsCompleted, Is.True, "the best other candidate started together with the exploration");
            var connection = await open;
            Assert.That(((FakeConnection)connection).Node.Name, Is.Not.EqualTo("node2"));
            Assert.That(cluster.Time.GetElapsedTime(started), Is.LessThanOrEqualTo(Ms), "the caller waited for the other node's 1 ms open, not for node2's 200 ms");
            await connection.DisposeAsync();
        }

        Assert.That(explored, Is.True, "node2 was explored within 5 s of fake time");
        cluster.Time.Advance(200 * Ms);
        await FakeCluster.WaitFor(() => cluster["node2"].Disposed == cluster["node2"].ConnectionsMade, "the exploration's connection disposed");
        Assert.That(cluster.Node("node2").GetStatistics().PendingOpens, Is.Zero, "the exploration finished and was sampled");
    }

    [Test]
    public async Task LatencyAware_SlowNodeWithNoHedgeTokenLeft_IsExploredOnlyByAnAcquireThatHasOne()
    {
        // The open started beside an exploration of a slower node is a hedge, paid when the exploration is claimed. A
        // client that hedged its budget away does not explore: without a token its caller would wait for the whole slow
        // open (a 255 ms paced p99 on the real cluster), and a free hedge instead spent past the budget fleet-wide.
        await using var cluster = await ClusterWithASlowNode2();
        var budget = cluster.DataSource.Context.HedgeBudget;
        cluster["node2"].Script = OpenScript.SucceedAfter(200 * Ms);
        var before = cluster["node2"].OpensStarted;

        // Three exploration intervals of fake time (each acquire takes another node's 1 ms), never with a token.
        var end = cluster.Time.GetTimestamp() + 3 * cluster.Time.TimestampFrequency;
        while (cluster.Time.GetTimestamp() < end)
        {
            budget.Empty();
            var open = cluster.DataSource.OpenConnectionAsync().AsTask();
            Assert.That(open.IsCompleted, Is.True, "no caller waited for node2");
            await (await open).DisposeAsync();
        }

        Assert.That(cluster["node2"].OpensStarted, Is.EqualTo(before), "node2 not explored while no acquire had a token");

        // Each acquire deposits a tenth of a token: the one that completes a token explores node2, starts the best
        // candidate beside it at once, and spends that token on it.
        var explored = false;
        for (var i = 0; i < 20 && !explored; i++)
        {
            var tokens = budget.Tokens;
            var open = cluster.DataSource.OpenConnectionAsync().AsTask();
            explored = cluster["node2"].OpensStarted != before;
            if (explored)
            {
                Assert.That(tokens + 0.1, Is.GreaterThanOrEqualTo(1 - 1e-9), "explored by an acquire with a whole token");
                Assert.That(open.IsCompleted, Is.True, "the best other candidate started together with the exploration");
                Assert.That(budget.Tokens, Is.EqualTo(tokens + 0.1 - 1).Within(1e-9), "the hedge beside it spent the token");
                Assert.That(((FakeConnection)await open).Node.Name, Is.Not.EqualTo("node2"));
            }

            await (await open).DisposeAsync();
        }

        Assert.That(explored, Is.True, "node2 explored once an acquire had a token");
        cluster.Time.Advance(200 * Ms);
        await FakeCluster.WaitFor(() => cluster["node2"].Disposed == cluster["node2"].ConnectionsMade, "the exploration's connection disposed");
    }

    [Test]
    public async Task LatencyAware_SlowNodeOverdueForExploration_IsExploredWithoutAToken()
    {
        // A client whose hedges keep its bucket empty still sees a slow node recover: after ExplorationOverdue intervals
        // it explores the node unpaid, its caller waiting for that open as for any pick (bounded by the hedge rescue).
        await using var cluster = await ClusterWithASlowNode2();
        var budget = cluster.DataSource.Context.HedgeBudget;
        cluster["node2"].Script = OpenScript.SucceedAfter(200 * Ms);
        var before = cluster["node2"].OpensStarted;
        var started = cluster.Time.GetTimestamp();
        var interval = new ClusterOptions().LatencyDecayTime / 10;
        Task<DbConnection>? exploring = null;
        while (exploring is null && cluster.Time.GetElapsedTime(started) < (ClusterNode.ExplorationOverdue + 2) * interval)
        {
            budget.Empty();
            var open = cluster.DataSource.OpenConnectionAsync().AsTask();
            if (cluster["node2"].OpensStarted != before)
            {
                exploring = open;
                break;
            }

            await (await open).DisposeAsync();
        }

        Assert.That(exploring, Is.Not.Null, "explored without a token once overdue");
        Assert.That(cluster.Time.GetElapsedTime(started), Is.GreaterThanOrEqualTo((ClusterNode.ExplorationOverdue - 1) * interval), "not before it was overdue");
        Assert.That(exploring!.IsCompleted, Is.False, "unpaid: nothing started beside it");
        cluster.Time.Advance(200 * Ms);
        await using var connection = await exploring;
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"));
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task LatencyAware_ExplorationThatNeedsNoHedge_GivesItsTokenBack(bool answersAtOnce)
    {
        // node2 recovered (its open answers synchronously) or fails at once (a failover is never a hedge): either way
        // nothing was started beside the exploration, so the token paid for it goes back.
        await using var cluster = await ClusterWithASlowNode2();
        var budget = cluster.DataSource.Context.HedgeBudget;
        cluster["node2"].Script = answersAtOnce ? OpenScript.Succeed : OpenScript.Fail;
        var before = cluster["node2"].OpensStarted;
        var explored = false;
        for (var i = 0; i < 5000 && !explored; i++)
        {
            // One token, below the bucket's cap: a token not given back, or given back twice, shows.
            budget.Empty();
            budget.Refund();
            var tokens = budget.Tokens;
            var hedges = cluster.DataSource.Nodes.Sum(n => n.GetStatistics().Hedges);
            var open = cluster.DataSource.OpenConnectionAsync().AsTask();
            Assert.That(open.IsCompleted, Is.True);
            await using var connection = await open;
            explored = cluster["node2"].OpensStarted != before;
            if (explored)
            {
                Assert.That(((FakeConnection)connection).Node.Name, answersAtOnce ? Is.EqualTo("node2") : Is.Not.EqualTo("node2"));
                Assert.That(budget.Tokens, Is.EqualTo(tokens + 0.1).Within(1e-9), "the token given back, once");
                Assert.That(cluster.DataSource.Nodes.Sum(n => n.GetStatistics().Hedges), Is.EqualTo(hedges), "no hedge started");
            }
        }

        Assert.That(explored, Is.True, "node2 was explored within 5 s of fake time");
    }

    public enum WarmUpExploration
    {
        OnlyCold,
        SlowerInTruth,
        Fails,
        Cancelled,
    }

    [TestCase(WarmUpExploration.OnlyCold)]
    [TestCase(WarmUpExploration.SlowerInTruth)]
    [TestCase(WarmUpExploration.Fails)]
    [TestCase(WarmUpExploration.Cancelled)]
    public async Task LatencyAware_ExplorationOfANodeWarmingUp_WaitsTheFastestCandidatesDelay(WarmUpExploration outcome)
    {
        // node2's one sample is a cold first open, 20 times the others': believed slower, so its early exploration is
        // paid, but on evidence that weak nothing starts beside it at once (that cost healthy clients an open more per
        // exploration). Within the fastest candidate's hedge delay (MinHedgeDelay, 2 ms) a node that was only cold
        // answers, and the token goes back; one truly slower is hedged then, with the token it holds. The token held
        // through the wait also goes back, once, when the exploration fails over or the caller gives up.
        await using var cluster = FakeCluster.Create(3);
        foreach (var node in cluster.Nodes)
        {
            node.Script = OpenScript.Takes(Ms);
        }

        cluster["node2"].Enqueue(OpenScript.SucceedAfter(20 * Ms));
        for (var i = 0; i < 3; i++)
        {
            await using var connection = await cluster.RunUntilDone(cluster.DataSource.OpenConnectionAsync().AsTask(), Ms);
        }

        var minHedgeDelay = new ClusterOptions().MinHedgeDelay;
        Assert.That(cluster["node2"].OpensStarted, Is.EqualTo(1), "node2 sampled once");
        Assert.That(cluster.Node("node2").GetStatistics().HedgeDelay, Is.GreaterThan(4 * minHedgeDelay), "believed slower");
        cluster["node2"].Script = outcome switch
        {
            WarmUpExploration.OnlyCold => OpenScript.SucceedAfter(Ms),
            WarmUpExploration.Fails => OpenScript.FailAfter(Ms),
            _ => OpenScript.SucceedAfter(20 * Ms),
        };

        var budget = cluster.DataSource.Context.HedgeBudget;
        using var cancel = new CancellationTokenSource();
        Task<DbConnection>? exploring = null;
        double tokens = 0;
        long hedges = 0;
        for (var i = 0; i < 2 * NodeSelector.ExplorationOpens && exploring is null; i++)
        {
            // One token, below the bucket's cap: a token not given back, or given back twice, shows.
            budget.Empty();
            budget.Refund();
            tokens = budget.Tokens;
            hedges = cluster.DataSource.Nodes.Sum(n => n.GetStatistics().Hedges);
            var open = cluster.DataSource.OpenConnectionAsync(cancel.Token).AsTask();
            if (cluster["node2"].OpensStarted == 2)
            {
                exploring = open;
                break;
            }

            await (await open).DisposeAsync();
        }

        Assert.That(exploring, Is.Not.Null, "node2 explored early, within its data source's next 40 opens");
        Assert.That(exploring!.IsCompleted, Is.False, "nothing started beside it at once");
        Assert.That(budget.Tokens, Is.EqualTo(tokens + 0.1 - 1).Within(1e-9), "paid when claimed");
        int HedgesSince() => (int)(cluster.DataSource.Nodes.Sum(n => n.GetStatistics().Hedges) - hedges);
        var started = cluster.Time.GetTimestamp();
        if (outcome == WarmUpExploration.Cancelled)
        {
            cluster.Time.Advance(Ms);
            cancel.Cancel();
            Assert.That(async () => await exploring, Throws.InstanceOf<OperationCanceledException>());
            Assert.That(HedgesSince(), Is.Zero);
            Assert.That(budget.Tokens, Is.EqualTo(tokens + 0.1).Within(1e-9), "the token given back, once");
            cluster.Time.Advance(20 * Ms);
            return;
        }

        await using var acquired = await cluster.RunUntilDone(exploring, Ms / 4);
        var servedBy = ((FakeConnection)acquired).Node.Name;
        switch (outcome)
        {
            case WarmUpExploration.OnlyCold:
                Assert.That(servedBy, Is.EqualTo("node2"));
                Assert.That(HedgesSince(), Is.Zero, "no open more");
                Assert.That(budget.Tokens, Is.EqualTo(tokens + 0.1).Within(1e-9), "the token given back, once");
                break;
            case WarmUpExploration.Fails:
                Assert.That(servedBy, Is.Not.EqualTo("node2"));
                Assert.That(HedgesSince(), Is.Zero, "a failover, not a hedge");
                Assert.That(budget.Tokens, Is.EqualTo(tokens + 0.1).Within(1e-9), "the token given back, once");
                break;
            default:
                Assert.That(servedBy, Is.Not.EqualTo("node2"));
                Assert.That(HedgesSince(), Is.EqualTo(1), "hedged with the token it held");
                Assert.That(cluster.Time.GetElapsedTime(started), Is.InRange(minHedgeDelay, 10 * Ms), "after the fastest candidate's delay, not node2's own 60 ms");
                Assert.That(budget.Tokens, Is.EqualTo(tokens + 0.1 - 1).Within(1e-9), "the token spent, and no other");
                cluster.Time.Advance(20 * Ms);
                await FakeCluster.WaitFor(() => cluster["node2"].Disposed == cluster["node2"].ConnectionsMade, "the exploration's connection disposed");
                break;
        }
    }

    [Test]
    public async Task FailOver_FirstNodeFarSlowerThanTheNext_IsHedgedAfterTheNextNodesDelay()
    {
        await using var cluster = FakeCluster.Create(2, o => o.Policy = AcquirePolicy.FailOver);
        cluster["node2"].Script = OpenScript.Takes(Ms);

        // One failover samples node2 (hedge delay 3 ms); then node1 learns to take 200 ms (hedge delay at the cap).
        cluster["node1"].Enqueue(OpenScript.Fail, OpenScript.Takes(200 * Ms), OpenScript.Takes(200 * Ms), OpenScript.Takes(200 * Ms), OpenScript.Takes(200 * Ms));
        for (var i = 0; i < 5; i++)
        {
            await using var connection = await cluster.DataSource.OpenConnectionAsync();
        }

        Assert.That(cluster.Node("node2").GetStatistics().HedgeDelay, Is.LessThan(5 * Ms));
        cluster["node1"].Script = OpenScript.SucceedAfter(200 * Ms);
        var started = cluster.Time.GetTimestamp();
        var open = cluster.DataSource.OpenConnectionAsync().AsTask();
        var hedged = await cluster.RunUntilDone(open, Ms);
        Assert.That(((FakeConnection)hedged).Node.Name, Is.EqualTo("node2"));
        Assert.That(cluster.Time.GetElapsedTime(started), Is.LessThanOrEqualTo(6 * Ms), "hedged after node2's delay, not node1's 250 ms");
        Assert.That(cluster.Node("node2").GetStatistics().Hedges, Is.EqualTo(1));
        await hedged.DisposeAsync();

        cluster.Time.Advance(200 * Ms);
        await FakeCluster.WaitFor(() => cluster["node1"].Alive == 0, "the slow loser disposed when it finished");
        Assert.That(cluster["node1"].Cancelled, Is.Zero, "never aborted mid-handshake");
    }

    [Test]
    public async Task Race_HealthyNodes_StartsEveryNodePerAcquire()
    {
        await using var cluster = FakeCluster.Create(3, o => o.Policy = AcquirePolicy.Race);
        for (var i = 0; i < 10; i++)
        {
            await using var connection = await cluster.DataSource.OpenConnectionAsync();
        }

        Assert.That(cluster.TotalOpens, Is.EqualTo(30));
        await FakeCluster.WaitFor(() => cluster.Alive.All(a => a == 0), "losers disposed");
    }

    [Test]
    public async Task FailOver_HealthyNodes_AlwaysUsesTheFirstByPriority()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var a = new FakeNode("a", time, OpenScript.Succeed);
        var b = new FakeNode("b", time, OpenScript.Succeed);
        await using var cluster = new ClusterDataSourceBuilder()
            .UsePolicy(AcquirePolicy.FailOver)
            .UseTimeProvider(time)
            .AddNode("a", a, new ClusterNodeOptions { Priority = 1 })
            .AddNode("b", b)
            .Build();

        for (var i = 0; i < 5; i++)
        {
            await using var connection = await cluster.OpenConnectionAsync();
        }

        Assert.That((a.OpensStarted, b.OpensStarted), Is.EqualTo((0, 5)));
    }

    [Test]
    public async Task RoundRobin_HealthyNodes_TakesTurns()
    {
        await using var cluster = FakeCluster.Create(3, o => o.Policy = AcquirePolicy.RoundRobin);
        for (var i = 0; i < 9; i++)
        {
            await using var connection = await cluster.DataSource.OpenConnectionAsync();
        }

        Assert.That(cluster.Nodes.Select(n => n.OpensStarted), Is.All.EqualTo(3));
    }

    [Test]
    public async Task OpenConnectionAsync_FastPath_AllocatesNothingOfItsOwn()
    {
        var connection = new ReusableConnection();
        var source = new ReusingNode(connection);
        await using var single = new ClusterDataSourceBuilder().AddNode("only", source).Build();

        // Warm up: JIT, the cancellation pool, tiered compilation. Each connection is closed, as users do, so the lease
        // tracking (a StateChange subscription) is measured too.
        for (var i = 0; i < 2000; i++)
        {
            (await single.OpenConnectionAsync()).Close();
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            (await single.OpenConnectionAsync()).Close();
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(allocated, Is.Zero, "the synchronous fast path allocates no channel, timer, closure or task");
    }

    [TestCase(1)]
    [TestCase(3)]
    public async Task OpenConnectionAsync_SlowPath_ReadsTheClockThrice(int nodes)
    {
        // A precise clock read costs 20-25 ns on the benchmark machine, against 220-380 ns for the slow path's own work:
        // one when the acquire starts (its pick and its first open's start), one after the provider returned the open
        // pending (it may have blocked inside, and the hedge and timeout timers count from the present), one when the
        // open completes (its sample and the look that completes the caller). A fake clock, so that no timer fires and
        // no hedge starts while the test runs.
        var time = new CountingTimeProvider();
        var sources = Enumerable.Range(1, nodes).Select(_ => new OnCommandNode(new ReusableConnection())).ToList();
        var builder = new ClusterDataSourceBuilder().UseTimeProvider(time);
        for (var i = 0; i < nodes; i++)
        {
            builder.AddNode("node" + (i + 1), sources[i]);
        }

        await using var cluster = builder.Build();
        for (var i = 0; i < 50; i++)
        {
            var before = time.Reads;
            var acquire = cluster.OpenConnectionAsync();
            Assert.That(acquire.IsCompleted, Is.False, "the provider's open completes only when told");
            foreach (var source in sources)
            {
                source.CompletePending();
            }

            Assert.That(acquire.IsCompletedSuccessfully, Is.True, "completed on the thread that completed the open");
            (await acquire).Close();
            Assert.That(time.Reads - before, Is.EqualTo(3), $"acquire {i}");
        }
    }

    [TestCase(0.0)]
    [TestCase(0.1)]
    public async Task OpenConnectionAsync_SlowPath_ArmsATimerForAHedgeOnlyWhenOneCanStart(double hedgeBudget)
    {
        // HedgeBudget = 0 turns hedging off, its rescue included: a pending open then needs a wake-up at its connect
        // timeout only. A system timer set for a hedge that cannot start fires (on a thread-pool thread) once per hedge
        // delay on a busy client, for nothing. With a budget, the same acquire sets one for its hedge.
        var time = new TimerRecordingTimeProvider();
        var sources = Enumerable.Range(1, 2).Select(_ => new OnCommandNode(new ReusableConnection())).ToList();
        var builder = new ClusterDataSourceBuilder().UseTimeProvider(time);
        builder.Options.HedgeBudget = hedgeBudget;
        builder.Options.ConnectTimeout = TimeSpan.FromSeconds(2);
        builder.AddNode("node1", sources[0]);
        builder.AddNode("node2", sources[1]);
        await using var cluster = builder.Build();

        for (var i = 0; i < 3; i++)
        {
            var acquire = cluster.OpenConnectionAsync();
            Assert.That(acquire.IsCompleted, Is.False, "the provider's open completes only when told");
            sources.ForEach(source => source.CompletePending());
            (await acquire).Close();
        }

        Assert.That(time.DueTimes, Is.Not.Empty, "the connect timeout needs a wake-up");
        if (hedgeBudget == 0)
        {
            Assert.That(time.DueTimes, Is.All.GreaterThanOrEqualTo(TimeSpan.FromSeconds(2) - TimeSpan.FromMilliseconds(1)), "only the connect timeout");
        }
        else
        {
            Assert.That(time.DueTimes, Has.Some.LessThanOrEqualTo(new ClusterOptions().MaxHedgeDelay), "the hedge's wake-up");
        }
    }

    [Test]
    public async Task LatencyAware_NodePickedForItsCostInTheTickOfItsExploration_IsNotTreatedAsExplored()
    {
        // node2 lends one connection at most, so that once the exploring acquire's hedge holds it, the next acquire picks
        // node1 because it has room: in the same clock tick as node1's exploration, but no exploration itself.
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var node1 = new FakeNode("node1", time, OpenScript.Takes(200 * Ms));
        var node2 = new FakeNode("node2", time, OpenScript.Takes(Ms));
        var builder = new ClusterDataSourceBuilder().UseTimeProvider(time);
        builder.Random = new Random(1);
        builder.AddNode("node1", node1);
        builder.AddNode("node2", node2, new ClusterNodeOptions { MaxConnections = 1 });

        // Hedges never wait for the budget here: whether the second acquire hedges at once is decided by its delay alone.
        builder.Options.HedgeBudget = 1;
        await using var cluster = builder.Build();
        for (var i = 0; i < 300; i++)
        {
            await using var connection = await cluster.OpenConnectionAsync();
        }

        Assert.That(cluster.GetNode("node1")!.GetStatistics().HedgeDelay, Is.EqualTo(new ClusterOptions().MaxHedgeDelay));
        node1.Script = OpenScript.SucceedAfter(200 * Ms);
        node2.Script = OpenScript.Succeed;
        DbConnection? held = null;
        for (var i = 0; i < 5000 && held is null; i++)
        {
            time.Advance(10 * Ms);
            var before = node1.OpensStarted;
            var connection = await cluster.OpenConnectionAsync();
            if (node1.OpensStarted == before)
            {
                await connection.DisposeAsync();
                continue;
            }

            // node1 explored: node2 started with it at once, answered in the same tick, and its connection is kept, so
            // that node2's pool is lent out in full.
            Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"));
            held = connection;
        }

        Assert.That(held, Is.Not.Null, "node1 was explored within 50 s of fake time");
        var explored = node1.OpensStarted;
        var second = cluster.OpenConnectionAsync().AsTask();
        Assert.That(node1.OpensStarted, Is.EqualTo(explored + 1), "the second acquire picked node1, the node with room");
        Assert.That(second.IsCompleted, Is.False, "not hedged at once: node1 was picked for its room, not explored");

        // Hedged after node2's delay, as a node far slower than the fastest candidate is.
        for (var i = 0; i < 10 && !await FakeCluster.Settle(second); i++)
        {
            time.Advance(Ms);
        }

        var hedged = await second;
        Assert.That(((FakeConnection)hedged).Node.Name, Is.EqualTo("node2"));
        await hedged.DisposeAsync();
        await held!.DisposeAsync();
        time.Advance(200 * Ms);
        await FakeCluster.WaitFor(() => node1.Alive == 0, "node1's late connections disposed");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task SlowPath_ProviderBlocksInsideOpenAsyncThenWaits_ConnectTimeoutCountsFromTheAttemptsStart(bool firstAttempt)
    {
        // node1 refuses at once; node2's provider blocks for 300 ms inside OpenAsync (a DNS lookup, say) and then waits
        // for an answer that never comes. Its connect timeout (1 s) runs from its start, not from after the block:
        // whether node2's open is the acquire's first (started before the acquire's slow path begins) or a failover's.
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var node1 = new FakeNode("node1", time, OpenScript.Fail);
        var node2 = new BlocksThenHangs(time, 300 * Ms);
        var builder = new ClusterDataSourceBuilder().UseTimeProvider(time);
        if (!firstAttempt)
        {
            builder.AddNode("node1", node1);
        }

        builder.AddNode("node2", node2);
        builder.Options.Policy = AcquirePolicy.FailOver;
        builder.Options.ConnectTimeout = TimeSpan.FromSeconds(1);
        await using var cluster = builder.Build();

        var started = time.GetTimestamp();
        var acquire = cluster.OpenConnectionAsync().AsTask();
        Assert.That(time.GetElapsedTime(started), Is.EqualTo(300 * Ms), "node2's provider blocked inside the acquire");
        Assert.That(acquire.IsCompleted, Is.False);

        // At node2's deadline: 1 s after its start, 700 ms after its provider returned.
        time.Advance(700 * Ms);
        Assert.That(await FakeCluster.Settle(acquire), Is.True, "the acquire gave node2 up at its connect timeout, not 300 ms later");
        var error = Assert.ThrowsAsync<ClusterException>(async () => await acquire);
        Assert.That(error!.Message, Does.Contain("node2").And.Contain("timed out"));
    }

    [Test]
    public async Task SlowPath_ProviderBlocksInItsCancellation_NextTimeoutCountsFromThePresent()
    {
        // node1 hangs, and its provider's cancellation callback blocks for 300 ms and does not stop the open; node2, the
        // hedge, hangs too. At node1's connect timeout the drain gives it up and is held in that callback; node2's
        // timeout (1 s after its start at 250 ms) then falls due while the drain is blocked, and must be seen at once
        // after it, not 300 ms later (a timer set from the reading taken before the block).
        var time = new TimerRecordingTimeProvider();
        var node1 = new BlocksInCancellation(time, 300 * Ms);
        var node2 = new FakeNode("node2", time, OpenScript.Hang);
        var builder = new ClusterDataSourceBuilder().UseTimeProvider(time);
        builder.AddNode("node1", node1);
        builder.AddNode("node2", node2);
        builder.Options.Policy = AcquirePolicy.FailOver;
        builder.Options.ConnectTimeout = TimeSpan.FromSeconds(1);
        await using var cluster = builder.Build();

        var acquire = cluster.OpenConnectionAsync().AsTask();
        time.Advance(new ClusterOptions().MaxHedgeDelay);
        var untilNode1Deadline = TimeSpan.FromSeconds(1) - new ClusterOptions().MaxHedgeDelay;
        await FakeCluster.WaitFor(
            () => node2.OpensStarted == 1 && time.DueTimes.Contains(untilNode1Deadline),
            "node2 hedged at node1's hedge delay (its first open: the cap), and the timer set for node1's deadline");

        // node1's deadline: its drain blocks 300 ms in the provider's cancellation, past node2's deadline (1,250 ms).
        var set = time.DueTimes.Count;
        time.Advance(untilNode1Deadline);
        await FakeCluster.WaitFor(() => node1.CancellationsReturned == 1 && time.DueTimes.Count > set, "node1 given up, and the timer set after the block");
        Assert.That(acquire.IsCompleted, Is.False, "node2 is still running");

        // The drain after the block set the timer for node2's deadline, already past: it fires on the next tick.
        time.Advance(TimeSpan.FromTicks(1));
        await FakeCluster.WaitFor(() => acquire.IsCompleted, "node2 given up at once after the block, not 300 ms later");
        var error = Assert.ThrowsAsync<ClusterException>(async () => await acquire);
        Assert.That(error!.Message, Does.Contain("node1").And.Contain("node2"));
        node1.FailOpens();
    }

    /// <summary>A fake clock that records every finite due time its timers are set for.</summary>
    private sealed class TimerRecordingTimeProvider : Microsoft.Extensions.Time.Testing.FakeTimeProvider
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<TimeSpan> _dueTimes = new();

        public System.Collections.Generic.IReadOnlyCollection<TimeSpan> DueTimes => _dueTimes;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            new Recorder(this, base.CreateTimer(callback, state, dueTime, period), dueTime);

        private sealed class Recorder : ITimer
        {
            private readonly TimerRecordingTimeProvider _owner;
            private readonly ITimer _inner;

            public Recorder(TimerRecordingTimeProvider owner, ITimer inner, TimeSpan dueTime)
            {
                _owner = owner;
                _inner = inner;
                Record(dueTime);
            }

            public bool Change(TimeSpan dueTime, TimeSpan period)
            {
                // Recorded once set, so that a test waiting for the record may move the clock past it.
                var changed = _inner.Change(dueTime, period);
                Record(dueTime);
                return changed;
            }

            public void Dispose() => _inner.Dispose();

            public ValueTask DisposeAsync() => _inner.DisposeAsync();

            private void Record(TimeSpan dueTime)
            {
                if (dueTime != Timeout.InfiniteTimeSpan)
                {
                    _owner._dueTimes.Enqueue(dueTime);
                }
            }
        }
    }

    /// <summary>A fake clock that counts its precise readings.</summary>
    private sealed class CountingTimeProvider : Microsoft.Extensions.Time.Testing.FakeTimeProvider
    {
        private long _reads;

        public long Reads => Interlocked.Read(ref _reads);

        public override long GetTimestamp()
        {
            Interlocked.Increment(ref _reads);
            return base.GetTimestamp();
        }
    }

    /// <summary>A provider whose open stays pending until <see cref="CompletePending"/>, which completes it on the caller's thread.</summary>
    private sealed class OnCommandNode(ReusableConnection connection) : DbDataSource
    {
        private TaskCompletionSource<DbConnection>? _pending;

        public override string ConnectionString => "on-command";

        protected override DbConnection CreateDbConnection() => connection;

        protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default)
        {
            _pending = new TaskCompletionSource<DbConnection>();
            return new(_pending.Task);
        }

        public void CompletePending()
        {
            if (Interlocked.Exchange(ref _pending, null) is { } pending)
            {
                connection.Open();
                pending.SetResult(connection);
            }
        }
    }

    /// <summary>
    /// A provider whose open hangs, and whose cancellation callback blocks for <paramref name="block"/> and then leaves
    /// the open hanging (a session waiting for a hung server's reply) until <see cref="FailOpens"/>.
    /// </summary>
    private sealed class BlocksInCancellation(Microsoft.Extensions.Time.Testing.FakeTimeProvider time, TimeSpan block) : DbDataSource
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<TaskCompletionSource<DbConnection>> _opens = new();
        private int _cancellationsReturned;

        public int CancellationsReturned => Volatile.Read(ref _cancellationsReturned);

        public override string ConnectionString => "blocks-in-cancellation";

        public void FailOpens()
        {
            while (_opens.TryDequeue(out var open))
            {
                open.TrySetException(new InvalidOperationException("the server went away"));
            }
        }

        protected override DbConnection CreateDbConnection() => throw new NotSupportedException();

        protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default)
        {
            var open = new TaskCompletionSource<DbConnection>(TaskCreationOptions.RunContinuationsAsynchronously);
            _opens.Enqueue(open);
            cancellationToken.Register(() =>
            {
                time.Advance(block);
                Interlocked.Increment(ref _cancellationsReturned);
            });
            return new(open.Task);
        }
    }

    /// <summary>A provider that blocks inside OpenAsync (moving the fake clock) and then waits forever for its token.</summary>
    private sealed class BlocksThenHangs(Microsoft.Extensions.Time.Testing.FakeTimeProvider time, TimeSpan block) : DbDataSource
    {
        public override string ConnectionString => "blocks-then-hangs";

        protected override DbConnection CreateDbConnection() => throw new NotSupportedException();

        protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default)
        {
            time.Advance(block);
            return new(HangAsync(cancellationToken));
        }

        private async Task<DbConnection> HangAsync(CancellationToken cancellationToken)
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, time, cancellationToken);
            throw new InvalidOperationException("unreachable");
        }
    }

    /// <summary>A provider whose open completes synchronously with the same connection and allocates nothing.</summary>
    private sealed class ReusingNode(ReusableConnection connection) : DbDataSource
    {
        public override string ConnectionString => "reuse";

        protected override DbConnection CreateDbConnection() => connection;

        protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default)
        {
            connection.Open();
            return new(connection);
        }
    }

}

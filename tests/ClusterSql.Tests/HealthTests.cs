using System;
using System.Collections.Concurrent;
using System.Data.Common;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.Core;
using ClusterSql.Tests.Fakes;
using NUnit.Framework;

namespace ClusterSql.Tests;

[TestFixture]
public sealed class HealthTests
{
    private static readonly TimeSpan Ms = TimeSpan.FromMilliseconds(1);

    private static FakeCluster FailOverCluster(int nodes = 2, double maxEjectionSeconds = 5) => FakeCluster.Create(nodes, o =>
    {
        o.Policy = AcquirePolicy.FailOver;
        o.EjectionThreshold = 3;
        o.BaseEjectionTime = TimeSpan.FromSeconds(1);
        o.MaxEjectionTime = TimeSpan.FromSeconds(maxEjectionSeconds);
    });

    private static async Task AcquireAndRelease(FakeCluster cluster, int times = 1)
    {
        for (var i = 0; i < times; i++)
        {
            await using var connection = await cluster.DataSource.OpenConnectionAsync();
        }
    }

    /// <summary>Two fail-over nodes; node1 ejected by three failures and then half-open (past its first ejection).</summary>
    private static async Task<FakeCluster> HalfOpenNode1(double maxEjectionSeconds = 5)
    {
        var cluster = FailOverCluster(maxEjectionSeconds: maxEjectionSeconds);
        cluster["node1"].Script = OpenScript.Fail;
        await AcquireAndRelease(cluster, 3);
        cluster.Time.Advance(TimeSpan.FromSeconds(1.2));
        return cluster;
    }

    [Test]
    public async Task ConsecutiveFailures_ReachThreshold_EjectTheNode()
    {
        await using var cluster = FailOverCluster();
        cluster["node1"].Script = OpenScript.Fail;

        await AcquireAndRelease(cluster, 2);
        Assert.That(cluster.Node("node1").State, Is.EqualTo(ClusterNodeState.Healthy), "two failures are below the threshold");

        await AcquireAndRelease(cluster);
        Assert.That(cluster.Node("node1").State, Is.EqualTo(ClusterNodeState.Ejected));
        Assert.That(cluster["node1"].OpensStarted, Is.EqualTo(3));

        await AcquireAndRelease(cluster, 10);
        Assert.That(cluster["node1"].OpensStarted, Is.EqualTo(3), "an ejected node is not tried");
        var stats = cluster.Node("node1").GetStatistics();
        Assert.That(stats.Ejections, Is.EqualTo(1));
        Assert.That(stats.ConsecutiveFailures, Is.EqualTo(3));
        Assert.That(stats.EjectedUntil, Is.Not.Null);
    }

    [Test]
    public async Task Ejection_RepeatedTrialFailures_BackOffExponentiallyUpToTheCap()
    {
        await using var cluster = FailOverCluster();
        cluster["node1"].Script = OpenScript.Fail;
        await AcquireAndRelease(cluster, 3);

        var expectedSeconds = new[] { 1.0, 2.0, 4.0, 5.0, 5.0 };
        foreach (var expected in expectedSeconds)
        {
            var stats = cluster.Node("node1").GetStatistics();
            var length = (stats.EjectedUntil!.Value - cluster.Time.GetUtcNow()).TotalSeconds;
            Assert.That(length, Is.InRange(expected * 0.9, expected * 1.1), "ejection length with ±10% jitter");

            // Past the ejection the node is half-open: one trial, which fails and ejects it for longer.
            cluster.Time.Advance(TimeSpan.FromSeconds(length + 0.001));
            Assert.That(cluster.Node("node1").State, Is.EqualTo(ClusterNodeState.HalfOpen));
            var opensBefore = cluster["node1"].OpensStarted;
            await AcquireAndRelease(cluster);
            Assert.That(cluster["node1"].OpensStarted, Is.EqualTo(opensBefore + 1), "exactly one trial open");
            Assert.That(cluster.Node("node1").State, Is.EqualTo(ClusterNodeState.Ejected));
        }
    }

    [Test]
    public async Task HalfOpen_TrialSucceeds_NodeRecovers()
    {
        await using var cluster = FailOverCluster();
        cluster["node1"].Script = OpenScript.Fail;
        await AcquireAndRelease(cluster, 3);
        Assert.That(cluster.Node("node1").State, Is.EqualTo(ClusterNodeState.Ejected));

        cluster["node1"].Script = OpenScript.Succeed;
        cluster.Time.Advance(TimeSpan.FromSeconds(1.2));
        await AcquireAndRelease(cluster);

        var stats = cluster.Node("node1").GetStatistics();
        Assert.That(stats.State, Is.EqualTo(ClusterNodeState.Healthy));
        Assert.That(stats.ConsecutiveFailures, Is.Zero);
        Assert.That(stats.EjectedUntil, Is.Null);
        Assert.That(stats.Wins, Is.EqualTo(1));

        // Recovery resets the backoff: the next ejection is the base length again.
        cluster["node1"].Script = OpenScript.Fail;
        await AcquireAndRelease(cluster, 3);
        var length = (cluster.Node("node1").GetStatistics().EjectedUntil!.Value - cluster.Time.GetUtcNow()).TotalSeconds;
        Assert.That(length, Is.InRange(0.9, 1.1));
    }

    [Test]
    public async Task HalfOpen_TrialInFlight_OtherAcquiresDoNotPickTheNode()
    {
        await using var cluster = await HalfOpenNode1();

        cluster["node1"].Script = OpenScript.Hang;
        var trial = cluster.DataSource.OpenConnectionAsync().AsTask();
        await FakeCluster.WaitFor(() => cluster["node1"].OpensStarted == 4, "trial started");

        var opensBefore = cluster["node1"].OpensStarted;
        await AcquireAndRelease(cluster, 5);
        Assert.That(cluster["node1"].OpensStarted, Is.EqualTo(opensBefore), "only one trial at a time");

        var connection = await cluster.RunUntilDone(trial, TimeSpan.FromMilliseconds(100));
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"), "the trial was hedged by node2");
        await connection.DisposeAsync();
    }

    [Test]
    public async Task HalfOpen_TrialCancelledByTheCallerAndItsProviderIgnoresTheToken_TrialIsFreedAtTheConnectTimeout()
    {
        // A half-open node has one trial. Its caller cancelled it, and the provider does not stop: until the trial's
        // connect timeout nobody else tries the node; from then on the next acquire does, and the node recovers, without
        // waiting for the provider (a minute here) or holding the cancellation against it.
        await using var cluster = await HalfOpenNode1();

        cluster["node1"].Script = OpenScript.SucceedAfterIgnoringCancellation(TimeSpan.FromMinutes(1));
        using var cts = new CancellationTokenSource();
        var trial = cluster.DataSource.OpenConnectionAsync(cts.Token).AsTask();
        await FakeCluster.WaitFor(() => cluster["node1"].OpensStarted == 4, "trial started");
        await cts.CancelAsync();
        Assert.That(async () => await trial, Throws.InstanceOf<OperationCanceledException>());

        await AcquireAndRelease(cluster, 3);
        Assert.That(cluster["node1"].OpensStarted, Is.EqualTo(4), "the trial is still the provider's");

        cluster["node1"].Script = OpenScript.Succeed;
        cluster.Time.Advance(new ClusterOptions().ConnectTimeout);
        await FakeCluster.WaitFor(() => cluster.Node("node1").GetStatistics().Cancellations == 1, "the trial given up at its connect timeout");
        await AcquireAndRelease(cluster);
        Assert.That(cluster["node1"].OpensStarted, Is.EqualTo(5), "a new trial");
        Assert.That(cluster.Node("node1").State, Is.EqualTo(ClusterNodeState.Healthy), "it succeeded: recovered");
        var stats = cluster.Node("node1").GetStatistics();
        Assert.That((stats.Failures, stats.Cancellations), Is.EqualTo((3L, 1L)), "the cancelled trial is no failure");
    }

    [Test]
    public async Task HalfOpen_AnotherOpenOfTheNodeCancelledDuringTheTrial_LeavesTheTrialItsOwn()
    {
        // Only the trial's own end frees a half-open node's trial. A direct open of the node (as an attempt started before
        // the ejection would be) that its caller cancels while the trial hangs must not let a second trial start.
        await using var cluster = await HalfOpenNode1();

        cluster["node1"].Script = OpenScript.Hang;
        var trialStartedAt = cluster.Time.GetUtcNow();
        var trial = cluster.DataSource.OpenConnectionAsync().AsTask();
        await FakeCluster.WaitFor(() => cluster["node1"].OpensStarted == 4, "trial started");

        using var cts = new CancellationTokenSource();
        var direct = cluster.Node("node1").OpenConnectionAsync(cts.Token).AsTask();
        await FakeCluster.WaitFor(() => cluster["node1"].OpensStarted == 5, "direct open started");
        await cts.CancelAsync();
        Assert.That(async () => await direct, Throws.InstanceOf<OperationCanceledException>());
        Assert.That(cluster.Node("node1").GetStatistics().Cancellations, Is.EqualTo(1));

        for (var i = 0; i < 3; i++)
        {
            // Under the fake clock: a second trial would hang too, and be hedged.
            await using var other = await cluster.RunUntilDone(cluster.DataSource.OpenConnectionAsync().AsTask(), TimeSpan.FromMilliseconds(100));
        }

        Assert.That(cluster["node1"].OpensStarted, Is.EqualTo(5), "the trial still hangs: no second one");
        Assert.That(cluster.Node("node1").State, Is.EqualTo(ClusterNodeState.HalfOpen));

        var connection = await cluster.RunUntilDone(trial, TimeSpan.FromMilliseconds(100));
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"), "the trial was hedged by node2");
        await connection.DisposeAsync();

        // The trial's own end frees it: given up at its connect timeout, it ejects the node again, and the trial after
        // that ejection recovers it.
        await EndHangingTrialAndRecover(cluster, ejectionsBefore: 1, opensBefore: 5, trialStartedAt);
    }

    /// <summary>
    /// node1's trial hangs: its connect timeout gives it up as a failure, which ejects node1 once more; past that
    /// ejection, and before the trial's claim could expire (twice the connect timeout from its start), the next acquire
    /// is a new trial, which succeeds: the trial's own end freed it.
    /// </summary>
    private static async Task EndHangingTrialAndRecover(FakeCluster cluster, int ejectionsBefore, int opensBefore, DateTimeOffset trialStartedAt)
    {
        var node = cluster.Node("node1");
        cluster["node1"].Script = OpenScript.Succeed;
        cluster.Time.Advance(node.ConnectTimeout);
        await FakeCluster.WaitFor(() => node.GetStatistics() is { PendingOpens: 0 } s && s.Ejections == ejectionsBefore + 1, "the trial given up at its connect timeout");
        Assert.That(node.State, Is.EqualTo(ClusterNodeState.Ejected), "a failed trial ejects the node again");

        AdvancePastEjection(cluster, node);
        Assert.That(cluster.Time.GetUtcNow() - trialStartedAt, Is.LessThan(node.ConnectTimeout * 2), "the claim has not expired by itself");
        await AcquireAndRelease(cluster);
        Assert.That(cluster["node1"].OpensStarted, Is.EqualTo(opensBefore + 1), "one new trial");
        Assert.That(node.State, Is.EqualTo(ClusterNodeState.Healthy), "it succeeded: recovered");
    }

    /// <summary>Moves the fake clock just past the node's ejection, if it has not passed already.</summary>
    private static void AdvancePastEjection(FakeCluster cluster, ClusterNode node)
    {
        var left = node.GetStatistics().EjectedUntil!.Value - cluster.Time.GetUtcNow();
        if (left >= TimeSpan.Zero)
        {
            cluster.Time.Advance(left + Ms);
        }
    }

    [Test]
    public async Task HalfOpen_AnotherOpenOfTheNodeFailsDuringTheTrial_EjectsItAgainAndLeavesTheTrialItsOwn()
    {
        // A failure that is not the trial's is fresh evidence: the node is ejected again. The trial, still hanging, stays
        // the node's one trial: when that ejection ends, nobody else tries the node until the trial has ended. Ejections
        // of 1 s, so that the trial's end and the next ejection fit within its claim's own expiry.
        await using var cluster = await HalfOpenNode1(maxEjectionSeconds: 1);

        cluster["node1"].Script = OpenScript.Hang;
        var trialStartedAt = cluster.Time.GetUtcNow();
        var trial = cluster.DataSource.OpenConnectionAsync().AsTask();
        await FakeCluster.WaitFor(() => cluster["node1"].OpensStarted == 4, "trial started");

        cluster["node1"].Script = OpenScript.Fail;
        Assert.That(async () => await cluster.Node("node1").OpenConnectionAsync(), Throws.InstanceOf<FakeDbException>());
        var stats = cluster.Node("node1").GetStatistics();
        Assert.That((stats.State, stats.Ejections), Is.EqualTo((ClusterNodeState.Ejected, 2L)), "ejected again by the direct open's failure");

        // Past that ejection (1.1 s at most, with its jitter), within the trial's 5 s connect timeout.
        cluster["node1"].Script = OpenScript.Succeed;
        var connection = await cluster.RunUntilDone(trial, TimeSpan.FromMilliseconds(100));
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"), "the trial was hedged by node2");
        await connection.DisposeAsync();
        AdvancePastEjection(cluster, cluster.Node("node1"));
        Assert.That(cluster.Node("node1").GetStatistics().PendingOpens, Is.EqualTo(1), "the trial still hangs");
        await AcquireAndRelease(cluster, 3);
        Assert.That(cluster["node1"].OpensStarted, Is.EqualTo(5), "no second trial while the first one hangs");

        await EndHangingTrialAndRecover(cluster, ejectionsBefore: 2, opensBefore: 5, trialStartedAt);
    }

    [Test]
    public async Task HalfOpen_TrialClaimWhoseAttemptNeverEnds_IsTakenOverAfterTwiceTheConnectTimeout()
    {
        // A claim lost on the way (nothing will ever end its attempt) must not keep the node out for ever.
        await using var cluster = await HalfOpenNode1();
        var node = cluster.Node("node1");
        var time = cluster.Time;
        var claimedAt = time.GetTimestamp();
        Assert.That(node.TryClaim(claimedAt, panic: false, out var lost) && lost != 0, Is.True, "the trial claimed");

        var timeout = new ClusterOptions().ConnectTimeout;
        time.Advance(timeout * 2 - Ms);
        Assert.That(node.CanServe(time.GetTimestamp()), Is.False, "still held just before twice the connect timeout");
        Assert.That(node.TryClaim(time.GetTimestamp(), panic: false, out _), Is.False);

        time.Advance(Ms);
        Assert.That(node.CanServe(time.GetTimestamp()), Is.True, "free at twice the connect timeout");
        Assert.That(node.TryClaim(time.GetTimestamp(), panic: false, out var taken) && taken != 0 && taken != lost, Is.True, "a new claim of its own");

        // The lost claim's late end frees nothing: the new trial still keeps others off.
        var start = node.BeginAttempt(isHedge: false, claimedAt);
        DbConnection? none = null;
        node.CompleteAttempt(start, ref none, new FakeDbException("late"), Acquirer.NoTimeout, callerCancelled: true, poolWait: false, synchronous: false, lost);
        Assert.That(node.CanServe(time.GetTimestamp()), Is.False, "the new trial is still the node's");
    }

    [Test]
    public async Task HalfOpen_ManyThreadsClaimAtOnce_ExactlyOneTrialEachRound()
    {
        // The claim under contention: four threads claim the half-open node together, round after round; each round
        // exactly one holds the trial, and once all have tried its cancelled end frees it for the next round (the clock
        // does not move, so no claim expires, and every claim value must still differ). What the winners' ends leave
        // behind: no pending open, one cancellation per round.
        const int threads = 4;
        const int rounds = 2_000;
        await using var cluster = await HalfOpenNode1();
        var node = cluster.Node("node1");
        var now = cluster.Time.GetTimestamp();
        var wins = new int[rounds];
        var claims = new ConcurrentDictionary<long, int>();
        using var barrier = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(_ => Task.Factory.StartNew(
            () =>
            {
                for (var round = 0; round < rounds; round++)
                {
                    barrier.SignalAndWait();
                    var claimed = node.TryClaim(now, panic: false, out var trial) && trial != 0;
                    if (claimed)
                    {
                        Interlocked.Increment(ref wins[round]);
                        claims.AddOrUpdate(trial, 1, (_, n) => n + 1);
                    }

                    // Every thread has tried before the winner's attempt ends and frees the trial.
                    barrier.SignalAndWait();
                    if (claimed)
                    {
                        var start = node.BeginAttempt(isHedge: false, now);
                        DbConnection? none = null;
                        node.CompleteAttempt(start, now, ref none, new OperationCanceledException(), Acquirer.NoTimeout, callerCancelled: true, poolWait: false, synchronous: false, trial);
                    }

                    // The trial is free again before the next round's claims.
                    barrier.SignalAndWait();
                }
            },
            TaskCreationOptions.LongRunning)).ToArray();
        await Task.WhenAll(workers);

        Assert.That(wins.Where(w => w != 1).Count(), Is.Zero, "exactly one trial in every round");
        Assert.That(claims.Values, Is.All.EqualTo(1), "no claim value held twice");
        var stats = node.GetStatistics();
        Assert.That((stats.PendingOpens, stats.Cancellations, stats.State), Is.EqualTo((0, (long)rounds, ClusterNodeState.HalfOpen)));
    }

    [Test]
    public async Task Panic_EveryNodeEjected_TriesThemAllAnyway()
    {
        await using var cluster = FailOverCluster();
        foreach (var node in cluster.Nodes)
        {
            node.Script = OpenScript.Fail;
        }

        for (var i = 0; i < 3; i++)
        {
            Assert.ThrowsAsync<ClusterException>(async () => await cluster.DataSource.OpenConnectionAsync());
        }

        Assert.That(cluster.DataSource.Nodes.Select(n => n.State), Is.All.EqualTo(ClusterNodeState.Ejected));

        cluster["node2"].Script = OpenScript.Succeed;
        await using var connection = await cluster.DataSource.OpenConnectionAsync();
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"), "panic tried the ejected nodes rather than fail");
        Assert.That(cluster.Node("node2").State, Is.EqualTo(ClusterNodeState.Healthy));
    }

    [Test]
    public async Task MarkDown_Node_IsNeverHandedOutUntilMarkedUp()
    {
        await using var cluster = FakeCluster.Create(2);
        cluster.Node("node1").MarkDown("wsrep_local_state is 2 (Donor)");

        await AcquireAndRelease(cluster, 20);
        Assert.That(cluster["node1"].OpensStarted, Is.Zero);
        Assert.That(cluster.Node("node1").GetStatistics().DownReason, Is.EqualTo("wsrep_local_state is 2 (Donor)"));

        cluster.Node("node2").MarkDown("not primary");
        var opensBefore = cluster.TotalOpens;
        var ex = Assert.ThrowsAsync<ClusterException>(async () => await cluster.DataSource.OpenConnectionAsync());
        Assert.That(ex!.Message, Does.Contain("node1: ClusterNodeUnavailableException: Not tried: the node is marked down: wsrep_local_state is 2 (Donor)"));
        Assert.That(ex.NodeErrors.Select(e => ((ClusterNodeUnavailableException)e.Exception).State), Is.All.EqualTo(ClusterNodeState.Down));
        Assert.That(cluster.TotalOpens, Is.EqualTo(opensBefore), "down nodes are not tried even in panic");

        cluster.Node("node1").MarkUp();
        await AcquireAndRelease(cluster);
        Assert.That(cluster["node1"].OpensStarted, Is.EqualTo(1));
    }

    [Test]
    public async Task HealthProbe_FailingCheck_MarksNodeDownUntilACheckPasses()
    {
        var probe = new ScriptedProbe();
        await using var cluster = FakeCluster.Create(2, o => o.HealthCheckInterval = TimeSpan.FromSeconds(2), probe: probe);
        await FakeCluster.WaitFor(() => probe.Checks.Count >= 2, "first checks");

        probe.Unhealthy["node1"] = "wsrep_cluster_status is non-Primary";
        cluster.Time.Advance(TimeSpan.FromSeconds(2));
        await FakeCluster.WaitFor(() => cluster.Node("node1").State == ClusterNodeState.Down, "node1 down");
        await AcquireAndRelease(cluster, 10);
        Assert.That(cluster["node1"].OpensStarted, Is.Zero);

        probe.Unhealthy.Clear();
        cluster.Time.Advance(TimeSpan.FromSeconds(2));
        await FakeCluster.WaitFor(() => cluster.Node("node1").State == ClusterNodeState.Healthy, "node1 up");
    }

    [Test]
    public async Task HealthProbe_CheckThrowsOrHangs_MarksNodeDownWithTheReason()
    {
        var probe = new ScriptedProbe { Throw = "node1", Hang = "node2" };
        await using var cluster = FakeCluster.Create(2, o =>
        {
            o.HealthCheckTimeout = TimeSpan.FromSeconds(1);
            o.HealthCheckFailureThreshold = 1;
        }, probe: probe);
        await FakeCluster.WaitFor(() => cluster.Node("node1").State == ClusterNodeState.Down, "node1 down");
        Assert.That(cluster.Node("node1").GetStatistics().DownReason, Is.EqualTo("health check failed: InvalidOperationException: probe broke"));

        cluster.Time.Advance(TimeSpan.FromSeconds(1));
        await FakeCluster.WaitFor(() => cluster.Node("node2").State == ClusterNodeState.Down, "node2 down");
        Assert.That(cluster.Node("node2").GetStatistics().DownReason, Is.EqualTo("health check timed out after 1000 ms"));
    }

    [Test]
    public async Task HealthProbe_CheckIgnoresCancellation_NodeIsMarkedDownAtTheTimeoutAndNoCheckPilesUp()
    {
        var probe = new ScriptedProbe { HangIgnoringCancellation = "node1" };
        await using var cluster = FakeCluster.Create(2, o =>
        {
            o.HealthCheckTimeout = TimeSpan.FromSeconds(1);
            o.HealthCheckInterval = TimeSpan.FromSeconds(2);
            o.HealthCheckFailureThreshold = 1;
        }, probe: probe);
        await FakeCluster.WaitFor(() => probe.Checks.Count(n => n == "node1") == 1, "first check started");

        cluster.Time.Advance(TimeSpan.FromSeconds(1));
        await FakeCluster.WaitFor(() => cluster.Node("node1").State == ClusterNodeState.Down, "node1 down");
        Assert.That(cluster.Node("node1").GetStatistics().DownReason, Is.EqualTo("health check timed out after 1000 ms"));

        cluster.Time.Advance(TimeSpan.FromSeconds(2));
        await FakeCluster.WaitFor(() => cluster.Node("node1").GetStatistics().DownReason!.EndsWith("has not returned", StringComparison.Ordinal), "still stuck");
        Assert.That(probe.Checks.Count(n => n == "node1"), Is.EqualTo(1), "no second check while the first is stuck");
    }

    [Test]
    public async Task HealthProbe_CancellationBlocksLikeMySqlConnectorsKillQuery_TheTimerThatFiredTheTimeoutIsNotHeld()
    {
        // MySqlConnector cancels a command by opening a connection for KILL QUERY inside its token callback: against a
        // hung server that blocks. FakeTimeProvider fires timers inline in Advance, so Advance returning shows that the
        // timeout's timer did not run the provider's cancellation.
        using var release = new ManualResetEventSlim();
        var probe = new ScriptedProbe { HangBlockingOnCancel = "node1", Release = release };
        await using var cluster = FakeCluster.Create(2, o =>
        {
            o.HealthCheckTimeout = TimeSpan.FromSeconds(1);
            o.HealthCheckInterval = TimeSpan.FromSeconds(2);
            o.HealthCheckFailureThreshold = 1;
        }, probe: probe);
        await FakeCluster.WaitFor(() => probe.Checks.Count(n => n == "node1") == 1, "first check started");

        var advance = Task.Run(() => cluster.Time.Advance(TimeSpan.FromSeconds(1)));
        await FakeCluster.WaitFor(() => advance.IsCompleted, "the timer returned while the provider's cancellation blocks");
        await FakeCluster.WaitFor(() => cluster.Node("node1").State == ClusterNodeState.Down, "node1 down at its timeout");
        Assert.That(cluster.Node("node1").GetStatistics().DownReason, Is.EqualTo("health check timed out after 1000 ms"));
        await FakeCluster.WaitFor(() => probe.CancelBlocking, "the cancellation ran, elsewhere");
        release.Set();
    }

    [Test]
    public async Task Probe_IsAttachedToItsDataSourceOnce_BeforeItsFirstCheck()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var probe = new AttachRecordingProbe();
        await using var cluster = new ClusterDataSourceBuilder().UseTimeProvider(time)
            .AddNode("a", new FakeNode("a", time, OpenScript.Succeed))
            .UseHealthProbe(probe)
            .Build();
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(probe.Attached, Is.EqualTo(new[] { cluster }));
        Assert.That(probe.ChecksBeforeAttach, Is.Zero);
    }

    [Test]
    public async Task NodeAwaitingItsFirstCheck_IsPublishedDown_AndTheFirstCheckReplacesIt_EvenUnreachable()
    {
        // Discovery publishes a node not yet checked: it must never serve before its first check, and that check's
        // outcome, whatever it is, replaces the waiting reason (an unreachable node must not wait for ever, and its
        // real error must show), below the failure threshold too.
        var probe = new ScriptedProbe { Throw = "node3" };
        await using var cluster = FakeCluster.Create(2, o => o.HealthCheckFailureThreshold = 3, probe: probe);
        var unreachable = cluster.DataSource.AddNode("node3", new FakeNode("node3", cluster.Time, OpenScript.Succeed), new ClusterNodeOptions { AwaitingFirstCheck = "waiting for its first check" });
        Assert.That(unreachable.State, Is.EqualTo(ClusterNodeState.Down), "published not serving");
        var healthy = cluster.DataSource.AddNode("node4", new FakeNode("node4", cluster.Time, OpenScript.Succeed), new ClusterNodeOptions { AwaitingFirstCheck = "waiting for its first check" });
        Assert.That(healthy.State, Is.EqualTo(ClusterNodeState.Down), "published not serving");

        await FakeCluster.WaitFor(() => unreachable.GetStatistics().DownReason == "health check failed: InvalidOperationException: probe broke", "the first (unreachable) check's error replaces the waiting reason");
        await FakeCluster.WaitFor(() => healthy.State == ClusterNodeState.Healthy, "a passing first check lets it serve");
        Assert.That(unreachable.IsDownByVerdict, Is.False, "an unreachable node, not a verdict: a passing check or the panic rules treat it as such");
    }

    private sealed class AttachRecordingProbe : IClusterNodeHealthProbe, IClusterAttachedProbe
    {
        public ConcurrentQueue<ClusterDataSource> Attached { get; } = new();

        public int ChecksBeforeAttach;

        public ValueTask<ClusterNodeHealth> CheckAsync(ClusterNode node, CancellationToken cancellationToken)
        {
            if (Attached.IsEmpty)
            {
                Interlocked.Increment(ref ChecksBeforeAttach);
            }

            return new(ClusterNodeHealth.Healthy);
        }

        public void Attach(ClusterDataSource cluster) => Attached.Enqueue(cluster);
    }

    private sealed class ScriptedProbe : IClusterNodeHealthProbe
    {
        public string? HangBlockingOnCancel { get; init; }

        public ManualResetEventSlim? Release { get; init; }

        public volatile bool CancelBlocking;

        public ConcurrentDictionary<string, string> Unhealthy { get; } = new();

        public ConcurrentQueue<string> Checks { get; } = new();

        public string? Throw { get; init; }

        public string? Hang { get; init; }

        public string? HangIgnoringCancellation { get; init; }

        public async ValueTask<ClusterNodeHealth> CheckAsync(ClusterNode node, CancellationToken cancellationToken)
        {
            Checks.Enqueue(node.Name);
            if (node.Name == Throw)
            {
                throw new InvalidOperationException("probe broke");
            }

            if (node.Name == Hang)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            if (node.Name == HangIgnoringCancellation)
            {
                await Task.Delay(Timeout.Infinite, CancellationToken.None);
            }

            if (node.Name == HangBlockingOnCancel)
            {
                var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                using var registration = cancellationToken.Register(() =>
                {
                    CancelBlocking = true;
                    Release!.Wait(TimeSpan.FromSeconds(30));
                    cancelled.TrySetResult();
                });
                await cancelled.Task;
            }

            return Unhealthy.TryGetValue(node.Name, out var reason) ? ClusterNodeHealth.Unhealthy(reason) : ClusterNodeHealth.Healthy;
        }
    }
}

using System;
using System.Collections.Concurrent;
using System.Data.Common;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.Tests.Fakes;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>The defects an acceptance run under real load found in the core, each at the conditions where it showed.</summary>
[TestFixture]
public sealed class CoreUnderLoadTests
{
    private static readonly TimeSpan Ms = TimeSpan.FromMilliseconds(1);

    [Test]
    public async Task HealthProbe_OneTimedOutCheck_DoesNotTakeTheNodeOut()
    {
        var probe = new CountingProbe();
        await using var cluster = FakeCluster.Create(2, o => o.HealthCheckTimeout = TimeSpan.FromSeconds(1), probe: probe);
        await FakeCluster.WaitFor(() => probe.Checks("node1") == 1 && probe.Checks("node2") == 1, "first checks");
        probe.Hang = true;
        await AdvanceUntil(cluster, () => probe.Checks("node1") == 2 && probe.Checks("node2") == 2, "second checks, which hang");
        await AdvanceUntil(cluster, () => probe.TimedOut >= 2, "both nodes' second checks timed out");
        await Task.Delay(20);
        Assert.That(cluster.Node("node1").State, Is.EqualTo(ClusterNodeState.Healthy), "one failed check is not enough (threshold 2)");

        await AdvanceUntil(cluster, () => cluster.Node("node1").State == ClusterNodeState.Down, "two in a row take it out");
        Assert.That(probe.Checks("node1"), Is.EqualTo(3));
        Assert.That(cluster.Node("node1").GetStatistics().DownReason, Does.Contain("timed out"));
    }

    [Test]
    public async Task OpenConnectionAsync_EveryNodeDownOnlyForUnreachableChecks_StillTriesThem()
    {
        var probe = new CountingProbe { Throw = true };
        await using var cluster = FakeCluster.Create(3, o => o.HealthCheckFailureThreshold = 1, probe: probe);
        await FakeCluster.WaitFor(() => cluster.DataSource.Nodes.All(n => n.State == ClusterNodeState.Down), "every node down");

        await using var connection = await cluster.DataSource.OpenConnectionAsync();
        Assert.That(connection.State, Is.EqualTo(System.Data.ConnectionState.Open), "a client-side failure of the checks must not become an outage");
    }

    [Test]
    public async Task OpenConnectionAsync_EveryNodeDownByAVerdict_IsNeverHandedOut()
    {
        var probe = new CountingProbe { Verdict = "wsrep_cluster_status is non-Primary, not Primary" };
        await using var cluster = FakeCluster.Create(2, probe: probe);
        await FakeCluster.WaitFor(() => cluster.DataSource.Nodes.All(n => n.State == ClusterNodeState.Down), "every node down");

        var error = Assert.ThrowsAsync<ClusterException>(async () => await cluster.DataSource.OpenConnectionAsync());
        Assert.That(error!.Message, Does.Contain("non-Primary"));
        Assert.That(cluster.TotalOpens, Is.Zero);
    }

    [Test]
    public async Task HealthProbe_LoginKeepsFailing_BacksOff()
    {
        var probe = new CountingProbe { ThrowLoginFailure = true };
        await using var cluster = FakeCluster.Create(1, o => o.HealthCheckInterval = TimeSpan.FromSeconds(2), probe: probe);
        for (var second = 0; second < 30; second++)
        {
            await FakeCluster.Settle(Task.Delay(5));
            cluster.Time.Advance(TimeSpan.FromSeconds(1));
        }

        await Task.Delay(20);
        var checks = probe.Checks("node1");
        Assert.That(checks, Is.InRange(3, 6), $"a refused login every 2 s would be 16 checks in 30 s; with backoff {checks}");
        Assert.That(cluster.Node("node1").State, Is.EqualTo(ClusterNodeState.Down));
    }

    [Test]
    public async Task HealthProbe_ConnectionRefused_DoesNotBackOff()
    {
        var probe = new CountingProbe { Throw = true };
        await using var cluster = FakeCluster.Create(1, o => o.HealthCheckInterval = TimeSpan.FromSeconds(2), probe: probe);
        for (var second = 0; second < 30; second++)
        {
            await FakeCluster.Settle(Task.Delay(5));
            cluster.Time.Advance(TimeSpan.FromSeconds(1));
        }

        await Task.Delay(20);
        Assert.That(probe.Checks("node1"), Is.GreaterThanOrEqualTo(14), "a node that may come back any second is checked every interval");
    }

    [TestCase(AcquirePolicy.LatencyAware)]
    [TestCase(AcquirePolicy.RoundRobin)]
    public async Task OpenConnectionAsync_PoolLentOutInFull_GoesToANodeWithRoom(AcquirePolicy policy)
    {
        await using var cluster = FakeCluster.Create(2, o => o.Policy = policy, maxConnections: 2);
        var held = new[] { await cluster.DataSource.OpenConnectionAsync(), await cluster.DataSource.OpenConnectionAsync() };
        var full = ((FakeConnection)held[0]).Node.Name;
        if (((FakeConnection)held[1]).Node.Name != full)
        {
            await held[1].DisposeAsync();
            held[1] = await cluster.Node(full).OpenConnectionAsync();
        }

        Assert.That(cluster.Node(full).GetStatistics().ConnectionsInUse, Is.EqualTo(2));
        for (var i = 0; i < 20; i++)
        {
            await using var next = await cluster.DataSource.OpenConnectionAsync();
            Assert.That(((FakeConnection)next).Node.Name, Is.Not.EqualTo(full), $"{full}'s pool is full: acquires go to the node with room without waiting");
        }

        await held[0].DisposeAsync();
        Assert.That(cluster.Node(full).GetStatistics().ConnectionsInUse, Is.EqualTo(1));
        await held[1].DisposeAsync();
        Assert.That(cluster.Node(full).GetStatistics().ConnectionsInUse, Is.Zero);
    }

    [Test]
    public async Task OpenConnectionAsync_FailOverPrimaryPoolFull_KeepsItsOrder()
    {
        await using var cluster = FakeCluster.Create(2, o => o.Policy = AcquirePolicy.FailOver, maxConnections: 1);
        await using var held = await cluster.DataSource.OpenConnectionAsync();
        await using var next = await cluster.DataSource.OpenConnectionAsync();
        Assert.That(((FakeConnection)next).Node.Name, Is.EqualTo("node1"), "FailOver's order is the user's (often one writer): a full pool waits, it does not spill");
    }

    [Test]
    public async Task OpenConnectionAsync_EveryPoolFullAndNoneReturned_FailsWithoutChargingTheNodes()
    {
        await using var cluster = FakeCluster.Create(2, o => o.ConnectTimeout = TimeSpan.FromSeconds(1), maxConnections: 1);
        await using var a = await cluster.DataSource.OpenConnectionAsync();
        await using var b = await cluster.DataSource.OpenConnectionAsync();

        // The providers' pools now block, as MySqlConnector's does at Maximum Pool Size.
        foreach (var node in cluster.Nodes)
        {
            node.Script = OpenScript.Hang;
        }

        for (var i = 0; i < 5; i++)
        {
            var acquire = cluster.DataSource.OpenConnectionAsync().AsTask();
            var error = Assert.ThrowsAsync<ClusterException>(async () => await cluster.RunUntilDone(acquire, TimeSpan.FromMilliseconds(100)));
            Assert.That(error!.Message, Does.Contain("pooled connections are in use by the application"));
        }

        foreach (var node in cluster.DataSource.Nodes)
        {
            var stats = node.GetStatistics();
            Assert.That(stats.Failures, Is.Zero, stats.ToString());
            Assert.That(stats.Ejections, Is.Zero, stats.ToString());
            Assert.That(stats.PoolWaits, Is.GreaterThan(0), stats.ToString());
            Assert.That(stats.State, Is.EqualTo(ClusterNodeState.Healthy));
            Assert.That(stats.LatencyEstimate, Is.LessThan(TimeSpan.FromMilliseconds(10)), "a wait for the pool is not the node's latency");
        }
    }

    [Test]
    public async Task OpenConnectionAsync_SlowPath_LeavesTheCallersActivityCurrent()
    {
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "ClusterSql" || source.Name == "caller",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        using var source = new ActivitySource("caller");
        await using var cluster = FakeCluster.Create(2, o => o.Policy = AcquirePolicy.FailOver);
        cluster["node1"].Script = OpenScript.SucceedAfter(5 * Ms);

        using var request = source.StartActivity("request")!;
        var acquire = cluster.DataSource.OpenConnectionAsync().AsTask();
        Assert.That(Activity.Current, Is.SameAs(request), "while the acquire runs");
        await using (await cluster.RunUntilDone(acquire, Ms))
        {
            Assert.That(Activity.Current, Is.SameAs(request), "after a slow-path acquire the caller's own activity is current");
        }

        cluster["node1"].Script = OpenScript.Succeed;
        await using (await cluster.DataSource.OpenConnectionAsync())
        {
            Assert.That(Activity.Current, Is.SameAs(request), "and after a fast one");
        }
    }

    [Test]
    public async Task Acquire_LoggerAndListenersThrow_AcquiresAndProbesGoOn()
    {
        using var meters = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "ClusterSql")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        meters.SetMeasurementEventCallback<long>((_, _, _, _) => throw new InvalidOperationException("broken exporter"));
        meters.SetMeasurementEventCallback<double>((_, _, _, _) => throw new InvalidOperationException("broken exporter"));
        meters.SetMeasurementEventCallback<int>((_, _, _, _) => throw new InvalidOperationException("broken exporter"));
        meters.Start();
        using var activities = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "ClusterSql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _ => throw new InvalidOperationException("broken tracer"),
        };
        ActivitySource.AddActivityListener(activities);

        var probe = new CountingProbe { Verdict = "down for the test" };
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var nodes = new[] { new FakeNode("node1", time, OpenScript.Fail), new FakeNode("node2", time, OpenScript.Succeed) };
        await using var dataSource = new ClusterDataSourceBuilder().UseTimeProvider(time).UseLoggerFactory(new ThrowingLoggerFactory())
            .UsePolicy(AcquirePolicy.FailOver).AddNode("node1", nodes[0]).AddNode("node2", nodes[1]).Build();

        for (var i = 0; i < 10; i++)
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node2"));
        }

        Assert.That(dataSource.GetNode("node1")!.State, Is.EqualTo(ClusterNodeState.Ejected), "the ejection (logged) happened");
        nodes[1].Script = OpenScript.Fail;
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.ThrowsAsync<ClusterException>(async () => await dataSource.OpenConnectionAsync(), "the every-node-failed log event throws inside");

        await using var probed = FakeCluster.Create(1, probe: probe);
        await FakeCluster.WaitFor(() => probed.Node("node1").State == ClusterNodeState.Down, "a probe verdict still lands");
    }

    [TestCase(nameof(ClusterOptions.ConnectTimeout))]
    [TestCase(nameof(ClusterOptions.HealthCheckTimeout))]
    [TestCase(nameof(ClusterOptions.MaxEjectionTime))]
    [TestCase(nameof(ClusterOptions.LatencyDecayTime))]
    public void Build_TimeSpanMaxValue_IsRejectedWithItsName(string option)
    {
        var builder = new ClusterDataSourceBuilder().AddNode("a", new FakeNode("a", new Microsoft.Extensions.Time.Testing.FakeTimeProvider()));
        typeof(ClusterOptions).GetProperty(option)!.SetValue(builder.Options, TimeSpan.MaxValue);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => builder.Build());
        Assert.That(error!.ParamName, Is.EqualTo(option));
        Assert.That(error.Message, Does.Contain("at most 24.9 days").Or.Contain("at most 24.8 days"));
    }

    [Test]
    public async Task OpenConnectionAsync_CallerCancels_SaysWhichNodesWereStillOpening()
    {
        await using var cluster = FakeCluster.Create(2, o => o.Policy = AcquirePolicy.FailOver);
        cluster["node1"].Script = OpenScript.Fail;
        cluster["node2"].Script = OpenScript.Hang;
        using var cancel = new CancellationTokenSource();
        var acquire = cluster.DataSource.OpenConnectionAsync(cancel.Token).AsTask();
        await FakeCluster.Settle(acquire);
        cluster.Time.Advance(40 * Ms);
        cancel.Cancel();

        var error = Assert.CatchAsync<OperationCanceledException>(async () => await acquire);
        Assert.That(error!.CancellationToken, Is.EqualTo(cancel.Token), "the .NET convention: the caller's token");
        Assert.That(error.Message, Does.Contain("while opening on node2 (for 40 ms)"));
        Assert.That(error.Message, Does.Contain("earlier: node1: FakeDbException"));
        Assert.That(error.InnerException, Is.InstanceOf<ClusterException>());
    }

    [Test]
    public async Task OpenConnectionAsync_CancellationRacesCompletion_NeverSurfacesObjectDisposed()
    {
        await using var cluster = FakeCluster.Create(1);
        cluster["node1"].Script = OpenScript.SucceedAfter(Ms);
        for (var i = 0; i < 300; i++)
        {
            using var cancel = new CancellationTokenSource();
            var acquire = cluster.DataSource.OpenConnectionAsync(cancel.Token).AsTask();
            var racing = Task.Run(() => cluster.Time.Advance(Ms));
            cancel.Cancel();
            await racing;
            try
            {
                await using var connection = await acquire;
            }
            catch (OperationCanceledException)
            {
            }
        }

        await FakeCluster.WaitFor(() => cluster["node1"].Alive == 0, "every connection back");
    }

    [Test]
    public async Task OpenConnectionAsync_ProviderBlocksInsideOpenAsync_LaterOpensGetTheirTimeoutAndFailOver()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var blocking = new BlockingNode(time);
        var healthy = new FakeNode("healthy", time, OpenScript.Succeed);
        await using var dataSource = new ClusterDataSourceBuilder().UseTimeProvider(time).UsePolicy(AcquirePolicy.FailOver)
            .AddNode("blocking", blocking).AddNode("healthy", healthy).Build();
        dataSource.Options.ConnectTimeout.ToString();

        // Its opens block the caller for 300 ms of the clock (it has no async open); after three in a row ClusterSql
        // moves its opens to the thread pool.
        blocking.AdvanceInsideOpen = TimeSpan.FromMilliseconds(300);
        for (var i = 0; i < 3; i++)
        {
            await using var blocked = await dataSource.OpenConnectionAsync();
            Assert.That(blocked, Is.InstanceOf<FakeConnection>());
        }

        using var release = new ManualResetEventSlim();
        blocking.Block = release;
        var acquire = dataSource.OpenConnectionAsync().AsTask();
        await FakeCluster.WaitFor(() => blocking.Blocked, "the provider blocks on a thread-pool thread, not the caller's");
        Assert.That(acquire.IsCompleted, Is.False);
        for (var i = 0; i < 60 && !acquire.IsCompleted; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(100));
            await FakeCluster.Settle(acquire);
        }

        await using (var connection = await acquire)
        {
            Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("healthy"), "failover at the connect timeout");
        }

        release.Set();
    }

    /// <summary>
    /// The same detection on the system clock, where a fast synchronous open's duration is taken from the coarse clock
    /// (ClusterNode.MayHoldSyncDuration): after many fast opens, three that block 300 ms in real time still move the
    /// node's opens to the thread pool.
    /// </summary>
    [Test]
    public async Task OpenConnectionAsync_SystemClock_FastOpensThenBlockingOnes_OpensMoveToTheThreadPool()
    {
        var blocking = new BlockingNode(time: null);
        await using var dataSource = new ClusterDataSourceBuilder().UsePolicy(AcquirePolicy.FailOver)
            .AddNode("blocking", blocking).AddNode("healthy", new FakeNode("healthy", new Microsoft.Extensions.Time.Testing.FakeTimeProvider(), OpenScript.Succeed)).Build();
        for (var i = 0; i < 200; i++)
        {
            await using var fast = await dataSource.OpenConnectionAsync();
        }

        blocking.AdvanceInsideOpen = TimeSpan.FromMilliseconds(300);
        for (var i = 0; i < 3; i++)
        {
            await using var blocked = await dataSource.OpenConnectionAsync();
            Assert.That(((FakeConnection)blocked).Node.Name, Is.EqualTo("blocking"));
        }

        using var release = new ManualResetEventSlim();
        blocking.Block = release;
        var acquire = dataSource.OpenConnectionAsync().AsTask();
        Assert.That(acquire.IsCompleted, Is.False, "the open runs on a thread-pool thread, not the caller's");
        await FakeCluster.WaitFor(() => blocking.Blocked, "the provider blocks on a thread-pool thread");
        release.Set();
        await using var connection = await acquire;
    }

    /// <summary>Moves the fake clock on in 100 ms steps, letting continuations run between them, until the condition holds.</summary>
    private static async Task AdvanceUntil(FakeCluster cluster, Func<bool> condition, string what)
    {
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(5);
            cluster.Time.Advance(TimeSpan.FromMilliseconds(100));
        }

        await FakeCluster.WaitFor(condition, what);
    }

    /// <summary>
    /// A provider without an async open (like DbConnection's base OpenAsync, the whole open runs before the call returns):
    /// each open takes <see cref="AdvanceInsideOpen"/>, moving the fake clock, or on the system clock (no fake one)
    /// sleeping; or it blocks until released.
    /// </summary>
    private sealed class BlockingNode(Microsoft.Extensions.Time.Testing.FakeTimeProvider? time) : DbDataSource
    {
        private readonly FakeNode _made = new("blocking", time ?? new Microsoft.Extensions.Time.Testing.FakeTimeProvider());

        public TimeSpan AdvanceInsideOpen { get; set; }

        public ManualResetEventSlim? Block { get; set; }

        public volatile bool Blocked;

        public override string ConnectionString => "blocking";

        protected override DbConnection CreateDbConnection() => throw new NotSupportedException();

        protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default)
        {
            // Like DbConnection's base OpenAsync: the whole open runs before the call returns.
            if (Block is { } block)
            {
                Blocked = true;
                block.Wait(TimeSpan.FromSeconds(30));
            }
            else if (time is not null)
            {
                time.Advance(AdvanceInsideOpen);
            }
            else if (AdvanceInsideOpen > TimeSpan.Zero)
            {
                Thread.Sleep(AdvanceInsideOpen);
            }

            return new ValueTask<DbConnection>(new FakeConnection(_made, open: true));
        }
    }

    private sealed class CountingProbe : IClusterNodeHealthProbe
    {
        private readonly ConcurrentDictionary<string, int> _checks = new();
        private int _timedOut;

        public volatile bool Hang;

        public bool Throw { get; init; }

        public bool ThrowLoginFailure { get; init; }

        public string? Verdict { get; init; }

        public int TimedOut => Volatile.Read(ref _timedOut);

        public int Checks(string node) => _checks.TryGetValue(node, out var count) ? count : 0;

        public async ValueTask<ClusterNodeHealth> CheckAsync(ClusterNode node, CancellationToken cancellationToken)
        {
            _checks.AddOrUpdate(node.Name, 1, static (_, c) => c + 1);
            if (Throw)
            {
                throw new RefusedException();
            }

            if (ThrowLoginFailure)
            {
                throw new LoginFailedException();
            }

            if (Hang)
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    Interlocked.Increment(ref _timedOut);
                    throw;
                }
            }

            return Verdict is null ? ClusterNodeHealth.Healthy : ClusterNodeHealth.Unhealthy(Verdict);
        }
    }

    private sealed class RefusedException() : DbException("Connection refused")
    {
        public override bool IsTransient => true;
    }

    private sealed class LoginFailedException() : DbException("Access denied for user 'app'")
    {
        public override bool IsTransient => false;
    }

    private sealed class ThrowingLoggerFactory : ILoggerFactory, ILogger
    {
        public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => throw new InvalidOperationException("broken logger");

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            throw new InvalidOperationException("broken logger");

        public void Dispose()
        {
        }
    }
}

using System;
using System.Collections.Concurrent;
using System.Data;
using System.Data.Common;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using System.Threading.Tasks.Sources;
using ClusterSql.Tests.Fakes;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>
/// The acquire's slow path (an open that completes asynchronously): what it allocates, and its pooled operation under
/// concurrency, hedges, failures, timeouts and cancellations.
/// </summary>
[TestFixture]
public sealed class SlowPathTests
{
    private const int MaxBytesPerSlowAcquire = 400;

    [TestCase(1)]
    [TestCase(3)]
    public void OpenConnectionAsync_AsyncOpen_AllocatesAtMost400BytesPerAcquire(int nodes)
    {
        // The backend completes each open on this thread but after the open returned (as a network open completes
        // later), and allocates nothing itself: every byte counted on this thread is the cluster's slow path.
        var backend = new DeferredNode();
        var builder = new ClusterDataSourceBuilder();
        for (var i = 0; i < nodes; i++)
        {
            builder.AddNode($"node{i + 1}", backend);
        }

        // A hedge delay no JIT pause reaches, yet short enough that the hedge timer is armed and disarmed every time.
        builder.Options.MinHedgeDelay = builder.Options.MaxHedgeDelay = TimeSpan.FromMilliseconds(500);
        using var cluster = builder.Build();
        for (var i = 0; i < 2000; i++)
        {
            AcquireRelease(cluster, backend);
        }

        const int Acquires = 1000;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < Acquires; i++)
        {
            AcquireRelease(cluster, backend);
        }

        var perAcquire = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)Acquires;
        Assert.That(perAcquire, Is.LessThanOrEqualTo(MaxBytesPerSlowAcquire), $"{perAcquire:0} B per slow acquire");
        Assert.That(cluster.Nodes.Sum(n => n.GetStatistics().Hedges), Is.Zero, "every open completed long before a hedge");
    }

    private static void AcquireRelease(ClusterDataSource cluster, DeferredNode backend)
    {
        // Not Assert.That: a constraint allocates, and every byte measured must be the cluster's.
        var acquire = cluster.OpenConnectionAsync();
        if (acquire.IsCompleted)
        {
            throw new AssertionException("The open was pending: the acquire must take the slow path.");
        }

        backend.CompletePending();
        if (!acquire.IsCompleted)
        {
            throw new AssertionException("The caller is completed where the provider completed the open, with no hop to another thread.");
        }

        acquire.Result.Close();
    }

    [TestCase(AcquirePolicy.LatencyAware)]
    [TestCase(AcquirePolicy.FailOver)]
    [TestCase(AcquirePolicy.Race)]
    public async Task OpenConnectionAsync_ManyConcurrentAcquiresWithHedgesFailuresTimeoutsAndCancellations_EachCompletesOnceAndLeaksNothing(AcquirePolicy policy)
    {
        // Seeded scripts; the interleaving is the machine's. What is asserted holds under any interleaving: an operation
        // reused too early, completed twice or never woken would hand one connection to two callers, dispose a caller's
        // connection, leave a connection undisposed, or leave an acquire hanging.
        var nodes = Enumerable.Range(1, 3).Select(i => new ScriptedNode($"node{i}", seed: i)).ToArray();
        var builder = new ClusterDataSourceBuilder().UsePolicy(policy);
        foreach (var node in nodes)
        {
            builder.AddNode(node.Name, node);
        }

        builder.Options.MinHedgeDelay = TimeSpan.FromMilliseconds(1);
        builder.Options.MaxHedgeDelay = TimeSpan.FromMilliseconds(2);
        builder.Options.ConnectTimeout = TimeSpan.FromMilliseconds(20);
        builder.Options.HedgeBudget = 1;
        builder.Options.EjectionThreshold = 1000;
        await using var cluster = builder.Build();

        var handedOut = new ConcurrentDictionary<DbConnection, int>(System.Collections.Generic.ReferenceEqualityComparer.Instance);
        var problems = new ConcurrentQueue<string>();
        int succeeded = 0, failed = 0, cancelled = 0;
        const int Workers = 8;
        const int AcquiresPerWorker = 400;
        var workers = Enumerable.Range(0, Workers).Select(worker => Task.Run(async () =>
        {
            var random = new Random(100 + worker);
            for (var i = 0; i < AcquiresPerWorker; i++)
            {
                using var cancel = random.Next(5) == 0 ? new CancellationTokenSource(TimeSpan.FromMilliseconds(random.Next(4))) : null;
                try
                {
                    var connection = await cluster.OpenConnectionAsync(cancel?.Token ?? default);
                    if (!handedOut.TryAdd(connection, worker))
                    {
                        problems.Enqueue($"a connection was handed out twice (worker {worker})");
                    }

                    await Task.Yield();
                    if (connection.State != ConnectionState.Open || ((ScriptedConnection)connection).IsDisposed)
                    {
                        problems.Enqueue($"a caller's connection was closed under it (worker {worker})");
                    }

                    await connection.DisposeAsync();
                    Interlocked.Increment(ref succeeded);
                }
                catch (OperationCanceledException) when (cancel?.IsCancellationRequested == true)
                {
                    Interlocked.Increment(ref cancelled);
                }
                catch (ClusterException)
                {
                    Interlocked.Increment(ref failed);
                }
                catch (Exception ex)
                {
                    problems.Enqueue($"{ex.GetType().Name}: {ex.Message}");
                }
            }
        })).ToArray();

        // A lost wake-up leaves an acquire hanging: every one ends within its connect timeouts, here well within 20 s.
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.That(problems, Is.Empty);
        Assert.That(succeeded + failed + cancelled, Is.EqualTo(Workers * AcquiresPerWorker));
        var hedges = cluster.Nodes.Sum(n => n.GetStatistics().Hedges);
        TestContext.Out.WriteLine($"{succeeded} succeeded, {failed} failed, {cancelled} cancelled, {hedges} hedges");
        Assert.That(succeeded, Is.GreaterThan(Workers * AcquiresPerWorker / 2), $"{failed} failed, {cancelled} cancelled");
        Assert.That(cancelled, Is.Positive, "the run covers the caller's cancellation");
        Assert.That(hedges, policy == AcquirePolicy.Race ? Is.Zero : Is.Positive, "the run covers hedges");

        // Losers, given-up opens and cancelled ones all come back and are disposed; nothing stays pending or leased.
        await FakeCluster.WaitFor(() => cluster.Nodes.All(n => n.GetStatistics().PendingOpens == 0), "no open pending");
        await FakeCluster.WaitFor(() => nodes.All(n => n.Made == n.Disposed), "every connection made was disposed");
        Assert.That(cluster.Nodes.Select(n => n.GetStatistics().ConnectionsInUse), Is.All.Zero);
        Assert.That(nodes.Sum(n => n.Made), Is.GreaterThanOrEqualTo(succeeded));
    }

    /// <summary>
    /// A provider whose open returns pending and completes when the test says so, on the test's thread; it allocates
    /// nothing (one reusable value-task source, one reusable connection).
    /// </summary>
    private sealed class DeferredNode : DbDataSource, IValueTaskSource<DbConnection>
    {
        private readonly ReusableConnection _connection = new();
        private ManualResetValueTaskSourceCore<DbConnection> _core;
        private bool _pending;

        public override string ConnectionString => "deferred";

        public void CompletePending()
        {
            // Not Assert.That: a constraint allocates, and every byte measured must be the cluster's.
            if (!_pending)
            {
                throw new InvalidOperationException("No open is pending.");
            }

            _pending = false;
            _connection.Open();
            _core.SetResult(_connection);
        }

        protected override DbConnection CreateDbConnection() => _connection;

        protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default)
        {
            if (_pending)
            {
                throw new InvalidOperationException("One open at a time.");
            }

            _pending = true;
            _core.Reset();
            return new ValueTask<DbConnection>(this, _core.Version);
        }

        public DbConnection GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    /// <summary>A connection that opens and closes without allocating, raising StateChange as providers do.</summary>
    /// <summary>
    /// A provider whose opens, by a seeded script, succeed or fail synchronously, after a thread-pool hop, after a short
    /// cancellable delay, hang until cancelled, or ignore their token and return after the connect timeout.
    /// </summary>
    private sealed class ScriptedNode(string name, int seed) : DbDataSource
    {
        private readonly Random _random = new(seed);
        private int _made;
        private int _disposed;

        public string Name { get; } = name;

        public int Made => Volatile.Read(ref _made);

        public int Disposed => Volatile.Read(ref _disposed);

        public override string ConnectionString => $"Data Source={Name}";

        internal void OnDisposed() => Interlocked.Increment(ref _disposed);

        protected override DbConnection CreateDbConnection() => throw new NotSupportedException();

        protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default)
        {
            int pick;
            lock (_random)
            {
                pick = _random.Next(100);
            }

            return pick switch
            {
                < 10 => new ValueTask<DbConnection>(Make()),
                < 14 => ValueTask.FromException<DbConnection>(new FakeDbException($"{Name} refused")),
                _ => OpenLaterAsync(pick, cancellationToken),
            };
        }

        private async ValueTask<DbConnection> OpenLaterAsync(int pick, CancellationToken cancellationToken)
        {
            switch (pick)
            {
                case < 60:
                    await Task.Yield();
                    break;
                case < 68:
                    await Task.Yield();
                    throw new FakeDbException($"{Name} failed");
                case < 92:
                    await Task.Delay(pick % 4, cancellationToken);
                    break;
                case < 96:
                    await Task.Delay(Timeout.Infinite, cancellationToken);
                    break;
                default:
                    await Task.Delay(30, CancellationToken.None);
                    break;
            }

            return Make();
        }

        private ScriptedConnection Make()
        {
            Interlocked.Increment(ref _made);
            return new ScriptedConnection(this);
        }
    }

    private sealed class ScriptedConnection(ScriptedNode node) : DbConnection
    {
        private static readonly StateChangeEventArgs s_closed = new(ConnectionState.Open, ConnectionState.Closed);
        private int _disposed;

        public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

        [System.Diagnostics.CodeAnalysis.AllowNull]
        public override string ConnectionString { get => node.ConnectionString; set => throw new NotSupportedException(); }

        public override string Database => "test";

        public override string DataSource => node.Name;

        public override string ServerVersion => "fake";

        public override ConnectionState State => IsDisposed ? ConnectionState.Closed : ConnectionState.Open;

        public override void ChangeDatabase(string databaseName) => throw new NotSupportedException();

        public override void Open() => throw new NotSupportedException();

        public override void Close() => Dispose();

        protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) => throw new NotSupportedException();

        protected override DbCommand CreateDbCommand() => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                node.OnDisposed();
                OnStateChange(s_closed);
            }

            base.Dispose(disposing);
        }
    }
}

using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Threading;
using System.Runtime.CompilerServices;
using System.Threading.Tasks;
using System.Threading.Tasks.Sources;
using ClusterSql.Telemetry;

namespace ClusterSql.Core;

// The acquire path, the heart of ClusterSql, in one file (DESIGN.md, "The acquire path"):
//  1. read the node snapshot;  2. keep the usable nodes;  3. order them by the policy;
//  4. open on the first node: a synchronous success (a pooled idle connection) returns at once, allocating nothing;
//  5. a failure starts the next node at once; slowness past the node's hedge delay starts the next node too, within
//     the hedge budget; attempts report to one pooled operation that the caller awaits, and the first success wins;
//  6. losers are never aborted mid-handshake: they finish, feed their node's statistics, and are disposed;
//  7. when every candidate fails, one ClusterException carries every node's error;
//  8. the caller's cancellation stops every attempt and leaks nothing;
//  9. nothing here runs a statement, so nothing is ever re-executed.

/// <summary>Hands out connections for one <see cref="ClusterDataSource"/>.</summary>
internal sealed class Acquirer
{
    private readonly ClusterContext _context;
    private readonly NodeSelector _selector;

    // What pays for exploring a node believed slower; null with hedging off (or a budget too small ever to refill),
    // where an exploration is a plain pick: a bucket that never refills would otherwise stop explorations for good.
    private readonly HedgeBudget? _explorationBudget;

    public Acquirer(ClusterContext context, NodeSelector? selector = null)
    {
        _context = context;
        _selector = selector ?? new NodeSelector(context.Options, context.TimeProvider, context.Random);
        _explorationBudget = context.HedgeBudget.Refills ? context.HedgeBudget : null;
    }

    public ClusterContext Context => _context;

    private readonly AcquireOperation?[] _operations = new AcquireOperation?[Math.Max(4, Environment.ProcessorCount * 4)];

    /// <summary>A slow-path operation from the pool, or a new one.</summary>
    internal AcquireOperation RentOperation()
    {
        var operations = _operations;
        for (var i = 0; i < operations.Length; i++)
        {
            var operation = Interlocked.Exchange(ref operations[i], null);
            if (operation is not null)
            {
                return operation;
            }
        }

        return new AcquireOperation(this);
    }

    /// <summary>An operation nobody refers to any more; dropped (its timer disposed) when the pool is full or closed.</summary>
    internal void ReturnOperation(AcquireOperation operation)
    {
        var operations = _operations;
        if (!_disposed)
        {
            for (var i = 0; i < operations.Length; i++)
            {
                if (Interlocked.CompareExchange(ref operations[i], operation, null) is null)
                {
                    // Dispose may have emptied the slots just before this one was filled: take it back out.
                    if (_disposed && Interlocked.CompareExchange(ref operations[i], null, operation) == operation)
                    {
                        operation.DisposeTimer();
                    }

                    return;
                }
            }
        }

        operation.DisposeTimer();
    }

    private volatile bool _disposed;

    /// <summary>
    /// The data source is disposed: the pooled operations' timers go with it. A timer left armed (see
    /// AcquireOperation.ArmTimer) would otherwise keep the operation, and through it the nodes and their
    /// providers, reachable until it fired, up to a connect timeout later. An operation still in use disposes its own
    /// when its last reference goes.
    /// </summary>
    public void Dispose()
    {
        _disposed = true;
        var operations = _operations;
        for (var i = 0; i < operations.Length; i++)
        {
            Interlocked.Exchange(ref operations[i], null)?.DisposeTimer();
        }
    }

    public NodeSelector Selector => _selector;

    public ValueTask<DbConnection> AcquireAsync(ClusterNode[] nodes, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<DbConnection>(cancellationToken);
        }

        _context.HedgeBudget.Deposit();
        var now = _context.TimeProvider.GetTimestamp();
        var telemetry = AcquireTelemetry.Start(_context);
        var first = _selector.PickFirst(nodes, now, _explorationBudget, out var exploration);
        if (first is null || !first.TryClaim(now, panic: false, out var trial))
        {
            if (exploration == Exploration.Paid)
            {
                // A half-open node's trial taken meanwhile: nothing started, nothing spent.
                _context.HedgeBudget.Refund();
            }

            telemetry.ReturnCallerActivity();
            return AcquireOperation.Run(this, nodes, now, telemetry, first: null, Exploration.None, pending: null, initialError: null, cancellationToken);
        }

        var poolWait = first.IsAtCapacity;

        // The coarse clock around the open: when it did not move, a fast synchronous open needs no second precise reading
        // (ClusterNode.MayHoldSyncDuration).
        var coarseStart = _context.CoarseSyncTiming ? Environment.TickCount64 : 0;
        var open = Attempt.StartOpen(first, _context, isHedge: false, now, out var start, out var timeout);
        if (!open.IsCompleted)
        {
            telemetry.ReturnCallerActivity();
            return AcquireOperation.Run(this, nodes, now, telemetry, first, exploration, (open, start, timeout, poolWait, trial), initialError: null, cancellationToken);
        }

        // The fast path: the open finished synchronously (typically a pooled idle connection). Nothing is allocated.
        DbConnection? connection = null;
        Exception? error = null;
        try
        {
            connection = open.Result;
        }
        catch (Exception ex)
        {
            error = ex;
        }

        if (connection is not null)
        {
            // The source was never armed (StartOpen) and nobody else can cancel it: a synchronous success did not time out.
            _context.Cancellations.Return(timeout);
            if (first.CompleteFastWin(start, coarseStart, connection))
            {
                if (exploration != Exploration.None)
                {
                    // An exploration's win is a sample, not a reason to move the client there (NodeSelector.NoteWin);
                    // a paid one's token goes back, since no hedge was needed.
                    if (exploration == Exploration.Paid)
                    {
                        _context.HedgeBudget.Refund();
                    }
                }
                else
                {
                    _selector.NoteWin(first);
                }

                telemetry.Succeeded(_context, now, first, attempts: 1, hedges: 0);
                return new ValueTask<DbConnection>(connection);
            }

            _ = Attempt.DisposeQuietlyAsync(connection);
            error = Attempt.RemovedWhileOpening();
        }
        else
        {
            error = first.CompleteAttempt(start, ref connection, error, timeout, callerCancelled: false, poolWait, synchronous: true, trial);
            _context.Cancellations.Return(timeout);
        }

        var initialError = new ClusterNodeError(first.Name, error!);
        telemetry.ReturnCallerActivity();
        return AcquireOperation.Run(this, nodes, now, telemetry, first, exploration, pending: null, initialError, cancellationToken);
    }

    /// <summary>
    /// Whether a synchronous caller must not block on async work: on a thread-pool thread that work needs other pool
    /// threads, and under a SynchronizationContext (a UI thread) a continuation posted back to it would wait for the
    /// blocked caller.
    /// </summary>
    internal static bool MustNotWaitForAsyncWork =>
        Thread.CurrentThread.IsThreadPoolThread || SynchronizationContext.Current is not null;

    /// <summary>A connect-timeout source that never fires, for opens ClusterSql does not time itself.</summary>
    internal static CancellationTokenSource NoTimeout => s_noTimeout;

    public DbConnection Acquire(ClusterNode[] nodes)
    {
        if (MustNotWaitForAsyncWork && !_context.SyncOpenUnsupported)
        {
            // A thread-pool thread that blocks on the async core waits for work that needs other thread-pool threads
            // (the provider's I/O completions, the hedge and timeout callbacks): a burst of such callers starves the
            // pool. Measured with 200 concurrent sync opens and one node slowed, on 2 cores: 47.8 s and 22 failed
            // acquires, against 0.29 s for the same opens made async. Here the provider's own synchronous open runs on
            // the caller's thread instead, as MySqlConnector's synchronous I/O does: no other thread is needed.
            return AcquireSynchronously(nodes);
        }

        // One core serves both: a synchronous success never blocks; otherwise the caller's thread (not one of the pool's)
        // waits for the async core, whose hedges and timeouts need no thread of their own.
        var acquire = AcquireAsync(nodes, CancellationToken.None);
        return acquire.IsCompletedSuccessfully ? acquire.Result : acquire.AsTask().GetAwaiter().GetResult();
    }

    /// <summary>
    /// A node whose hedge delay is more than this many times the fastest usable candidate's counts as far above the
    /// others: its attempts are hedged after that candidate's delay.
    /// </summary>
    internal const double FarAboveFactor = 4;

    /// <summary>
    /// An explored node whose delay is this far above that of the node selection compared it with is believed slower, and
    /// gets the best candidate started with it. Not any amount above: two noisy estimates of equal nodes often differ,
    /// and with the least of all candidates' estimates as the yardstick (nearly always below a given one) a fleet of 1,000
    /// clients over 9 healthy nodes hedged 0.23 times per acquire.
    /// </summary>
    internal const double SlowerFactor = 2;

    /// <summary>
    /// How long an attempt on <paramref name="node"/> runs before a hedge starts: the node's own delay; none for a paid
    /// exploration (<see cref="Exploration.Paid"/>: of a node believed slower, <see cref="SlowerFactor"/>, than the node
    /// selection compared it with), but the lesser of its own and the fastest usable candidate's delay while the node's
    /// latency is unproven (<see cref="ClusterNode.HasUnprovenLatency"/>); the fastest usable candidate's delay for a node
    /// whose delay is far above it.
    /// An exploration is a sample, not a bet: selection picks a node nobody tried for a while (a node that was slow, to
    /// see whether it recovered), and a caller should not pay for it. Hedged after the fastest candidate's delay (the
    /// rule before this one), each exploration of a node slowed by 50 ms per packet still cost its caller that delay
    /// plus a whole open, and paced load's p99 was 3.4x the healthy one; started together with the best candidate, the
    /// caller gets whichever answers first. It costs one open more per exploration (at most one per node per second and
    /// per ExplorationOpens of the data source's opens), and a hedge token, paid when the exploration is claimed: a
    /// client with none left explores later rather than make its caller wait for the slow open. A node believed as fast
    /// as the node it was compared with is explored as any pick is made (a client of many nodes at a low rate explores
    /// most of them only because it did not get round to them: a second open each time would double its logins).
    /// The explored attempt still finishes and feeds its node's estimate (the sample the exploration was for).
    /// </summary>
    /// <param name="node">The node of the attempt to be hedged.</param>
    /// <param name="paidExploration">Whether selection picked the node to explore it, and paid for its hedge.</param>
    /// <param name="fastestCandidate">The least hedge delay among the nodes a hedge could start; null when there is none.</param>
    internal static TimeSpan HedgeDelayFor(ClusterNode node, bool paidExploration, TimeSpan? fastestCandidate)
    {
        var own = node.HedgeDelay;
        if (fastestCandidate is TimeSpan fastest)
        {
            if (paidExploration)
            {
                // A node with no sample, or one or two, is believed slower on little evidence: its hedge delay is the
                // cap, or three times a sample that is often one cold open (the first login, JIT). Hedged at once, each
                // of a client's first explorations of every healthy node cost an open more: 0.0099 hedges per acquire
                // for a healthy fleet of 1,000 clients over 3 nodes, 0.0012 waiting (docs/benchmarks-fleet.md). Its
                // caller waits the fastest candidate's delay instead: a node that was only cold answers within it and
                // the token goes back; one truly slower is hedged then, with the token already held, never left to the
                // rescue. That is for at most WarmUpSamples - 1 explorations whose opens succeed, and not once the
                // node fails.
                return node.HasUnprovenLatency ? (fastest < own ? fastest : own) : TimeSpan.Zero;
            }

            if (fastest < own && own.Ticks > FarAboveFactor * fastest.Ticks)
            {
                return fastest;
            }
        }

        return own;
    }

    // CompleteAttempt asks whether an attempt's connect timeout fired; a synchronous open has none of ClusterSql's own.
    private static readonly CancellationTokenSource s_noTimeout = new();

    /// <summary>
    /// The same selection, health and accounting as the async core, with each node's open made by its provider's
    /// synchronous Open on the calling thread, one node after another: a failed node moves on to the next at once, but
    /// a slow node is not hedged (there is no second thread to hedge with) and an open is bounded by the provider's own
    /// connect timeout (MySqlConnector's Connection Timeout), not by ClusterSql's.
    /// </summary>
    private DbConnection AcquireSynchronously(ClusterNode[] nodes)
    {
        _context.HedgeBudget.Deposit();
        var started = _context.TimeProvider.GetTimestamp();
        var telemetry = AcquireTelemetry.Start(_context);
        // No hedge token: this path cannot hedge, so an exploration here is its caller's to wait for, as any pick is.
        var first = _selector.PickFirst(nodes, started, payFrom: null, out var exploration);
        var candidates = _selector.Order(nodes, started, first, panic: false);
        var panic = false;
        if (first is not null)
        {
            candidates.Insert(0, first);
        }
        else if (candidates.Count == 0)
        {
            panic = true;
            candidates = _selector.Order(nodes, started, exclude: null, panic: true);
        }

        // No hedge can relieve a synchronous open, so a node whose open in progress has run past its hedge delay (hung,
        // blackholed, slowed) goes to the back: other callers do not queue behind it until it is ejected.
        MoveStalledLast(candidates, started);

        var errors = new List<ClusterNodeError>(2);
        var attempts = 0;
        foreach (var node in candidates)
        {
            var now = _context.TimeProvider.GetTimestamp();
            if (!node.TryClaim(now, panic, out var trial))
            {
                continue;
            }

            attempts++;
            var poolWait = node.IsAtCapacity;
            var start = node.BeginAttempt(isHedge: false, now);

            // In progress from its start, so that its age counts in the node's cost and in MoveStalledLast for others.
            node.BeginStall(start, start);
            DbConnection? connection = null;
            Exception? error = null;
            try
            {
                connection = node.DataSource.OpenConnection();
            }
            catch (NotSupportedException ex) when (attempts == 1)
            {
                // A provider (or a decorator) without a synchronous open: this data source waits for the async core from
                // now on, as it must, and this acquire goes there too. The attempt does not count against the node.
                node.EndStall();
                _context.SyncOpenUnsupported = true;
                DbConnection? none = null;
                node.CompleteAttempt(start, ref none, ex, s_noTimeout, callerCancelled: true, poolWait, synchronous: false, trial);
                telemetry.Failed(_context, started, ex, attempts, hedges: 0);
                return AcquireAsync(nodes, CancellationToken.None).AsTask().GetAwaiter().GetResult();
            }
            catch (Exception ex)
            {
                error = ex;
            }

            node.EndStall();
            error = node.CompleteAttempt(start, ref connection, error, s_noTimeout, callerCancelled: false, poolWait, synchronous: false, trial);
            if (connection is not null)
            {
                if (!node.IsRemoved)
                {
                    node.RecordWin();
                    if (!(node == first && exploration != Exploration.None))
                    {
                        _selector.NoteWin(node);
                    }
                    telemetry.Succeeded(_context, started, node, attempts, hedges: 0);
                    return connection;
                }

                _ = Attempt.DisposeQuietlyAsync(connection);
                error = Attempt.RemovedWhileOpening();
            }

            errors.Add(new ClusterNodeError(node.Name, error!));
        }

        var failure = AcquireOperation.Failure(_context, nodes, errors);
        ClusterLog.EveryNodeFailed(_context.Logger, _context.Options.Name, failure.Message);
        telemetry.Failed(_context, started, failure, attempts, hedges: 0);
        throw failure;
    }

    private static void MoveStalledLast(List<ClusterNode> candidates, long now)
    {
        List<ClusterNode>? stalled = null;
        var kept = 0;
        for (var i = 0; i < candidates.Count; i++)
        {
            var node = candidates[i];
            if (node.StallAge(now) > node.HedgeDelay.TotalSeconds)
            {
                (stalled ??= []).Add(node);
            }
            else
            {
                candidates[kept++] = node;
            }
        }

        if (stalled is not null)
        {
            candidates.RemoveRange(kept, candidates.Count - kept);
            candidates.AddRange(stalled);
        }
    }
}

/// <summary>
/// One open on one node, for one acquire, once it did not finish synchronously. Owned by its
/// <see cref="AcquireOperation"/> and reused with it: it reports to the operation by a cached delegate, so that
/// waiting for an open allocates no task, state machine or closure.
/// </summary>
internal sealed class Attempt
{
    private const int Running = 0;
    private const int Completed = 1;
    private const int CancelledByCaller = 2;
    private const int GivenUp = 3;

    private readonly Action _onOpenCompleted;
    private AcquireOperation? _operation;
    private CancellationTokenSource? _timeout;
    private ConfiguredValueTaskAwaitable<DbConnection>.ConfiguredValueTaskAwaiter _open;
    private bool _poolWait;
    private long _trial;
    private int _state;
    private int _stall;
    private volatile bool _finished;

    public Attempt() => _onOpenCompleted = OnOpenCompleted;

    public ClusterNode Node { get; private set; } = null!;

    /// <summary>When the attempt started (the data source's clock).</summary>
    public long Start { get; private set; }

    /// <summary>When its connect timeout expires (the data source's clock): ClusterSql gives the open up then.</summary>
    public long Deadline { get; private set; }

    /// <summary>
    /// Whether the provider has returned and the node recorded the outcome (<see cref="Connection"/> and
    /// <see cref="Error"/> are set); after the timeout gave the attempt up, <see cref="Connection"/> is what came too late.
    /// </summary>
    public bool IsFinished => _finished;

    /// <summary>Whether the open is neither finished, given up at its timeout, nor cancelled for the caller.</summary>
    public bool IsRunning => Volatile.Read(ref _state) == Running;

    /// <summary>
    /// Whether the provider has not returned and the attempt was not given up: running, or cancelled for the caller and
    /// still not back (a provider may ignore its token). Either is given up at the connect timeout (<see cref="GiveUp"/>).
    /// </summary>
    public bool IsOutstanding => Volatile.Read(ref _state) is Running or CancelledByCaller;

    /// <summary>
    /// The connect timeout fired while the provider had not returned. Some providers do not stop at once when their
    /// token is cancelled (a pooled session waiting for a hung server's reply), so the acquire moves on at the timeout
    /// itself; the open is left to finish in the background and whatever it returns is disposed.
    /// </summary>
    public bool TimedOut => Volatile.Read(ref _state) == GivenUp;

    public DbConnection? Connection { get; private set; }

    /// <summary>
    /// The error to report for this node; null on success. Set at the timeout for an attempt given up then (null for one
    /// cancelled for the caller, whose acquire is over and reports the cancellation).
    /// </summary>
    public Exception? Error { get; private set; }

    /// <summary>The operation has taken the attempt's outcome into account (its drain alone reads and writes this).</summary>
    public bool Handled { get; set; }

    /// <summary>The attempt finished and its connection and source were cleaned up (the operation's drain alone).</summary>
    public bool Released { get; set; }

    /// <summary>The source whose token the provider's open got: cancelled at the timeout or for the caller.</summary>
    public CancellationTokenSource Timeout => _timeout!;

    /// <summary>Hands the connection to the winner's caller: no later clean-up may dispose it.</summary>
    public DbConnection TakeConnection()
    {
        var connection = Connection!;
        Connection = null;
        return connection;
    }

    /// <summary>Starts an open on a node; a synchronous throw becomes a faulted result. The caller arms no timer.</summary>
    public static ValueTask<DbConnection> StartOpen(ClusterNode node, ClusterContext context, bool isHedge, long now, out long start, out CancellationTokenSource timeout)
    {
        start = node.BeginAttempt(isHedge, now);

        // Not armed: an open that completes synchronously (the fast path) never needs a timer. The operation that waits
        // for an asynchronous one enforces the connect timeout with its own timer and cancels this source then.
        timeout = context.Cancellations.Rent();
        try
        {
            return node.StartProviderOpen(timeout.Token);
        }
        catch (Exception ex)
        {
            return ValueTask.FromException<DbConnection>(ex);
        }
    }

    public static ClusterNodeUnavailableException RemovedWhileOpening() =>
        new(ClusterNodeState.Removed, "The node was removed from the cluster while it was opening.");

    /// <summary>Takes an open for <paramref name="operation"/>; <see cref="Watch"/> then waits for it.</summary>
    public void Prepare(AcquireOperation operation, ClusterNode node, ClusterContext context, long start, CancellationTokenSource timeout, ValueTask<DbConnection> open, bool poolWait, long trial)
    {
        _operation = operation;
        Node = node;
        Start = start;
        Deadline = context.AddToTimestamp(start, node.ConnectTimeout);
        _timeout = timeout;
        _open = open.ConfigureAwait(false).GetAwaiter();
        _poolWait = poolWait;
        _trial = trial;
        _state = Running;
        _stall = 0;
        Connection = null;
        Error = null;
        Handled = false;
        Released = false;
        _finished = false;
    }

    /// <summary>
    /// Waits for the open. The operation holds a reference for the attempt until it has reported: an operation is reused
    /// only once every attempt is done with it.
    /// </summary>
    public void Watch()
    {
        if (_open.IsCompleted)
        {
            OnOpenCompleted();
        }
        else
        {
            // No ExecutionContext to flow and no context to post to: the continuation runs where the provider completes
            // the open, as the caller's own await of the provider would, with no hop of ours.
            _open.UnsafeOnCompleted(_onOpenCompleted);
        }
    }

    /// <summary>Forgets the last use (the operation is being reused).</summary>
    public void Clear()
    {
        _operation = null;
        _timeout = null;
        _open = default;
        Node = null!;
        Connection = null;
        Error = null;
    }

    private void OnOpenCompleted()
    {
        DbConnection? connection = null;
        Exception? error = null;
        try
        {
            connection = _open.GetResult();
        }
        catch (Exception ex)
        {
            error = ex;
        }

        // One reading for the node's sample and, when this thread runs the drain that follows and no drain looked later,
        // for that drain's first look (AcquireOperation.Process): a precise clock read costs 20-25 ns on the benchmark
        // machine, against 220-380 ns for the slow path's own work (docs/benchmarks.md).
        var operation = _operation!;
        var now = operation.Context.TimeProvider.GetTimestamp();
        _open = default;

        // Running or cancelled for the caller becomes Completed in one step, so that GiveUp, which takes either, cannot
        // also complete the attempt.
        int previous;
        do
        {
            previous = Volatile.Read(ref _state);
        }
        while (previous != GivenUp && Interlocked.CompareExchange(ref _state, Completed, previous) != previous);

        if (previous == GivenUp)
        {
            // The node was charged when the acquire gave up (a timeout, or the caller's cancellation); what the provider
            // returns this late goes back to its pool (the operation disposes it).
            Connection = connection;
        }
        else
        {
            EndStall();
            var callerCancelled = previous == CancelledByCaller;
            Error = Node.CompleteAttempt(Start, now, ref connection, error, _timeout!, callerCancelled, _poolWait, synchronous: false, _trial);
            Connection = connection;
        }

        _finished = true;
        operation.OnAttemptFinished(now);
    }

    /// <summary>
    /// The connect timeout expired (the operation's drain saw it, on a thread-pool thread, never a timer's). Unless the
    /// open has returned meanwhile, the attempt is given up and its node charged now (a timeout failure; no longer
    /// pending, no longer stalled), whether or not an acquire still waits for it, and not whenever a provider that
    /// ignores its token returns: one open hung for minutes must not keep a node's cost growing, nor its pending count up.
    /// An open already cancelled for the caller that has still not returned (its provider ignores the token) is given up
    /// then too, as the cancellation it is, never held against the node (as ClusterNode.OpenConnectionAsync counts it):
    /// until then it holds the node's pending count, its stall and, for a half-open node, its one trial. Not a timeout:
    /// a caller that cancels just before the deadline would otherwise make a provider's ordinary unwinding look like
    /// the node's.
    /// </summary>
    /// <returns>Whether the attempt was given up now.</returns>
    public bool GiveUp()
    {
        // Drains are serialized, so only the provider's completion races this, and it moves the state to Completed.
        var state = Volatile.Read(ref _state);
        if (state is not (Running or CancelledByCaller) || Interlocked.CompareExchange(ref _state, GivenUp, state) != state)
        {
            return false;
        }

        var callerCancelled = state == CancelledByCaller;
        if (!callerCancelled)
        {
            CancelQuietly(_timeout!);
        }

        EndStall();
        DbConnection? none = null;
        Error = Node.CompleteAttempt(Start, ref none, error: null, _timeout!, callerCancelled, _poolWait, synchronous: false, _trial);
        return true;
    }

    private void EndStall()
    {
        if (Interlocked.Exchange(ref _stall, 2) == 1)
        {
            Node.EndStall();
        }
    }

    /// <summary>Marks the attempt as hedged away while still pending (once; not after it has finished).</summary>
    public void MarkStalled(long now)
    {
        // An open waiting for the application to return a pooled connection says nothing about the node's latency.
        if (!_poolWait && Interlocked.CompareExchange(ref _stall, 1, 0) == 0)
        {
            Node.BeginStall(Start, now);
        }
    }

    /// <summary>Stops the open for the caller's cancellation; a no-op once it has finished or was given up.</summary>
    public void CancelForCaller()
    {
        if (Interlocked.CompareExchange(ref _state, CancelledByCaller, Running) == Running)
        {
            CancelQuietly(_timeout!);
        }
    }

    private static void CancelQuietly(CancellationTokenSource source)
    {
        try
        {
            source.Cancel();
        }
        catch (AggregateException)
        {
            // A provider's cancellation callback threw; the attempt is stopped all the same.
        }
    }

    internal static async Task DisposeQuietlyAsync(DbConnection connection)
    {
        try
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // A loser that cannot even close has nothing more to give; its node already counted the open.
        }
    }
}

/// <summary>
/// The slow path of one acquire: attempts started one after another (on failure at once, on slowness after the hedge
/// delay) or all together (<see cref="AcquirePolicy.Race"/>). The caller awaits the operation itself (an
/// <see cref="IValueTaskSource{TResult}"/>); operations and their attempts are pooled and reused.
/// </summary>
/// <remarks>
/// <para>
/// Every event (an attempt finished, the timer fired, the caller cancelled) only signals; one thread at a time drains:
/// whoever raises the signal count from zero runs <see cref="Drain"/>, which looks at the whole state again until no
/// signal came in meanwhile, so no event is lost and two events never race. An attempt that finished drains on the
/// thread where the provider completed it and completes the caller there: a slow acquire costs the hop the provider
/// makes, and no other (the channel it replaces cost one more hop to the waiting acquire, and about 2 KB). The timer
/// and the caller's cancellation drain on the thread pool instead: a timer thread must never start a provider's open
/// or cancel one (providers run cancellation callbacks synchronously, and some block in them), and the canceller's
/// thread must not run the acquire's continuation.
/// </para>
/// <para>
/// One timer per operation, reused, serves the hedge and every attempt's connect timeout: it is set for the earliest
/// moment that can still matter and is only a wake-up; the drain decides from the clock. A fire left over from an
/// earlier use (a timer cannot be recalled once due) finds the operation either back in the pool, and is ignored, or in
/// another use, where it is one more look at the state.
/// </para>
/// <para>
/// The operation goes back to the pool when its reference count reaches zero: the caller holds one until it took the
/// result, each attempt one until it reported (losers finish after the caller has gone on), each drain one. A reused
/// operation's <see cref="ManualResetValueTaskSourceCore{TResult}.Version"/> has moved on, so a stale awaiter throws
/// rather than reads another acquire's result.
/// </para>
/// </remarks>
internal sealed class AcquireOperation : IValueTaskSource<DbConnection>, IThreadPoolWorkItem
{

    private static readonly TimerCallback s_onTimer = static state => ((AcquireOperation)state!).OnTimer();
    private static readonly Action<object?> s_onCancel = static state => ((AcquireOperation)state!).OnTimerOrCancel();

    private readonly Acquirer _acquirer;
    private readonly ClusterContext _context;
    private readonly List<Attempt> _attempts = new(4);
    private readonly List<ClusterNodeError> _errors = new(4);
    private ManualResetValueTaskSourceCore<DbConnection> _core;
    private ClusterNode[] _nodes = [];
    private long _started;
    private AcquireTelemetry _telemetry;
    private ClusterNode? _first;
    private Exploration _firstExploration;

    // A paid exploration's hedge token, until a hedge spends it or the acquire ends and gives it back.
    private bool _holdsExplorationToken;
    private CancellationToken _cancellationToken;
    private CancellationTokenRegistration _registration;
    private int _used;
    private List<ClusterNode>? _candidates;
    private int _nextCandidate;
    private bool _firstExcluded;
    private bool _panic;
    private bool _raceStarted;
    private bool _hedgingStopped;
    private bool _rescued;
    private Attempt? _hedgeTarget;
    private long _hedgeDueAt;
    private int _attemptCount;
    private int _hedges;
    private bool _done;
    private DbConnection? _result;
    private Exception? _error;
    private ITimer? _timer;
    private long _armedAt = long.MaxValue;
    private int _timerFired;
    private int _refs;
    private int _signals;

    // The version whose result the caller has not taken yet; Taken once it has. Per version, not a flag that Recycle
    // clears: a second, concurrent GetResult of the same use that came in while the first one recycled the operation
    // would otherwise find the flag cleared, take the result again and release the caller's reference twice.
    private int _untaken;
    private const int Taken = int.MinValue;

    // The latest clock reading of this use's drains (Process, and TryStartNext after each open it started): drains are
    // serialized, and the signal count's interlocked operations order one drain's write before the next drain's read;
    // the reference count orders the last drain of a use before Recycle.
    private long _lastLook = long.MinValue;

    // Set when this look may have run something of a provider's that can block (a cancellation callback, a loser's
    // close): the look reads the clock again before it sets the timer, which would otherwise fire late by as long.
    private bool _mayHaveBlocked;

    public AcquireOperation(Acquirer acquirer)
    {
        _acquirer = acquirer;
        _context = acquirer.Context;

        // The caller's continuation runs where the outcome is decided: on the thread where the provider completed the
        // winning open (as it would awaiting the provider directly), or on a thread-pool thread; never a timer's.
        _core.RunContinuationsAsynchronously = false;
        _untaken = _core.Version;
    }

    /// <summary>Runs the slow path of an acquire on a pooled operation.</summary>
    /// <param name="acquirer">The data source's acquirer.</param>
    /// <param name="nodes">The node snapshot.</param>
    /// <param name="started">When the acquire started.</param>
    /// <param name="telemetry">The acquire's telemetry, the caller's activity already given back.</param>
    /// <param name="first">The node already tried, or null.</param>
    /// <param name="firstExploration">Whether selection claimed <paramref name="first"/>'s exploration for this acquire, and paid for it.</param>
    /// <param name="pending">Its open, when it is still running (with its start, source, pool-wait flag and trial claim).</param>
    /// <param name="initialError">Its error, when it already failed.</param>
    /// <param name="cancellationToken">The caller's cancellation.</param>
    public static ValueTask<DbConnection> Run(
        Acquirer acquirer,
        ClusterNode[] nodes,
        long started,
        AcquireTelemetry telemetry,
        ClusterNode? first,
        Exploration firstExploration,
        (ValueTask<DbConnection> Open, long Start, CancellationTokenSource Timeout, bool PoolWait, long Trial)? pending,
        ClusterNodeError? initialError,
        CancellationToken cancellationToken)
    {
        var operation = acquirer.RentOperation();
        operation._nodes = nodes;
        operation._started = started;
        operation._telemetry = telemetry;
        operation._first = first;
        operation._firstExploration = firstExploration;
        operation._holdsExplorationToken = firstExploration == Exploration.Paid;
        operation._cancellationToken = cancellationToken;
        operation._firstExcluded = first is not null;
        if (initialError is not null)
        {
            operation._errors.Add(initialError);
            operation._attemptCount = 1;
        }

        Attempt? attempt = null;
        if (pending is { } open)
        {
            attempt = operation.Track(first!, open.Start, open.Timeout, open.Open, open.PoolWait, open.Trial);
        }

        // A cancellation before the references are counted finds none and is ignored; the drain below sees the token.
        if (cancellationToken.CanBeCanceled)
        {
            operation._registration = cancellationToken.UnsafeRegister(s_onCancel, operation);
        }

        // Everything above is in place before anything can signal: a timer fire left over from the operation's last use
        // may drain as soon as a reference is counted. The caller's reference, and the pending attempt's.
        var version = operation._core.Version;
        Interlocked.Add(ref operation._refs, attempt is null ? 1 : 2);
        attempt?.Watch();
        // No reading handed on: the provider may have blocked inside its open since `started`, and timers set from a
        // reading that old would fire that much late.
        operation.Signal(inline: true);
        return new ValueTask<DbConnection>(operation, version);
    }

    /// <summary>The data source's context.</summary>
    internal ClusterContext Context => _context;

    /// <summary>An attempt reported (on the thread that completed its open, at <paramref name="now"/>); the attempt's reference ends here.</summary>
    internal void OnAttemptFinished(long now)
    {
        Signal(inline: true, now);
        Release();
    }

    private void OnTimer()
    {
        // Whatever it was set for, it is not set any more: the drain must not count on a fire that has happened (a timer
        // may fire before the moment our clock says, and a fire of an earlier setting may come in after a new one).
        // A full fence, not a plain write: the store must be visible before TryAddRef reads the reference count. Were
        // it reordered after that read, a fire that found the operation in the pool could still be unrecorded when the
        // next use's ArmTimer looks, which would then keep a timer that has already fired and wait for it in vain.
        Interlocked.Exchange(ref _timerFired, 1);
        OnTimerOrCancel();
    }

    private void OnTimerOrCancel()
    {
        if (TryAddRef())
        {
            Signal(inline: false);
            Release();
        }
    }

    /// <summary>Something changed; the caller of this holds a reference.</summary>
    /// <param name="inline">Whether to drain on this thread (else on the thread pool).</param>
    /// <param name="now">A clock reading taken when the attempt that signals returned, which an inline drain may use for its first look rather than read the clock again.</param>
    private void Signal(bool inline, long? now = null)
    {
        if (Interlocked.Increment(ref _signals) != 1)
        {
            // A drain is running or queued: it will look again before it stops.
            return;
        }

        Interlocked.Increment(ref _refs);
        if (inline)
        {
            Drain(now);
        }
        else
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
    }

    void IThreadPoolWorkItem.Execute() => Drain(now: null);

    private void Drain(long? now)
    {
        var decided = false;
        int seen;
        do
        {
            seen = Volatile.Read(ref _signals);
            try
            {
                // Handed to the first look only, and not again to the clean-up pass after an exception.
                var reading = now;
                now = null;
                Process(ref decided, reading);
            }
            catch (Exception ex)
            {
                // A defect of ours (providers' and listeners' exceptions are caught where they arise) must reach the caller
                // as an error, not leave it waiting forever or take the process down from a provider's thread; once the
                // outcome is decided (it is kept in `decided`), what failed was clean-up, which the next drain retries.
                if (!_done)
                {
                    _error = ex;
                    _done = true;
                    decided = true;

                    // One more pass, so that the clean-up of a decided operation runs (the cancellation registration
                    // disposed, attempts bounded by their deadlines, the timer set for them).
                    Interlocked.Increment(ref _signals);
                }
            }
        }
        while (Interlocked.Add(ref _signals, -seen) != 0);

        // Outside the loop, so that a caller's continuation that runs on here does not hold up the next drain (a loser
        // to dispose); the drain's reference keeps the operation from reuse until the continuation has returned.
        if (decided)
        {
            if (_result is { } connection)
            {
                _result = null;
                _core.SetResult(connection);
            }
            else
            {
                _core.SetException(_error!);
            }
        }

        Release();
    }

    /// <summary>Looks at the whole state once; sets <paramref name="decided"/> when it decided the acquire's outcome.</summary>
    /// <param name="decided">Set when this look decided the outcome.</param>
    /// <param name="reading">
    /// A reading taken when an attempt's open returned, just before it signalled this drain, or null. Used only if no
    /// drain looked later than it: a reading older than a drain's could be older than the start of an attempt that drain
    /// started (TryStartNext reads the clock after each open, so a drain's latest reading is never before such a start),
    /// and would then see that attempt as started in the future.
    /// </param>
    private void Process(ref bool decided, long? reading)
    {
        var now = reading is { } given && given >= _lastLook ? given : _context.TimeProvider.GetTimestamp();
        if (!_done && (_cancellationToken.IsCancellationRequested ? DecideCancelled(now) : Advance(ref now)))
        {
            decided = true;
        }

        if (_done)
        {
            if (_holdsExplorationToken)
            {
                // No hedge was needed (the exploration answered or failed first, or nothing could be started beside it).
                // Before anything below that could throw: the next drain is not sure to come.
                _holdsExplorationToken = false;
                _context.HedgeBudget.Refund();
            }

            _registration.Dispose();
            _registration = default;
            _hedgeTarget = null;

            // Losers still running, and opens cancelled for the caller that have not returned, are bounded by their connect
            // timeout too, after the acquire is over.
            for (var i = 0; i < _used; i++)
            {
                var attempt = _attempts[i];
                if (!attempt.IsFinished && now >= attempt.Deadline && attempt.GiveUp())
                {
                    attempt.Handled = true;
                    _mayHaveBlocked = true;
                }
            }
        }

        ReleaseFinished();
        if (_mayHaveBlocked)
        {
            _mayHaveBlocked = false;
            now = _context.TimeProvider.GetTimestamp();
        }

        ArmTimer(now);
        _lastLook = now;
    }

    /// <summary>Moves the acquire on; <paramref name="now"/> is read again after any open it started (see <see cref="TryStartNext"/>).</summary>
    private bool Advance(ref long now)
    {
        var failures = 0;
        for (var i = 0; i < _used; i++)
        {
            var attempt = _attempts[i];
            if (attempt.Handled)
            {
                continue;
            }

            if (attempt.IsFinished)
            {
                attempt.Handled = true;
                if (attempt.Connection is not null)
                {
                    if (!attempt.Node.IsRemoved)
                    {
                        attempt.Node.RecordWin();
                        if (!(attempt.Node == _first && _firstExploration != Exploration.None))
                        {
                            _acquirer.Selector.NoteWin(attempt.Node);
                        }
                        _telemetry.Succeeded(_context, _started, attempt.Node, _attemptCount, _hedges);
                        _result = attempt.TakeConnection();
                        _done = true;
                        return true;
                    }

                    // Disposed as a loser when released.
                    _errors.Add(new ClusterNodeError(attempt.Node.Name, Attempt.RemovedWhileOpening()));
                }
                else
                {
                    _errors.Add(new ClusterNodeError(attempt.Node.Name, attempt.Error!));
                }

                failures++;
            }
            else if (now >= attempt.Deadline && attempt.GiveUp())
            {
                // The connect timeout passed and the provider has not returned: move on without waiting for it.
                attempt.Handled = true;
                _mayHaveBlocked = true;
                _errors.Add(new ClusterNodeError(attempt.Node.Name, attempt.Error ?? attempt.Node.TimeoutError(inner: null)));
                failures++;
            }
        }

        if (_acquirer.Selector.Policy == AcquirePolicy.Race && !_raceStarted)
        {
            _raceStarted = true;
            while (TryStartNext(hedgeFor: null, ref now))
            {
            }
        }

        // A failure is not slowness: the next node starts at once, and costs no hedge budget.
        for (var i = 0; i < failures; i++)
        {
            TryStartNext(hedgeFor: null, ref now);
        }

        if (_hedgeTarget is { } slow && now >= _hedgeDueAt)
        {
            _hedgeTarget = null;
            Hedge(slow, ref now);
        }

        if (!AnyInFlight() && !TryStartNext(hedgeFor: null, ref now))
        {
            var failure = Failure(_context, _nodes, [.. _errors]);
            ClusterLog.EveryNodeFailed(_context.Logger, _context.Options.Name, failure.Message);
            _telemetry.Failed(_context, _started, failure, _attemptCount, _hedges);
            _error = failure;
            _done = true;
            return true;
        }

        return false;
    }

    private void Hedge(Attempt slow, ref long now)
    {
        if (slow.Handled || slow.IsFinished || !slow.IsRunning)
        {
            return;
        }

        var candidates = Candidates(now);
        if (_nextCandidate >= candidates.Count || !_acquirer.Selector.MayHedgeTo(candidates, _nextCandidate, _firstExcluded, slow.Node))
        {
            // Nothing left to start, or the next node is outside the role (a writer is never hedged onto a second node).
            return;
        }

        // A node whose own opens have hung longer than the one to relieve cannot relieve it: a hedge would only add a
        // login, and a pending open, to a node that does not answer. It stays a candidate for a failover, and the hedge
        // is looked at again after that node's delay (its stall may end; an exploration hedged at once must not end up
        // waiting for the whole slow open because the best node had one open in progress).
        var next = candidates[_nextCandidate];
        if (next.StallAge(now) > _context.ToSeconds(slow.Start, now))
        {
            _hedgeTarget = slow;
            _hedgeDueAt = _context.AddToTimestamp(now, next.HedgeDelay);
            return;
        }

        // A paid exploration's token pays for its hedge (the one it was withdrawn for, or a later one of the same acquire).
        var held = _holdsExplorationToken;
        var paid = held || _context.HedgeBudget.TryWithdraw();
        if (!paid)
        {
            // Slow everywhere, or hedging too often: wait for what runs rather than add logins; but not past a quarter
            // of the node's connect timeout (at least MaxHedgeDelay). An open that has had no answer for that long is
            // more likely on a node that hung than on a slow cluster, and a client's few saved hedges
            // (HedgeBudget.Burst) are soon spent when several acquires land on a hung node before its stall is seen:
            // each of the others would wait out the whole connect timeout (the real-cluster hang test caught one). One
            // such rescue per acquire, free: a cluster that slow everywhere costs at most one extra login per acquire.
            var rescueAfter = TimeSpan.FromTicks(Math.Max(_context.Options.MaxHedgeDelay.Ticks, slow.Node.ConnectTimeout.Ticks / 4));
            var rescueAt = _context.AddToTimestamp(slow.Start, rescueAfter);
            // After the one rescue, no more hedges for this acquire. (HedgeBudget = 0, hedging off with its rescue, never
            // gets here: ArmHedge sets no hedge for it.)
            if (_rescued || now < rescueAt)
            {
                _hedgingStopped = _rescued;
                _hedgeTarget = _rescued ? null : slow;
                _hedgeDueAt = rescueAt;
                return;
            }

            _rescued = true;
        }

        if (TryStartNext(hedgeFor: slow.Node, ref now))
        {
            // Spent only once the hedge started: a token held through an exception here is still given back at the end.
            _holdsExplorationToken = false;
            slow.MarkStalled(now);
            _hedges++;
        }
        else if (paid && !held)
        {
            // Nothing could be claimed (a half-open node's trial taken meanwhile): no login was added, so no hedge spent.
            // A held exploration token stays held, for a later hedge or the end of the acquire.
            _context.HedgeBudget.Refund();
        }
    }

    private bool AnyInFlight()
    {
        for (var i = 0; i < _used; i++)
        {
            if (!_attempts[i].Handled)
            {
                return true;
            }
        }

        return false;
    }

    private bool DecideCancelled(long now)
    {
        var cancelled = Cancelled(_cancellationToken, now);
        for (var i = 0; i < _used; i++)
        {
            var attempt = _attempts[i];
            if (!attempt.Handled)
            {
                // Its outcome, whenever it comes, is a loser's: a connection is disposed when released.
                attempt.Handled = true;
                attempt.CancelForCaller();
                _mayHaveBlocked = true;
            }
        }

        _telemetry.Failed(_context, _started, cancelled, _attemptCount, _hedges);
        _error = cancelled;
        _done = true;
        return true;
    }

    /// <summary>Cleans up every attempt that finished and was handled: losers disposed, sources back to the pool.</summary>
    private void ReleaseFinished()
    {
        for (var i = 0; i < _used; i++)
        {
            var attempt = _attempts[i];
            if (attempt.Released || !attempt.IsFinished || (!attempt.Handled && !_done))
            {
                continue;
            }

            attempt.Handled = true;
            attempt.Released = true;
            if (attempt.Connection is not null)
            {
                // Another node won, the caller cancelled, or it came after its timeout: back to its node's pool.
                if (!attempt.TimedOut)
                {
                    attempt.Node.RecordLoss();
                }

                _ = Attempt.DisposeQuietlyAsync(attempt.TakeConnection());
                _mayHaveBlocked = true;
            }

            // A source that was cancelled (the timeout, the caller) cannot be reset: disposed, not reused. Its attempt is
            // finished, so nothing cancels it any more.
            var timeout = attempt.Timeout;
            if (timeout.IsCancellationRequested)
            {
                timeout.Dispose();
            }
            else
            {
                _context.Cancellations.Return(timeout);
            }
        }
    }

    private Attempt Track(ClusterNode node, long start, CancellationTokenSource timeout, ValueTask<DbConnection> open, bool poolWait, long trial)
    {
        if (_used == _attempts.Count)
        {
            _attempts.Add(new Attempt());
        }

        var attempt = _attempts[_used++];
        attempt.Prepare(this, node, _context, start, timeout, open, poolWait, trial);
        _attemptCount++;

        ArmHedge(attempt);
        return attempt;
    }

    private List<ClusterNode> Candidates(long now)
    {
        if (_candidates is null)
        {
            // Ordered only now, when a second node is needed: most slow acquires end with their first attempt.
            _candidates = _acquirer.Selector.Order(_nodes, now, _first, panic: false);
            if (_first is null && _candidates.Count == 0)
            {
                // Panic: no node can serve (every one ejected). Trying them all beats failing without trying.
                _panic = true;
                _candidates = _acquirer.Selector.Order(_nodes, now, exclude: null, panic: true);
            }
        }

        return _candidates;
    }

    /// <summary>
    /// Starts the next candidate that can be claimed: a failover, or a hedge for the attempt on <paramref name="hedgeFor"/>.
    /// A provider may block inside its OpenAsync (one without a real async open, until <see cref="ClusterNode"/> learns
    /// to run its opens on the thread pool): <paramref name="now"/> is then read again once the provider has returned, so
    /// that what follows in this drain (the hedge's due time, the timer set for it and for the connect timeouts) counts
    /// from the present, not from before the block; a timer set from the stale reading would fire late by as long as the
    /// provider blocked.
    /// </summary>
    private bool TryStartNext(ClusterNode? hedgeFor, ref long now)
    {
        var isHedge = hedgeFor is not null;
        var candidates = Candidates(now);
        while (_nextCandidate < candidates.Count)
        {
            if (isHedge && !_acquirer.Selector.MayHedgeTo(candidates, _nextCandidate, _firstExcluded, hedgeFor!))
            {
                // A node that could not be claimed moved the hedge past the role's group (a writer is never hedged).
                return false;
            }

            var node = candidates[_nextCandidate++];
            if (!node.TryClaim(now, _panic, out var trial))
            {
                continue;
            }

            var poolWait = node.IsAtCapacity;
            var callerActivity = _telemetry.HasActivity ? System.Diagnostics.Activity.Current : null;

            // The provider's spans nest in the acquire's.
            _telemetry.ResumeActivity();
            var open = Attempt.StartOpen(node, _context, isHedge, _context.TimeProvider.GetTimestamp(), out var start, out var timeout);
            if (_telemetry.HasActivity)
            {
                System.Diagnostics.Activity.Current = callerActivity;
            }

            // The attempt's reference, until it reported (OnAttemptFinished). An open that completed at once reports at
            // once: this drain looks again before it stops.
            var attempt = Track(node, start, timeout, open, poolWait, trial);
            Interlocked.Increment(ref _refs);
            attempt.Watch();
            now = _context.TimeProvider.GetTimestamp();
            _lastLook = now;
            return true;
        }

        return false;
    }

    private void ArmHedge(Attempt attempt)
    {
        _hedgeTarget = null;

        // HedgeBudget = 0 turns hedging off, the hedge rescue included: one login per acquire, a failover only after
        // the connect timeout, and no timer for a hedge that cannot start.
        if (_hedgingStopped || _done || _context.Options.HedgeBudget <= 0 || _acquirer.Selector.Policy == AcquirePolicy.Race ||
            (_acquirer.Selector.IsRole && !_acquirer.Selector.MayHedgeTo(Candidates(attempt.Start), _nextCandidate, _firstExcluded, attempt.Node)) ||
            FastestCandidateDelay(attempt.Node, attempt.Start) is not TimeSpan fastest)
        {
            return;
        }

        // The hedge follows the newest attempt: it waits for the delay of the node it would relieve, none for a paid
        // exploration (but the fastest candidate's while the node's latency is unproven), or the fastest candidate's when
        // that node is far slower than the others.
        var paidExploration = attempt.Node == _first && _firstExploration == Exploration.Paid;
        _hedgeTarget = attempt;
        _hedgeDueAt = _context.AddToTimestamp(attempt.Start, Acquirer.HedgeDelayFor(attempt.Node, paidExploration, fastest));
    }

    /// <summary>The least hedge delay among the nodes a hedge could start; null when there is none.</summary>
    private TimeSpan? FastestCandidateDelay(ClusterNode relieved, long now)
    {
        TimeSpan? fastest = null;
        if (_candidates is not null || _acquirer.Selector.IsRole)
        {
            // A role's hedge may only go to its own group (the writers): the nodes outside it, however fast, say nothing
            // about how long this attempt should run. Ordering allocates the candidates' list, which a role's slow path
            // needs for any hedge anyway.
            var candidates = Candidates(now);
            for (var i = _nextCandidate; i < candidates.Count && _acquirer.Selector.MayHedgeTo(candidates, i, _firstExcluded, relieved); i++)
            {
                var delay = candidates[i].HedgeDelay;
                if (fastest is null || delay < fastest)
                {
                    fastest = delay;
                }
            }

            return fastest;
        }

        // Not ordered yet: every other node that could serve now (what Order will return), without allocating.
        foreach (var node in _nodes)
        {
            if (node != _first && (_panic ? node.CanServeInPanic : node.CanServe(now)) && !IsTried(node))
            {
                var delay = node.HedgeDelay;
                if (fastest is null || delay < fastest)
                {
                    fastest = delay;
                }
            }
        }

        return fastest;
    }

    private bool IsTried(ClusterNode node)
    {
        for (var i = 0; i < _used; i++)
        {
            if (_attempts[i].Node == node)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Sets the timer for the earliest moment that can still matter: the hedge, or an outstanding attempt's timeout.</summary>
    private void ArmTimer(long now)
    {
        var next = !_done && _hedgeTarget is not null ? _hedgeDueAt : long.MaxValue;
        for (var i = 0; i < _used; i++)
        {
            var attempt = _attempts[i];
            if (!attempt.IsFinished && attempt.IsOutstanding && attempt.Deadline < next)
            {
                next = attempt.Deadline;
            }
        }

        if (Interlocked.Exchange(ref _timerFired, 0) != 0)
        {
            // Fired (maybe before _armedAt: timers count coarse milliseconds), so not set, now or for later needs.
            _armedAt = long.MaxValue;
        }

        var armed = _armedAt != long.MaxValue && _armedAt > now;
        if (next == long.MaxValue)
        {
            // Nothing needs it any more: left armed. Its one fire later finds the operation in the pool (and does nothing)
            // or in another use (one more look at the state, on the thread pool); the next use that needs it no earlier
            // keeps it as it is. Disarming and re-arming cost two timer-queue updates, under its lock, on every acquire
            // that ends with its first attempt (the hedge was armed for it), against at most one fire per hedge delay.
            return;
        }

        if (armed && _armedAt <= next)
        {
            // It fires at or before the moment needed; that drain sets it again for what is left.
            return;
        }

        if (_timer is null)
        {
            // Not capturing the caller's ExecutionContext: the timer outlives this acquire, and its callback only queues.
            if (ExecutionContext.IsFlowSuppressed())
            {
                _timer = _context.TimeProvider.CreateTimer(s_onTimer, this, System.Threading.Timeout.InfiniteTimeSpan, System.Threading.Timeout.InfiniteTimeSpan);
            }
            else
            {
                using (ExecutionContext.SuppressFlow())
                {
                    _timer = _context.TimeProvider.CreateTimer(s_onTimer, this, System.Threading.Timeout.InfiniteTimeSpan, System.Threading.Timeout.InfiniteTimeSpan);
                }
            }
        }

        // Rounded up, and for the system's timers to whole milliseconds: they drop the rest, and a timer set a fraction
        // short would fire before anything is due, again and again. Capped below the longest due time a timer takes
        // (about 49 days): a longer wait just fires once more on the way.
        var ticks = Math.Ceiling((next - now) * (double)TimeSpan.TicksPerSecond / _context.TimeProvider.TimestampFrequency);
        if (_context.TimeProvider == TimeProvider.System)
        {
            ticks = Math.Ceiling(ticks / TimeSpan.TicksPerMillisecond) * TimeSpan.TicksPerMillisecond;
        }

        _timer.Change(TimeSpan.FromTicks((long)Math.Clamp(ticks, 1, TimeSpan.TicksPerDay * 30)), System.Threading.Timeout.InfiniteTimeSpan);
        _armedAt = next;
    }

    /// <summary>Disposes the operation's timer; only while nobody uses the operation (out of the pool, or dropped).</summary>
    internal void DisposeTimer()
    {
        _timer?.Dispose();
        _timer = null;
        _armedAt = long.MaxValue;
    }

    private bool TryAddRef()
    {
        int refs;
        do
        {
            refs = Volatile.Read(ref _refs);
            if (refs == 0)
            {
                // Back in the pool: a timer fire left over from an earlier use.
                return false;
            }
        }
        while (Interlocked.CompareExchange(ref _refs, refs + 1, refs) != refs);

        return true;
    }

    private void Release()
    {
        if (Interlocked.Decrement(ref _refs) == 0)
        {
            Recycle();
        }
    }

    /// <summary>Nobody refers to this use any more: clear it and put the operation back in the pool.</summary>
    private void Recycle()
    {
        for (var i = 0; i < _used; i++)
        {
            _attempts[i].Clear();
        }

        _used = 0;
        _errors.Clear();
        _nodes = [];
        _telemetry = default;
        _first = null;
        _firstExploration = Exploration.None;
        _holdsExplorationToken = false;
        _cancellationToken = default;
        _candidates = null;
        _nextCandidate = 0;
        _firstExcluded = false;
        _panic = false;
        _raceStarted = false;
        _hedgingStopped = false;
        _rescued = false;
        _hedgeTarget = null;
        _attemptCount = 0;
        _hedges = 0;
        _done = false;
        _result = null;
        _error = null;
        _lastLook = long.MinValue;
        _mayHaveBlocked = false;
        _core.Reset();
        Volatile.Write(ref _untaken, _core.Version);
        _acquirer.ReturnOperation(this);
    }

    public DbConnection GetResult(short token)
    {
        if (token == _core.Version && _core.GetStatus(token) == ValueTaskSourceStatus.Pending)
        {
            // Misuse (.Result on an acquire still running): nothing is taken, so the connection, when it comes, is not lost.
            throw new InvalidOperationException("The acquire has not completed: await it rather than read its result.");
        }

        if (token != _core.Version || Interlocked.CompareExchange(ref _untaken, Taken, token) != token)
        {
            // Misuse (a ValueTask awaited twice): the caller's reference is released once, never twice, so a misused
            // operation is not reused while another acquire's attempts still report to it.
            return token != _core.Version ? _core.GetResult(token) : throw new InvalidOperationException("The acquire's result was already taken: a ValueTask may be awaited only once.");
        }

        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            Release();
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    /// <summary>
    /// The caller's cancellation, as the .NET convention wants it (an <see cref="OperationCanceledException"/> with the
    /// caller's token), saying which nodes were still opening and for how long, with the errors so far as its inner
    /// exception.
    /// </summary>
    private OperationCanceledException Cancelled(CancellationToken cancellationToken, long now)
    {
        var message = new System.Text.StringBuilder("The caller cancelled the acquire after ")
            .Append((_context.ToSeconds(_started, now) * 1000).ToString("0", System.Globalization.CultureInfo.InvariantCulture)).Append(" ms");
        var opening = 0;
        for (var i = 0; i < _used; i++)
        {
            var attempt = _attempts[i];
            if (attempt.Handled)
            {
                continue;
            }

            message.Append(opening++ == 0 ? ", while opening on " : ", ").Append(attempt.Node.Name).Append(" (for ")
                .Append((_context.ToSeconds(attempt.Start, now) * 1000).ToString("0", System.Globalization.CultureInfo.InvariantCulture)).Append(" ms)");
        }

        if (opening == 0)
        {
            message.Append(", with no open in progress");
        }

        if (_errors.Count > 0)
        {
            message.Append("; earlier: ");
            for (var i = 0; i < _errors.Count; i++)
            {
                message.Append(i == 0 ? string.Empty : "; ").Append(_errors[i].NodeName).Append(": ").Append(_errors[i].Exception.GetType().Name);
            }
        }

        message.Append('.');
        var inner = _errors.Count > 0 ? ClusterException.Create([.. _errors], _nodes.Length) : null;
        return new OperationCanceledException(message.ToString(), inner, cancellationToken);
    }

    /// <summary>Every node's error for the caller: the nodes not tried say why (down, ejected, removed).</summary>
    internal static ClusterException Failure(ClusterContext context, ClusterNode[] nodes, List<ClusterNodeError> errors)
    {
        var now = context.TimeProvider.GetTimestamp();
        foreach (var node in nodes)
        {
            if (!errors.Exists(e => string.Equals(e.NodeName, node.Name, StringComparison.Ordinal)))
            {
                errors.Add(new ClusterNodeError(node.Name, node.Unavailable(now)));
            }
        }

        return ClusterException.Create(errors, nodes.Length);
    }
}

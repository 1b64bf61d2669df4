using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using ClusterSql.Telemetry;

namespace ClusterSql.Core;

// The acquire path, the heart of ClusterSql, in one file (DESIGN.md, "The acquire path"):
//  1. read the node snapshot;  2. keep the usable nodes;  3. order them by the policy;
//  4. open on the first node: a synchronous success (a pooled idle connection) returns at once, allocating nothing;
//  5. a failure starts the next node at once; slowness past the node's hedge delay starts the next node too, within
//     the hedge budget; results meet in a Channel and the first success wins;
//  6. losers are never aborted mid-handshake: they finish, feed their node's statistics, and are disposed;
//  7. when every candidate fails, one ClusterException carries every node's error;
//  8. the caller's cancellation stops every attempt and leaks nothing;
//  9. nothing here runs a statement, so nothing is ever re-executed.

/// <summary>Hands out connections for one <see cref="ClusterDataSource"/>.</summary>
internal sealed class Acquirer
{
    private readonly ClusterContext _context;
    private readonly NodeSelector _selector;

    public Acquirer(ClusterContext context, NodeSelector? selector = null)
    {
        _context = context;
        _selector = selector ?? new NodeSelector(context.Options, context.TimeProvider, context.Random);
    }

    public ClusterContext Context => _context;

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
        var first = _selector.PickFirst(nodes, now);
        if (first is null || !first.TryClaim(now, panic: false))
        {
            telemetry.ReturnCallerActivity();
            return new AcquireOperation(this, nodes, now, telemetry).RunAsync(first: null, pending: null, initialError: null, cancellationToken);
        }

        var poolWait = first.IsAtCapacity;
        var open = Attempt.StartOpen(first, _context, isHedge: false, now, out var start, out var timeout);
        if (!open.IsCompleted)
        {
            var pending = new Attempt(first, _context, start, timeout, open, poolWait);
            telemetry.ReturnCallerActivity();
            return new AcquireOperation(this, nodes, now, telemetry).RunAsync(first, pending, initialError: null, cancellationToken);
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

        error = first.CompleteAttempt(start, ref connection, error, timeout, callerCancelled: false, poolWait, synchronous: true);
        _context.Cancellations.Return(timeout);
        if (connection is not null)
        {
            if (!first.IsRemoved)
            {
                first.RecordWin();
                telemetry.Succeeded(_context, now, first, attempts: 1, hedges: 0);
                return new ValueTask<DbConnection>(connection);
            }

            _ = Attempt.DisposeQuietlyAsync(connection);
            error = Attempt.RemovedWhileOpening();
        }

        var initialError = new ClusterNodeError(first.Name, error!);
        telemetry.ReturnCallerActivity();
        return new AcquireOperation(this, nodes, now, telemetry).RunAsync(first, pending: null, initialError, cancellationToken);
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
        var first = _selector.PickFirst(nodes, started);
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
            if (!node.TryClaim(now, panic))
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
                node.CompleteAttempt(start, ref none, ex, s_noTimeout, callerCancelled: true, poolWait, synchronous: false);
                telemetry.Failed(_context, started, ex, attempts, hedges: 0);
                return AcquireAsync(nodes, CancellationToken.None).AsTask().GetAwaiter().GetResult();
            }
            catch (Exception ex)
            {
                error = ex;
            }

            node.EndStall();
            error = node.CompleteAttempt(start, ref connection, error, s_noTimeout, callerCancelled: false, poolWait, synchronous: false);
            if (connection is not null)
            {
                if (!node.IsRemoved)
                {
                    node.RecordWin();
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

/// <summary>One open on one node, for one acquire, once it did not finish synchronously.</summary>
internal sealed class Attempt
{
    private const int Running = 0;
    private const int Completed = 1;
    private const int CancelledByCaller = 2;
    private const int GivenUp = 3;

    private readonly ClusterContext _context;
    private readonly CancellationTokenSource _timeout;
    private readonly long _start;
    private readonly ValueTask<DbConnection> _open;
    private readonly bool _poolWait;
    private ChannelWriter<Attempt?>? _results;
    private int _state;
    private int _stall;
    private volatile bool _resultReady;

    public Attempt(ClusterNode node, ClusterContext context, long start, CancellationTokenSource timeout, ValueTask<DbConnection> open, bool poolWait)
    {
        Node = node;
        _context = context;
        _start = start;
        _timeout = timeout;
        _open = open;
        _poolWait = poolWait;
    }

    public ClusterNode Node { get; }

    /// <summary>When the attempt started (the data source's clock).</summary>
    public long Start => _start;

    /// <summary>Whether <see cref="Connection"/> and <see cref="Error"/> hold the outcome.</summary>
    public bool IsCompleted => _resultReady;

    /// <summary>
    /// The connect timeout fired while the provider had not returned. Some providers do not stop at once when their
    /// token is cancelled (a pooled session waiting for a hung server's reply), so the acquire moves on at the timeout
    /// itself; the open is left to finish in the background and whatever it returns is disposed.
    /// </summary>
    public bool TimedOut => Volatile.Read(ref _state) == GivenUp;

    public DbConnection? Connection { get; private set; }

    /// <summary>The error to report for this node; null on success. Set at the timeout for an attempt given up then.</summary>
    public Exception? Error { get; private set; }

    /// <summary>Hands the connection to the winner's caller: no later clean-up may dispose it.</summary>
    public DbConnection TakeConnection()
    {
        var connection = Connection!;
        Connection = null;
        return connection;
    }

    public static Attempt Begin(ClusterNode node, ClusterContext context, bool isHedge)
    {
        var poolWait = node.IsAtCapacity;
        var open = StartOpen(node, context, isHedge, context.TimeProvider.GetTimestamp(), out var start, out var timeout);
        return new Attempt(node, context, start, timeout, open, poolWait);
    }

    /// <summary>Starts an open on a node, bounded by its connect timeout; a synchronous throw becomes a faulted result.</summary>
    public static ValueTask<DbConnection> StartOpen(ClusterNode node, ClusterContext context, bool isHedge, long now, out long start, out CancellationTokenSource timeout)
    {
        start = node.BeginAttempt(isHedge, now);
        timeout = context.Cancellations.Rent(node.ConnectTimeout);
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

    /// <summary>Awaits the open, records it on the node, and posts it; a result nobody takes any more is disposed.</summary>
    public async Task RunAsync(ChannelWriter<Attempt?> results)
    {
        _results = results;
        var timeoutWatch = _timeout.Token.UnsafeRegister(static s => ((Attempt)s!).OnTimeout(), this);
        DbConnection? connection = null;
        Exception? error = null;
        try
        {
            connection = await _open.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            error = ex;
        }

        // Disposing the registration before the source goes back to the pool: a reused source must not call us.
        timeoutWatch.Dispose();
        var previous = Interlocked.CompareExchange(ref _state, Completed, Running);
        if (previous == GivenUp)
        {
            // The node was charged with a timeout when the acquire gave up; what the provider returns this late goes
            // back to its pool, and its source is not reused (it was cancelled).
            _timeout.Dispose();
            if (connection is not null)
            {
                await DisposeQuietlyAsync(connection).ConfigureAwait(false);
            }

            return;
        }

        EndStall();
        var callerCancelled = previous == CancelledByCaller;
        Error = Node.CompleteAttempt(_start, ref connection, error, _timeout, callerCancelled, _poolWait, synchronous: false);
        Connection = connection;
        _resultReady = true;
        if (!callerCancelled)
        {
            _context.Cancellations.Return(_timeout);
        }

        // A source cancelled for the caller is neither reused nor disposed here: CancelForCaller may still be about to
        // call Cancel on it (it switched the state first), and a source with no timer left holds nothing to free.

        if (!results.TryWrite(this) && Connection is not null)
        {
            // The acquire is over (another node won, or the caller cancelled): back to this node's pool.
            Node.RecordLoss();
            await DisposeQuietlyAsync(TakeConnection()).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The connect timeout fired. Unless the open has returned meanwhile, the attempt is given up now and its node
    /// charged now (a timeout failure; no longer pending, no longer stalled), whether or not an acquire still waits for
    /// it (a hedged-away loser's acquire may be long over), and not whenever a provider that ignores its token returns:
    /// one open hung for minutes must not keep a node's cost growing, nor its pending count up.
    /// </summary>
    private void OnTimeout()
    {
        if (Interlocked.CompareExchange(ref _state, GivenUp, Running) != Running)
        {
            // Finished (RunAsync records it, as a timeout: its source is cancelled) or cancelled by the caller.
            return;
        }

        EndStall();
        DbConnection? none = null;
        Error = Node.CompleteAttempt(_start, ref none, error: null, _timeout, callerCancelled: false, _poolWait, synchronous: false);
        _results?.TryWrite(this);
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
            Node.BeginStall(_start, now);
        }
    }

    /// <summary>Stops the open for the caller's cancellation; a no-op once it has finished.</summary>
    public void CancelForCaller()
    {
        // Only a running attempt still owns its source: a finished one may already have returned it to the pool,
        // where cancelling it would cancel somebody else's open.
        if (Interlocked.CompareExchange(ref _state, CancelledByCaller, Running) == Running)
        {
            try
            {
                _timeout.Cancel();
            }
            catch (AggregateException)
            {
                // A provider's cancellation callback threw; the attempt is stopped for the caller all the same.
            }
        }
    }

    public void DisposeConnectionInBackground()
    {
        if (Connection is not null)
        {
            Node.RecordLoss();
            _ = DisposeQuietlyAsync(TakeConnection());
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
/// delay) or all together (<see cref="AcquirePolicy.Race"/>), meeting in a channel.
/// </summary>
internal sealed class AcquireOperation
{
    private static readonly UnboundedChannelOptions s_channelOptions = new()
    {
        SingleReader = true,
        SingleWriter = false,
        AllowSynchronousContinuations = false,
    };

    private readonly Acquirer _acquirer;
    private readonly ClusterContext _context;
    private readonly ClusterNode[] _nodes;
    private readonly long _started;
    private readonly AcquireTelemetry _telemetry;

    // A null item wakes the reader without a result: the hedge timer fired, or the caller cancelled.
    private readonly Channel<Attempt?> _results = Channel.CreateUnbounded<Attempt?>(s_channelOptions);
    private readonly List<Attempt> _running = new(4);
    private readonly List<ClusterNodeError> _errors = new(4);
    private List<ClusterNode> _candidates = [];
    private int _nextCandidate;
    private bool _firstExcluded;
    private bool _panic;
    private ITimer? _hedgeTimer;
    private Attempt? _hedgeTarget;
    private int _hedgeDue;
    private bool _hedgingStopped;
    private int _attempts;
    private int _hedges;

    public AcquireOperation(Acquirer acquirer, ClusterNode[] nodes, long started, AcquireTelemetry telemetry)
    {
        _acquirer = acquirer;
        _context = acquirer.Context;
        _nodes = nodes;
        _started = started;
        _telemetry = telemetry;
    }

    /// <param name="first">The node already tried, or null.</param>
    /// <param name="pending">Its open, when it is still running.</param>
    /// <param name="initialError">Its error, when it already failed.</param>
    /// <param name="cancellationToken">The caller's cancellation.</param>
    public async ValueTask<DbConnection> RunAsync(ClusterNode? first, Attempt? pending, ClusterNodeError? initialError, CancellationToken cancellationToken)
    {
        var now = _context.TimeProvider.GetTimestamp();
        _candidates = _acquirer.Selector.Order(_nodes, now, first, panic: false);
        _firstExcluded = first is not null;
        if (first is null && _candidates.Count == 0)
        {
            // Panic: no node can serve (every one ejected). Trying them all beats failing without trying.
            _panic = true;
            _candidates = _acquirer.Selector.Order(_nodes, now, exclude: null, panic: true);
        }

        if (initialError is not null)
        {
            _errors.Add(initialError);
            _attempts = 1;
        }

        _telemetry.ResumeActivity();
        var registration = cancellationToken.UnsafeRegister(static s => ((AcquireOperation)s!).WakeUp(), this);
        try
        {
            if (pending is not null)
            {
                Track(pending);
            }

            if (_acquirer.Selector.Policy == AcquirePolicy.Race)
            {
                while (TryStartNext(isHedge: false))
                {
                }
            }

            while (true)
            {
                if (_running.Count == 0 && !TryStartNext(isHedge: false))
                {
                    var failure = Failure(_context, _nodes, _errors);
                    ClusterLog.EveryNodeFailed(_context.Logger, _context.Options.Name, failure.Message);
                    _telemetry.Failed(_context, _started, failure, _attempts, _hedges);
                    throw failure;
                }

                if (!_results.Reader.TryRead(out var done))
                {
                    await _results.Reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false);
                    _results.Reader.TryRead(out done);
                }

                if (cancellationToken.IsCancellationRequested)
                {
                    if (done is not null && _running.Remove(done))
                    {
                        done.DisposeConnectionInBackground();
                    }

                    var cancelled = Cancelled(cancellationToken);
                    foreach (var attempt in _running)
                    {
                        attempt.CancelForCaller();
                    }

                    _telemetry.Failed(_context, _started, cancelled, _attempts, _hedges);
                    throw cancelled;
                }

                if (done is null)
                {
                    OnHedgeTimer();
                    continue;
                }

                if (!_running.Remove(done))
                {
                    // Already given up at its connect timeout; it reported again when the provider returned.
                    continue;
                }

                if (!done.IsCompleted)
                {
                    // The connect timeout fired and the provider has not returned: move on without waiting for it.
                    _errors.Add(new ClusterNodeError(done.Node.Name, done.Error ?? done.Node.TimeoutError(inner: null)));
                }
                else if (done.Connection is not null)
                {
                    if (!done.Node.IsRemoved)
                    {
                        done.Node.RecordWin();
                        _telemetry.Succeeded(_context, _started, done.Node, _attempts, _hedges);
                        return done.TakeConnection();
                    }

                    done.DisposeConnectionInBackground();
                    _errors.Add(new ClusterNodeError(done.Node.Name, Attempt.RemovedWhileOpening()));
                }
                else
                {
                    _errors.Add(new ClusterNodeError(done.Node.Name, done.Error!));
                }

                // A failure is not slowness: the next node starts at once, and costs no hedge budget.
                TryStartNext(isHedge: false);
            }
        }
        finally
        {
            registration.Dispose();
            Finish();
        }
    }

    private void Track(Attempt attempt)
    {
        _attempts++;
        _running.Add(attempt);
        _ = attempt.RunAsync(_results.Writer);
        ArmHedgeTimer(attempt);
    }

    private bool TryStartNext(bool isHedge)
    {
        var now = _context.TimeProvider.GetTimestamp();
        while (_nextCandidate < _candidates.Count)
        {
            var node = _candidates[_nextCandidate++];
            if (node.TryClaim(now, _panic))
            {
                Track(Attempt.Begin(node, _context, isHedge));
                return true;
            }
        }

        return false;
    }

    private void ArmHedgeTimer(Attempt attempt)
    {
        if (_hedgingStopped || _acquirer.Selector.Policy == AcquirePolicy.Race || _nextCandidate >= _candidates.Count ||
            !_acquirer.Selector.MayHedgeTo(_nextCandidate, _firstExcluded))
        {
            return;
        }

        // The timer follows the newest attempt: each hedge waits for the delay of the node it would relieve.
        _hedgeTarget = attempt;
        Volatile.Write(ref _hedgeDue, 0);
        var delay = attempt.Node.HedgeDelay;
        if (_hedgeTimer is null)
        {
            _hedgeTimer = _context.TimeProvider.CreateTimer(static s => ((AcquireOperation)s!).OnTimerFired(), this, delay, Timeout.InfiniteTimeSpan);
        }
        else
        {
            _hedgeTimer.Change(delay, Timeout.InfiniteTimeSpan);
        }
    }

    private void OnTimerFired()
    {
        Volatile.Write(ref _hedgeDue, 1);
        WakeUp();
    }

    private void WakeUp() => _results.Writer.TryWrite(null);

    private void OnHedgeTimer()
    {
        if (Interlocked.Exchange(ref _hedgeDue, 0) == 0)
        {
            return;
        }

        var slow = _hedgeTarget;
        if (slow is null || slow.IsCompleted || slow.TimedOut || !_running.Contains(slow))
        {
            return;
        }

        if (!_context.HedgeBudget.TryWithdraw())
        {
            // Slow everywhere, or hedging too often: wait for what runs rather than add logins.
            _hedgingStopped = true;
            return;
        }

        slow.MarkStalled(_context.TimeProvider.GetTimestamp());
        if (TryStartNext(isHedge: true))
        {
            _hedges++;
        }
    }

    /// <summary>
    /// The caller's cancellation, as the .NET convention wants it (an <see cref="OperationCanceledException"/> with the
    /// caller's token), saying which nodes were still opening and for how long, with the errors so far as its inner
    /// exception.
    /// </summary>
    private OperationCanceledException Cancelled(CancellationToken cancellationToken)
    {
        var now = _context.TimeProvider.GetTimestamp();
        var message = new System.Text.StringBuilder("The caller cancelled the acquire after ")
            .Append((_context.ToSeconds(_started, now) * 1000).ToString("0", System.Globalization.CultureInfo.InvariantCulture)).Append(" ms");
        if (_running.Count == 0)
        {
            message.Append(", with no open in progress");
        }
        else
        {
            message.Append(", while opening on ");
            for (var i = 0; i < _running.Count; i++)
            {
                var attempt = _running[i];
                message.Append(i == 0 ? string.Empty : ", ").Append(attempt.Node.Name).Append(" (for ")
                    .Append((_context.ToSeconds(attempt.Start, now) * 1000).ToString("0", System.Globalization.CultureInfo.InvariantCulture)).Append(" ms)");
            }
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
        var inner = _errors.Count > 0 ? ClusterException.Create(_errors, _nodes.Length) : null;
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

    private void Finish()
    {
        _hedgeTimer?.Dispose();

        // From here on an attempt that finishes finds the channel closed and disposes its own connection; what
        // arrived before is disposed here.
        _results.Writer.TryComplete();
        while (_results.Reader.TryRead(out var late))
        {
            late?.DisposeConnectionInBackground();
        }
    }
}

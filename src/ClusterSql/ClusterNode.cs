using System;
using System.Data;
using System.Data.Common;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.Core;
using ClusterSql.Telemetry;

namespace ClusterSql;

/// <summary>
/// One node of a <see cref="ClusterDataSource"/>: its name, its provider's data source, its health and live
/// statistics. Reading the statistics is cheap and safe at any time, from any thread.
/// </summary>
public sealed class ClusterNode
{
    private readonly ClusterContext _context;

    // Opens started, and finished (_completed, and _fastWins for the acquire fast path's): the difference is the opens
    // pending. One interlocked operation at each end of an attempt rather than a pending count's two on top of the opens'.
    private long _opens;
    private long _completed;

    // Successes and wins of the slow path and of OpenConnectionAsync. A success on the acquire's fast path is always a
    // win, and its open completed: it counts once, in _fastWins, which Successes, Wins and the completed opens include
    // (one interlocked operation instead of three).
    private long _successes;
    private long _wins;
    private long _fastWins;
    private long _failures;
    private long _hedges;
    private long _cancellations;
    private long _ejections;
    private int _consecutiveFailures;
    private int _ejectionStreak;
    private long _ejectedUntil;

    // The half-open node's one trial: 0 when free, else the clock reading when an attempt claimed it (made unique: see
    // TryClaim). The attempt holds the reading and frees only its own claim, so an old trial that ends late never frees
    // a newer one.
    private long _trialClaimedAt;
    private long _lastTrialClaim;
    private long _lastSuccessStamp;
    private long _lastAttemptStamp;
    private int _stalled;
    private long _stalledSince;
    private long _lastErrorStamp;
    private ErrorInfo? _lastError;
    private volatile DownState? _down;
    private volatile bool _removed;
    private volatile bool _clusterDisposed;
    private int _leased;
    private long _poolWaits;
    private int _blocksOnOpen;
    private int _released;
    private volatile RoleReport? _report;
    private volatile string? _drainReason;
    private readonly Func<DbDataSource, CancellationToken, ValueTask<DbDataSource?>>? _clearIdle;
    private readonly Lock _dataSourceLock = new();
    private DbDataSource _dataSource;
    private int _clearing;
    private volatile int _readerTier;

    internal ClusterNode(string name, DbDataSource dataSource, ClusterNodeOptions? options, int declaredIndex, ClusterContext context)
    {
        Name = name;
        _dataSource = dataSource;
        DeclaredIndex = declaredIndex;
        Priority = options?.Priority ?? 0;
        ConnectTimeout = options?.ConnectTimeout ?? context.Options.ConnectTimeout;
        MaxConnections = options?.MaxConnections ?? PoolLimit.Detect(dataSource);
        _clearIdle = options?.ClearIdleConnections;
        IsDiscovered = options?.Discovered ?? false;
        if (options?.AwaitingFirstCheck is { } waiting)
        {
            // Set before the node is published: it cannot serve for a moment before its first check.
            _down = new DownState(waiting, Unreachable: false, FirstCheckPending: true);
        }

        _context = context;
        Latency = new LatencyEstimator(context.Options.LatencyDecayTime, context.TimeProvider);
        _onLeaseStateChange = OnLeaseStateChange;
    }

    private readonly StateChangeEventHandler _onLeaseStateChange;

    /// <summary>The node's name, unique within its cluster; used in errors, statistics and telemetry instead of its connection string.</summary>
    public string Name { get; }

    /// <summary>The provider's data source that opens this node's connections.</summary>
    /// <remarks>It may be replaced by a fresh one for the same node when the node's idle sessions are dropped (see <see cref="ClusterNodeOptions.ClearIdleConnections"/>).</remarks>
    public DbDataSource DataSource => Volatile.Read(ref _dataSource);

    /// <summary>How long one open on this node may take before it counts as failed.</summary>
    public TimeSpan ConnectTimeout { get; }

    /// <summary>Whether discovery added the node (<see cref="ClusterNodeOptions.Discovered"/>), as opposed to the application.</summary>
    public bool IsDiscovered { get; }

    /// <summary>The node's current state.</summary>
    public ClusterNodeState State => GetState(_context.TimeProvider.GetTimestamp());

    internal int DeclaredIndex { get; }

    internal int Priority { get; }

    internal LatencyEstimator Latency { get; }

    internal bool IsRemoved => _removed;

    internal string? DownReason => _down?.Reason;

    internal int Pending
    {
        get
        {
            // Finished first: an attempt counted as finished here was counted as started too, so this is never below
            // the number of opens in progress when the second read is made (TryRelease relies on that).
            var completed = Volatile.Read(ref _completed) + Volatile.Read(ref _fastWins);
            return (int)(Volatile.Read(ref _opens) - completed);
        }
    }

    /// <summary>The most connections the node's provider pool lends at once, when known (<see cref="ClusterNodeOptions.MaxConnections"/>).</summary>
    internal int? MaxConnections { get; }

    /// <summary>Whether this client holds no connection of the node and has no open in progress there.</summary>
    internal bool IsIdle => Volatile.Read(ref _leased) == 0 && Pending == 0;

    /// <summary>
    /// Whether every connection the node's pool can lend is handed out or being opened: another open would wait for the
    /// application to return one, which says nothing about the node's health.
    /// </summary>
    internal bool IsAtCapacity => MaxConnections is int max && Volatile.Read(ref _leased) + Pending >= max;

    /// <summary>A snapshot of the node's counters and estimates.</summary>
    /// <returns>The snapshot; it does not change afterwards.</returns>
    public ClusterNodeStatistics GetStatistics()
    {
        var timeProvider = _context.TimeProvider;
        var now = timeProvider.GetTimestamp();
        var utcNow = timeProvider.GetUtcNow();
        var lastError = Volatile.Read(ref _lastError);
        var ejectedUntil = Volatile.Read(ref _ejectedUntil);
        var fastWins = Interlocked.Read(ref _fastWins);
        var pending = Pending;
        return new ClusterNodeStatistics(
            Name,
            GetState(now),
            Interlocked.Read(ref _opens),
            Interlocked.Read(ref _successes) + fastWins,
            Interlocked.Read(ref _wins) + fastWins,
            Interlocked.Read(ref _failures),
            Interlocked.Read(ref _hedges),
            Interlocked.Read(ref _cancellations),
            Interlocked.Read(ref _ejections),
            pending,
            Volatile.Read(ref _leased),
            Interlocked.Read(ref _poolWaits),
            Volatile.Read(ref _consecutiveFailures),
            lastError?.TypeName,
            lastError?.Message,
            ToUtc(Volatile.Read(ref _lastErrorStamp), now, utcNow),
            ToUtc(Volatile.Read(ref _lastSuccessStamp), now, utcNow),
            ejectedUntil == 0 ? null : utcNow + TimeSpan.FromSeconds(_context.ToSeconds(now, ejectedUntil)),
            TimeSpan.FromSeconds(Latency.DecayedPeak(now)),
            TimeSpan.FromSeconds(Latency.Smoothed),
            HedgeDelay,
            _down?.Reason)
        {
            WriterRank = _report?.WriterRank,
            Uptime = _report is { StartedStamp: not 0 } report ? TimeSpan.FromSeconds(_context.ToSeconds(report.StartedStamp, now)) : null,
            ReplicationLag = _report?.Lag,
            ReadOnly = _report?.ReadOnly ?? false,
            Discovered = IsDiscovered,
            DrainReason = _drainReason,
        };
    }

    /// <summary>
    /// Opens a connection on this node alone, bypassing selection and health (for administration and checks).
    /// The open counts in the node's statistics and is bounded by <see cref="ConnectTimeout"/>.
    /// </summary>
    /// <param name="cancellationToken">Cancels the open.</param>
    /// <returns>The provider's open connection; the caller disposes it.</returns>
    /// <exception cref="ObjectDisposedException">The node was removed from its cluster.</exception>
    /// <exception cref="TimeoutException">The open took longer than <see cref="ConnectTimeout"/>.</exception>
    public async ValueTask<DbConnection> OpenConnectionAsync(CancellationToken cancellationToken = default)
    {
        if (_removed)
        {
            throw new ObjectDisposedException(nameof(ClusterNode), $"Node '{Name}' was removed from its cluster.");
        }

        cancellationToken.ThrowIfCancellationRequested();
        var poolWait = IsAtCapacity;
        var start = BeginAttempt(isHedge: false);
        var timeout = _context.Cancellations.Rent(ConnectTimeout);
        using var link = cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), timeout);
        DbConnection? connection = null;
        Exception? error = null;
        var synchronous = false;
        try
        {
            var open = StartProviderOpen(timeout.Token);
            synchronous = open.IsCompleted;
            connection = synchronous ? open.Result : await WaitOrAbandonAsync(open.AsTask(), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            error = ex;
        }

        link.Dispose();
        var callerCancelled = cancellationToken.IsCancellationRequested;
        // Not a claim: a direct open of one node never holds a half-open node's trial.
        error = CompleteAttempt(start, ref connection, error, timeout, callerCancelled, poolWait, synchronous, trial: 0);

        // Disposed, never pooled: its timer runs on the TimeProvider's timers, whose fire may be in flight however
        // TryReset answers, and a pooled source that fired later would cancel some other acquire's open.
        timeout.Dispose();
        if (connection is not null && _removed)
        {
            _ = Attempt.DisposeQuietlyAsync(connection);
            throw new ObjectDisposedException(nameof(ClusterNode), $"Node '{Name}' was removed from its cluster while it was opening.");
        }

        if (error is not null)
        {
            if (callerCancelled)
            {
                throw new OperationCanceledException(cancellationToken);
            }

            // Opening on one named node, the provider's own exception is the clearest answer.
            ExceptionDispatchInfo.Throw(error);
        }

        return connection!;
    }

    /// <summary>
    /// Waits for an open until the token fires, even when the provider does not stop at its token; an open left behind
    /// is disposed when it completes.
    /// </summary>
    private static async Task<DbConnection> WaitOrAbandonAsync(Task<DbConnection> open, CancellationToken cancellationToken)
    {
        try
        {
            return await open.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!open.IsCompleted)
        {
            _ = open.ContinueWith(
                static t =>
                {
                    if (t.IsCompletedSuccessfully)
                    {
                        _ = Attempt.DisposeQuietlyAsync(t.Result);
                    }
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
            throw;
        }
    }

    /// <summary>Opens a connection on this node alone; the synchronous form of <see cref="OpenConnectionAsync(CancellationToken)"/>.</summary>
    /// <returns>The provider's open connection; the caller disposes it.</returns>
    /// <exception cref="ObjectDisposedException">The node was removed from its cluster.</exception>
    /// <exception cref="TimeoutException">The open took longer than <see cref="ConnectTimeout"/>.</exception>
    public DbConnection OpenConnection()
    {
        if (Acquirer.MustNotWaitForAsyncWork)
        {
            return OpenSynchronously();
        }

        var open = OpenConnectionAsync();
        return open.IsCompletedSuccessfully ? open.Result : open.AsTask().GetAwaiter().GetResult();
    }

    /// <summary>The provider's synchronous open on the caller's thread (see <see cref="Acquirer.MustNotWaitForAsyncWork"/>).</summary>
    private DbConnection OpenSynchronously()
    {
        if (_removed)
        {
            throw new ObjectDisposedException(nameof(ClusterNode), $"Node '{Name}' was removed from its cluster.");
        }

        var poolWait = IsAtCapacity;
        var start = BeginAttempt(isHedge: false);
        DbConnection? connection = null;
        Exception? error = null;
        try
        {
            connection = DataSource.OpenConnection();
        }
        catch (Exception ex)
        {
            error = ex;
        }

        error = CompleteAttempt(start, ref connection, error, Acquirer.NoTimeout, callerCancelled: false, poolWait, synchronous: false, trial: 0);
        if (error is not null)
        {
            ExceptionDispatchInfo.Throw(error);
        }

        return connection!;
    }

    /// <summary>How long this node's oldest open in progress has been running, in seconds; 0 when none is.</summary>
    internal double StallAge(long now) => Volatile.Read(ref _stalled) > 0 ? _context.ToSeconds(Volatile.Read(ref _stalledSince), now) : 0;

    /// <summary>Marks the node down: it is never handed out until <see cref="MarkUp"/>. Health probes call this.</summary>
    /// <param name="reason">Why, for statistics and logs; never put a secret in it.</param>
    public void MarkDown(string reason)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        var previous = _down;
        _down = new DownState(reason, Unreachable: false);
        NoteDown(previous);
    }

    /// <summary>
    /// Takes the node out of service for a planned departure (maintenance, a rolling restart): acquires stop using it at
    /// once, connections already handed out finish normally, and its idle pooled sessions are dropped now and again when
    /// the last handed-out connection comes back, so that no later acquire gets a session to a server that is going
    /// away. The health probe does the same by itself when the server says it is leaving (Galera: desynced, donor,
    /// rejecting queries, shutting down).
    /// </summary>
    /// <param name="reason">Why, for statistics and logs; never put a secret in it.</param>
    public void Drain(string reason = "drained by the application")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        var previous = _drainReason;
        _drainReason = reason;
        if (previous is null)
        {
            _context.RolesChanged();
            ClearIdleInBackground();
        }
    }

    /// <summary>Puts a drained node back into service.</summary>
    public void Undrain()
    {
        if (_drainReason is not null)
        {
            _drainReason = null;
            _context.RolesChanged();
        }
    }

    /// <summary>Why the node is drained, or <see langword="null"/>.</summary>
    internal string? DrainReason => _drainReason;

    /// <summary>
    /// Drains the node only when nothing drains it yet (atomically): discovery must never overwrite the application's
    /// reason, whatever the node's state (a drained node that is also down reports Down).
    /// </summary>
    /// <returns>Whether this call drained the node; then <paramref name="reason"/>, this very string, is its drain reason.</returns>
    internal bool TryDrain(string reason)
    {
        if (Interlocked.CompareExchange(ref _drainReason, reason, null) is not null)
        {
            return false;
        }

        _context.RolesChanged();
        ClearIdleInBackground();
        return true;
    }

    /// <summary>Undrains the node only while <paramref name="reason"/> (this very string) is still its drain reason.</summary>
    internal bool UndrainIf(string reason)
    {
        if (!ReferenceEquals(Interlocked.CompareExchange(ref _drainReason, null, reason), reason))
        {
            return false;
        }

        _context.RolesChanged();
        return true;
    }

    /// <summary>
    /// Drops the node's idle pooled sessions off the caller's thread (a probe's, or a provider's Close): once at a time,
    /// and never failing anything but itself.
    /// </summary>
    private void ClearIdleInBackground()
    {
        if (_clearIdle is null || _removed || Interlocked.Exchange(ref _clearing, 1) != 0)
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            try
            {
                var current = DataSource;
                var replacement = await _clearIdle(current, CancellationToken.None).ConfigureAwait(false);
                if (replacement is not null && !ReferenceEquals(replacement, current))
                {
                    DbDataSource retired;
                    lock (_dataSourceLock)
                    {
                        // A node released meanwhile (removed, or its cluster disposed) keeps the data source it disposes.
                        retired = IsReleased || !ReferenceEquals(_dataSource, current) ? replacement : current;
                        if (ReferenceEquals(retired, current))
                        {
                            Volatile.Write(ref _dataSource, replacement);
                        }
                    }

                    await retired.DisposeAsync().ConfigureAwait(false);
                }

                ClusterLog.IdleCleared(_context.Logger, _context.Options.Name, Name, _drainReason ?? _down?.Reason ?? "down");
            }
            catch (Exception ex)
            {
                ClusterLog.IdleClearFailed(_context.Logger, _context.Options.Name, Name, ex.GetType().Name, ex.Message);
            }
            finally
            {
                Volatile.Write(ref _clearing, 0);
            }
        });
    }

    /// <summary>Clears a <see cref="MarkDown(string)"/>.</summary>
    public void MarkUp()
    {
        if (_down is not null)
        {
            _down = null;
            _context.RolesChanged();
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({State})";

    internal TimeSpan HedgeDelay => Latency.HedgeDelay(_context.Options.MinHedgeDelay, _context.Options.MaxHedgeDelay);

    /// <summary>
    /// The load balancer's cost: the peak-EWMA latency, or the age of an open hedged away and still pending if that is
    /// longer, × (pending opens + 1). Keep <see cref="CostBounds"/> in step: selection trusts them to bracket this.
    /// </summary>
    internal double Cost(long now) => WithLoad(Latency.DecayedPeak(now), StallAge(now), Pending + 1);

    /// <summary>
    /// Bounds of <see cref="Cost"/> without its decay (<see cref="LatencyEstimator.PeakBounds"/>): the same expression
    /// over the decayed peak's bounds, which it is monotone in, with one reading of the stall and the load for both.
    /// </summary>
    internal (double Lower, double Upper) CostBounds(long now)
    {
        var (lower, upper) = Latency.PeakBounds(now);
        var stall = StallAge(now);
        var load = Pending + 1;
        return (WithLoad(lower, stall, load), WithLoad(upper, stall, load));
    }

    private static double WithLoad(double latency, double stallAge, int load) => Math.Max(latency, stallAge) * load;

    /// <summary>Not removed, down or drained: the node takes part in the roles' order, whatever this client's ejection says.</summary>
    internal bool IsInService => !_removed && _down is null && _drainReason is null;

    /// <summary>Whether selection may pick this node now (not removed, down or ejected; a half-open node whose trial is free).</summary>
    internal bool CanServe(long now)
    {
        if (_removed || _down is not null || _drainReason is not null)
        {
            return false;
        }

        var ejectedUntil = Volatile.Read(ref _ejectedUntil);
        return ejectedUntil == 0 || (now >= ejectedUntil && TrialIsFree(Volatile.Read(ref _trialClaimedAt), now));
    }

    /// <summary>
    /// Whether the trial claimed at <paramref name="claimedAt"/> (0: none) no longer keeps others off. A claim is held
    /// for twice the connect timeout at most. The asynchronous acquire gives its attempt up at the connect timeout and
    /// frees the trial then; what is still held at twice that is a claim lost on the way (a listener that threw between
    /// the claim and the open), which must not keep the node out of rotation for ever, or an open that ClusterSql does
    /// not time (a synchronous acquire's, bounded only by its provider's own connect timeout, 15 s for MySqlConnector).
    /// Such an open then gets a second trial beside it; whichever ends first decides (its failure ejects the node again,
    /// its success recovers it), and the other's end frees nothing.
    /// </summary>
    private bool TrialIsFree(long claimedAt, long now) =>
        claimedAt == 0 || now >= _context.AddToTimestamp(claimedAt, ConnectTimeout * 2);

    /// <summary>
    /// Whether a panic acquire (no node can serve) may try this node: anything not removed, and not down by a verdict.
    /// A node down only because its health check could not reach it is tried: when every node is so, the likelier cause
    /// is the client (a GC pause, a starved thread pool), and trying beats an outage of the whole cluster.
    /// </summary>
    internal bool CanServeInPanic => !_removed && _drainReason is null && _down is not { Unreachable: false };

    /// <summary>Claims the node for an attempt; for a half-open node only one caller wins the trial.</summary>
    /// <param name="now">The caller's clock reading.</param>
    /// <param name="panic">Whether every node is out (ejected ones are tried too, with no trial).</param>
    /// <param name="trial">
    /// The claim of the half-open node's one trial that this call took (0: none), for the attempt to hand back to
    /// <see cref="CompleteAttempt(long, long, ref DbConnection?, Exception?, CancellationTokenSource, bool, bool, bool, long)"/>:
    /// only the trial's own end frees it, never the failure or cancellation of another attempt (one started before the
    /// ejection, a direct open of the node, an earlier trial that outlived a recovery and a new ejection), so that a
    /// half-open node has one trial in flight until <see cref="TrialIsFree"/> lets a claim be taken over. Any success
    /// recovers the node, and with it frees the trial.
    /// </param>
    internal bool TryClaim(long now, bool panic, out long trial)
    {
        trial = 0;
        if (panic)
        {
            return CanServeInPanic;
        }

        if (_removed || _down is not null || _drainReason is not null)
        {
            return false;
        }

        while (true)
        {
            var ejectedUntil = Volatile.Read(ref _ejectedUntil);
            if (ejectedUntil == 0)
            {
                // Serving (or recovered by a success while this caller looked again): no trial to claim.
                return true;
            }

            var held = Volatile.Read(ref _trialClaimedAt);
            if (now < ejectedUntil || !TrialIsFree(held, now))
            {
                return false;
            }

            var claim = ReserveTrialClaim(now);
            if (Interlocked.CompareExchange(ref _trialClaimedAt, claim, held) == held)
            {
                trial = claim;
                return true;
            }

            // Another caller claimed it, or its holder freed it between the read and here: look again.
        }
    }

    /// <summary>
    /// A claim value no other claim of this node has had, never 0 (free), and the clock reading itself unless claims
    /// came faster than the clock moves: two claims with one value (a stale reading, a clock that starts at 0) would
    /// let the older one's end free the newer. Reserved before it is used, so that two callers never hold one value.
    /// </summary>
    private long ReserveTrialClaim(long now)
    {
        while (true)
        {
            var last = Volatile.Read(ref _lastTrialClaim);
            var claim = Math.Max(now, last + 1);
            if (Interlocked.CompareExchange(ref _lastTrialClaim, claim, last) == last)
            {
                return claim;
            }
        }
    }

    internal long BeginAttempt(bool isHedge) => BeginAttempt(isHedge, _context.TimeProvider.GetTimestamp());

    /// <summary>Counts an attempt starting at <paramref name="now"/> (the caller's clock reading, to save one).</summary>
    internal long BeginAttempt(bool isHedge, long now)
    {
        // Pending from here (the opens not yet completed) until CompleteAttempt.
        Interlocked.Increment(ref _opens);
        if (isHedge)
        {
            Interlocked.Increment(ref _hedges);
            if (ClusterTelemetry.Hedges.Enabled)
            {
                ClusterTelemetry.Count(ClusterTelemetry.Hedges, Tags);
            }
        }

        Volatile.Write(ref _lastAttemptStamp, now);
        return now;
    }

    /// <summary>
    /// Claims one exploratory acquire for a node that nobody tried for <paramref name="intervalTicks"/>, and for at least
    /// <paramref name="minOpens"/> of the data source's opens since its last exploration: a node that was slow keeps a
    /// high estimate until it is sampled again, so without an occasional try it would never be seen to recover. The
    /// interval alone made exploration a share of a client's acquires that grows as its rate falls (one in five at five
    /// acquires a second), and a fleet of small clients sent a fifth of its load to a slow node (docs/benchmarks-fleet.md);
    /// the count bounds that share whatever the rate. Only one caller per interval wins the claim. A node that is warming
    /// up (<see cref="WantsEarlyExploration"/>) is due after the count alone.
    /// </summary>
    /// <param name="now">The acquire's clock reading.</param>
    /// <param name="intervalTicks">The least time between two explorations of a node.</param>
    /// <param name="nodes">The data source's node snapshot, whose opens are counted (only once the node is otherwise due).</param>
    /// <param name="minOpens">The least number of the data source's opens between two explorations of a node.</param>
    /// <param name="partner">The node selection would pick instead: the one this node's estimate is compared with.</param>
    /// <param name="payFrom">
    /// The hedge budget that pays for the open started beside an exploration of a node believed slower than
    /// <paramref name="partner"/> (<see cref="Acquirer.SlowerFactor"/>); null when explorations are free (hedging off,
    /// or a synchronous acquire, which cannot hedge). Not taken from a node overdue by <see cref="ExplorationOverdue"/>
    /// intervals, which is explored unpaid.
    /// </param>
    /// <param name="paid">Whether a hedge token was withdrawn for this exploration: the acquire holds it.</param>
    internal bool TryClaimExploration(long now, long intervalTicks, ClusterNode[] nodes, long minOpens, ClusterNode partner, HedgeBudget? payFrom, out bool paid)
    {
        paid = false;
        var last = Volatile.Read(ref _lastAttemptStamp);
        if (now - last < intervalTicks && !WantsEarlyExploration)
        {
            return false;
        }

        long opens = 0;
        foreach (var node in nodes)
        {
            opens += Volatile.Read(ref node._opens);
        }

        if (opens - Volatile.Read(ref _opensAtExploration) < minOpens)
        {
            return false;
        }

        if (Interlocked.CompareExchange(ref _lastAttemptStamp, now, last) != last)
        {
            return false;
        }

        // At once after the claim: a racing caller that reads the new stamp must not pass the count check too (for a
        // node warming up, the count is all that bounds its explorations).
        var opensBefore = Interlocked.Exchange(ref _opensAtExploration, opens);

        // A node believed slower is explored only with its caller's way out paid: the best candidate starts beside it
        // (Acquirer.HedgeDelayFor; after that candidate's delay while the node's latency is unproven), and that open is
        // a hedge. Paid when claimed, not when the hedge starts: a client with no token left would otherwise make its
        // caller wait for the whole slow open (a paced p99 of 255 ms on the real cluster with one node slowed by 50 ms
        // per packet), and a free open instead spent past the budget fleet-wide (benchmarks/discussion.md). Without a
        // token the exploration waits for a later acquire that has one; but not past ExplorationOverdue intervals, after
        // which it goes unpaid (its caller bounded by the hedge rescue): a client whose hedges keep its bucket empty is
        // the one that most needs to see a recovered node. Claimed first and paid second, so that two racing claimers do
        // not both take a token that a hedge elsewhere may be waiting for.
        if (payFrom is not null && now - last < ExplorationOverdue * intervalTicks && HedgeDelay.Ticks > Acquirer.SlowerFactor * partner.HedgeDelay.Ticks)
        {
            if (!payFrom.TryWithdraw())
            {
                // Due again for the next acquire (unless an attempt or another claim meanwhile made it not due).
                if (Interlocked.CompareExchange(ref _lastAttemptStamp, last, now) == now)
                {
                    Interlocked.CompareExchange(ref _opensAtExploration, opensBefore, opens);
                }

                return false;
            }

            paid = true;
        }

        return true;
    }

    /// <summary>
    /// Whether the node is due for exploration after the count of opens alone (not the interval): it has between one and
    /// WarmUpSamples - 1 successes, none in progress and no failure since. Its estimate may be one cold open (the first
    /// login to it, where later opens are pooled), and a busy client would otherwise send nearly everything to the first
    /// node whose pooled opens it saw, for a whole interval. Not a node with an open pending or failing: a node that hangs
    /// after its first success would otherwise be explored every few opens until its first timeout.
    /// </summary>
    private bool WantsEarlyExploration =>
        Latency.HasFewWarmUpSamples && Pending == 0 && Volatile.Read(ref _consecutiveFailures) == 0;

    /// <summary>
    /// Whether the node's latency is known from fewer than <see cref="LatencyEstimator.WarmUpSamples"/> successful opens
    /// (none, or one that may have been cold) and nothing since says it fails: too little to believe it slower than
    /// another node (its hedge delay is the cap with no sample, and three times its one sample with one). An exploration
    /// of such a node is not hedged at once (<see cref="Acquirer.HedgeDelayFor"/>).
    /// </summary>
    internal bool HasUnprovenLatency => !Latency.IsWarm && Volatile.Read(ref _consecutiveFailures) == 0;

    /// <summary>Exploration intervals after which a node believed slower is explored without a hedge token.</summary>
    internal const int ExplorationOverdue = 5;

    private long _opensAtExploration;

    /// <summary>
    /// Records how an attempt ended and returns the error to report (a timeout made explicit), or null on success.
    /// A caller's cancellation is not held against the node.
    /// </summary>
    /// <param name="start">When the attempt started.</param>
    /// <param name="connection">The provider's connection, or null; set to null when it is disposed here.</param>
    /// <param name="error">The provider's error, or null.</param>
    /// <param name="timeout">The attempt's connect-timeout source.</param>
    /// <param name="callerCancelled">Whether the caller's cancellation stopped the attempt.</param>
    /// <param name="poolWait">
    /// Whether the node's pool was lent out in full when the attempt started: its wait was for the application to
    /// return a connection, so a timeout or failure then is the application's capacity and not held against the node.
    /// </param>
    /// <param name="synchronous">Whether the provider returned the open already completed.</param>
    /// <param name="trial">The attempt's claim of the half-open node's trial, 0 for none (<see cref="TryClaim"/>).</param>
    internal Exception? CompleteAttempt(long start, ref DbConnection? connection, Exception? error, CancellationTokenSource timeout, bool callerCancelled, bool poolWait, bool synchronous, long trial) =>
        CompleteAttempt(start, _context.TimeProvider.GetTimestamp(), ref connection, error, timeout, callerCancelled, poolWait, synchronous, trial);

    /// <summary>As <see cref="CompleteAttempt(long, ref DbConnection?, Exception?, CancellationTokenSource, bool, bool, bool, long)"/>, with the clock reading the caller took when the open returned (and uses again).</summary>
    /// <param name="start">When the attempt started.</param>
    /// <param name="now">When the open returned.</param>
    /// <param name="connection">The provider's connection, or null; set to null when it is not the caller's to use.</param>
    /// <param name="error">The provider's error, or null.</param>
    /// <param name="timeout">The attempt's connect-timeout source.</param>
    /// <param name="callerCancelled">Whether the caller cancelled the attempt.</param>
    /// <param name="poolWait">Whether the open may have waited for the node's pool to lend a connection.</param>
    /// <param name="synchronous">Whether the provider returned the open already completed.</param>
    /// <param name="trial">The attempt's claim of the half-open node's trial, 0 for none (<see cref="TryClaim"/>).</param>
    internal Exception? CompleteAttempt(long start, long now, ref DbConnection? connection, Exception? error, CancellationTokenSource timeout, bool callerCancelled, bool poolWait, bool synchronous, long trial)
    {
        if (connection is not null)
        {
            // Every connection the node opened is counted until it closes, a loser's too (until it is back in the pool),
            // and before the attempt stops counting as pending, so a removed node is never released in between.
            TrackLease(connection);
        }

        Interlocked.Increment(ref _completed);
        var timedOut = !callerCancelled && timeout.IsCancellationRequested;
        if (ClusterTelemetry.CreateTime.Enabled)
        {
            var tags = Tags;
            tags.Add(ClusterTelemetry.OutcomeTag, timedOut ? "timeout" : connection is not null ? "success" : callerCancelled ? "cancelled" : poolWait ? "pool_wait" : "failure");
            ClusterTelemetry.Record(ClusterTelemetry.CreateTime, _context.ToSeconds(start, now), tags);
        }

        if (synchronous && connection is not null)
        {
            NoteSynchronousOpen(_context.ToSeconds(start, now));
        }

        if (timedOut)
        {
            if (ClusterTelemetry.Timeouts.Enabled)
            {
                ClusterTelemetry.Count(ClusterTelemetry.Timeouts, Tags);
            }

            // Past the connect timeout the acquire has moved on: a connection that arrives now is a loser, and the
            // node's slowness counts against it even if the provider ignored its token and got through.
            if (connection is not null)
            {
                _ = Attempt.DisposeQuietlyAsync(connection);
                connection = null;
            }

            error = poolWait ? PoolWaitError(error) : TimeoutError(error);
        }

        if (connection is not null)
        {
            Interlocked.Increment(ref _successes);
            RecordSuccess(_context.ToSeconds(start, now), now);

            // A connection that closed at once (it broke on the way) may already be uncounted.
            TryRelease();
            return null;
        }

        if (callerCancelled)
        {
            // The trial freed before the count that says so is visible.
            _ = FreeTrial(trial);
            Interlocked.Increment(ref _cancellations);
            TryRelease();
            return error;
        }

        error ??= new InvalidOperationException($"Node '{Name}' returned no connection.");
        if (poolWait && (timedOut || error is TimeoutException or OperationCanceledException || IsPoolTimeout(error)))
        {
            // Not the node's failure: no ejection, no latency penalty; the caller learns that the pool was full.
            Interlocked.Increment(ref _poolWaits);
            _ = FreeTrial(trial);
            TryRelease();
            return error is TimeoutException ? error : PoolWaitError(error);
        }

        RecordFailure(error, start, now, trial);
        TryRelease();
        return error;
    }

    /// <summary>Frees the half-open node's trial if <paramref name="trial"/> is still its claim; whether it was.</summary>
    private bool FreeTrial(long trial) =>
        trial != 0 && Interlocked.CompareExchange(ref _trialClaimedAt, 0, trial) == trial;

    /// <summary>
    /// The acquire's fast path: the provider's open completed synchronously with <paramref name="connection"/> (a pooled
    /// idle connection, typically), which wins the acquire unless the node was removed meanwhile. The bookkeeping of
    /// <see cref="CompleteAttempt(long, long, ref DbConnection?, Exception?, CancellationTokenSource, bool, bool, bool, long)"/> for a synchronous success (its connect-timeout source was never armed, so it cannot
    /// have timed out), with the win counted in the same interlocked operation as the success.
    /// </summary>
    /// <param name="start">When the attempt started (the acquire's one precise clock reading).</param>
    /// <param name="coarseStart"><see cref="Environment.TickCount64"/> before the provider's open, when <see cref="ClusterContext.CoarseSyncTiming"/>.</param>
    /// <param name="connection">The provider's connection.</param>
    /// <returns>Whether the connection wins; false when the node was removed (the caller disposes it).</returns>
    internal bool CompleteFastWin(long start, long coarseStart, DbConnection connection)
    {
        // Leased before it stops being pending (see CompleteAttempt). A node removed meanwhile gets no win: its open
        // counts as completed and successful only.
        TrackLease(connection);
        var won = !_removed;
        var completed = won ? Interlocked.Increment(ref _fastWins) : Interlocked.Increment(ref _completed);
        long now;
        double seconds;
        if (MayHoldSyncDuration(coarseStart, completed))
        {
            now = start;
            seconds = Volatile.Read(ref _heldSyncSeconds);
        }
        else
        {
            now = _context.TimeProvider.GetTimestamp();
            seconds = _context.ToSeconds(start, now);
            if (_context.CoarseSyncTiming)
            {
                Volatile.Write(ref _heldSyncSeconds, seconds);
            }
        }

        if (ClusterTelemetry.CreateTime.Enabled)
        {
            var tags = Tags;
            tags.Add(ClusterTelemetry.OutcomeTag, "success");
            ClusterTelemetry.Record(ClusterTelemetry.CreateTime, seconds, tags);
        }

        NoteSynchronousOpen(seconds);
        RecordSuccess(seconds, now);
        if (!won)
        {
            Interlocked.Increment(ref _successes);
        }
        else if (ClusterTelemetry.Wins.Enabled)
        {
            ClusterTelemetry.Count(ClusterTelemetry.Wins, Tags);
        }

        // A connection that closed at once (it broke on the way) may already be uncounted; a node removed meanwhile.
        TryRelease();
        return won;
    }

    /// <summary>
    /// Whether a synchronous open's duration may be taken as the node's last measured one instead of reading the precise
    /// clock a second time (about 25 ns, a sixth of the fast path, against 6 ns for <see cref="Environment.TickCount64"/>).
    /// Only when all of these hold:
    /// <list type="bullet">
    /// <item>the coarse clock did not move during the open (<see cref="ClusterContext.CoarseSyncTiming"/>: the system's
    /// clock, and a MaxHedgeDelay above any coarse tick), so the open took less than one coarse tick, which is below the
    /// MaxHedgeDelay that makes an open count as blocking (NoteSynchronousOpen);</item>
    /// <item>the node's last measured synchronous open took less than <see cref="HoldSyncBelowSeconds"/>: an in-process
    /// hand-out of a pooled idle connection, whose duration says nothing of the server and steers nothing (hedge delays
    /// start at MinHedgeDelay, milliseconds); a provider that blocks in OpenAsync for a real open is measured on every
    /// open, and so is any node once one of its synchronous opens took longer;</item>
    /// <item>this is not one of every <see cref="MeasureSyncEvery"/> completed opens of the node, which are measured
    /// anyway: the held duration follows the node's, and a slowdown shorter than a coarse tick is seen within that many
    /// opens (a longer one moves the coarse clock and is measured at once);</item>
    /// <item>nobody listens to the create-time histogram, which records each open's own duration.</item>
    /// </list>
    /// The open's end is then taken as its start (the sample's and the last success's timestamp, off by less than the
    /// held duration).
    /// </summary>
    private bool MayHoldSyncDuration(long coarseStart, long completed) =>
        _context.CoarseSyncTiming &&
        (completed & (MeasureSyncEvery - 1)) != 0 &&
        Volatile.Read(ref _heldSyncSeconds) < HoldSyncBelowSeconds &&
        !ClusterTelemetry.CreateTime.Enabled &&
        Environment.TickCount64 == coarseStart;

    /// <summary>A synchronous open measured faster than this (50 µs) is an in-process hand-out: see <see cref="MayHoldSyncDuration"/>.</summary>
    internal const double HoldSyncBelowSeconds = 50e-6;

    /// <summary>One in this many completed opens (a power of two) is measured precisely whatever: see <see cref="MayHoldSyncDuration"/>.</summary>
    internal const int MeasureSyncEvery = 64;

    // The node's last precisely measured synchronous open, in seconds; none yet (so never held) at first.
    private double _heldSyncSeconds = double.MaxValue;

    /// <summary>A successful open of <paramref name="seconds"/> ending at <paramref name="now"/>: latency, recovery, the trial's end.</summary>
    private void RecordSuccess(double seconds, long now)
    {
        Latency.Observe(seconds, now);
        Volatile.Write(ref _lastSuccessStamp, now);

        // Written only when set: an unchanged field is not written on every acquire.
        if (Volatile.Read(ref _consecutiveFailures) != 0)
        {
            Volatile.Write(ref _consecutiveFailures, 0);
        }

        if (Volatile.Read(ref _ejectedUntil) != 0 || Volatile.Read(ref _ejectionStreak) != 0)
        {
            // Recovered: a fresh start for the backoff and for the latency that steers the load.
            var wasEjected = Volatile.Read(ref _ejectedUntil) != 0;
            Volatile.Write(ref _ejectionStreak, 0);
            Volatile.Write(ref _ejectedUntil, 0);
            Latency.ResetPeak(seconds, now);
            if (wasEjected)
            {
                ClusterLog.NodeRecovered(_context.Logger, _context.Options.Name, Name);
            }
        }

        if (Volatile.Read(ref _trialClaimedAt) != 0)
        {
            // Whoever's trial it was: the node served, so it is no longer half-open for anyone.
            Volatile.Write(ref _trialClaimedAt, 0);
        }
    }

    internal TimeoutException TimeoutError(Exception? inner) =>
        new($"Opening a connection to node '{Name}' timed out after {ConnectTimeout.TotalMilliseconds:0} ms.", inner);

    private TimeoutException PoolWaitError(Exception? inner) =>
        new($"Node '{Name}': all {MaxConnections} of its pooled connections are in use by the application, and none was returned within {ConnectTimeout.TotalMilliseconds:0} ms. This is the application's capacity, not the node's health: return connections sooner, or raise the pool size (MySqlConnector: Maximum Pool Size).", inner);

    /// <summary>Starts the provider's open; on a thread-pool thread for a provider known to block in it.</summary>
    internal ValueTask<DbConnection> StartProviderOpen(CancellationToken cancellationToken)
    {
        return Volatile.Read(ref _blocksOnOpen) < BlockingOpensToOffload ? DataSource.OpenConnectionAsync(cancellationToken) : OpenOnThreadPool(cancellationToken);
    }

    // Consecutive slow opens that a provider completed before returning them: one could be a GC pause; three are a
    // provider without a real async open (DbConnection's base OpenAsync runs Open).
    private const int BlockingOpensToOffload = 3;

    /// <summary>
    /// Learns whether the provider blocks inside OpenAsync: after <see cref="BlockingOpensToOffload"/> slow opens in a row
    /// that completed before the call returned, the node's opens run on the thread pool, so that the connect timeout,
    /// hedging and failover work for it and a hung server does not hold the caller's thread. A fast synchronous open (a
    /// pooled idle connection) starts the count again.
    /// </summary>
    private void NoteSynchronousOpen(double seconds)
    {
        if (seconds < _context.MaxHedgeDelaySeconds)
        {
            if (Volatile.Read(ref _blocksOnOpen) is > 0 and < BlockingOpensToOffload)
            {
                Volatile.Write(ref _blocksOnOpen, 0);
            }

            return;
        }

        var count = Volatile.Read(ref _blocksOnOpen);
        if (count < BlockingOpensToOffload)
        {
            Volatile.Write(ref _blocksOnOpen, count + 1);
        }
    }

    // A method of its own: a lambda in StartProviderOpen would allocate its closure on every call, the fast path's too.
    private ValueTask<DbConnection> OpenOnThreadPool(CancellationToken cancellationToken) =>
        new(Task.Run(
            () =>
            {
                var open = DataSource.OpenConnectionAsync(cancellationToken);
                if (!open.IsCompleted)
                {
                    // The provider does go asynchronous (it blocked for another reason, say a GC pause): back inline.
                    Volatile.Write(ref _blocksOnOpen, 0);
                }

                return open.AsTask();
            },
            CancellationToken.None));

    /// <summary>A provider's own error for a pool that stayed full (MySqlConnector: "All pooled connections are in use").</summary>
    private static bool IsPoolTimeout(Exception error) =>
        error.InnerException is TimeoutException ||
        error.Message.Contains("pooled connections are in use", StringComparison.OrdinalIgnoreCase) ||
        error.Message.Contains("pool has been exhausted", StringComparison.OrdinalIgnoreCase) ||
        error.Message.Contains("obtaining a connection from the pool", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Counts a connection handed out until it closes, so that selection knows when the node's pool is lent out in full
    /// and a removed node's pool is released when its last connection comes back. Subscribing stores the node's one
    /// cached handler in the connection's event: nothing is allocated.
    /// </summary>
    internal void TrackLease(DbConnection connection)
    {
        Interlocked.Increment(ref _leased);

        // Removed first, so that a provider handing out one connection object again and again (a fake, a wrapper that
        // never closes) keeps one subscription, not a growing list; removing a lone handler allocates nothing.
        connection.StateChange -= _onLeaseStateChange;
        connection.StateChange += _onLeaseStateChange;
        if (connection.State == ConnectionState.Closed)
        {
            // Closed before we listened (it broke on the way): no Closed event will come for it.
            connection.StateChange -= _onLeaseStateChange;
            ReleaseLease();
        }
    }

    private void OnLeaseStateChange(object sender, StateChangeEventArgs e)
    {
        if (e.CurrentState != ConnectionState.Closed || sender is not DbConnection connection)
        {
            return;
        }

        // Once per lease: a connection the user reopens on the provider directly is no longer the cluster's.
        connection.StateChange -= _onLeaseStateChange;
        ReleaseLease();
    }

    private void ReleaseLease()
    {
        // Never below zero: a provider that raises Closed twice at once (a break on its own thread racing the user's
        // Close) must not make the node look emptier than it is.
        int leased;
        do
        {
            leased = Volatile.Read(ref _leased);
        }
        while (leased > 0 && Interlocked.CompareExchange(ref _leased, leased - 1, leased) != leased);

        if (leased == 1 && (_drainReason is not null || _down is not null))
        {
            // The last connection handed out before the drain came back to the pool: drop it with the rest.
            ClearIdleInBackground();
        }

        TryRelease();
    }

    /// <summary>Disposes a removed node's data source once nothing of it is in use, once.</summary>
    internal void TryRelease()
    {
        // Pending before leased: an attempt counts its connection as leased before it stops being pending.
        if (!_removed || Pending > 0 || Volatile.Read(ref _leased) > 0 || !TryClaimRelease())
        {
            return;
        }

        // Off the caller's thread: this runs inside a provider's Close (its StateChange) or on a timer's callback, where
        // a provider's pool disposal must not run. The data source's own disposal waits for it.
        Volatile.Write(ref _release, Task.Run(ReleaseAsync));
    }

    private Task? _release;

    /// <summary>Whether a release started by <see cref="TryRelease"/> has finished.</summary>
    internal bool IsReleaseDone => Volatile.Read(ref _release) is { IsCompleted: true };

    /// <summary>Completes when a release started by <see cref="TryRelease"/> is done (at once if none was started).</summary>
    internal Task ReleaseCompletion
    {
        get
        {
            // Claimed a moment ago: the task is about to be stored.
            SpinWait.SpinUntil(() => !IsReleased || Volatile.Read(ref _release) is not null, 1000);
            return Volatile.Read(ref _release) ?? Task.CompletedTask;
        }
    }

    /// <summary>Whether the node's data source was disposed (or is being).</summary>
    internal bool IsReleased => Volatile.Read(ref _released) != 0;

    /// <summary>Claims the disposal of the node's data source; false when it is already released.</summary>
    internal bool TryClaimRelease()
    {
        // Under the lock that a data source replacement takes, so that a replacement either lands before the claim (and is
        // the one disposed) or sees the claim and disposes itself.
        lock (_dataSourceLock)
        {
            return Interlocked.Exchange(ref _released, 1) == 0;
        }
    }

    /// <summary>Disposes the node's current data source, after <see cref="TryClaimRelease"/>.</summary>
    internal ValueTask DisposeDataSourceAsync()
    {
        DbDataSource current;
        lock (_dataSourceLock)
        {
            current = _dataSource;
        }

        return current.DisposeAsync();
    }

    private async Task ReleaseAsync()
    {
        try
        {
            await DisposeDataSourceAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The node is gone from the cluster; a pool that fails to close has nothing left to give anyone.
        }
    }

    internal void RecordFailure(Exception error, long start, long now, long trial)
    {
        // The next synchronous success is measured, not taken as the last one before the trouble (MayHoldSyncDuration):
        // a recovered node's first samples reset its estimate.
        Volatile.Write(ref _heldSyncSeconds, double.MaxValue);
        Interlocked.Increment(ref _failures);
        Volatile.Write(ref _lastError, new ErrorInfo(error.GetType().Name, error.Message));
        Volatile.Write(ref _lastErrorStamp, now);

        // A refusal arrives fast; it must not make the node look like the fastest one.
        Latency.ObserveAtLeast(Math.Max(_context.ToSeconds(start, now), _context.Options.MaxHedgeDelay.TotalSeconds), now);

        var failures = Interlocked.Increment(ref _consecutiveFailures);
        var ejectedUntil = Volatile.Read(ref _ejectedUntil);
        // A failed trial ejects the node again. Any other failure of a half-open node (an attempt started before the
        // ejection, a direct open) ejects it too, but leaves the trial to the attempt that holds it. A trial that a
        // success ended meanwhile (the node recovered, and ejectedUntil may read 0) is an ordinary failure, counted
        // towards the threshold: one failure must not eject a node that is serving.
        var wasTrial = FreeTrial(trial);
        if (ejectedUntil != 0 && (wasTrial || now >= ejectedUntil))
        {
            Eject(ejectedUntil, now);
        }
        else if (ejectedUntil == 0 && failures >= _context.Options.EjectionThreshold)
        {
            Eject(0, now);
        }
    }

    /// <summary>
    /// An attempt on this node was slow enough to be hedged and is still pending. Until it ends, the node's cost counts
    /// at least the age of its oldest such attempt: a node whose opens hang (blackholed, SIGSTOPped) then grows more
    /// expensive every millisecond instead of looking cheap until its connect timeout finally fails it.
    /// </summary>
    internal void BeginStall(long start, long now)
    {
        Latency.ObserveAtLeast(_context.ToSeconds(start, now), now);
        if (Interlocked.Increment(ref _stalled) == 1)
        {
            Volatile.Write(ref _stalledSince, start);
            return;
        }

        long oldest;
        while ((oldest = Volatile.Read(ref _stalledSince)) > start && Interlocked.CompareExchange(ref _stalledSince, start, oldest) != oldest)
        {
        }
    }

    internal void EndStall() => Interlocked.Decrement(ref _stalled);

    internal void RecordWin()
    {
        Interlocked.Increment(ref _wins);
        if (ClusterTelemetry.Wins.Enabled)
        {
            ClusterTelemetry.Count(ClusterTelemetry.Wins, Tags);
        }
    }

    /// <summary>A connection this node opened that another node beat to the acquire; it goes back to the pool.</summary>
    internal void RecordLoss()
    {
        if (ClusterTelemetry.Losses.Enabled)
        {
            ClusterTelemetry.Count(ClusterTelemetry.Losses, Tags);
        }
    }

    /// <summary>The probe's verdict; logged only when it changes the node's state.</summary>
    /// <param name="downReason">Why the node must not serve, or null when it may.</param>
    /// <param name="unreachable">The check could not reach the node (a timeout or an error), as opposed to a verdict.</param>
    /// <param name="health">A healthy check's report (writer rank, uptime, lag, read-only), for the roles.</param>
    internal void SetProbeResult(string? downReason, bool unreachable = false, ClusterNodeHealth health = default)
    {
        // The report first: a rebuild that sees the node up must see its new uptime (a restarted node is not settled).
        if (downReason is null)
        {
            SetReport(health);
        }

        var previous = _down;
        _down = downReason is null ? null : new DownState(downReason, unreachable);
        if (downReason is not null)
        {
            NoteDown(previous);
        }

        if (downReason is not null && previous is null)
        {
            ClusterLog.ProbeFailed(_context.Logger, _context.Options.Name, Name, downReason);

            // Idle sessions to a server that failed its check would only fail the next acquire (or make it wait for a
            // reset to time out): drop them now; sessions in use are the application's and finish or fail on their own.
            ClearIdleInBackground();
        }
        else if (downReason is null && previous is not null)
        {
            ClusterLog.ProbePassed(_context.Logger, _context.Options.Name, Name);
            _context.RolesChanged();
        }

    }

    /// <summary>What the roles read from the node's last healthy check; null before any.</summary>
    internal RoleReport? Report => _report;

    /// <summary>The node's tier for the readers role (0 preferred), written when the roles' order is rebuilt.</summary>
    internal int ReaderTier
    {
        get => _readerTier;
        set => _readerTier = value;
    }

    private void NoteDown(DownState? previous)
    {
        if (previous is null)
        {
            _context.RolesChanged();
        }
    }

    private void SetReport(ClusterNodeHealth health)
    {
        var now = _context.TimeProvider.GetTimestamp();
        var started = health.Uptime is { } uptime ? _context.AddToTimestamp(now, -uptime) : 0;
        var next = new RoleReport(health.WriterRank, health.Membership, started, health.ReplicationLag, health.ReadOnly);
        var previous = _report;
        _report = next;
        if (previous is null ||
            previous.WriterRank != next.WriterRank ||
            previous.Membership != next.Membership ||
            previous.ReadOnly != next.ReadOnly ||
            IsLagging(previous.Lag) != IsLagging(next.Lag) ||
            Math.Abs(_context.ToSeconds(previous.StartedStamp, next.StartedStamp)) > 2)
        {
            // Only what changes the roles' order; an uptime that moves by the probe's rounding (whole seconds) does not.
            _context.RolesChanged();
        }
    }

    /// <summary>Whether a reported lag is above <see cref="ClusterOptions.MaxReaderLag"/>.</summary>
    internal bool IsLagging(long? lag) => lag is { } value && _context.Options.MaxReaderLag is { } max && value > max;

    /// <summary>The data the roles use from one healthy check; <paramref name="StartedStamp"/> 0 when the uptime is unknown.</summary>
    internal sealed record RoleReport(long? WriterRank, long? Membership, long StartedStamp, long? Lag, bool ReadOnly);

    private TagList Tags => ClusterTelemetry.NodeTags(_context.Options.Name, Name);

    internal void MarkRemoved() => _removed = true;

    /// <summary>The node's cluster was disposed: the node reports <see cref="ClusterNodeState.Disposed"/>, not Removed.</summary>
    internal void MarkDisposed()
    {
        _clusterDisposed = true;
        _removed = true;
    }

    /// <summary>Whether the node is down by a verdict (a probe's or <see cref="MarkDown(string)"/>), not only unreachable.</summary>
    internal bool IsDownByVerdict => _down is { Unreachable: false, FirstCheckPending: false };

    /// <summary>Whether the node was published not yet checked (<see cref="ClusterNodeOptions.AwaitingFirstCheck"/>) and no check has ended since.</summary>
    internal bool IsAwaitingFirstCheck => _down is { FirstCheckPending: true };

    internal ClusterNodeState GetState(long now)
    {
        if (_removed)
        {
            return _clusterDisposed ? ClusterNodeState.Disposed : ClusterNodeState.Removed;
        }

        if (_down is not null)
        {
            return ClusterNodeState.Down;
        }

        if (_drainReason is not null)
        {
            return ClusterNodeState.Draining;
        }

        var ejectedUntil = Volatile.Read(ref _ejectedUntil);
        return ejectedUntil == 0 ? ClusterNodeState.Healthy : now < ejectedUntil ? ClusterNodeState.Ejected : ClusterNodeState.HalfOpen;
    }

    /// <summary>Why acquires pass this node over now, for the caller's <see cref="ClusterException"/>.</summary>
    internal ClusterNodeUnavailableException Unavailable(long now)
    {
        var state = GetState(now);
        var reason = state switch
        {
            ClusterNodeState.Removed => "the node was removed from the cluster",
            ClusterNodeState.Disposed => "the cluster was disposed",
            ClusterNodeState.Down => $"the node is marked down: {_down?.Reason}",
            ClusterNodeState.Draining => $"the node is drained: {_drainReason}",
            ClusterNodeState.Ejected => $"the node is ejected after {Volatile.Read(ref _consecutiveFailures)} consecutive failures",
            ClusterNodeState.HalfOpen => "the node's trial open is in progress",
            _ => "the node was not tried",
        };
        // Reasons quote provider messages, which usually end with their own period.
        return new ClusterNodeUnavailableException(state, $"Not tried: {reason.TrimEnd('.', ' ')}.");
    }

    private void Eject(long expectedUntil, long now)
    {
        var options = _context.Options;
        var streak = Volatile.Read(ref _ejectionStreak) + 1;
        var doubling = Math.Min(streak - 1, 30);
        var seconds = Math.Min(options.BaseEjectionTime.TotalSeconds * (1L << doubling), options.MaxEjectionTime.TotalSeconds);

        // Jitter of ±10% keeps clients that ejected a node together from all probing it at the same instant.
        seconds *= 0.9 + (0.2 * _context.Random.NextDouble());
        var until = _context.AddToTimestamp(now, TimeSpan.FromSeconds(seconds));

        // Only one of several racing failures ejects the node.
        if (Interlocked.CompareExchange(ref _ejectedUntil, until, expectedUntil) == expectedUntil)
        {
            Volatile.Write(ref _ejectionStreak, streak);
            Interlocked.Increment(ref _ejections);
            if (ClusterTelemetry.Ejections.Enabled)
            {
                ClusterTelemetry.Count(ClusterTelemetry.Ejections, Tags);
            }

            var lastError = Volatile.Read(ref _lastError);
            ClusterLog.NodeEjected(_context.Logger, _context.Options.Name, Name, seconds * 1000, Volatile.Read(ref _consecutiveFailures), lastError?.TypeName ?? "none", lastError?.Message ?? string.Empty);
        }
    }

    private DateTimeOffset? ToUtc(long stamp, long now, DateTimeOffset utcNow) =>
        stamp == 0 ? null : utcNow - TimeSpan.FromSeconds(_context.ToSeconds(stamp, now));

    private sealed record ErrorInfo(string TypeName, string Message);

    /// <summary>Why a node is down; <paramref name="Unreachable"/> when its health check could not reach it (no verdict).</summary>
    private sealed record DownState(string Reason, bool Unreachable, bool FirstCheckPending = false);
}

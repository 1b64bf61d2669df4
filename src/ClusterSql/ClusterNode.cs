using System;
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

    private long _opens;
    private long _successes;
    private long _wins;
    private long _failures;
    private long _hedges;
    private long _cancellations;
    private long _ejections;
    private int _pending;
    private int _consecutiveFailures;
    private int _ejectionStreak;
    private long _ejectedUntil;
    private int _trialInFlight;
    private long _lastSuccessStamp;
    private long _lastAttemptStamp;
    private int _stalled;
    private long _stalledSince;
    private long _lastErrorStamp;
    private ErrorInfo? _lastError;
    private volatile string? _downReason;
    private volatile bool _removed;

    internal ClusterNode(string name, DbDataSource dataSource, ClusterNodeOptions? options, int declaredIndex, ClusterContext context)
    {
        Name = name;
        DataSource = dataSource;
        DeclaredIndex = declaredIndex;
        Priority = options?.Priority ?? 0;
        ConnectTimeout = options?.ConnectTimeout ?? context.Options.ConnectTimeout;
        _context = context;
        Latency = new LatencyEstimator(context.Options.LatencyDecayTime, context.TimeProvider);
    }

    /// <summary>The node's name, unique within its cluster; used in errors, statistics and telemetry instead of its connection string.</summary>
    public string Name { get; }

    /// <summary>The provider's data source that opens this node's connections.</summary>
    public DbDataSource DataSource { get; }

    /// <summary>How long one open on this node may take before it counts as failed.</summary>
    public TimeSpan ConnectTimeout { get; }

    /// <summary>The node's current state.</summary>
    public ClusterNodeState State => GetState(_context.TimeProvider.GetTimestamp());

    internal int DeclaredIndex { get; }

    internal int Priority { get; }

    internal LatencyEstimator Latency { get; }

    internal bool IsRemoved => _removed;

    internal string? DownReason => _downReason;

    internal int Pending => Volatile.Read(ref _pending);

    /// <summary>A snapshot of the node's counters and estimates.</summary>
    /// <returns>The snapshot; it does not change afterwards.</returns>
    public ClusterNodeStatistics GetStatistics()
    {
        var timeProvider = _context.TimeProvider;
        var now = timeProvider.GetTimestamp();
        var utcNow = timeProvider.GetUtcNow();
        var lastError = Volatile.Read(ref _lastError);
        var ejectedUntil = Volatile.Read(ref _ejectedUntil);
        return new ClusterNodeStatistics(
            Name,
            GetState(now),
            Interlocked.Read(ref _opens),
            Interlocked.Read(ref _successes),
            Interlocked.Read(ref _wins),
            Interlocked.Read(ref _failures),
            Interlocked.Read(ref _hedges),
            Interlocked.Read(ref _cancellations),
            Interlocked.Read(ref _ejections),
            Volatile.Read(ref _pending),
            Volatile.Read(ref _consecutiveFailures),
            lastError?.TypeName,
            lastError?.Message,
            ToUtc(Volatile.Read(ref _lastErrorStamp), now, utcNow),
            ToUtc(Volatile.Read(ref _lastSuccessStamp), now, utcNow),
            ejectedUntil == 0 ? null : utcNow + TimeSpan.FromSeconds(_context.ToSeconds(now, ejectedUntil)),
            TimeSpan.FromSeconds(Latency.DecayedPeak(now)),
            TimeSpan.FromSeconds(Latency.Smoothed),
            HedgeDelay,
            _downReason);
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
        ObjectDisposedException.ThrowIf(_removed, this);
        cancellationToken.ThrowIfCancellationRequested();
        var start = BeginAttempt(isHedge: false);
        var timeout = _context.Cancellations.Rent(ConnectTimeout);
        using var link = cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), timeout);
        DbConnection? connection = null;
        Exception? error = null;
        try
        {
            var open = DataSource.OpenConnectionAsync(timeout.Token);
            connection = open.IsCompleted ? open.Result : await WaitOrAbandonAsync(open.AsTask(), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            error = ex;
        }

        link.Dispose();
        var callerCancelled = cancellationToken.IsCancellationRequested;
        error = CompleteAttempt(start, ref connection, error, timeout, callerCancelled);
        _context.Cancellations.Return(timeout);
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
        var open = OpenConnectionAsync();
        return open.IsCompletedSuccessfully ? open.Result : open.AsTask().GetAwaiter().GetResult();
    }

    /// <summary>Marks the node down: it is never handed out until <see cref="MarkUp"/>. Health probes call this.</summary>
    /// <param name="reason">Why, for statistics and logs; never put a secret in it.</param>
    public void MarkDown(string reason)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        _downReason = reason;
    }

    /// <summary>Clears a <see cref="MarkDown(string)"/>.</summary>
    public void MarkUp() => _downReason = null;

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({State})";

    internal TimeSpan HedgeDelay => Latency.HedgeDelay(_context.Options.MinHedgeDelay, _context.Options.MaxHedgeDelay);

    /// <summary>The load balancer's cost: peak-EWMA latency × (pending opens + 1).</summary>
    internal double Cost(long now)
    {
        var latency = Latency.DecayedPeak(now);
        if (Volatile.Read(ref _stalled) > 0)
        {
            latency = Math.Max(latency, _context.ToSeconds(Volatile.Read(ref _stalledSince), now));
        }

        return latency * (Volatile.Read(ref _pending) + 1);
    }

    /// <summary>Whether selection may pick this node now (not removed, down or ejected; a half-open node whose trial is free).</summary>
    internal bool CanServe(long now)
    {
        if (_removed || _downReason is not null)
        {
            return false;
        }

        var ejectedUntil = Volatile.Read(ref _ejectedUntil);
        return ejectedUntil == 0 || (now >= ejectedUntil && Volatile.Read(ref _trialInFlight) == 0);
    }

    /// <summary>Whether a panic acquire (every node ejected) may try this node: anything not removed or down.</summary>
    internal bool CanServeInPanic => !_removed && _downReason is null;

    /// <summary>Claims the node for an attempt; for a half-open node only one caller wins the trial.</summary>
    internal bool TryClaim(long now, bool panic)
    {
        if (panic)
        {
            return CanServeInPanic;
        }

        if (_removed || _downReason is not null)
        {
            return false;
        }

        var ejectedUntil = Volatile.Read(ref _ejectedUntil);
        if (ejectedUntil == 0)
        {
            return true;
        }

        return now >= ejectedUntil && Interlocked.CompareExchange(ref _trialInFlight, 1, 0) == 0;
    }

    internal long BeginAttempt(bool isHedge) => BeginAttempt(isHedge, _context.TimeProvider.GetTimestamp());

    /// <summary>Counts an attempt starting at <paramref name="now"/> (the caller's clock reading, to save one).</summary>
    internal long BeginAttempt(bool isHedge, long now)
    {
        Interlocked.Increment(ref _opens);
        Interlocked.Increment(ref _pending);
        if (isHedge)
        {
            Interlocked.Increment(ref _hedges);
            if (ClusterTelemetry.Hedges.Enabled)
            {
                ClusterTelemetry.Hedges.Add(1, Tags);
            }
        }

        Volatile.Write(ref _lastAttemptStamp, now);
        return now;
    }

    /// <summary>
    /// Claims one exploratory acquire for a node that nobody tried for <paramref name="intervalTicks"/>: a node that
    /// was slow keeps a high estimate until it is sampled again, so without an occasional try it would never be seen
    /// to recover. Only one caller per interval wins the claim.
    /// </summary>
    internal bool TryClaimExploration(long now, long intervalTicks)
    {
        var last = Volatile.Read(ref _lastAttemptStamp);
        return now - last >= intervalTicks && Interlocked.CompareExchange(ref _lastAttemptStamp, now, last) == last;
    }

    /// <summary>
    /// Records how an attempt ended and returns the error to report (a timeout made explicit), or null on success.
    /// A caller's cancellation is not held against the node.
    /// </summary>
    internal Exception? CompleteAttempt(long start, ref DbConnection? connection, Exception? error, CancellationTokenSource timeout, bool callerCancelled)
    {
        var now = _context.TimeProvider.GetTimestamp();
        Interlocked.Decrement(ref _pending);
        var timedOut = !callerCancelled && timeout.IsCancellationRequested;
        if (ClusterTelemetry.CreateTime.Enabled)
        {
            var tags = Tags;
            tags.Add(ClusterTelemetry.OutcomeTag, timedOut ? "timeout" : connection is not null ? "success" : callerCancelled ? "cancelled" : "failure");
            ClusterTelemetry.CreateTime.Record(_context.ToSeconds(start, now), tags);
        }

        if (timedOut)
        {
            if (ClusterTelemetry.Timeouts.Enabled)
            {
                ClusterTelemetry.Timeouts.Add(1, Tags);
            }

            // Past the connect timeout the acquire has moved on: a connection that arrives now is a loser, and the
            // node's slowness counts against it even if the provider ignored its token and got through.
            if (connection is not null)
            {
                _ = Attempt.DisposeQuietlyAsync(connection);
                connection = null;
            }

            error = TimeoutError(error);
        }

        if (connection is not null)
        {
            Interlocked.Increment(ref _successes);
            var seconds = _context.ToSeconds(start, now);
            Latency.Observe(seconds, now);
            Volatile.Write(ref _lastSuccessStamp, now);
            Volatile.Write(ref _consecutiveFailures, 0);
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

            Volatile.Write(ref _trialInFlight, 0);
            return null;
        }

        if (callerCancelled)
        {
            Interlocked.Increment(ref _cancellations);
            Volatile.Write(ref _trialInFlight, 0);
            return error;
        }

        error ??= new InvalidOperationException($"Node '{Name}' returned no connection.");
        RecordFailure(error, start, now);
        return error;
    }

    internal TimeoutException TimeoutError(Exception? inner) =>
        new($"Opening a connection to node '{Name}' timed out after {ConnectTimeout.TotalMilliseconds:0} ms.", inner);

    internal void RecordFailure(Exception error, long start, long now)
    {
        Interlocked.Increment(ref _failures);
        Volatile.Write(ref _lastError, new ErrorInfo(error.GetType().Name, error.Message));
        Volatile.Write(ref _lastErrorStamp, now);

        // A refusal arrives fast; it must not make the node look like the fastest one.
        Latency.ObserveAtLeast(Math.Max(_context.ToSeconds(start, now), _context.Options.MaxHedgeDelay.TotalSeconds), now);

        var failures = Interlocked.Increment(ref _consecutiveFailures);
        var ejectedUntil = Volatile.Read(ref _ejectedUntil);
        var wasTrial = Interlocked.Exchange(ref _trialInFlight, 0) == 1;
        if (wasTrial || (ejectedUntil != 0 && now >= ejectedUntil))
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
            ClusterTelemetry.Wins.Add(1, Tags);
        }
    }

    /// <summary>A connection this node opened that another node beat to the acquire; it goes back to the pool.</summary>
    internal void RecordLoss()
    {
        if (ClusterTelemetry.Losses.Enabled)
        {
            ClusterTelemetry.Losses.Add(1, Tags);
        }
    }

    /// <summary>The probe's verdict; logged only when it changes the node's state.</summary>
    internal void SetProbeResult(string? downReason)
    {
        var previous = _downReason;
        _downReason = downReason;
        if (downReason is not null && previous is null)
        {
            ClusterLog.ProbeFailed(_context.Logger, _context.Options.Name, Name, downReason);
        }
        else if (downReason is null && previous is not null)
        {
            ClusterLog.ProbePassed(_context.Logger, _context.Options.Name, Name);
        }
    }

    private TagList Tags => ClusterTelemetry.NodeTags(_context.Options.Name, Name);

    internal void MarkRemoved() => _removed = true;

    internal ClusterNodeState GetState(long now)
    {
        if (_removed)
        {
            return ClusterNodeState.Removed;
        }

        if (_downReason is not null)
        {
            return ClusterNodeState.Down;
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
            ClusterNodeState.Down => $"the node is marked down: {_downReason}",
            ClusterNodeState.Ejected => $"the node is ejected after {Volatile.Read(ref _consecutiveFailures)} consecutive failures",
            ClusterNodeState.HalfOpen => "the node's trial open is in progress",
            _ => "the node was not tried",
        };
        return new ClusterNodeUnavailableException(state, $"Not tried: {reason}.");
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
                ClusterTelemetry.Ejections.Add(1, Tags);
            }

            var lastError = Volatile.Read(ref _lastError);
            ClusterLog.NodeEjected(_context.Logger, _context.Options.Name, Name, seconds * 1000, Volatile.Read(ref _consecutiveFailures), lastError?.TypeName ?? "none", lastError?.Message ?? string.Empty);
        }
    }

    private DateTimeOffset? ToUtc(long stamp, long now, DateTimeOffset utcNow) =>
        stamp == 0 ? null : utcNow - TimeSpan.FromSeconds(_context.ToSeconds(stamp, now));

    private sealed record ErrorInfo(string TypeName, string Message);
}

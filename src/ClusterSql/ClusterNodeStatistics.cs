using System;

namespace ClusterSql;

/// <summary>A point-in-time snapshot of one node's counters and estimates (what the Go seed put in expvar).</summary>
public sealed class ClusterNodeStatistics
{
    internal ClusterNodeStatistics(
        string name,
        ClusterNodeState state,
        long opens,
        long successes,
        long wins,
        long failures,
        long hedges,
        long cancellations,
        long ejections,
        int pendingOpens,
        int consecutiveFailures,
        string? lastErrorType,
        string? lastErrorMessage,
        DateTimeOffset? lastErrorAt,
        DateTimeOffset? lastSuccessAt,
        DateTimeOffset? ejectedUntil,
        TimeSpan latencyEstimate,
        TimeSpan smoothedLatency,
        TimeSpan hedgeDelay,
        string? downReason)
    {
        Name = name;
        State = state;
        Opens = opens;
        Successes = successes;
        Wins = wins;
        Failures = failures;
        Hedges = hedges;
        Cancellations = cancellations;
        Ejections = ejections;
        PendingOpens = pendingOpens;
        ConsecutiveFailures = consecutiveFailures;
        LastErrorType = lastErrorType;
        LastErrorMessage = lastErrorMessage;
        LastErrorAt = lastErrorAt;
        LastSuccessAt = lastSuccessAt;
        EjectedUntil = ejectedUntil;
        LatencyEstimate = latencyEstimate;
        SmoothedLatency = smoothedLatency;
        HedgeDelay = hedgeDelay;
        DownReason = downReason;
    }

    /// <summary>The node's name.</summary>
    public string Name { get; }

    /// <summary>The node's state when the snapshot was taken.</summary>
    public ClusterNodeState State { get; }

    /// <summary>Opens started on the node: first attempts, failovers, hedges and race entries alike.</summary>
    public long Opens { get; }

    /// <summary>Opens that gave a connection, whether or not it was handed out.</summary>
    public long Successes { get; }

    /// <summary>Connections from this node that were handed out.</summary>
    public long Wins { get; }

    /// <summary>Opens that failed or timed out.</summary>
    public long Failures { get; }

    /// <summary>Opens on this node started as a hedge, because another node's attempt was slow.</summary>
    public long Hedges { get; }

    /// <summary>Opens stopped by the caller's cancellation (not held against the node).</summary>
    public long Cancellations { get; }

    /// <summary>How many times the node was ejected.</summary>
    public long Ejections { get; }

    /// <summary>Opens in progress now.</summary>
    public int PendingOpens { get; }

    /// <summary>Failed opens since the last successful one.</summary>
    public int ConsecutiveFailures { get; }

    /// <summary>The type name of the last error, or <see langword="null"/>.</summary>
    public string? LastErrorType { get; }

    /// <summary>The message of the last error, or <see langword="null"/>.</summary>
    public string? LastErrorMessage { get; }

    /// <summary>When the last error happened.</summary>
    public DateTimeOffset? LastErrorAt { get; }

    /// <summary>When the last open succeeded.</summary>
    public DateTimeOffset? LastSuccessAt { get; }

    /// <summary>When the current or last ejection ends; <see langword="null"/> when not ejected.</summary>
    public DateTimeOffset? EjectedUntil { get; }

    /// <summary>The peak-EWMA open latency that steers the latency-aware policy.</summary>
    public TimeSpan LatencyEstimate { get; }

    /// <summary>The smoothed open latency (RFC 6298's SRTT).</summary>
    public TimeSpan SmoothedLatency { get; }

    /// <summary>How long an open on this node may run before another node is started beside it.</summary>
    public TimeSpan HedgeDelay { get; }

    /// <summary>Why the node is marked down, or <see langword="null"/>.</summary>
    public string? DownReason { get; }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Name}: {State}{(DownReason is null ? string.Empty : $" ({DownReason})")}, opens {Opens}, wins {Wins}, failures {Failures}, hedges {Hedges}, latency {LatencyEstimate.TotalMilliseconds:0.###} ms";
}

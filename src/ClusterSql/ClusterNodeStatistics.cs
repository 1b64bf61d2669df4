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
        int connectionsInUse,
        long poolWaits,
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
        ConnectionsInUse = connectionsInUse;
        PoolWaits = poolWaits;
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

    /// <summary>The writer rank the health probe last read from the cluster (Galera: <c>wsrep_local_index</c>); null when none.</summary>
    public long? WriterRank { get; internal init; }

    /// <summary>How long the server had been running at its last health check, as it reported; null when unknown.</summary>
    public TimeSpan? Uptime { get; internal init; }

    /// <summary>The replication lag the health probe last reported (Galera: write sets in the apply queue); null when unknown.</summary>
    public long? ReplicationLag { get; internal init; }

    /// <summary>Whether the health probe reported the node read-only (it never takes the writer role).</summary>
    public bool ReadOnly { get; internal init; }

    /// <summary>Whether discovery added the node from the cluster's own member list, as opposed to the application.</summary>
    public bool Discovered { get; internal init; }

    /// <summary>Why the node is drained (<see cref="ClusterNodeState.Draining"/>), or <see langword="null"/>.</summary>
    public string? DrainReason { get; internal init; }

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

    /// <summary>Connections from this node that the cluster handed out and that are not closed yet.</summary>
    public int ConnectionsInUse { get; }

    /// <summary>
    /// Opens that started while every connection of the node's pool was in use (<see cref="ClusterNodeOptions.MaxConnections"/>)
    /// and failed or timed out waiting for one: the application's capacity, not held against the node.
    /// </summary>
    public long PoolWaits { get; }

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

    /// <summary>
    /// The steering value of the latency-aware policy: a peak-EWMA of open latency that jumps to a slower sample at
    /// once, follows faster ones within a few samples, and decays while the node is idle. It reads higher than the
    /// typical open (it is meant to be pessimistic); compare <see cref="SmoothedLatency"/> with measured percentiles.
    /// </summary>
    public TimeSpan LatencyEstimate { get; }

    /// <summary>
    /// The node's typical open latency: an exponentially smoothed mean of successful opens (RFC 6298's SRTT, gain 1/8),
    /// the number to read next to measured p50/p99. A node's first opens count only by their fastest, so a cold first
    /// open does not show for long.
    /// </summary>
    public TimeSpan SmoothedLatency { get; }

    /// <summary>How long an open on this node may run before another node is started beside it.</summary>
    public TimeSpan HedgeDelay { get; }

    /// <summary>Why the node is marked down, or <see langword="null"/>.</summary>
    public string? DownReason { get; }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Name}{(Discovered ? " (discovered)" : string.Empty)}: {State}{(DownReason is null ? string.Empty : $" ({DownReason})")}{(DrainReason is null || DownReason is not null ? string.Empty : $" ({DrainReason})")}, opens {Opens}, wins {Wins}, failures {Failures}, hedges {Hedges}, in use {ConnectionsInUse}, latency {SmoothedLatency.TotalMilliseconds:0.###} ms (steering peak {LatencyEstimate.TotalMilliseconds:0.###} ms)";
}

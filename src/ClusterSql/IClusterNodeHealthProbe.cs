using System;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql;

/// <summary>
/// An active health check that a <see cref="ClusterDataSource"/> runs in the background for each node at
/// <see cref="ClusterOptions.HealthCheckInterval"/>. A node whose check returns <see cref="ClusterNodeHealth.Unhealthy"/>
/// is never handed out until a later check passes. A check that throws or times out could not reach the node: after
/// <see cref="ClusterOptions.HealthCheckFailureThreshold"/> of them in a row the node is marked down, but it may still be
/// tried when no other node can serve. ClusterSql.MySql provides the Galera one.
/// </summary>
public interface IClusterNodeHealthProbe
{
    /// <summary>Checks one node.</summary>
    /// <param name="node">The node to check.</param>
    /// <param name="cancellationToken">Cancelled when the check times out or the data source is disposed.</param>
    /// <returns>The node's health.</returns>
    ValueTask<ClusterNodeHealth> CheckAsync(ClusterNode node, CancellationToken cancellationToken);

    /// <summary>
    /// The node was removed from its cluster and will not be checked again: free what the probe holds for it (a kept
    /// connection). Called once its last check has ended. The default does nothing.
    /// </summary>
    /// <param name="node">The removed node.</param>
    /// <returns>A task that completes when the node's resources are freed.</returns>
    ValueTask NodeRemovedAsync(ClusterNode node) => default;
}

/// <summary>
/// A probe that also keeps the cluster's member list (ClusterSql.MySql's Galera discovery): the data source that runs it
/// attaches itself once, before the first check. Internal: only ClusterSql's own probes add and remove nodes this way.
/// </summary>
internal interface IClusterAttachedProbe
{
    /// <summary>Called once by the data source that runs the probe, before its first check.</summary>
    /// <param name="cluster">The data source that runs the probe.</param>
    void Attach(ClusterDataSource cluster);
}

/// <summary>The outcome of one health check.</summary>
public readonly struct ClusterNodeHealth
{
    private ClusterNodeHealth(string? reason) => Reason = reason;

    /// <summary>A node fit to serve.</summary>
    public static ClusterNodeHealth Healthy => default;

    /// <summary>Why the node must not serve; <see langword="null"/> when healthy.</summary>
    public string? Reason { get; }

    /// <summary>Whether the node may serve.</summary>
    public bool IsHealthy => Reason is null;

    /// <summary>
    /// The cluster's own rank of this node as a writer, lowest first, read from the cluster so that every client sees
    /// the same order without talking to the others (Galera: <c>wsrep_local_index</c>, as MaxScale's galeramon uses);
    /// <see langword="null"/> when the cluster has none. <see cref="ClusterNodeOptions.Priority"/> comes before it.
    /// </summary>
    public long? WriterRank { get; init; }

    /// <summary>
    /// The version of the cluster's membership that <see cref="WriterRank"/> belongs to (Galera:
    /// <c>wsrep_cluster_conf_id</c>); <see langword="null"/> when the cluster has none. Ranks change together when a member
    /// joins or leaves, but each node's check reads them at its own moment: until every node reports the newest version,
    /// the writer order keeps the previous ranks, so a half-read change never reorders the writers.
    /// </summary>
    public long? Membership { get; init; }

    /// <summary>
    /// How long the server has been running, as it reports it (Galera: the <c>Uptime</c> status); <see langword="null"/>
    /// when unknown. A server that started less than <see cref="ClusterOptions.WriterFailbackDelay"/> ago does not take
    /// the writer role from one that has run longer.
    /// </summary>
    public TimeSpan? Uptime { get; init; }

    /// <summary>
    /// How far the node's copy of the data is behind, in the probe's unit (Galera: write sets waiting in its apply queue,
    /// <c>wsrep_local_recv_queue</c>); <see langword="null"/> when unknown. Readers skip a node above
    /// <see cref="ClusterOptions.MaxReaderLag"/> while another can serve.
    /// </summary>
    public long? ReplicationLag { get; init; }

    /// <summary>Whether the node serves reads only (a read-only server, a standby): it never takes the writer role.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>A node that must not serve.</summary>
    /// <param name="reason">Why, for the node's statistics and logs; never put a secret in it.</param>
    /// <returns>The unhealthy result.</returns>
    public static ClusterNodeHealth Unhealthy(string reason) =>
        new(string.IsNullOrWhiteSpace(reason) ? "unhealthy" : reason);

    /// <inheritdoc/>
    public override string ToString() => Reason ?? "healthy";
}

using System;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql;

/// <summary>Settings of one node; unset values fall back to the cluster's <see cref="ClusterOptions"/>.</summary>
public sealed class ClusterNodeOptions
{
    /// <summary>How long one open on this node may take before it counts as failed; <see langword="null"/> uses <see cref="ClusterOptions.ConnectTimeout"/>.</summary>
    public TimeSpan? ConnectTimeout { get; set; }

    /// <summary>
    /// The node's rank for <see cref="AcquirePolicy.FailOver"/>: lower is tried first, equal ranks keep declared order. Default 0.
    /// </summary>
    public int Priority { get; set; }

    /// <summary>
    /// The most connections the node's provider pool lends at once, or <see langword="null"/> to find it: from the
    /// connection string's <c>Maximum Pool Size</c> (or <c>Max Pool Size</c>; none with <c>Pooling=false</c>), else 100
    /// for MySqlConnector, Npgsql and SqlClient, whose pools default to it; unknown for other providers. When that many
    /// connections from this node are in use, acquires prefer other nodes, and an open that must wait for the application
    /// to return a connection is not held against the node's health. Default <see langword="null"/>.
    /// </summary>
    public int? MaxConnections { get; set; }

    /// <summary>
    /// Drops the node's idle pooled connections. ClusterSql calls it when the node is marked down or drained (and again
    /// when the last connection handed out before comes back), so that no later acquire gets a session to a server that
    /// went away and waits for its reset to time out. It returns either <see langword="null"/>, having cleared the pool in
    /// place, or a fresh data source for the same node, which then replaces the node's: ClusterSql disposes the old one,
    /// which closes its idle sessions at once and each session in use when it comes back (MySqlConnector's data sources
    /// can be cleared no other way). ClusterSql.MySql sets it for its nodes; <see langword="null"/> does nothing.
    /// </summary>
    public Func<DbDataSource, CancellationToken, ValueTask<DbDataSource?>>? ClearIdleConnections { get; set; }

    /// <summary>
    /// Whether the node was found by discovery (ClusterSql.MySql: <c>UseGaleraDiscovery</c>) rather than listed by the
    /// application; it shows in <see cref="ClusterNodeStatistics.Discovered"/>. Discovery sets it on the nodes it adds and
    /// removes only those. Default <see langword="false"/>.
    /// </summary>
    public bool Discovered { get; internal set; }

    /// <summary>
    /// When set, the node is published down for this reason, not yet checked (discovery: a member may still be joining),
    /// so that no acquire can pick it before its first health check; that check's outcome replaces it, whatever it is.
    /// </summary>
    internal string? AwaitingFirstCheck { get; set; }

    /// <summary>A copy, so that changing the caller's object after AddNode changes nothing.</summary>
    internal ClusterNodeOptions Copy() => (ClusterNodeOptions)MemberwiseClone();
}

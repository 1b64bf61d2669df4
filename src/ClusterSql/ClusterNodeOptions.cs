using System;

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
}

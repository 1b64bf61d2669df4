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
}

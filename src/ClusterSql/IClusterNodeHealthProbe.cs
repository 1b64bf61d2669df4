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

    /// <summary>A node that must not serve.</summary>
    /// <param name="reason">Why, for the node's statistics and logs; never put a secret in it.</param>
    /// <returns>The unhealthy result.</returns>
    public static ClusterNodeHealth Unhealthy(string reason) =>
        new(string.IsNullOrWhiteSpace(reason) ? "unhealthy" : reason);

    /// <inheritdoc/>
    public override string ToString() => Reason ?? "healthy";
}

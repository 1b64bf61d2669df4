using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql;

/// <summary>
/// An active health check that a <see cref="ClusterDataSource"/> runs in the background for each node at
/// <see cref="ClusterOptions.HealthCheckInterval"/>. A node whose check fails, throws or times out is never handed out
/// until a later check passes. ClusterSql.MySql provides the Galera one.
/// </summary>
public interface IClusterNodeHealthProbe
{
    /// <summary>Checks one node.</summary>
    /// <param name="node">The node to check.</param>
    /// <param name="cancellationToken">Cancelled when the check times out or the data source is disposed.</param>
    /// <returns>The node's health.</returns>
    ValueTask<ClusterNodeHealth> CheckAsync(ClusterNode node, CancellationToken cancellationToken);
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

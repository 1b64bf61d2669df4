using System;
using System.Collections.Generic;

namespace ClusterSql.Extensions;

/// <summary>
/// A cluster as configuration describes it, e.g. the section
/// <c>"ClusterSql": { "Name": "orders", "Nodes": { "galera1": "Server=...", "galera2": "Server=..." }, "Policy": "LatencyAware", "ConnectTimeout": "00:00:02" }</c>.
/// Unset values keep the defaults of <see cref="ClusterOptions"/>.
/// </summary>
public sealed class ClusterSqlSettings
{
    /// <summary>The cluster's name in telemetry.</summary>
    public string? Name { get; set; }

    /// <summary>Node name to connection string, in declared order.</summary>
    public Dictionary<string, string> Nodes { get; set; } = [];

    /// <summary>The acquire policy.</summary>
    public AcquirePolicy? Policy { get; set; }

    /// <summary>See <see cref="ClusterOptions.ConnectTimeout"/>.</summary>
    public TimeSpan? ConnectTimeout { get; set; }

    /// <summary>See <see cref="ClusterOptions.MinHedgeDelay"/>.</summary>
    public TimeSpan? MinHedgeDelay { get; set; }

    /// <summary>See <see cref="ClusterOptions.MaxHedgeDelay"/>.</summary>
    public TimeSpan? MaxHedgeDelay { get; set; }

    /// <summary>See <see cref="ClusterOptions.HedgeBudget"/>.</summary>
    public double? HedgeBudget { get; set; }

    /// <summary>See <see cref="ClusterOptions.EjectionThreshold"/>.</summary>
    public int? EjectionThreshold { get; set; }

    /// <summary>See <see cref="ClusterOptions.BaseEjectionTime"/>.</summary>
    public TimeSpan? BaseEjectionTime { get; set; }

    /// <summary>See <see cref="ClusterOptions.MaxEjectionTime"/>.</summary>
    public TimeSpan? MaxEjectionTime { get; set; }

    /// <summary>See <see cref="ClusterOptions.HealthCheckInterval"/>.</summary>
    public TimeSpan? HealthCheckInterval { get; set; }

    /// <summary>See <see cref="ClusterOptions.HealthCheckTimeout"/>.</summary>
    public TimeSpan? HealthCheckTimeout { get; set; }

    internal void ApplyTo(ClusterOptions options)
    {
        options.Name = Name ?? options.Name;
        options.Policy = Policy ?? options.Policy;
        options.ConnectTimeout = ConnectTimeout ?? options.ConnectTimeout;
        options.MinHedgeDelay = MinHedgeDelay ?? options.MinHedgeDelay;
        options.MaxHedgeDelay = MaxHedgeDelay ?? options.MaxHedgeDelay;
        options.HedgeBudget = HedgeBudget ?? options.HedgeBudget;
        options.EjectionThreshold = EjectionThreshold ?? options.EjectionThreshold;
        options.BaseEjectionTime = BaseEjectionTime ?? options.BaseEjectionTime;
        options.MaxEjectionTime = MaxEjectionTime ?? options.MaxEjectionTime;
        options.HealthCheckInterval = HealthCheckInterval ?? options.HealthCheckInterval;
        options.HealthCheckTimeout = HealthCheckTimeout ?? options.HealthCheckTimeout;
    }
}

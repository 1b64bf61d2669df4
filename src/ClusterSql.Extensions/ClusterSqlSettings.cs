using System;

namespace ClusterSql.Extensions;

/// <summary>
/// The cluster-wide settings of a configuration section, e.g.
/// <c>"ClusterSql": { "Name": "orders", "Policy": "FailOver", "ConnectTimeout": "00:00:02", "Nodes": [ ... ] }</c>.
/// Unset values keep the defaults of <see cref="ClusterOptions"/>. The section's <c>Nodes</c> are read by
/// <see cref="Microsoft.Extensions.DependencyInjection.ClusterSqlServiceCollectionExtensions.AddClusterSql(Microsoft.Extensions.DependencyInjection.IServiceCollection, Microsoft.Extensions.Configuration.IConfiguration, System.Data.Common.DbProviderFactory, Action{IServiceProvider, ClusterSql.ClusterDataSourceBuilder})"/>,
/// not bound here: they come in two forms (an array, or an object keyed by node name) that no one type binds.
/// </summary>
public sealed class ClusterSqlSettings
{
    /// <summary>The cluster's name in telemetry.</summary>
    public string? Name { get; set; }

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

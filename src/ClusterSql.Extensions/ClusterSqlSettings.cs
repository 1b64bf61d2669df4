using System;

namespace ClusterSql.Extensions;

/// <summary>
/// The cluster-wide settings of a configuration section, e.g.
/// <c>"ClusterSql": { "Name": "orders", "Policy": "FailOver", "ConnectTimeout": "00:00:02", "MaxReaderLag": 50, "Nodes": [ ... ] }</c>.
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

    /// <summary>See <see cref="ClusterOptions.MaxWriters"/>.</summary>
    public int? MaxWriters { get; set; }

    /// <summary>See <see cref="ClusterOptions.WriterIsAlsoReader"/>.</summary>
    public bool? WriterIsAlsoReader { get; set; }

    /// <summary>
    /// See <see cref="ClusterOptions.MaxReaderLag"/>; -1 for no limit (configuration cannot set a value to null: an unset
    /// or empty value keeps the default).
    /// </summary>
    public long? MaxReaderLag { get; set; }

    /// <summary>See <see cref="ClusterOptions.WriterFailbackDelay"/>; zero fails back at once.</summary>
    public TimeSpan? WriterFailbackDelay { get; set; }

    /// <summary>See <see cref="ClusterOptions.CausalReads"/>; it needs write positions (ClusterSql.MySql: <c>UseGaleraConsistency()</c> in the registration's <c>configure</c>).</summary>
    public bool? CausalReads { get; set; }

    /// <summary>See <see cref="ClusterOptions.CausalReadTimeout"/>.</summary>
    public TimeSpan? CausalReadTimeout { get; set; }

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
        options.MaxWriters = MaxWriters ?? options.MaxWriters;
        options.WriterIsAlsoReader = WriterIsAlsoReader ?? options.WriterIsAlsoReader;
        if (MaxReaderLag is { } lag)
        {
            // Other negative values stay, and ClusterOptions.Validate names the setting.
            options.MaxReaderLag = lag == -1 ? null : lag;
        }

        options.WriterFailbackDelay = WriterFailbackDelay ?? options.WriterFailbackDelay;
        options.CausalReads = CausalReads ?? options.CausalReads;
        options.CausalReadTimeout = CausalReadTimeout ?? options.CausalReadTimeout;
    }
}

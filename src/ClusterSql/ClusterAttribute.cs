using System;

namespace ClusterSql;

/// <summary>
/// Makes a <see langword="partial"/> class a generated cluster over the nodes declared with
/// <see cref="ClusterNodeAttribute"/>, and sets the provider and the cluster's options.
/// </summary>
/// <remarks>
/// The generated <c>Create</c> calls <c>ProviderFactory.Instance.CreateDataSource(connectionString)</c> for each node,
/// so the provider needs no reflection and the cluster is NativeAOT-clean. Options left unset keep the defaults of
/// <see cref="ClusterOptions"/>.
/// </remarks>
/// <example>
/// <code>
/// [Cluster(typeof(MySqlConnectorFactory), ConnectionType = typeof(MySqlConnection), Policy = AcquirePolicy.FailOver)]
/// [ClusterNode("galera1", ConnectionStringEnvironmentVariable = "GALERA1")]
/// [ClusterNode("galera2", ConnectionStringEnvironmentVariable = "GALERA2")]
/// public sealed partial class Galera;
///
/// await using var galera = Galera.Create();
/// await using MySqlConnection connection = await galera.OpenConnectionAsync();
/// </code>
/// </example>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class ClusterAttribute : Attribute
{
    /// <summary>Declares the cluster and its provider.</summary>
    /// <param name="providerFactory">
    /// The provider's <see cref="System.Data.Common.DbProviderFactory"/> type; it must have a public static <c>Instance</c>
    /// field or property, as <c>MySqlConnectorFactory</c>, <c>NpgsqlFactory</c>, <c>SqlClientFactory</c> and <c>SqliteFactory</c> do.
    /// </param>
    public ClusterAttribute(Type providerFactory)
    {
        ProviderFactory = providerFactory;
    }

    /// <summary>The provider's factory type.</summary>
    public Type ProviderFactory { get; }

    /// <summary>
    /// The provider's connection type (for example <c>MySqlConnection</c>); when set, the generated opens return it
    /// instead of <see cref="System.Data.Common.DbConnection"/>.
    /// </summary>
    public Type? ConnectionType { get; set; }

    /// <summary>The acquire policy, as <see cref="ClusterOptions.Policy"/>. Default <see cref="AcquirePolicy.LatencyAware"/>.</summary>
    public AcquirePolicy Policy { get; set; }

    /// <summary>The lower bound of the adaptive hedge delay in milliseconds, as <see cref="ClusterOptions.MinHedgeDelay"/>; 0 (the default) keeps the cluster default.</summary>
    public int MinHedgeDelayMilliseconds { get; set; }

    /// <summary>The upper bound of the adaptive hedge delay in milliseconds, as <see cref="ClusterOptions.MaxHedgeDelay"/>; 0 (the default) keeps the cluster default.</summary>
    public int MaxHedgeDelayMilliseconds { get; set; }

    /// <summary>How long one open on one node may take in milliseconds, as <see cref="ClusterOptions.ConnectTimeout"/>; 0 (the default) keeps the cluster default.</summary>
    public int ConnectTimeoutMilliseconds { get; set; }

    /// <summary>
    /// The share of acquires that may hedge, from 0 (no hedging) to 1, as <see cref="ClusterOptions.HedgeBudget"/>.
    /// <see cref="double.NaN"/> (the default) keeps the cluster default.
    /// </summary>
    public double HedgeBudget { get; set; } = double.NaN;
}

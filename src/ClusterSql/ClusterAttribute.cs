using System;

namespace ClusterSql;

/// <summary>
/// Makes a <see langword="partial"/> class a generated cluster over the nodes declared with
/// <see cref="ClusterNodeAttribute"/>, and sets the provider and the cluster's options.
/// </summary>
/// <remarks>
/// The generated <c>Create</c> calls <c>ProviderFactory.Instance.CreateDataSource(connectionString)</c> for each node,
/// so the provider needs no reflection and the cluster is NativeAOT-clean. Options left unset keep the defaults of
/// <see cref="ClusterOptions"/>; the role options' initial values here are those defaults, since 0 means something for them.
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

    /// <summary>
    /// How many nodes the generated <c>Writer</c> spreads writes over, as <see cref="ClusterOptions.MaxWriters"/>; at least 1.
    /// Default 1.
    /// </summary>
    public int MaxWriters { get; set; } = 1;

    /// <summary>Whether the generated <c>Readers</c> also spread reads over the writers, as <see cref="ClusterOptions.WriterIsAlsoReader"/>. Default <see langword="false"/>.</summary>
    public bool WriterIsAlsoReader { get; set; }

    /// <summary>
    /// The most replication lag with which a node still serves reads while a node with less can, as
    /// <see cref="ClusterOptions.MaxReaderLag"/>; -1 for no limit (an attribute cannot hold <see langword="null"/>). Default 100.
    /// </summary>
    public long MaxReaderLag { get; set; } = 100;

    /// <summary>
    /// How long, in milliseconds, a node that came back must have been running before it takes the writer role back, as
    /// <see cref="ClusterOptions.WriterFailbackDelay"/>; 0 fails back at once. Default 60 000 (60 s).
    /// </summary>
    public int WriterFailbackDelayMilliseconds { get; set; } = 60_000;

    /// <summary>
    /// Whether every reader acquire waits until the last recorded write is applied on its node, as
    /// <see cref="ClusterOptions.CausalReads"/>. It needs the provider's write positions: pass <c>Create</c> a
    /// <c>configure</c> that calls <see cref="ClusterDataSourceBuilder.UseConsistency"/> (ClusterSql.MySql:
    /// <c>UseGaleraConsistency()</c>), or <c>Create</c> throws. Default <see langword="false"/>.
    /// </summary>
    public bool CausalReads { get; set; }
}

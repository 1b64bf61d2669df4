using System;

namespace ClusterSql;

/// <summary>
/// Declares one node of a generated cluster. Put it, once per node, on a <see langword="partial"/> class that also
/// carries <see cref="ClusterAttribute"/>; the ClusterSql source generator then adds a property per node, a
/// <c>Create</c> factory that builds the <see cref="ClusterDataSource"/> without reflection, and typed opens.
/// </summary>
/// <remarks>
/// Exactly one of <see cref="ConnectionString"/>, <see cref="ConnectionStringEnvironmentVariable"/> and
/// <see cref="ConnectionStringConfigurationKey"/> must be set. Prefer the last two: a connection string in source
/// ends up in the assembly, and the generator warns (CSQL0010) when a literal one contains a password.
/// </remarks>
/// <example>
/// <code>
/// [Cluster(typeof(MySqlConnectorFactory), ConnectionType = typeof(MySqlConnection))]
/// [ClusterNode("galera1", ConnectionStringEnvironmentVariable = "GALERA1")]
/// [ClusterNode("galera2", ConnectionStringConfigurationKey = "ConnectionStrings:Galera2")]
/// public sealed partial class Galera;
/// </code>
/// </example>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
public sealed class ClusterNodeAttribute : Attribute
{
    /// <summary>Declares a node.</summary>
    /// <param name="name">
    /// The node's name: letters, digits, '_', '-' or '.', 1 to 64 characters, unique in the cluster (case-insensitive).
    /// Its PascalCase form (<c>db-east.1</c> becomes <c>DbEast1</c>) names the generated property, so it must start with a letter.
    /// </param>
    public ClusterNodeAttribute(string name)
    {
        Name = name;
    }

    /// <summary>The node's name.</summary>
    public string Name { get; }

    /// <summary>The node's connection string, written in source. Avoid putting a password here.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>The environment variable that holds the node's connection string, read when the cluster is created.</summary>
    public string? ConnectionStringEnvironmentVariable { get; set; }

    /// <summary>
    /// The configuration key that holds the node's connection string; the generated <c>Create</c> looks it up through
    /// the <c>configuration</c> function it is given (for example <c>key =&gt; config[key]</c>).
    /// </summary>
    public string? ConnectionStringConfigurationKey { get; set; }

    /// <summary>
    /// The node's rank for <see cref="AcquirePolicy.FailOver"/> and for the writer role, as <see cref="ClusterNodeOptions.Priority"/>:
    /// lower is tried first, and a settled node with a lower priority takes the writer role before the cluster's own rank is looked at. Default 0.
    /// </summary>
    public int Priority { get; set; }

    /// <summary>How long one open on this node may take, in milliseconds; 0 (the default) uses the cluster's <see cref="ClusterOptions.ConnectTimeout"/>.</summary>
    public int ConnectTimeoutMilliseconds { get; set; }
}

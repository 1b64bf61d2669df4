using System;
using System.IO;
using ClusterSql;
using MySqlConnector;

namespace ClusterSql.Cli;

/// <summary>
/// The local three-node Galera cluster of tests/cluster (127.0.0.21-23). The generator turns these attributes into a
/// typed cluster: node properties, typed opens and a reflection-free factory that NativeAOT compiles cleanly.
/// Connection strings come from configuration keys, so that no password sits in source.
/// </summary>
[Cluster(typeof(MySqlConnectorFactory), ConnectionType = typeof(MySqlConnection), ConnectTimeoutMilliseconds = 2000)]
[ClusterNode("galera1", ConnectionStringConfigurationKey = "galera1")]
[ClusterNode("galera2", ConnectionStringConfigurationKey = "galera2")]
[ClusterNode("galera3", ConnectionStringConfigurationKey = "galera3")]
internal sealed partial class LocalCluster
{
    private const string DefaultPasswordFile = "/var/tmp/clustersql-cluster/cluster.password";

    /// <summary>
    /// A node's connection string: <c>CLUSTERSQL_GALERA1</c> (and so on) when set; otherwise the local test cluster's
    /// address with the password from <c>CLUSTERSQL_PASSWORD</c> or the harness's password file.
    /// </summary>
    public static string? Configuration(string key)
    {
        var fromEnvironment = Environment.GetEnvironmentVariable("CLUSTERSQL_" + key.ToUpperInvariant());
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            return fromEnvironment;
        }

        var node = key[^1];
        var builder = new MySqlConnectionStringBuilder
        {
            Server = $"127.0.0.2{node}",
            Port = 3306,
            UserID = "clustersql",
            Password = LocalPassword(),
            Database = "test",
            ConnectionTimeout = 3,
        };
        return builder.ConnectionString;
    }

    private static string LocalPassword()
    {
        var password = Environment.GetEnvironmentVariable("CLUSTERSQL_PASSWORD");
        if (!string.IsNullOrEmpty(password))
        {
            return password;
        }

        return File.Exists(DefaultPasswordFile) ? File.ReadAllText(DefaultPasswordFile).Trim() : "Cs-test-pw-7f3a";
    }
}

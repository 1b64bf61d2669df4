using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using MySqlConnector;

namespace ClusterSql.MySql;

/// <summary>MySqlConnector nodes for a <see cref="ClusterDataSource"/>, typed opens, and the Galera health probe.</summary>
public static class MySqlCluster
{
    /// <summary>
    /// Builds a cluster from one MySqlConnector connection string. A multi-host string (<c>Server=a,b,c</c>) gives one
    /// node per host, named after the host, so that a user of MySqlConnector's own <c>LoadBalance</c> switches with one
    /// line; its <c>LoadBalance</c> setting is ignored (the cluster balances). The Galera health probe is on unless
    /// <paramref name="galera"/> is <see langword="false"/>.
    /// </summary>
    /// <param name="connectionString">A MySqlConnector connection string, usually with several hosts.</param>
    /// <param name="galera">Whether to check each node's Galera state in the background (see <see cref="GaleraHealthProbe"/>).</param>
    /// <param name="configure">Changes the cluster's options before it is built.</param>
    /// <returns>The data source; it owns the nodes' MySqlDataSources.</returns>
    /// <exception cref="ArgumentException">The connection string does not parse or names no host.</exception>
    public static ClusterDataSource CreateDataSource(string connectionString, bool galera = true, Action<ClusterOptions>? configure = null)
    {
        var builder = new ClusterDataSourceBuilder().AddMySqlNodes(connectionString);
        if (galera)
        {
            builder.UseGaleraHealthProbe();
        }

        configure?.Invoke(builder.Options);
        return builder.Build();
    }

    /// <summary>Adds a MySqlConnector node.</summary>
    /// <param name="builder">The cluster builder.</param>
    /// <param name="name">The node's name.</param>
    /// <param name="connectionString">The node's MySqlConnector connection string (one host).</param>
    /// <param name="options">The node's settings, or <see langword="null"/> for the cluster's.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException">The connection string does not parse; the message names the node, never the password.</exception>
    public static ClusterDataSourceBuilder AddMySqlNode(this ClusterDataSourceBuilder builder, string name, string connectionString, ClusterNodeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(connectionString);
        var parsed = Parse(connectionString, name);
        return builder.AddNode(name, new MySqlDataSource(parsed.ConnectionString), options);
    }

    /// <summary>Adds one MySqlConnector node per host of a multi-host connection string (<c>Server=a,b,c</c>), each named after its host.</summary>
    /// <param name="builder">The cluster builder.</param>
    /// <param name="connectionString">The connection string.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException">The connection string does not parse or names no host.</exception>
    public static ClusterDataSourceBuilder AddMySqlNodes(this ClusterDataSourceBuilder builder, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(connectionString);
        foreach (var (name, nodeConnectionString) in SplitHosts(connectionString))
        {
            builder.AddNode(name, new MySqlDataSource(nodeConnectionString));
        }

        return builder;
    }

    /// <summary>Checks every node's Galera state in the background; see <see cref="GaleraHealthProbe"/>.</summary>
    /// <param name="builder">The cluster builder.</param>
    /// <param name="allowDonor">Whether a node that is a state-transfer donor (wsrep_local_state 2) may serve.</param>
    /// <returns>The builder.</returns>
    public static ClusterDataSourceBuilder UseGaleraHealthProbe(this ClusterDataSourceBuilder builder, bool allowDonor = false)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.UseHealthProbe(new GaleraHealthProbe(allowDonor));
    }

    /// <summary>Opens a connection on a usable node of the cluster, typed.</summary>
    /// <param name="dataSource">A cluster of MySqlConnector nodes.</param>
    /// <param name="cancellationToken">Cancels the acquire.</param>
    /// <returns>The open connection.</returns>
    /// <exception cref="ClusterException">No node could open a connection.</exception>
    /// <exception cref="InvalidOperationException">A node is not a MySqlConnector one.</exception>
    public static async ValueTask<MySqlConnection> OpenMySqlConnectionAsync(this ClusterDataSource dataSource, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        return AsMySql(await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Opens a connection on a usable node of the cluster, typed; the synchronous form.</summary>
    /// <param name="dataSource">A cluster of MySqlConnector nodes.</param>
    /// <returns>The open connection.</returns>
    /// <exception cref="ClusterException">No node could open a connection.</exception>
    /// <exception cref="InvalidOperationException">A node is not a MySqlConnector one.</exception>
    public static MySqlConnection OpenMySqlConnection(this ClusterDataSource dataSource)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        return AsMySql(dataSource.OpenConnection());
    }

    internal static MySqlConnection AsMySql(System.Data.Common.DbConnection connection)
    {
        if (connection is MySqlConnection mySql)
        {
            return mySql;
        }

        var type = connection.GetType().Name;
        connection.Dispose();
        throw new InvalidOperationException($"The cluster gave a {type}, not a MySqlConnection: add nodes with AddMySqlNode.");
    }

    internal static MySqlConnectionStringBuilder Parse(string connectionString, string? nodeName)
    {
        try
        {
            return new MySqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException ex)
        {
            // The provider's message may quote the string, and so the password: only the key-level reason is kept.
            var node = nodeName is null ? "The connection string" : $"The connection string of node '{nodeName}'";
            throw new ArgumentException($"{node} does not parse: {Redact(ex.Message)}", nameof(connectionString));
        }
    }

    internal static IEnumerable<(string Name, string ConnectionString)> SplitHosts(string connectionString)
    {
        var parsed = Parse(connectionString, nodeName: null);
        var hosts = parsed.Server.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (hosts.Length == 0)
        {
            throw new ArgumentException("The connection string names no server: set Server=host1,host2,...", nameof(connectionString));
        }

        var nodes = new List<(string, string)>(hosts.Length);
        foreach (var host in hosts)
        {
            var node = new MySqlConnectionStringBuilder(parsed.ConnectionString) { Server = host };
            node.Remove("Load Balance");
            nodes.Add((NodeName(host, parsed.Port, hosts.Length), node.ConnectionString));
        }

        return nodes;
    }

    private static string NodeName(string host, uint port, int hostCount)
    {
        var name = new StringBuilder(host.Length + 6);
        foreach (var c in host)
        {
            name.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' ? c : '-');
        }

        // A single port for every host (MySqlConnector's rule), so the port adds nothing to a name unless it differs
        // from the default.
        if (port != 3306 && hostCount > 0)
        {
            name.Append('-').Append(port.ToString(CultureInfo.InvariantCulture));
        }

        return name.ToString();
    }

    private static string Redact(string message)
    {
        var index = message.IndexOf("password", StringComparison.OrdinalIgnoreCase);
        return index < 0 ? message : message[..index] + "…";
    }
}

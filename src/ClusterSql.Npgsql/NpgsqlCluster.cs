using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace ClusterSql.Npgsql;

/// <summary>
/// Npgsql nodes for a <see cref="ClusterDataSource"/>: a PostgreSQL primary and its streaming standbys, typed opens, and
/// the PostgreSQL health probe that gives the primary the writer role and standbys the reader role.
/// </summary>
public static class NpgsqlCluster
{
    /// <summary>The replay lag bound <see cref="CreateDataSource"/> sets, in bytes of WAL: 1 MiB.</summary>
    internal const long DefaultMaxReaderLagBytes = 1024 * 1024;

    /// <summary>
    /// Builds a cluster from one Npgsql connection string. A multi-host string (<c>Host=a:5432,b:5432,c:5432</c>) gives
    /// one node per host, named after it (see <see cref="AddNpgsqlNodes"/>), so that a user of Npgsql's own multi-host
    /// support switches with one line; its <c>Target Session Attributes</c> and <c>Load Balance Hosts</c> settings are
    /// ignored (the cluster's roles and balancing replace them: <see cref="ClusterDataSource.Writer"/> for the primary,
    /// <see cref="ClusterDataSource.Readers"/> for standbys). The PostgreSQL health probe is on unless
    /// <paramref name="healthProbe"/> is <see langword="false"/>; with it, <see cref="ClusterOptions.MaxReaderLag"/> is
    /// set to 1 MiB of WAL before <paramref name="configure"/> runs (see <see cref="PostgresHealthProbe"/> for the unit).
    /// </summary>
    /// <param name="connectionString">An Npgsql connection string, usually with several hosts.</param>
    /// <param name="healthProbe">Whether to check each node's role and replay lag in the background (see <see cref="PostgresHealthProbe"/>).</param>
    /// <param name="configure">Changes the cluster's options before it is built.</param>
    /// <param name="loggerFactory">Logs ejections, recoveries and health changes, or <see langword="null"/> for no logging.</param>
    /// <returns>The data source; it owns the nodes' NpgsqlDataSources.</returns>
    /// <exception cref="ArgumentException">The connection string does not parse (the message quotes none of it) or names no host.</exception>
    public static ClusterDataSource CreateDataSource(string connectionString, bool healthProbe = true, Action<ClusterOptions>? configure = null, ILoggerFactory? loggerFactory = null)
    {
        var builder = new ClusterDataSourceBuilder().AddNpgsqlNodes(connectionString);
        if (healthProbe)
        {
            builder.UsePostgresHealthProbe();
            builder.Options.MaxReaderLag = DefaultMaxReaderLagBytes;
        }

        if (loggerFactory is not null)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        configure?.Invoke(builder.Options);
        return builder.Build();
    }

    /// <summary>Adds an Npgsql node. Its <c>Target Session Attributes</c>, <c>Load Balance Hosts</c> and <c>Host Recheck Seconds</c> are dropped: the cluster's roles decide.</summary>
    /// <param name="builder">The cluster builder.</param>
    /// <param name="name">The node's name.</param>
    /// <param name="connectionString">The node's Npgsql connection string (one host).</param>
    /// <param name="options">The node's settings, or <see langword="null"/> for the cluster's.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException">The connection string does not parse (the message names the node and quotes none of the string), or names several hosts.</exception>
    public static ClusterDataSourceBuilder AddNpgsqlNode(this ClusterDataSourceBuilder builder, string name, string connectionString, ClusterNodeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(connectionString);
        var parsed = Parse(connectionString, name);
        if (parsed.Host is { } host && host.Contains(',', StringComparison.Ordinal))
        {
            throw new ArgumentException($"The connection string of node '{name}' names several hosts: a node is one server (use AddNpgsqlNodes for a multi-host string).", nameof(connectionString));
        }

        // As for AddNpgsqlNodes and the probe: Target Session Attributes=primary on one host would refuse the node as a
        // reader once it is a standby, while the cluster's roles decide which node writes.
        RemoveMultiHostSettings(parsed);
        return builder.AddNode(name, NpgsqlDataSource.Create(parsed.ConnectionString), WithPoolClearing(options));
    }

    /// <summary>
    /// Adds one Npgsql node per host of a multi-host connection string (<c>Host=a,b:5433,[::1]:5434</c>; a host without
    /// a port takes the string's <c>Port</c>), each named after its host by the rule of ClusterSql.MySql's
    /// <c>AddMySqlNodes</c>: the host with every character other than a letter, digit, '_', '-' or '.' replaced by '-',
    /// <c>-port</c> appended when the port is not 5432, shortened with a hash of the host past 64 characters, and
    /// <c>-2</c>, <c>-3</c>, … appended to a name already taken: <c>127.0.0.41-5441</c>, <c>db-0.db-headless</c>.
    /// </summary>
    /// <param name="builder">The cluster builder.</param>
    /// <param name="connectionString">The connection string.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException">The connection string does not parse (the message quotes none of it) or names no host.</exception>
    public static ClusterDataSourceBuilder AddNpgsqlNodes(this ClusterDataSourceBuilder builder, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(connectionString);
        foreach (var (name, nodeConnectionString) in SplitHosts(connectionString))
        {
            builder.AddNode(name, NpgsqlDataSource.Create(nodeConnectionString), WithPoolClearing(null));
        }

        return builder;
    }

    /// <summary>
    /// Checks every node's role and replay lag in the background; see <see cref="PostgresHealthProbe"/>. The lag is in
    /// bytes of WAL: set <see cref="ClusterOptions.MaxReaderLag"/> accordingly (its default, 100, is a Galera count and
    /// means 100 bytes here, which any write in flight exceeds; <see cref="CreateDataSource"/> sets 1 MiB).
    /// </summary>
    /// <param name="builder">The cluster builder.</param>
    /// <returns>The builder.</returns>
    public static ClusterDataSourceBuilder UsePostgresHealthProbe(this ClusterDataSourceBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.UseHealthProbe(new PostgresHealthProbe(builder.Options, TimeProvider.System));
    }

    /// <summary>Opens a connection on a usable node of the cluster, typed.</summary>
    /// <param name="dataSource">A cluster of Npgsql nodes.</param>
    /// <param name="cancellationToken">Cancels the acquire.</param>
    /// <returns>The open connection.</returns>
    /// <exception cref="ClusterException">No node could open a connection.</exception>
    /// <exception cref="InvalidOperationException">A node is not an Npgsql one.</exception>
    [SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads extend different types (ClusterDataSource, ClusterRoleDataSource, ClusterNode), so no call can match two.")]
    public static async ValueTask<NpgsqlConnection> OpenNpgsqlConnectionAsync(this ClusterDataSource dataSource, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        return AsNpgsql(await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Opens a connection on a usable node of the cluster, typed; the synchronous form.</summary>
    /// <param name="dataSource">A cluster of Npgsql nodes.</param>
    /// <returns>The open connection.</returns>
    /// <exception cref="ClusterException">No node could open a connection.</exception>
    /// <exception cref="InvalidOperationException">A node is not an Npgsql one.</exception>
    public static NpgsqlConnection OpenNpgsqlConnection(this ClusterDataSource dataSource)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        return AsNpgsql(dataSource.OpenConnection());
    }

    /// <summary>Opens a connection through one role of a cluster (<c>cluster.Writer</c>: the primary, <c>cluster.Readers</c>: standbys), typed.</summary>
    /// <param name="role">A role of a cluster of Npgsql nodes.</param>
    /// <param name="cancellationToken">Cancels the acquire.</param>
    /// <returns>The open connection.</returns>
    /// <exception cref="ClusterException">No node could open a connection (for the writer: no primary is usable).</exception>
    /// <exception cref="InvalidOperationException">A node is not an Npgsql one.</exception>
    [SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads extend different types (ClusterDataSource, ClusterRoleDataSource, ClusterNode), so no call can match two.")]
    public static async ValueTask<NpgsqlConnection> OpenNpgsqlConnectionAsync(this ClusterRoleDataSource role, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(role);
        return AsNpgsql(await role.OpenConnectionAsync(cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Opens a connection through one role of a cluster, typed; the synchronous form.</summary>
    /// <param name="role">A role of a cluster of Npgsql nodes.</param>
    /// <returns>The open connection.</returns>
    /// <exception cref="ClusterException">No node could open a connection.</exception>
    /// <exception cref="InvalidOperationException">A node is not an Npgsql one.</exception>
    public static NpgsqlConnection OpenNpgsqlConnection(this ClusterRoleDataSource role)
    {
        ArgumentNullException.ThrowIfNull(role);
        return AsNpgsql(role.OpenConnection());
    }

    /// <summary>Opens a connection on this node alone (no failover to other nodes), typed.</summary>
    /// <param name="node">An Npgsql node of a cluster.</param>
    /// <param name="cancellationToken">Cancels the open.</param>
    /// <returns>The open connection; the caller disposes it.</returns>
    /// <exception cref="InvalidOperationException">The node is not an Npgsql one (the connection it opened is disposed).</exception>
    /// <exception cref="ObjectDisposedException">The node was removed from its cluster.</exception>
    /// <exception cref="NpgsqlException">The node could not open a connection.</exception>
    [SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads extend different types (ClusterDataSource, ClusterRoleDataSource, ClusterNode), so no call can match two.")]
    public static async ValueTask<NpgsqlConnection> OpenNpgsqlConnectionAsync(this ClusterNode node, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        return AsNpgsql(await node.OpenConnectionAsync(cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Opens a connection on this node alone (no failover to other nodes), typed; the synchronous form.</summary>
    /// <param name="node">An Npgsql node of a cluster.</param>
    /// <returns>The open connection; the caller disposes it.</returns>
    /// <exception cref="InvalidOperationException">The node is not an Npgsql one (the connection it opened is disposed).</exception>
    /// <exception cref="ObjectDisposedException">The node was removed from its cluster.</exception>
    /// <exception cref="NpgsqlException">The node could not open a connection.</exception>
    public static NpgsqlConnection OpenNpgsqlConnection(this ClusterNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        return AsNpgsql(node.OpenConnection());
    }

    /// <summary>
    /// The node's settings with <see cref="ClusterNodeOptions.ClearIdleConnections"/> set (a copy: the caller's object
    /// is not changed). An NpgsqlDataSource clears its own pool in place (<see cref="NpgsqlDataSource.Clear"/>: idle
    /// connections are closed now, connections in use when they come back), so the node keeps its data source.
    /// </summary>
    private static ClusterNodeOptions WithPoolClearing(ClusterNodeOptions? options)
    {
        // A whole copy (the core's): a setting added to ClusterNodeOptions later is carried without a change here.
        var copy = options?.Copy() ?? new ClusterNodeOptions();
        copy.ClearIdleConnections ??= s_clearPool;
        return copy;
    }

    private static readonly Func<DbDataSource, CancellationToken, ValueTask<DbDataSource?>> s_clearPool =
        static (dataSource, _) =>
        {
            (dataSource as NpgsqlDataSource)?.Clear();
            return new((DbDataSource?)null);
        };

    internal static NpgsqlConnection AsNpgsql(DbConnection connection)
    {
        if (connection is NpgsqlConnection npgsql)
        {
            return npgsql;
        }

        var type = connection.GetType().Name;
        connection.Dispose();
        throw new InvalidOperationException($"The cluster gave a {type}, not an NpgsqlConnection: add nodes with AddNpgsqlNode.");
    }

    internal static NpgsqlConnectionStringBuilder Parse(string connectionString, string? nodeName)
    {
        try
        {
            return new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (Exception ex) when (ConnectionStringErrors.IsParseFailure(ex))
        {
            // Npgsql's message quotes the key or value it rejected, which may be a piece of the password: the message is
            // made from known key names only.
            throw new ArgumentException(
                ConnectionStringErrors.Describe(nodeName, "Npgsql", connectionString, static () => new NpgsqlConnectionStringBuilder()),
                nameof(connectionString));
        }
    }

    internal static IEnumerable<(string Name, string ConnectionString)> SplitHosts(string connectionString)
    {
        var parsed = Parse(connectionString, nodeName: null);
        var hosts = (parsed.Host ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (hosts.Length == 0)
        {
            throw new ArgumentException("The connection string names no host: set Host=host1,host2:port,...", nameof(connectionString));
        }

        var nodes = new List<(string, string)>(hosts.Length);
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var entry in hosts)
        {
            var (host, port) = SplitPort(entry, parsed.Port);
            var node = new NpgsqlConnectionStringBuilder(parsed.ConnectionString) { Host = host, Port = port };

            // Npgsql's own multi-host choices: the cluster's roles and balancing replace them, and on one host they
            // would only refuse a standby that the reader role wants.
            RemoveMultiHostSettings(node);
            nodes.Add((Unique(NodeName(host, port), names), node.ConnectionString));
        }

        return nodes;
    }

    private static void RemoveMultiHostSettings(NpgsqlConnectionStringBuilder builder)
    {
        builder.Remove("Target Session Attributes");
        builder.Remove("Load Balance Hosts");
        builder.Remove("Host Recheck Seconds");
    }

    /// <summary>Splits <c>host:port</c>, <c>[v6]:port</c>, <c>[v6]</c> or a bare host (an unbracketed IPv6 literal too).</summary>
    internal static (string Host, int Port) SplitPort(string entry, int defaultPort)
    {
        if (entry.StartsWith('['))
        {
            var close = entry.IndexOf(']', StringComparison.Ordinal);
            if (close > 0 && close + 1 < entry.Length && entry[close + 1] == ':' && TryPort(entry[(close + 2)..], out var v6Port))
            {
                return (entry[..(close + 1)], v6Port);
            }

            return (entry, defaultPort);
        }

        var colon = entry.LastIndexOf(':');
        if (colon > 0 && entry.IndexOf(':', StringComparison.Ordinal) == colon && TryPort(entry[(colon + 1)..], out var port))
        {
            return (entry[..colon], port);
        }

        return (entry, defaultPort);
    }

    private static bool TryPort(string text, out int port) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is > 0 and <= 65535;

    // The naming rule of MySqlCluster.NodeName, with PostgreSQL's default port: the same host gets the same kind of
    // name in both packages, and names stay the same from run to run.
    internal static string NodeName(string host, int port)
    {
        const int MaxLength = 64;
        var portSuffix = port == 5432 ? "" : "-" + port.ToString(CultureInfo.InvariantCulture);
        var bare = host.Length > 2 && host[0] == '[' && host[^1] == ']' ? host[1..^1] : host;
        var name = new StringBuilder(bare.Length + portSuffix.Length);
        foreach (var c in bare)
        {
            name.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' ? c : '-');
        }

        if (name.Length + portSuffix.Length <= MaxLength)
        {
            return name.Append(portSuffix).ToString();
        }

        var hash = "-" + Fnv1a(host.ToLowerInvariant()).ToString("x8", CultureInfo.InvariantCulture);
        var budget = MaxLength - hash.Length - portSuffix.Length;
        var sanitized = name.ToString();
        var cut = sanitized.LastIndexOf('.', budget);
        var prefix = cut > 0 ? sanitized[..cut] : sanitized[..budget];
        return prefix + hash + portSuffix;
    }

    private static string Unique(string name, HashSet<string> taken)
    {
        var candidate = name;
        for (var i = 2; !taken.Add(candidate); i++)
        {
            var suffix = "-" + i.ToString(CultureInfo.InvariantCulture);
            candidate = (name.Length + suffix.Length > 64 ? name[..(64 - suffix.Length)] : name) + suffix;
        }

        return candidate;
    }

    private static uint Fnv1a(string text)
    {
        var hash = 2166136261u;
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            hash = unchecked((hash ^ b) * 16777619u);
        }

        return hash;
    }
}

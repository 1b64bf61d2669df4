using System;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
using MySqlConnector;

namespace ClusterSql.MySql;

/// <summary>MySqlConnector nodes for a <see cref="ClusterDataSource"/>, typed opens, and the Galera health probe.</summary>
public static partial class MySqlCluster
{
    /// <summary>
    /// Builds a cluster from one MySqlConnector connection string. A multi-host string (<c>Server=a,b,c</c>) gives one
    /// node per host, named after the host (see <see cref="AddMySqlNodes"/> for the naming rule), so that a user of
    /// MySqlConnector's own <c>LoadBalance</c> switches with one line; its <c>LoadBalance</c> setting is ignored (the
    /// cluster balances). The Galera health probe is on unless <paramref name="galera"/> is <see langword="false"/>.
    /// </summary>
    /// <param name="connectionString">A MySqlConnector connection string, usually with several hosts.</param>
    /// <param name="galera">Whether to check each node's Galera state in the background (see <see cref="GaleraHealthProbe"/>).</param>
    /// <param name="configure">Changes the cluster's options before it is built.</param>
    /// <param name="loggerFactory">Logs ejections, recoveries and health changes (see <see cref="ClusterDataSourceBuilder.UseLoggerFactory"/>), or <see langword="null"/> for no logging.</param>
    /// <param name="discovery">
    /// With <paramref name="galera"/>: learn the other members from the cluster itself, the hosts of
    /// <paramref name="connectionString"/> being the seeds (see <see cref="UseGaleraDiscovery"/>); <see langword="null"/>
    /// uses only the listed hosts.
    /// </param>
    /// <returns>The data source; it owns the nodes' MySqlDataSources.</returns>
    /// <exception cref="ArgumentException">The connection string does not parse (the message quotes none of it) or names no host, a discovery setting is invalid, or <paramref name="discovery"/> is given without <paramref name="galera"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A discovery setting is out of range.</exception>
    public static ClusterDataSource CreateDataSource(string connectionString, bool galera = true, Action<ClusterOptions>? configure = null, ILoggerFactory? loggerFactory = null, GaleraDiscoveryOptions? discovery = null)
    {
        if (!galera && discovery is not null)
        {
            // Discovery reads the members in the Galera check: without the check there is nothing to read them from.
            throw new ArgumentException("Discovery needs the Galera health probe: pass galera: true, or no discovery.", nameof(discovery));
        }

        var builder = new ClusterDataSourceBuilder().AddMySqlNodes(connectionString);
        if (galera && discovery is not null)
        {
            builder.UseGaleraDiscovery(discovery);
        }
        else if (galera)
        {
            builder.UseGaleraHealthProbe();
        }

        if (loggerFactory is not null)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        configure?.Invoke(builder.Options);
        if (galera)
        {
            // GTID positions: causal reads (CausalReads, or a token per acquire) and the retry API's recording need them.
            builder.UseGaleraConsistency();
        }

        return builder.Build();
    }

    /// <summary>Adds a MySqlConnector node.</summary>
    /// <param name="builder">The cluster builder.</param>
    /// <param name="name">The node's name.</param>
    /// <param name="connectionString">The node's MySqlConnector connection string (one host).</param>
    /// <param name="options">The node's settings, or <see langword="null"/> for the cluster's.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException">The connection string does not parse; the message names the node and quotes none of the string.</exception>
    public static ClusterDataSourceBuilder AddMySqlNode(this ClusterDataSourceBuilder builder, string name, string connectionString, ClusterNodeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(connectionString);
        var parsed = Parse(connectionString, name);
        return builder.AddNode(name, new MySqlDataSource(parsed.ConnectionString), WithPoolClearing(options));
    }

    /// <summary>
    /// Adds one MySqlConnector node per host of a multi-host connection string (<c>Server=a,b,c</c>), each named after
    /// its host by a rule that always gives a valid, unique name that stays the same from run to run:
    /// <list type="number">
    /// <item>The host, without the brackets of an IPv6 literal, with every character other than a letter, digit,
    /// '_', '-' or '.' (an IPv6 ':', for instance) replaced by '-', and <c>-port</c> appended when the port is not
    /// 3306: <c>db-0.db-headless</c>, <c>10.0.0.1-3307</c>, <c>--1</c> for <c>[::1]</c>.</item>
    /// <item>When that is longer than 64 characters (Kubernetes headless-service names often are): the host's leading
    /// dot-separated labels that fit, then '-' and 8 hex digits of the 32-bit FNV-1a hash of the whole host (lower
    /// case, UTF-8), then the port suffix: <c>db-0.db-headless.prod-eu-1.svc-4f2a9c1e</c>.</item>
    /// <item>When a name is already taken (case-insensitive) by an earlier host of the string: <c>-2</c>, <c>-3</c>, …
    /// appended, shortening the name if needed.</item>
    /// </list>
    /// </summary>
    /// <param name="builder">The cluster builder.</param>
    /// <param name="connectionString">The connection string.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException">The connection string does not parse (the message quotes none of it) or names no host.</exception>
    public static ClusterDataSourceBuilder AddMySqlNodes(this ClusterDataSourceBuilder builder, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(connectionString);
        foreach (var (name, nodeConnectionString) in SplitHosts(connectionString))
        {
            builder.AddNode(name, new MySqlDataSource(nodeConnectionString), WithPoolClearing(null));
        }

        return builder;
    }

    /// <summary>Opens a connection on this node alone (no failover to other nodes), typed.</summary>
    /// <param name="node">A MySqlConnector node of a cluster.</param>
    /// <param name="cancellationToken">Cancels the open.</param>
    /// <returns>The open connection; the caller disposes it.</returns>
    /// <exception cref="InvalidOperationException">The node is not a MySqlConnector one (the connection it opened is disposed).</exception>
    /// <exception cref="ObjectDisposedException">The node was removed from its cluster.</exception>
    /// <exception cref="MySqlException">The node could not open a connection.</exception>
    [SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads extend different types (ClusterDataSource, ClusterNode), so no call can match both.")]
    public static async ValueTask<MySqlConnection> OpenMySqlConnectionAsync(this ClusterNode node, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        return AsMySql(await node.OpenConnectionAsync(cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Opens a connection on this node alone (no failover to other nodes), typed; the synchronous form.</summary>
    /// <param name="node">A MySqlConnector node of a cluster.</param>
    /// <returns>The open connection; the caller disposes it.</returns>
    /// <exception cref="InvalidOperationException">The node is not a MySqlConnector one (the connection it opened is disposed).</exception>
    /// <exception cref="ObjectDisposedException">The node was removed from its cluster.</exception>
    /// <exception cref="MySqlException">The node could not open a connection.</exception>
    public static MySqlConnection OpenMySqlConnection(this ClusterNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        return AsMySql(node.OpenConnection());
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

    /// <summary>
    /// Checks every node's Galera state in the background, as <see cref="UseGaleraHealthProbe"/> does (it takes its place),
    /// and keeps the cluster's nodes in line with the Galera members, read in the same check: the nodes added so far are
    /// the seeds. A member that no node stands for is added with the seed's connection string (only the host and port
    /// replaced) and serves once its own first check passes; a discovered member that leaves is drained, and removed after
    /// <see cref="GaleraDiscoveryOptions.GracePeriod"/>. Only a view from a node that is Primary and Synced, lists itself
    /// and is not behind the newest configuration is trusted, so a partitioned node's view never changes the list. Nodes
    /// added by the application are never removed. Members come from <c>mysql.wsrep_cluster_members</c> when the user may
    /// read it (UUIDs and names), otherwise from <c>wsrep_incoming_addresses</c>; an <c>AUTO</c> or empty address (garbd)
    /// is skipped.
    /// </summary>
    /// <param name="builder">The cluster builder.</param>
    /// <param name="options">Grace period, excluded, pinned and renamed members; <see langword="null"/> for the defaults.</param>
    /// <param name="allowDonor">Whether a node that is a state-transfer donor (wsrep_local_state 2) may serve.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException">A name in <see cref="GaleraDiscoveryOptions.Names"/> is not a valid node name or is given to two members, or an <see cref="GaleraDiscoveryOptions.Exclude"/> or <see cref="GaleraDiscoveryOptions.Pin"/> entry is empty or names no member (the message gives its index). <see cref="ClusterDataSourceBuilder.Build"/> throws it when a seed connects over a Unix socket.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The grace period is out of range.</exception>
    public static ClusterDataSourceBuilder UseGaleraDiscovery(this ClusterDataSourceBuilder builder, GaleraDiscoveryOptions? options = null, bool allowDonor = false)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.UseHealthProbe(new GaleraHealthProbe(allowDonor, new GaleraDiscovery(options ?? new GaleraDiscoveryOptions())));
    }

    /// <summary>Opens a connection on a usable node of the cluster, typed.</summary>
    /// <param name="dataSource">A cluster of MySqlConnector nodes.</param>
    /// <param name="cancellationToken">Cancels the acquire.</param>
    /// <returns>The open connection.</returns>
    /// <exception cref="ClusterException">No node could open a connection.</exception>
    /// <exception cref="InvalidOperationException">A node is not a MySqlConnector one.</exception>
    [SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads extend different types (ClusterDataSource, ClusterNode), so no call can match both.")]
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

    /// <summary>Opens a connection through one role of a cluster (<c>cluster.Writer</c>, <c>cluster.Readers</c>), typed.</summary>
    /// <param name="role">A role of a cluster of MySqlConnector nodes.</param>
    /// <param name="cancellationToken">Cancels the acquire.</param>
    /// <returns>The open connection.</returns>
    /// <exception cref="ClusterException">No node could open a connection.</exception>
    /// <exception cref="InvalidOperationException">A node is not a MySqlConnector one.</exception>
    [SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The overloads extend different types (ClusterDataSource, ClusterRoleDataSource, ClusterNode), so no call can match two.")]
    public static async ValueTask<MySqlConnection> OpenMySqlConnectionAsync(this ClusterRoleDataSource role, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(role);
        return AsMySql(await role.OpenConnectionAsync(cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Opens a connection through one role of a cluster, typed; the synchronous form.</summary>
    /// <param name="role">A role of a cluster of MySqlConnector nodes.</param>
    /// <returns>The open connection.</returns>
    /// <exception cref="ClusterException">No node could open a connection.</exception>
    /// <exception cref="InvalidOperationException">A node is not a MySqlConnector one.</exception>
    public static MySqlConnection OpenMySqlConnection(this ClusterRoleDataSource role)
    {
        ArgumentNullException.ThrowIfNull(role);
        return AsMySql(role.OpenConnection());
    }

    /// <summary>
    /// The node's settings with <see cref="ClusterNodeOptions.ClearIdleConnections"/> set (a copy: the caller's object is
    /// not changed). A MySqlDataSource's pool cannot be cleared in place (MySqlConnection.ClearPoolAsync clears the global
    /// pool of that connection string, not a data source's: measured), so the node gets a fresh MySqlDataSource for the
    /// same connection string and ClusterSql disposes the old one, which closes its idle sessions now and each session in
    /// use when it is returned.
    /// </summary>
    internal static ClusterNodeOptions WithPoolClearing(ClusterNodeOptions? options)
    {
        // A whole copy (the core's): a setting added to ClusterNodeOptions later is carried without a change here.
        var copy = options?.Copy() ?? new ClusterNodeOptions();
        copy.ClearIdleConnections ??= s_clearPool;
        return copy;
    }

    private static readonly Func<System.Data.Common.DbDataSource, CancellationToken, ValueTask<System.Data.Common.DbDataSource?>> s_clearPool =
        static (dataSource, _) => new(dataSource is MySqlDataSource mySql ? new MySqlDataSource(mySql.ConnectionString) : null);

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
        catch (Exception ex) when (ConnectionStringErrors.IsParseFailure(ex))
        {
            // MySqlConnector's message quotes the key or value it rejected, which may be a piece of the password, so
            // neither it nor the exception is kept: the message is made from known key names only.
            throw new ArgumentException(
                ConnectionStringErrors.Describe(nodeName, "MySqlConnector", connectionString, static () => new MySqlConnectionStringBuilder()),
                nameof(connectionString));
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
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var host in hosts)
        {
            var node = new MySqlConnectionStringBuilder(parsed.ConnectionString) { Server = host };
            node.Remove("Load Balance");
            nodes.Add((Unique(NodeName(host, parsed.Port), names), node.ConnectionString));
        }

        return nodes;
    }

    internal static string NodeName(string host, uint port)
    {
        const int MaxLength = 64;
        var portSuffix = port == 3306 ? "" : "-" + port.ToString(CultureInfo.InvariantCulture);
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

        // Too long (a Kubernetes pod's FQDN): the leading labels say which pod, the hash of the whole host keeps two
        // long hosts that share those labels apart.
        var hash = "-" + Fnv1a(host.ToLowerInvariant()).ToString("x8", CultureInfo.InvariantCulture);
        var budget = MaxLength - hash.Length - portSuffix.Length;
        var sanitized = name.ToString();
        var cut = sanitized.LastIndexOf('.', budget);
        var prefix = cut > 0 ? sanitized[..cut] : sanitized[..budget];
        return prefix + hash + portSuffix;
    }

    internal static string Unique(string name, HashSet<string> taken)
    {
        var candidate = name;
        for (var i = 2; !taken.Add(candidate); i++)
        {
            var suffix = "-" + i.ToString(CultureInfo.InvariantCulture);
            candidate = (name.Length + suffix.Length > 64 ? name[..(64 - suffix.Length)] : name) + suffix;
        }

        return candidate;
    }

    // FNV-1a (32-bit) over UTF-8: a stable hash, the same in every process and version, unlike string.GetHashCode.
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

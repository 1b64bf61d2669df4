using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Runtime.CompilerServices;
using System.Threading;
using MySqlConnector;

namespace ClusterSql.MySql;

/// <summary>
/// Keeps a cluster's nodes in line with the Galera members, from the views the health probe reads on its own schedule
/// (no second poller, no second round trip). A member no node stands for is added as a node; a discovered node whose
/// member left is drained, and removed once it has been missing from every trusted view for the grace period.
/// </summary>
/// <remarks>
/// <para>
/// The trust rule: a view is applied only when its reporter was fit to serve in that very check (Primary, Synced,
/// wsrep_ready, not desynced, not rejecting, not a stale configuration), the view lists the reporter itself, its
/// <c>wsrep_cluster_state_uuid</c> is the cluster's (the one trusted views agreed on; another is adopted only after no
/// view of the old one was trusted for the grace period, as after a cluster was bootstrapped afresh) and its
/// <c>wsrep_cluster_conf_id</c> is not older than the newest one trusted (unless none was trusted for the grace period: a
/// whole cluster restarted from its data counts configurations from 1 again). Two trusted views of the same configuration
/// list the same members, so a member is drained only when the newest configuration of the primary component lacks it,
/// and removed only when every trusted view for the grace period lacked it; any trusted view that lists it again puts
/// it back in service. A partitioned node is not Primary, so its view is never applied: it neither shrinks the list nor
/// adds ghosts.
/// </para>
/// <para>
/// Identity: a member is the node whose own check reported the member's wsrep UUID, or the member's address as its own
/// (<c>wsrep_incoming_addresses</c> at <c>wsrep_local_index</c>, or its row of <c>mysql.wsrep_cluster_members</c>), or
/// whose connection string names the member's host and port. A node listed by a host name that has not answered a check
/// yet could be any member, so no member is added until every listed node has been checked once; a discovered node that
/// turns out to be a listed one (the listed node later reports the same UUID or address) is removed.
/// </para>
/// </remarks>
internal sealed class GaleraDiscovery
{
    private readonly GaleraDiscoveryOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly Lock _lock = new();
    private readonly Dictionary<ClusterNode, Identity> _identities = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<ClusterNode, Tracked> _tracked = new(ReferenceEqualityComparer.Instance);
    private readonly ConditionalWeakTable<ClusterNode, Endpoint> _endpoints = new();
    private ClusterDataSource? _cluster;
    private string? _stateUuid;
    private long _confId = -1;
    private DateTimeOffset _trustedAt;
    private long _applied;
    private long _failures;

    // How long the newest trusted state uuid and configuration id hold against an older or another one: separate from
    // GracePeriod (which may be short, even zero), and never shorter than a few health check intervals, so that a stale
    // view (a resumed node's) cannot slip in between two checks of the nodes that know better.
    private static readonly TimeSpan s_minTrustWindow = TimeSpan.FromSeconds(30);
    private const int TrustWindowIntervals = 5;
    private TimeSpan _trustWindow = s_minTrustWindow;
    private volatile string? _lastFailure;

    public GaleraDiscovery(GaleraDiscoveryOptions options, TimeProvider? timeProvider = null)
    {
        _options = options.Copy();
        _options.Validate();
        _timeProvider = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Trusted views applied so far (for tests and the CLI).</summary>
    public long AppliedViews => Interlocked.Read(ref _applied);

    /// <summary>How many times discovery's own work failed (a bug, or a cluster changed under it); the node checks went on.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>The last such failure (exception type and where), or <see langword="null"/>.</summary>
    public string? LastFailure => _lastFailure;

    public void Attach(ClusterDataSource cluster)
    {
        // Members are reached over TCP with the seed's settings: a socket seed names no address to copy them to.
        foreach (var node in cluster.Nodes)
        {
            if (node.DataSource is MySqlDataSource mySql && !IsTcp(mySql.ConnectionString))
            {
                throw new ArgumentException(
                    $"Galera discovery needs seeds reached over TCP: node '{node.Name}' connects over a Unix socket or pipe (Protocol). List that node without discovery, or give its TCP host and port.",
                    nameof(cluster));
            }
        }

        var interval = cluster.Options.HealthCheckInterval;
        _trustWindow = interval * TrustWindowIntervals > s_minTrustWindow ? interval * TrustWindowIntervals : s_minTrustWindow;
        if (Interlocked.CompareExchange(ref _cluster, cluster, null) is { } attached && !ReferenceEquals(attached, cluster))
        {
            throw new InvalidOperationException("A Galera discovery (its health probe) serves one ClusterDataSource: build each cluster with its own UseGaleraDiscovery.");
        }
    }

    /// <summary>A node's check ended without a view (it failed, or the node gave no membership): it counts as checked.</summary>
    public void Checked(ClusterNode node)
    {
        try
        {
            lock (_lock)
            {
                if (!node.IsRemovedOrDisposed())
                {
                    _identities[node] = _identities.TryGetValue(node, out var known) ? known with { Checked = true } : new Identity(null, null, Checked: true);
                }
            }
        }
        catch (Exception ex)
        {
            Failed("marking a node checked", ex);
        }
    }

    /// <summary>One node's view from one check; applied when it passes the trust rule.</summary>
    /// <remarks>
    /// Never throws: discovery runs inside the reporter's own health check, and a failure of discovery must neither fail
    /// that check nor become the reporter's down reason. It is counted in <see cref="Failures"/> instead.
    /// </remarks>
    public void Report(ClusterNode reporter, GaleraView view)
    {
        try
        {
            var cluster = Volatile.Read(ref _cluster);
            if (cluster is null)
            {
                return;
            }

            lock (_lock)
            {
                // Checked under the lock: a reporter removed (or replaced under its name) meanwhile teaches nothing.
                if (cluster.IsDisposedOrGone(reporter))
                {
                    return;
                }

                Learn(cluster, reporter, view);
                if (IsTrusted(reporter, view))
                {
                    Apply(cluster, reporter, view);
                }
            }
        }
        catch (Exception ex)
        {
            Failed($"applying the view of node '{reporter.Name}'", ex);
        }
    }

    /// <summary>
    /// Records a failure of discovery itself. Only the exception's type and where it happened: its message could carry
    /// a fragment of a connection string (the seed's settings are copied into each member's).
    /// </summary>
    private void Failed(string where, Exception ex)
    {
        Interlocked.Increment(ref _failures);
        _lastFailure = $"{where}: {ex.GetType().Name}";
    }

    private void Learn(ClusterDataSource cluster, ClusterNode reporter, GaleraView view)
    {
        var self = view.ReporterAddress;
        var port = ConfiguredEndpoint(reporter)?.Port ?? 3306;
        var identity = new Identity(view.ReporterUuid, self?.WithDefaultPort(port), Checked: true);
        _identities[reporter] = identity;
        if (reporter.IsDiscovered)
        {
            return;
        }

        // A listed node that is a member discovery added earlier under another name (a host name against the IP the
        // cluster reports): the listed node stands for it, the discovered duplicate goes.
        List<ClusterNode>? duplicates = null;
        foreach (var (node, tracked) in _tracked)
        {
            if (node.IsRemovedOrDisposed())
            {
                // Removed by the application (its name may now be another node's): Apply forgets it.
                continue;
            }

            if (Same(tracked.Uuid, identity.Uuid) || (identity.Self is { } address && tracked.Address == address))
            {
                (duplicates ??= []).Add(node);
            }
        }

        foreach (var duplicate in duplicates ?? [])
        {
            _tracked.Remove(duplicate);
            _identities.Remove(duplicate);
            TryRemove(cluster, duplicate);
        }
    }

    private bool IsTrusted(ClusterNode reporter, GaleraView view)
    {
        if (!view.Healthy || !view.IncludesReporter || view.StateUuid is null || view.ConfId is not { } confId || reporter.IsRemovedOrDisposed())
        {
            return false;
        }

        var now = _timeProvider.GetUtcNow();
        if (!string.Equals(view.StateUuid, _stateUuid, StringComparison.OrdinalIgnoreCase))
        {
            // Another cluster history (bootstrapped afresh): taken only once the old one has had no trusted view for the
            // grace period, so that one confused node cannot switch the list to another cluster.
            if (_stateUuid is not null && now - _trustedAt < _trustWindow)
            {
                return false;
            }

            _stateUuid = view.StateUuid;
            _confId = -1;
        }

        // An older configuration is a stale view, unless no newer one has been trusted for the grace period: a whole
        // cluster restarted from its data keeps its state uuid but counts configurations from 1 again.
        if (confId < _confId && now - _trustedAt < _trustWindow)
        {
            return false;
        }

        _confId = confId;
        _trustedAt = now;
        return true;
    }

    private void Apply(ClusterDataSource cluster, ClusterNode reporter, GaleraView view)
    {
        Interlocked.Increment(ref _applied);
        var now = _timeProvider.GetUtcNow();
        var nodes = cluster.Nodes;
        var reporterPort = ConfiguredEndpoint(reporter)?.Port ?? 3306;
        var present = new HashSet<ClusterNode>(ReferenceEqualityComparer.Instance);
        var canAdd = EveryListedNodeChecked(nodes);
        foreach (var listed in view.Members)
        {
            if (listed is null)
            {
                continue;
            }

            var member = listed with { Address = listed.Address.WithDefaultPort(reporterPort) };
            if (Matches(_options.Exclude, member))
            {
                continue;
            }

            var node = Find(cluster.Nodes, member);
            if (node is null && canAdd && Reachable(cluster, reporter, member.Address))
            {
                node = Add(cluster, reporter, member);
            }

            if (node is not null)
            {
                present.Add(node);
            }
        }

        List<ClusterNode>? gone = null;
        foreach (var (node, tracked) in _tracked)
        {
            if (node.IsRemovedOrDisposed())
            {
                (gone ??= []).Add(node);
                continue;
            }

            if (present.Contains(node))
            {
                tracked.AbsentSince = null;
                if (tracked.DrainReason is { } ours)
                {
                    // Only discovery's own drain is undone: a reason the application set since stays.
                    tracked.DrainReason = null;
                    node.UndrainIf(ours);
                }

                continue;
            }

            if (tracked.Pinned)
            {
                continue;
            }

            tracked.AbsentSince ??= now;
            if (tracked.DrainReason is null && node.DrainReason is null)
            {
                // Only a node nothing drains yet (whatever its state: a drained node that is also down reports Down), and
                // the very reason string is kept, so that a later undrain undoes this drain and no one else's.
                var reason = $"left the cluster: not in the view of node '{reporter.Name}' (configuration {view.ConfId})";
                if (node.TryDrain(reason))
                {
                    tracked.DrainReason = reason;
                }
            }

            if (now - tracked.AbsentSince.Value >= _options.GracePeriod)
            {
                (gone ??= []).Add(node);
                TryRemove(cluster, node);
            }
        }

        foreach (var node in gone ?? [])
        {
            _tracked.Remove(node);
            _identities.Remove(node);
        }

        // Nodes the application removed: their identities must not outlive them.
        foreach (var node in _identities.Keys.Where(static n => n.IsRemovedOrDisposed()).ToList())
        {
            _identities.Remove(node);
        }
    }

    private bool EveryListedNodeChecked(IReadOnlyList<ClusterNode> nodes)
    {
        foreach (var node in nodes)
        {
            if (!node.IsDiscovered && !(_identities.TryGetValue(node, out var identity) && identity.Checked))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The node that stands for a member: by wsrep UUID, by the address it reported as its own, by its connection string.</summary>
    private ClusterNode? Find(IReadOnlyList<ClusterNode> nodes, GaleraMember member)
    {
        if (member.Uuid is not null)
        {
            foreach (var node in nodes)
            {
                if ((_identities.TryGetValue(node, out var identity) && Same(identity.Uuid, member.Uuid)) ||
                    (_tracked.TryGetValue(node, out var tracked) && Same(tracked.Uuid, member.Uuid)))
                {
                    return node;
                }
            }
        }

        foreach (var node in nodes)
        {
            if ((_identities.TryGetValue(node, out var identity) && identity.Self == member.Address) ||
                (_tracked.TryGetValue(node, out var tracked) && tracked.Address == member.Address))
            {
                return node;
            }
        }

        foreach (var node in nodes)
        {
            if (ConfiguredEndpoint(node) is { } endpoint && endpoint.Address == member.Address)
            {
                return node;
            }
        }

        return null;
    }

    private ClusterNode? Add(ClusterDataSource cluster, ClusterNode reporter, GaleraMember member)
    {
        // The seed's settings (credentials, TLS, pool size, timeouts) with only the host and port replaced.
        if (Template(cluster, reporter) is not { } template)
        {
            return null;
        }

        var builder = new MySqlConnectionStringBuilder(template)
        {
            Server = member.Address.Host,
            Port = (uint)member.Address.Port!.Value,
        };
        builder.Remove("Load Balance");
        var name = NameFor(cluster, member);
        // A member of the primary component may still be joining (not Synced): the node is published not serving, and
        // serves once its own first check passes (that check's outcome, whatever it is, replaces this reason).
        var options = MySqlCluster.WithPoolClearing(new ClusterNodeOptions { ConnectTimeout = reporter.ConnectTimeout });
        options.Discovered = true;
        options.AwaitingFirstCheck = "discovered: waiting for its first health check";
        ClusterNode node;
        var dataSource = new MySqlDataSource(builder.ConnectionString);
        try
        {
            node = cluster.AddNode(name, dataSource, options);
        }
        catch (Exception ex) when (ex is ArgumentException or ObjectDisposedException)
        {
            // A name taken meanwhile, or the cluster disposed: the next trusted view tries again.
            dataSource.Dispose();
            return null;
        }

        _tracked[node] = new Tracked(member.Uuid, member.Address, Matches(_options.Pin, member));
        return node;
    }

    private string NameFor(ClusterDataSource cluster, GaleraMember member)
    {
        var name = NameFromOptions(member) ?? MySqlCluster.NodeName(member.Address.Host, (uint)member.Address.Port!.Value);
        var taken = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var node in cluster.Nodes)
        {
            taken.Add(node.Name);
        }

        return MySqlCluster.Unique(name, taken);
    }

    private string? NameFromOptions(GaleraMember member)
    {
        foreach (var key in Keys(member))
        {
            if (key is not null && _options.Names.TryGetValue(key, out var name))
            {
                return name;
            }
        }

        return null;
    }

    private static bool Matches(IList<string> list, GaleraMember member)
    {
        foreach (var entry in list)
        {
            var trimmed = entry?.Trim();
            if (string.IsNullOrEmpty(trimmed))
            {
                continue;
            }

            foreach (var key in Keys(member))
            {
                if (key is not null && string.Equals(key, trimmed, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }

            // An address written another way (a bracketed or expanded IPv6 literal, upper case): compared parsed.
            if (MemberAddress.Parse(trimmed) is { } parsed &&
                parsed.Host == member.Address.Host && (parsed.Port is null || parsed.Port == member.Address.Port))
            {
                return true;
            }
        }

        return false;
    }

    private static IEnumerable<string?> Keys(GaleraMember member)
    {
        yield return member.Uuid;
        yield return member.Name;
        yield return member.Address.ToString();
        yield return member.Address.Host;
    }

    private static string? Template(ClusterDataSource cluster, ClusterNode reporter)
    {
        if (reporter.DataSource is MySqlDataSource own && IsTcp(own.ConnectionString))
        {
            return own.ConnectionString;
        }

        foreach (var node in cluster.Nodes)
        {
            if (!node.IsDiscovered && node.DataSource is MySqlDataSource seed && IsTcp(seed.ConnectionString))
            {
                return seed.ConnectionString;
            }
        }

        return null;
    }

    private static bool IsTcp(string connectionString)
    {
        try
        {
            return new MySqlConnectionStringBuilder(connectionString).ConnectionProtocol == MySqlConnectionProtocol.Tcp;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>
    /// Whether the seed's credentials may be sent to a member's address. A trusted view is still only what servers say
    /// about themselves: a loopback address (a member that advertises 127.0.0.1) would be this machine, not the member,
    /// unless the seeds are on loopback too (a cluster on one host); a link-local address (fe80::/10) is ambiguous
    /// without its interface and is never one a member can be reached by from another host.
    /// </summary>
    private static bool Reachable(ClusterDataSource cluster, ClusterNode reporter, MemberAddress address)
    {
        var host = address.Host;
        var scope = host.IndexOf('%', StringComparison.Ordinal);
        var bare = scope >= 0 ? host[..scope] : host;
        if (IPAddress.TryParse(bare, out var ip) && ip.IsIPv6LinkLocal)
        {
            return false;
        }

        if (!IsLoopback(host))
        {
            return true;
        }

        return Template(cluster, reporter) is { } template && SeedIsLoopback(template);

        static bool SeedIsLoopback(string connectionString)
        {
            try
            {
                var hosts = new MySqlConnectionStringBuilder(connectionString).Server.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                return hosts.Length > 0 && hosts.All(h => MemberAddress.Normalize(h) is { } normalized && IsLoopback(normalized));
            }
            catch (ArgumentException)
            {
                return false;
            }
        }
    }

    private static bool IsLoopback(string host) =>
        string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase) ||
        (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));

    private Endpoint? ConfiguredEndpoint(ClusterNode node)
    {
        if (_endpoints.TryGetValue(node, out var known))
        {
            return known;
        }

        if (node.DataSource is not MySqlDataSource mySql)
        {
            return null;
        }

        Endpoint endpoint;
        try
        {
            var builder = new MySqlConnectionStringBuilder(mySql.ConnectionString);
            var hosts = builder.Server.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var host = hosts.Length == 1 ? MemberAddress.Normalize(hosts[0]) : null;
            endpoint = new Endpoint(host is null ? null : new MemberAddress(host, (int)builder.Port), (int)builder.Port);
        }
        catch (ArgumentException)
        {
            endpoint = new Endpoint(null, 3306);
        }

        _endpoints.AddOrUpdate(node, endpoint);
        return endpoint;
    }

    private static void TryRemove(ClusterDataSource cluster, ClusterNode node)
    {
        try
        {
            // This very node: the application may have removed it and added another under its name.
            cluster.RemoveNode(node);
        }
        catch (ObjectDisposedException)
        {
            // The cluster is going away; so is every node.
        }
    }

    private static bool Same(string? a, string? b) => a is not null && b is not null && string.Equals(a, b, StringComparison.OrdinalIgnoreCase);

    /// <summary>What a node's own check said about itself: its wsrep UUID and the address the cluster lists it by.</summary>
    private sealed record Identity(string? Uuid, MemberAddress? Self, bool Checked);

    /// <summary>A node's host and port as its connection string names them (Address null when not one usable host).</summary>
    private sealed record Endpoint(MemberAddress? Address, int Port);

    /// <summary>A node discovery added: the member it stands for, and whether discovery drained it.</summary>
    private sealed class Tracked(string? uuid, MemberAddress address, bool pinned)
    {
        public string? Uuid { get; } = uuid;

        public MemberAddress Address { get; } = address;

        public bool Pinned { get; } = pinned;

        public DateTimeOffset? AbsentSince { get; set; }

        /// <summary>The reason string discovery drained the node with (compared by reference), or null.</summary>
        public string? DrainReason { get; set; }
    }
}

internal static class DiscoveryNodeExtensions
{
    public static bool IsRemovedOrDisposed(this ClusterNode node) => node.State is ClusterNodeState.Removed or ClusterNodeState.Disposed;

    public static bool IsDisposedOrGone(this ClusterDataSource cluster, ClusterNode node) =>
        node.IsRemovedOrDisposed() || cluster.GetNode(node.Name) is not { } current || !ReferenceEquals(current, node);
}

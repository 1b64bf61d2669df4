using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Globalization;
using System.Threading;
using System.Threading.Tasks;
using MySqlConnector;

namespace ClusterSql.MySql;

/// <summary>
/// The Galera health check that ProxySQL and MaxScale apply: a node serves only when <c>wsrep_ready=ON</c>,
/// <c>wsrep_local_state=4</c> (Synced; 2, Donor, only when allowed), <c>wsrep_cluster_status=Primary</c>,
/// <c>wsrep_desync=OFF</c> and <c>wsrep_reject_queries=NONE</c>. A node that still accepts connections after falling
/// out of the primary component is therefore never handed out.
/// </summary>
/// <remarks>
/// <para>
/// Each node is checked on a dedicated, unpooled connection that is kept between checks (one round trip per check)
/// and replaced after any error, so the check neither borrows from nor disturbs the node's pool.
/// </para>
/// <para>
/// The kept session asks the server to end it after <see cref="SessionIdleTimeout"/> without a query
/// (<c>wait_timeout</c>): when a fault (a blackhole, a dropped route) eats the FIN of a probe connection that is given
/// up, the server would otherwise keep the half-open session for its TCP keepalive time (two hours by default), one more
/// after every fault. A kept connection that the server has ended meanwhile is replaced and the check retried once, so
/// an interval longer than the idle timeout costs a login, not a failed check.
/// </para>
/// </remarks>
public sealed class GaleraHealthProbe : IClusterNodeHealthProbe, IClusterAttachedProbe, IAsyncDisposable
{
    internal const string Query =
        "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS " +
        "WHERE VARIABLE_NAME IN ('WSREP_READY', 'WSREP_LOCAL_STATE', 'WSREP_CLUSTER_STATUS', 'WSREP_CLUSTER_CONF_ID', 'WSREP_CLUSTER_STATE_UUID', 'WSREP_CLUSTER_SIZE', " +
        "'WSREP_LOCAL_INDEX', 'WSREP_LOCAL_RECV_QUEUE', 'UPTIME', 'WSREP_INCOMING_ADDRESSES', 'WSREP_GCOMM_UUID') " +
        "UNION ALL SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES " +
        "WHERE VARIABLE_NAME IN ('WSREP_DESYNC', 'WSREP_REJECT_QUERIES', 'READ_ONLY')";

    // Galera 4's member list with each member's UUID and name, read in the same round trip as the status when discovery
    // is on. An application user may not read the mysql schema (error 1142), and Galera 3 has no such table (1146): then
    // wsrep_incoming_addresses alone is used, and the table is not asked for again.
    internal const string MemberTableQuery = "SELECT node_uuid, node_name, node_incoming_address FROM mysql.wsrep_cluster_members";

    private readonly ConcurrentDictionary<ClusterNode, MySqlConnection> _connections = new();
    private volatile bool _disposed;
    private readonly ConfigurationTracker _configurations = new(TimeProvider.System);
    private readonly GaleraDiscovery? _discovery;
    private volatile bool _memberTableUnreadable;

    // Nodes whose last check said Primary, Synced and ready: only those are asked for the member table (in the same round
    // trip as the status), because any other node refuses the table with error 1047 (wsrep not prepared).
    private readonly ConcurrentDictionary<ClusterNode, bool> _memberTableReady = new();

    /// <summary>Creates the probe.</summary>
    /// <param name="allowDonor">Whether a state-transfer donor (wsrep_local_state 2) may serve.</param>
    public GaleraHealthProbe(bool allowDonor = false) => AllowDonor = allowDonor;

    internal GaleraHealthProbe(bool allowDonor, TimeProvider timeProvider)
        : this(allowDonor) => _configurations = new ConfigurationTracker(timeProvider);

    internal GaleraHealthProbe(bool allowDonor, TimeSpan sessionIdleTimeout)
        : this(allowDonor) => SessionIdleTimeout = sessionIdleTimeout;

    /// <summary>The probe that also keeps the cluster's member list (<see cref="MySqlCluster.UseGaleraDiscovery"/>).</summary>
    internal GaleraHealthProbe(bool allowDonor, GaleraDiscovery discovery, TimeProvider? timeProvider = null)
        : this(allowDonor)
    {
        _discovery = discovery;
        if (timeProvider is not null)
        {
            _configurations = new ConfigurationTracker(timeProvider);
        }
    }

    /// <summary>The discovery this probe feeds, or <see langword="null"/>.</summary>
    internal GaleraDiscovery? Discovery => _discovery;

    /// <summary>Whether a check found <c>mysql.wsrep_cluster_members</c> unreadable (so only wsrep_incoming_addresses is used).</summary>
    internal bool MemberTableUnreadable => _memberTableUnreadable;

    void IClusterAttachedProbe.Attach(ClusterDataSource cluster) => _discovery?.Attach(cluster);

    /// <summary>Whether a state-transfer donor (wsrep_local_state 2) may serve.</summary>
    public bool AllowDonor { get; }

    /// <summary>How long the server keeps the probe's session without a query (its <c>wait_timeout</c>). 30 s.</summary>
    internal TimeSpan SessionIdleTimeout { get; } = TimeSpan.FromSeconds(30);

    /// <summary>Lets go of a removed node's kept connection.</summary>
    /// <param name="node">The removed node.</param>
    /// <returns>A task that completes when the connection is closed.</returns>
    public async ValueTask NodeRemovedAsync(ClusterNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        _memberTableReady.TryRemove(node, out _);
        if (_connections.TryRemove(node, out var connection))
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public async ValueTask<ClusterNodeHealth> CheckAsync(ClusterNode node, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(node);
        ObjectDisposedException.ThrowIf(_disposed, this);
        try
        {
            if (node.DataSource is not MySqlDataSource mySql)
            {
                return ClusterNodeHealth.Unhealthy("not a MySqlConnector node: the Galera check needs a MySqlDataSource");
            }

            return await CheckWithVerdictsAsync(node, mySql, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // Whatever the outcome, the node has been checked: discovery waits for that before adding members that a node
            // listed by a host name might stand for.
            _discovery?.Checked(node);
        }
    }

    private async ValueTask<ClusterNodeHealth> CheckWithVerdictsAsync(ClusterNode node, MySqlDataSource mySql, CancellationToken cancellationToken)
    {
        try
        {
            try
            {
                return await CheckOnceAsync(node, mySql, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsStaleSession(ex) && !cancellationToken.IsCancellationRequested)
            {
                // The kept session was ended by the server (its idle timeout) or lost: one retry on a fresh connection.
                return await CheckOnceAsync(node, mySql, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (MySqlException ex) when (ex.Number == NotPrepared)
        {
            // The node answered, and its answer is a verdict: wsrep is not ready for clients (not an unreachable node).
            return ClusterNodeHealth.Unhealthy($"error {NotPrepared}: {ex.Message}");
        }
        catch (MySqlException ex) when (ex.ErrorCode == MySqlErrorCode.ServerShutdown)
        {
            // A planned departure (an operator's clean stop): out at once, not after HealthCheckFailureThreshold checks.
            return ClusterNodeHealth.Unhealthy($"server shutdown in progress (error {ex.Number})");
        }
    }

    // ER_UNKNOWN_COM_ERROR, which wsrep uses for "WSREP has not yet prepared node for application use".
    private const int NotPrepared = 1047;

    /// <summary>
    /// Whether a check failed because its kept connection was already gone (the server ended it), not because the node is
    /// unwell. A timeout is not that: a node that does not answer must not be knocked on twice per check.
    /// </summary>
    private static bool IsStaleSession(Exception ex) =>
        ex.Data.Contains(KeptConnectionKey) && ex is not MySqlException { ErrorCode: MySqlErrorCode.CommandTimeoutExpired };

    private const string KeptConnectionKey = "ClusterSql.GaleraHealthProbe.KeptConnection";

    private async ValueTask<ClusterNodeHealth> CheckOnceAsync(ClusterNode node, MySqlDataSource mySql, CancellationToken cancellationToken)
    {
        var connection = _connections.GetOrAdd(node, static (n, cs) => new MySqlConnection(ProbeConnectionString(cs, n.ConnectTimeout)), mySql.ConnectionString);
        var kept = connection.State == System.Data.ConnectionState.Open;
        try
        {
            if (!kept)
            {
                await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
                var setIdle = new MySqlCommand($"SET SESSION wait_timeout = {(int)Math.Clamp(Math.Ceiling(SessionIdleTimeout.TotalSeconds), 1, 31_536_000)}", connection);
                await using (setIdle.ConfigureAwait(false))
                {
                    await setIdle.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
                }
            }

            // The query does not take the check's token. Cancelling a command's token makes MySqlConnector open a second
            // connection and send KILL QUERY, synchronously on the cancelling thread: against a hung or blackholed server
            // that blocks for seconds (the fault tests saw every acquire of the process stall with it). The query is
            // bounded by its command timeout instead, which closes the connection at once (CancellationTimeout=-1), and
            // the probe runner stops waiting at the check timeout anyway.
            var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            List<(string, string, string)>? members = null;
            var readMembers = WantsMemberTable(node);
            var command = new MySqlCommand(readMembers ? Query + ";\n" + MemberTableQuery : Query, connection);
            await using (command.ConfigureAwait(false))
            {
                var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
                    {
                        values[reader.GetString(0)] = reader.IsDBNull(1) ? string.Empty : reader.GetString(1);
                    }

                    if (readMembers)
                    {
                        members = await ReadMembersAsync(node, reader, nextResult: true).ConfigureAwait(false);
                    }
                }
            }

            if (!readMembers && _discovery is not null && !_memberTableUnreadable && Evaluate(values, allowDonor: false).IsHealthy)
            {
                // Ready now, but not at its last check (its first check, or it just joined): the table is asked in a
                // second round trip this once, so that the first view this node gives carries UUIDs and names too.
                var membersCommand = new MySqlCommand(MemberTableQuery, connection);
                await using (membersCommand.ConfigureAwait(false))
                {
                    var reader = await ExecuteMembersAsync(node, membersCommand).ConfigureAwait(false);
                    if (reader is not null)
                    {
                        await using (reader.ConfigureAwait(false))
                        {
                            members = await ReadMembersAsync(node, reader, nextResult: false).ConfigureAwait(false);
                        }
                    }
                }
            }

            var health = Evaluate(values, AllowDonor);
            NoteStatus(node, values);
            health = health.IsHealthy ? _configurations.Check(values) : health;
            if (_discovery is not null && GaleraView.From(values, health.IsHealthy, members) is { } view)
            {
                _discovery.Report(node, view);
            }

            return health.IsHealthy ? WithRoleData(values) : health;
        }
        catch (Exception ex)
        {
            // A broken or cancelled probe connection is not reused.
            if (_connections.TryRemove(new KeyValuePair<ClusterNode, MySqlConnection>(node, connection)))
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }

            if (kept)
            {
                ex.Data[KeptConnectionKey] = true;
            }

            throw;
        }
        finally
        {
            // Disposed, or the node removed, while this check ran: its connection must not outlive the probe or the node.
            if ((_disposed || node.State is ClusterNodeState.Removed or ClusterNodeState.Disposed) &&
                _connections.TryRemove(new KeyValuePair<ClusterNode, MySqlConnection>(node, connection)))
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Whether this check of the node asks for the member table too: discovery is on, the table is readable, and the node's last check said Primary, Synced and ready.</summary>
    internal bool WantsMemberTable(ClusterNode node) =>
        _discovery is not null && !_memberTableUnreadable && _memberTableReady.TryGetValue(node, out var ready) && ready;

    /// <summary>Records whether the node's status rows say it would let the member table be read (Primary, Synced, ready).</summary>
    internal void NoteStatus(ClusterNode node, IReadOnlyDictionary<string, string> values)
    {
        if (_discovery is null)
        {
            return;
        }

        if (node.State is ClusterNodeState.Removed or ClusterNodeState.Disposed)
        {
            _memberTableReady.TryRemove(node, out _);
            return;
        }

        _memberTableReady[node] = Evaluate(values, allowDonor: false).IsHealthy;
    }

    /// <summary>The member table's rows, or null when it cannot be read (then it is not asked for again, unless the node alone refused it).</summary>
    private async Task<List<(string, string, string)>?> ReadMembersAsync(ClusterNode node, MySqlDataReader reader, bool nextResult)
    {
        try
        {
            if (nextResult && !await reader.NextResultAsync(CancellationToken.None).ConfigureAwait(false))
            {
                return null;
            }

            var rows = new List<(string, string, string)>();
            while (await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
            {
                // GetValue, not GetString: MySqlConnector reads node_uuid, a CHAR(36), as a Guid.
                rows.Add((Text(reader, 0), Text(reader, 1), Text(reader, 2)));
            }

            return rows;
        }
        catch (MySqlException ex) when (MemberTableRefused(node, ex))
        {
            return null;
        }

        static string Text(MySqlDataReader reader, int ordinal) =>
            reader.IsDBNull(ordinal) ? string.Empty : Convert.ToString(reader.GetValue(ordinal), CultureInfo.InvariantCulture) ?? string.Empty;
    }

    /// <summary>Runs the member table query alone; null when the table cannot be read (<see cref="MemberTableRefused"/>).</summary>
    private async Task<MySqlDataReader?> ExecuteMembersAsync(ClusterNode node, MySqlCommand command)
    {
        try
        {
            return await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (MySqlException ex) when (MemberTableRefused(node, ex))
        {
            return null;
        }
    }

    /// <summary>
    /// Whether reading the member table failed for a reason that only means "not from here": then it records that reason
    /// and the check goes on with the status rows. Not prepared (1047): this node left the primary component since its
    /// last check; its status rows, already read, give the precise verdict, and the table stays readable on the others.
    /// Access or table missing: the user may not read it anywhere, so it is not asked for again.
    /// </summary>
    private bool MemberTableRefused(ClusterNode node, MySqlException ex)
    {
        if (ex.Number == NotPrepared)
        {
            _memberTableReady[node] = false;
            return true;
        }

        if (ex.ErrorCode is MySqlErrorCode.TableAccessDenied or MySqlErrorCode.NoSuchTable or MySqlErrorCode.DatabaseAccessDenied or MySqlErrorCode.AccessDenied)
        {
            _memberTableUnreadable = true;
            return true;
        }

        return false;
    }

    /// <summary>Closes the probe's connections.</summary>
    /// <returns>A task that completes when they are closed.</returns>
    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        foreach (var node in _connections.Keys)
        {
            if (_connections.TryRemove(node, out var connection))
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Applies the rules to the wsrep values a node reported; null reason when it may serve.</summary>
    internal static ClusterNodeHealth Evaluate(IReadOnlyDictionary<string, string> values, bool allowDonor)
    {
        if (!values.TryGetValue("wsrep_local_state", out var state) || !values.TryGetValue("wsrep_cluster_status", out var status))
        {
            return ClusterNodeHealth.Unhealthy("no wsrep status: the node is not a Galera node, or wsrep is off");
        }

        if (!values.TryGetValue("wsrep_ready", out var ready) || !string.Equals(ready, "ON", StringComparison.OrdinalIgnoreCase))
        {
            return ClusterNodeHealth.Unhealthy($"wsrep_ready is {ready ?? "missing"}, not ON");
        }

        if (!string.Equals(status, "Primary", StringComparison.OrdinalIgnoreCase))
        {
            return ClusterNodeHealth.Unhealthy($"wsrep_cluster_status is {status}, not Primary");
        }

        var localState = int.TryParse(state, NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) ? parsed : -1;
        if (localState != 4 && !(allowDonor && localState == 2))
        {
            return ClusterNodeHealth.Unhealthy($"wsrep_local_state is {state} ({StateName(localState)}), not 4 (Synced){(allowDonor ? " or 2 (Donor)" : string.Empty)}");
        }

        if (values.TryGetValue("wsrep_desync", out var desync) && !string.Equals(desync, "OFF", StringComparison.OrdinalIgnoreCase))
        {
            return ClusterNodeHealth.Unhealthy($"wsrep_desync is {desync}, not OFF");
        }

        if (values.TryGetValue("wsrep_reject_queries", out var reject) && !string.Equals(reject, "NONE", StringComparison.OrdinalIgnoreCase))
        {
            return ClusterNodeHealth.Unhealthy($"wsrep_reject_queries is {reject}, not NONE");
        }

        return ClusterNodeHealth.Healthy;
    }

    /// <summary>
    /// What the roles need from a healthy node: its rank in the group (<c>wsrep_local_index</c>, the same in every client
    /// since every node reports its position in the one membership list), its uptime (a restarted node waits out the
    /// failback delay before it takes writes back), its apply queue (<c>wsrep_local_recv_queue</c>, write sets received
    /// and not yet applied: the lag ProxySQL's max_transactions_behind bounds) and whether it is read-only.
    /// </summary>
    internal static ClusterNodeHealth WithRoleData(IReadOnlyDictionary<string, string> values) => ClusterNodeHealth.Healthy with
    {
        WriterRank = ReadLong(values, "wsrep_local_index"),
        Membership = ReadLong(values, "wsrep_cluster_conf_id"),
        Uptime = ReadLong(values, "uptime") is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
        ReplicationLag = ReadLong(values, "wsrep_local_recv_queue"),
        ReadOnly = values.TryGetValue("read_only", out var readOnly) && (string.Equals(readOnly, "ON", StringComparison.OrdinalIgnoreCase) || readOnly == "1"),
    };

    private static long? ReadLong(IReadOnlyDictionary<string, string> values, string name) =>
        values.TryGetValue(name, out var text) && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;

    /// <summary>
    /// Catches a node with a stale view of the group. A node resumed after a long pause (SIGSTOP, a VM freeze) still
    /// reports Synced, Primary and the old size for a few seconds after the others evicted it, and may acknowledge
    /// commits that the group never sees and that are gone once it rejoins. Its configuration id then lags behind the
    /// one the other nodes of the same cluster report, which is what this tracks.
    /// </summary>
    internal sealed class ConfigurationTracker(TimeProvider timeProvider)
    {
        // How long the newest configuration id is trusted without being seen again: a cluster bootstrapped afresh
        // starts counting again, and must not be held to the old count for ever.
        private static readonly TimeSpan s_memory = TimeSpan.FromSeconds(30);

        private readonly Lock _lock = new();
        private string? _stateUuid;
        private long _confId = -1;
        private DateTimeOffset _seenAt;

        public ClusterNodeHealth Check(IReadOnlyDictionary<string, string> values)
        {
            if (!values.TryGetValue("wsrep_cluster_state_uuid", out var uuid) ||
                !values.TryGetValue("wsrep_cluster_conf_id", out var text) ||
                !long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var confId))
            {
                return ClusterNodeHealth.Healthy;
            }

            var now = timeProvider.GetUtcNow();
            lock (_lock)
            {
                // The newest id of this cluster, refreshed by every node that reports it; anything older is stale.
                if (!string.Equals(uuid, _stateUuid, StringComparison.Ordinal) || confId >= _confId || now - _seenAt > s_memory)
                {
                    _stateUuid = uuid;
                    _confId = confId;
                    _seenAt = now;
                    return ClusterNodeHealth.Healthy;
                }

                return ClusterNodeHealth.Unhealthy($"stale view of the group: wsrep_cluster_conf_id is {confId}, other nodes are at {_confId}");
            }
        }
    }

    private static string StateName(int state) => state switch
    {
        1 => "Joining",
        2 => "Donor/Desynced",
        3 => "Joined",
        4 => "Synced",
        _ => "unknown",
    };

    internal static string ProbeConnectionString(string nodeConnectionString, TimeSpan connectTimeout)
    {
        // Unpooled and kept open by the probe itself: a check must reach the server, not an idle pooled session.
        // Its opens and queries are bounded by MySqlConnector itself, at the node's connect timeout, because until a
        // check returns its node stays down. At the command timeout the connection is closed at once
        // (CancellationTimeout=-1) rather than cancelled with KILL QUERY over a second connection, which a server that
        // stopped answering would not accept either.
        var seconds = (uint)Math.Clamp(Math.Ceiling(connectTimeout.TotalSeconds), 1, 3600);
        var builder = new MySqlConnectionStringBuilder(nodeConnectionString)
        {
            Pooling = false,
            ConnectionReset = false,
            ConnectionTimeout = seconds,
            DefaultCommandTimeout = seconds,
            CancellationTimeout = -1,
        };
        return builder.ConnectionString;
    }
}

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;

namespace ClusterSql.Npgsql;

/// <summary>
/// The PostgreSQL health check for a primary with streaming-replication standbys. It maps the roles of
/// <see cref="ClusterDataSource.Writer"/> and <see cref="ClusterDataSource.Readers"/> onto PostgreSQL: the writer is the
/// primary (<c>pg_is_in_recovery()</c> false), every standby is read-only, and readers skip a standby whose replay lag is
/// above <see cref="ClusterOptions.MaxReaderLag"/> while another node can serve.
/// </summary>
/// <remarks>
/// <para>
/// <b>Replay lag</b> is reported in <b>bytes of WAL</b>: the distance between what the standby has received and what it
/// has replayed, <c>pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())</c>, the unit Patroni's
/// <c>maximum_lag_on_failover</c> and pgpool's <c>delay_threshold</c> use. It was chosen over the time since the last
/// replayed transaction (<c>now() - pg_last_xact_replay_timestamp()</c>) because that one grows without bound on an idle
/// primary: a standby that has replayed everything looks minutes behind when nobody writes. The byte distance is zero
/// then. That distance alone misses WAL the standby never received (a broken or slow receiver), so while this probe has
/// seen the current primary within a few check intervals, the lag is also at least the primary's <c>pg_current_wal_lsn()</c>
/// from its last check minus the standby's replay position, and a standby whose WAL receiver is not <c>streaming</c>
/// (visible with <c>pg_read_all_stats</c>) counts as lagging. A standby that has not streamed since it started (no
/// receive position) reports <see cref="long.MaxValue"/>: nothing says how far behind it is.
/// </para>
/// <para>
/// <b>Two primaries</b> (a standby promoted while the old primary is still up: split brain) never both write. Each
/// promotion starts a new timeline, so the primary on the highest timeline is the current one: a primary's
/// <see cref="ClusterNodeHealth.WriterRank"/> is minus its timeline (the highest timeline ranks first, in every client
/// alike), and a primary on an older timeline than this probe has seen on any node of the same cluster (the same
/// <c>system_identifier</c>: another primary, or a standby's received or checkpoint timeline) is unhealthy
/// ("superseded"): neither a writer nor a reader, since its data has diverged. It is marked down as soon as a newer
/// primary is checked, not only at its own next check. What was seen is never forgotten by time, only when the node that
/// showed it shows an older timeline or another cluster (it was rebuilt). A standby on an older timeline (it still
/// follows, or followed, the replaced primary) reports <see cref="long.MaxValue"/> as its lag, so readers use it only when
/// nothing else can serve.
/// </para>
/// <para>
/// Each node is checked on a dedicated, unpooled connection that is kept between checks (one round trip per check) and
/// replaced after any error. The kept session sets <c>idle_session_timeout</c> (two check intervals and a check timeout)
/// so that a server whose client vanished behind a fault (a blackhole eats the FIN) ends it instead of keeping it for the
/// TCP keepalive time; a kept session that the server ended meanwhile is replaced and the check retried once.
/// </para>
/// </remarks>
public sealed class PostgresHealthProbe : IClusterNodeHealthProbe, IAsyncDisposable
{
    // One round trip. pg_walfile_name() fails during recovery, hence the CASEs (evaluated lazily per row). LSNs as bytes
    // from 0/0. pg_stat_wal_receiver shows its status only to pg_read_all_stats (NULL otherwise) and has no row while no
    // receiver runs.
    internal const string Query =
        "SELECT pg_is_in_recovery(), " +
        "CASE WHEN pg_is_in_recovery() THEN NULL ELSE ('x' || lpad(substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8), 16, '0'))::bit(64)::bigint END, " +
        "extract(epoch FROM now() - pg_postmaster_start_time())::bigint, " +
        "(SELECT system_identifier::text FROM pg_control_system()), " +
        "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint END, " +
        "CASE WHEN pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::bigint END, " +
        "CASE WHEN pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint END, " +
        "(SELECT received_tli::bigint FROM pg_stat_wal_receiver LIMIT 1), " +
        "(SELECT status FROM pg_stat_wal_receiver LIMIT 1), " +
        "(SELECT timeline_id::bigint FROM pg_control_checkpoint())";

    private readonly ConcurrentDictionary<ClusterNode, NpgsqlConnection> _connections = new();
    private readonly TimelineTracker _timelines;
    private readonly ClusterOptions? _options;
    private volatile bool _disposed;

    /// <summary>Creates the probe, for a cluster with the default <see cref="ClusterOptions.HealthCheckInterval"/> and timeout.</summary>
    public PostgresHealthProbe()
        : this(null, TimeProvider.System)
    {
    }

    /// <param name="options">
    /// The cluster's options as the builder holds them (read at each check): the session's idle timeout and how long a
    /// primary's WAL position stays the measure of its standbys follow from its check interval and timeout.
    /// </param>
    /// <param name="timeProvider">The clock for the elapsed time since the primary was seen.</param>
    internal PostgresHealthProbe(ClusterOptions? options, TimeProvider timeProvider)
    {
        _options = options;
        _timelines = new TimelineTracker(timeProvider, () => PrimaryFreshness);
    }

    private TimeSpan Interval => _options?.HealthCheckInterval ?? TimeSpan.FromSeconds(2);

    private TimeSpan CheckTimeout => _options?.HealthCheckTimeout ?? TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long the server keeps the probe's session without a query (its <c>idle_session_timeout</c>): two check
    /// intervals and a check timeout, so that the next check always finds it, whatever the interval.
    /// </summary>
    internal TimeSpan SessionIdleTimeout => (2 * Interval) + CheckTimeout;

    /// <summary>How long a primary's WAL position, from its last check, is what its standbys are measured against.</summary>
    internal TimeSpan PrimaryFreshness => (3 * Interval) + CheckTimeout;

    /// <summary>Lets go of a removed node's kept connection.</summary>
    /// <param name="node">The removed node.</param>
    /// <returns>A task that completes when the connection is closed.</returns>
    public async ValueTask NodeRemovedAsync(ClusterNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        _timelines.Forget(node);
        if (_connections.TryRemove(node, out var connection))
        {
            await DisposeQuietlyAsync(connection).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public async ValueTask<ClusterNodeHealth> CheckAsync(ClusterNode node, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (node.DataSource is not NpgsqlDataSource npgsql)
        {
            return ClusterNodeHealth.Unhealthy("not an Npgsql node: the PostgreSQL check needs an NpgsqlDataSource");
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
        try
        {
            try
            {
                return await CheckOnceAsync(node, npgsql, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsStaleSession(ex) && !cancellationToken.IsCancellationRequested)
            {
                // The kept session was ended by the server (its idle timeout) or lost: one retry on a fresh connection.
                return await CheckOnceAsync(node, npgsql, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (PostgresException ex) when (ex.SqlState is "57P01" or "57P02" or "57P03")
        {
            // admin_shutdown, crash_shutdown, cannot_connect_now (starting up, shutting down, in crash recovery): the
            // server answered, and its answer is a verdict, not an unreachable node.
            return ClusterNodeHealth.Unhealthy($"server not accepting work (SQLSTATE {ex.SqlState})");
        }
    }

    /// <summary>
    /// Whether a check failed because its kept connection was already gone, not because the node is unwell. A timeout is
    /// not that: a node that does not answer must not be knocked on twice per check.
    /// </summary>
    private static bool IsStaleSession(Exception ex) =>
        ex.Data.Contains(KeptConnectionKey) && ex is not TimeoutException && ex.InnerException is not TimeoutException &&
        ex is not PostgresException { SqlState: "57P03" };

    private const string KeptConnectionKey = "ClusterSql.PostgresHealthProbe.KeptConnection";

    private async ValueTask<ClusterNodeHealth> CheckOnceAsync(ClusterNode node, NpgsqlDataSource npgsql, CancellationToken cancellationToken)
    {
        // The check takes the node's kept connection out of the table and owns it until it puts it back: an Npgsql
        // connection is for one user at a time, and disposing one that another thread is opening throws. A check that
        // the runner gave up on (a hung server) may still hold its connection while the next check starts on a new one.
        var kept = _connections.TryRemove(node, out var connection) && connection.State == System.Data.ConnectionState.Open;
        if (!kept)
        {
            await DisposeQuietlyAsync(connection).ConfigureAwait(false);
            connection = CreateProbeConnection(npgsql, node.ConnectTimeout);
        }

        var keep = false;
        try
        {
            if (!kept)
            {
                await connection!.OpenAsync(cancellationToken).ConfigureAwait(false);
                await SetIdleTimeoutAsync(connection).ConfigureAwait(false);
            }

            // The query does not take the check's token: cancelling an Npgsql command opens a second connection to send a
            // cancel request, which a hung or blackholed server would not answer either. The command timeout bounds it
            // (the connection is then broken at once, Cancellation Timeout=-1), and the probe runner stops waiting at the
            // check timeout anyway.
            PostgresStatus status;
            var command = new NpgsqlCommand(Query, connection);
            await using (command.ConfigureAwait(false))
            {
                var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    if (!await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
                    {
                        return ClusterNodeHealth.Unhealthy("the status query returned no row");
                    }

                    status = new PostgresStatus(
                        InRecovery: reader.GetBoolean(0),
                        Timeline: NullableInt64(reader, 1),
                        UptimeSeconds: NullableInt64(reader, 2),
                        SystemIdentifier: reader.IsDBNull(3) ? null : reader.GetString(3),
                        CurrentLsn: NullableInt64(reader, 4),
                        ReceiveLsn: NullableInt64(reader, 5),
                        ReplayLsn: NullableInt64(reader, 6),
                        ReceivedTimeline: NullableInt64(reader, 7),
                        ReceiverStatus: reader.IsDBNull(8) ? null : reader.GetString(8),
                        CheckpointTimeline: NullableInt64(reader, 9));
                }
            }

            keep = true;
            return _timelines.Evaluate(node, status);
        }
        catch (Exception ex)
        {
            if (kept)
            {
                ex.Data[KeptConnectionKey] = true;
            }

            throw;
        }
        finally
        {
            // Kept for the next check only when healthy, and while neither the probe nor the node is gone (their disposal
            // closes only connections that no check holds, so this one is closed here).
            if (!keep || _disposed || node.State is ClusterNodeState.Removed or ClusterNodeState.Disposed || !_connections.TryAdd(node, connection!))
            {
                await DisposeQuietlyAsync(connection).ConfigureAwait(false);
            }
            else if (_disposed && _connections.TryRemove(new KeyValuePair<ClusterNode, NpgsqlConnection>(node, connection!)))
            {
                // Disposed between the check above and the add.
                await DisposeQuietlyAsync(connection).ConfigureAwait(false);
            }
        }
    }

    private static long? NullableInt64(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetInt64(ordinal);

    private static async ValueTask DisposeQuietlyAsync(NpgsqlConnection? connection)
    {
        if (connection is null)
        {
            return;
        }

        try
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is InvalidOperationException or NpgsqlException or System.IO.IOException or ObjectDisposedException)
        {
            // A broken connection's close may fail; there is nothing left to free that the failure would keep.
        }
    }

    private async ValueTask SetIdleTimeoutAsync(NpgsqlConnection connection)
    {
        var milliseconds = (long)Math.Clamp(Math.Ceiling(SessionIdleTimeout.TotalMilliseconds), 1000, int.MaxValue);
        var command = new NpgsqlCommand($"SET idle_session_timeout = {milliseconds}", connection);
        await using (command.ConfigureAwait(false))
        {
            try
            {
                await command.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (PostgresException ex) when (ex.SqlState == "42704")
            {
                // PostgreSQL before 14 has no idle_session_timeout: the session then lives until TCP keepalive ends it.
            }
        }
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
                await DisposeQuietlyAsync(connection).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// A connection of the probe's own for a node. The data source's connection string has no password (Npgsql drops it
    /// unless Persist Security Info is set), so the connection is cloned from one of the data source's: CloneWith keeps
    /// the credentials while the probe's settings replace the rest.
    /// </summary>
    private static NpgsqlConnection CreateProbeConnection(NpgsqlDataSource source, TimeSpan connectTimeout)
    {
        using var template = source.CreateConnection();
        return template.CloneWith(ProbeConnectionString(source.ConnectionString, connectTimeout));
    }

    internal static string ProbeConnectionString(string nodeConnectionString, TimeSpan connectTimeout)
    {
        // Unpooled and kept open by the probe itself: a check must reach the server, not an idle pooled session. Its open
        // and query are bounded by Npgsql itself, at the node's connect timeout, because until a check returns its node
        // stays down; at the command timeout the connection is broken at once rather than cancelled over a second one.
        var seconds = (int)Math.Clamp(Math.Ceiling(connectTimeout.TotalSeconds), 1, 1024);
        var builder = new NpgsqlConnectionStringBuilder(nodeConnectionString)
        {
            Pooling = false,
            Timeout = seconds,
            CommandTimeout = seconds,
            CancellationTimeout = -1,
            Multiplexing = false,
            ApplicationName = "ClusterSql health probe",
        };
        builder.Remove("Target Session Attributes");
        builder.Remove("Load Balance Hosts");
        return builder.ConnectionString;
    }

    /// <summary>What one check read from a node. LSNs are bytes from 0/0.</summary>
    internal readonly record struct PostgresStatus(
        bool InRecovery,
        long? Timeline,
        long? UptimeSeconds,
        string? SystemIdentifier,
        long? CurrentLsn = null,
        long? ReceiveLsn = null,
        long? ReplayLsn = null,
        long? ReceivedTimeline = null,
        string? ReceiverStatus = null,
        long? CheckpointTimeline = null);

    /// <summary>
    /// Turns a node's status into its health and role data. It remembers, per node, the newest timeline the node is
    /// evidence of (a primary's own; a standby's received or checkpoint timeline: a primary reached it), so that a
    /// primary left behind by a promotion is caught even when the new primary is out of reach; and per cluster (system
    /// identifier) the current primary's WAL position, so that a standby is measured against it and not only against
    /// what it happens to have received.
    /// </summary>
    /// <remarks>
    /// Nothing expires by time: an unfenced old primary must never become the writer again because the new one has not
    /// answered for a while. A node's evidence is replaced only by that node's own next report (a lower timeline or
    /// another system identifier: it was rebuilt), or dropped when the node is removed.
    /// </remarks>
    internal sealed class TimelineTracker(TimeProvider timeProvider, Func<TimeSpan> primaryFreshness)
    {
        private readonly Lock _lock = new();
        private readonly Dictionary<ClusterNode, Evidence> _evidence = new();
        private readonly Dictionary<string, (long Lsn, long Timeline, long SeenAt)> _primaryLsn = new(StringComparer.Ordinal);

        /// <summary>The newest timeline a node showed, of which cluster, and whether it was a primary on it.</summary>
        private readonly record struct Evidence(string SystemIdentifier, long Timeline, bool Primary);

        public ClusterNodeHealth Evaluate(ClusterNode node, PostgresStatus status)
        {
            var uptime = status.UptimeSeconds is { } seconds && seconds >= 0 ? TimeSpan.FromSeconds(seconds) : (TimeSpan?)null;
            var own = status.InRecovery ? Max(status.ReceivedTimeline, status.CheckpointTimeline) : status.Timeline;
            long? newest = null;
            long? primaryLsn = null;
            List<(ClusterNode Node, long Timeline)>? superseded = null;
            lock (_lock)
            {
                if (status.SystemIdentifier is { } id && own is { } timeline)
                {
                    _evidence[node] = new Evidence(id, timeline, Primary: !status.InRecovery);
                }
                else
                {
                    _evidence.Remove(node);
                }

                if (status.SystemIdentifier is { } cluster)
                {
                    foreach (var evidence in _evidence.Values)
                    {
                        if (evidence.SystemIdentifier == cluster && (newest is null || evidence.Timeline > newest))
                        {
                            newest = evidence.Timeline;
                        }
                    }

                    var now = timeProvider.GetTimestamp();
                    if (!status.InRecovery && status.Timeline is { } current && current >= newest)
                    {
                        if (status.CurrentLsn is { } lsn)
                        {
                            _primaryLsn[cluster] = (lsn, current, now);
                        }

                        // A primary on an older timeline of the same cluster is flagged now, not at its own next check:
                        // until then a failed open of this primary would fail over to it.
                        foreach (var (other, evidence) in _evidence)
                        {
                            if (other != node && evidence.Primary && evidence.SystemIdentifier == cluster && evidence.Timeline < current)
                            {
                                (superseded ??= []).Add((other, evidence.Timeline));
                            }
                        }
                    }
                    else if (status.InRecovery && _primaryLsn.TryGetValue(cluster, out var primary) && primary.Timeline >= newest &&
                        timeProvider.GetElapsedTime(primary.SeenAt, now) <= primaryFreshness())
                    {
                        primaryLsn = primary.Lsn;
                    }
                }
            }

            if (superseded is not null)
            {
                foreach (var (other, timeline) in superseded)
                {
                    other.MarkDown(SupersededReason(timeline, newest!.Value));
                }
            }

            if (!status.InRecovery)
            {
                if (status.Timeline is { } timeline && newest is { } latest && latest > timeline)
                {
                    return ClusterNodeHealth.Unhealthy(SupersededReason(timeline, latest));
                }

                return ClusterNodeHealth.Healthy with
                {
                    // Highest timeline first: the primary a promotion created outranks the one it replaced, in every client.
                    WriterRank = status.Timeline is { } t ? -t : null,
                    Uptime = uptime,
                    ReplicationLag = 0,
                    ReadOnly = false,
                };
            }

            return ClusterNodeHealth.Healthy with
            {
                Uptime = uptime,
                ReplicationLag = StandbyLag(status, own, newest, primaryLsn),
                ReadOnly = true,
            };
        }

        /// <summary>Forgets a removed node's evidence.</summary>
        public void Forget(ClusterNode node)
        {
            lock (_lock)
            {
                _evidence.Remove(node);
            }
        }

        private static long StandbyLag(PostgresStatus status, long? timeline, long? newest, long? primaryLsn)
        {
            if (status.ReceiveLsn is not { } received || status.ReplayLsn is not { } replayed)
            {
                // Never streamed since it started: nothing says how far behind it is.
                return long.MaxValue;
            }

            if (timeline is { } own && newest is { } latest && own < latest)
            {
                // On (or streaming) a timeline a promotion has replaced: its data stops where that primary's diverged,
                // however small its own receive-replay distance (which freezes when its primary is gone).
                return long.MaxValue;
            }

            if (primaryLsn is not null && status.ReceiverStatus is { } receiver && receiver != "streaming")
            {
                // The primary is up, and this standby is not streaming from it: what it received is all it will have.
                return long.MaxValue;
            }

            var lag = Math.Max(received - replayed, 0);
            if (primaryLsn is { } primary)
            {
                // What it has not even received counts too (a broken or slow receiver).
                lag = Math.Max(lag, primary - replayed);
            }

            return lag;
        }

        private static long? Max(long? x, long? y) => x is null ? y : y is null ? x : Math.Max(x.Value, y.Value);

        private static string SupersededReason(long timeline, long newest) =>
            $"superseded primary: timeline {timeline}, a newer timeline {newest} of the same cluster exists (a standby was promoted)";
    }
}

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
/// then. Its own blind spot: WAL that the standby has not received is not counted, so a standby cut off from its
/// primary (a dead primary, a partition) reports the lag it had when the stream stopped, not how far the primary has
/// moved on since.
/// </para>
/// <para>
/// <b>Two primaries</b> (a standby promoted while the old primary is still up: split brain) never both write. Each
/// promotion starts a new timeline, so the primary on the highest timeline is the current one: a primary's
/// <see cref="ClusterNodeHealth.WriterRank"/> is minus its timeline (the highest timeline ranks first, in every client
/// alike), and a primary on an older timeline than another primary of the same cluster (the same
/// <c>system_identifier</c>) that this probe saw within the last minute is unhealthy ("superseded"): neither a writer nor
/// a reader, since its data has diverged. A standby whose WAL stream comes from such an older timeline (it still follows
/// the old primary) reports <see cref="long.MaxValue"/> as its lag, so readers use it only when nothing else can serve;
/// seeing its stream's timeline needs the <c>pg_read_all_stats</c> (or <c>pg_monitor</c>) role, without which that
/// check is skipped.
/// </para>
/// <para>
/// Each node is checked on a dedicated, unpooled connection that is kept between checks (one round trip per check) and
/// replaced after any error. The kept session sets <c>idle_session_timeout</c> so that a server whose client vanished
/// behind a fault (a blackhole eats the FIN) ends it instead of keeping it for the TCP keepalive time; a kept session
/// that the server ended meanwhile is replaced and the check retried once.
/// </para>
/// </remarks>
public sealed class PostgresHealthProbe : IClusterNodeHealthProbe, IAsyncDisposable
{
    // One round trip. pg_walfile_name() fails during recovery, hence the CASE (evaluated lazily per row).
    internal const string Query =
        "SELECT pg_is_in_recovery(), " +
        "CASE WHEN pg_is_in_recovery() THEN NULL ELSE ('x' || lpad(substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8), 16, '0'))::bit(64)::bigint END, " +
        "CASE WHEN pg_is_in_recovery() THEN GREATEST(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::bigint END, " +
        "(SELECT received_tli::bigint FROM pg_stat_wal_receiver LIMIT 1), " +
        "extract(epoch FROM now() - pg_postmaster_start_time())::bigint, " +
        "(SELECT system_identifier::text FROM pg_control_system())";

    private readonly ConcurrentDictionary<ClusterNode, NpgsqlConnection> _connections = new();
    private readonly TimelineTracker _timelines;
    private volatile bool _disposed;

    /// <summary>Creates the probe.</summary>
    public PostgresHealthProbe()
        : this(TimeProvider.System)
    {
    }

    internal PostgresHealthProbe(TimeProvider timeProvider) => _timelines = new TimelineTracker(timeProvider);

    /// <summary>How long the server keeps the probe's session without a query (its <c>idle_session_timeout</c>). 30 s.</summary>
    internal TimeSpan SessionIdleTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Lets go of a removed node's kept connection.</summary>
    /// <param name="node">The removed node.</param>
    /// <returns>A task that completes when the connection is closed.</returns>
    public async ValueTask NodeRemovedAsync(ClusterNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
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
                        Timeline: reader.IsDBNull(1) ? null : reader.GetInt64(1),
                        ReplayLagBytes: reader.IsDBNull(2) ? null : reader.GetInt64(2),
                        ReceivedTimeline: reader.IsDBNull(3) ? null : reader.GetInt64(3),
                        UptimeSeconds: reader.IsDBNull(4) ? null : reader.GetInt64(4),
                        SystemIdentifier: reader.IsDBNull(5) ? null : reader.GetString(5));
                }
            }

            keep = true;
            return _timelines.Evaluate(status);
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

    /// <summary>What one check read from a node.</summary>
    internal readonly record struct PostgresStatus(
        bool InRecovery, long? Timeline, long? ReplayLagBytes, long? ReceivedTimeline, long? UptimeSeconds, string? SystemIdentifier);

    /// <summary>
    /// Turns a node's status into its health and role data, remembering per cluster (system identifier) the newest
    /// timeline a primary was seen on, so that a primary left behind by a promotion is caught.
    /// </summary>
    internal sealed class TimelineTracker(TimeProvider timeProvider)
    {
        /// <summary>
        /// How long a newer primary's timeline is held against older primaries without that primary being seen again.
        /// Long enough to ride out a few failed checks of the new primary; short enough that a cluster rebuilt from an
        /// older copy (a test harness, a restore) is accepted again without a restart of the client.
        /// </summary>
        internal static readonly TimeSpan Memory = TimeSpan.FromMinutes(1);

        private readonly Lock _lock = new();
        private readonly Dictionary<string, (long Timeline, DateTimeOffset SeenAt)> _newest = new(StringComparer.Ordinal);

        public ClusterNodeHealth Evaluate(PostgresStatus status)
        {
            var uptime = status.UptimeSeconds is { } seconds && seconds >= 0 ? TimeSpan.FromSeconds(seconds) : (TimeSpan?)null;
            var newest = status.SystemIdentifier is { } id ? Observe(id, status.InRecovery ? null : status.Timeline) : null;
            if (!status.InRecovery)
            {
                if (status.Timeline is { } timeline && newest is { } current && current > timeline)
                {
                    return ClusterNodeHealth.Unhealthy($"superseded primary: timeline {timeline}, another primary of the same cluster is on timeline {current} (a standby was promoted)");
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

            var lag = status.ReplayLagBytes;
            if (status.ReceivedTimeline is { } received && newest is { } latest && received < latest)
            {
                // Streams from a primary that a promotion has replaced: its data stops where that primary's diverged.
                lag = long.MaxValue;
            }

            return ClusterNodeHealth.Healthy with
            {
                Uptime = uptime,
                ReplicationLag = lag,
                ReadOnly = true,
            };
        }

        /// <summary>Records a primary's timeline (null for a standby) and returns the newest one remembered for the cluster.</summary>
        private long? Observe(string systemIdentifier, long? primaryTimeline)
        {
            var now = timeProvider.GetUtcNow();
            lock (_lock)
            {
                var known = _newest.TryGetValue(systemIdentifier, out var entry) && now - entry.SeenAt <= Memory;
                if (primaryTimeline is { } timeline && (!known || timeline >= entry.Timeline))
                {
                    _newest[systemIdentifier] = (timeline, now);
                    return timeline;
                }

                return known ? entry.Timeline : null;
            }
        }
    }
}

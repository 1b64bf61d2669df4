using System;
using System.Collections.Concurrent;
using System.Data.Common;
using System.Globalization;
using System.Threading;
using System.Threading.Tasks;
using MySqlConnector;

namespace ClusterSql.MySql;

/// <summary>
/// Read-your-writes on Galera. After a commit the writer session reads its write's GTID (<c>@@last_gtid</c>,
/// <c>WSREP_LAST_WRITTEN_GTID()</c>) and its node's <c>wsrep_last_committed</c>; the position is
/// <c>domain-server-seqno@committed</c>. Before a read, the reader's node waits with
/// <c>WSREP_SYNC_WAIT_UPTO_GTID(gtid, timeout)</c> and until its own <c>wsrep_last_committed</c> reaches the writer's;
/// then a causal barrier (<c>wsrep_sync_wait</c>) runs on a session of ClusterSql's own on that node, which must name
/// the same node as the reader's session.
/// </summary>
/// <remarks>
/// <para>
/// Why three steps. The barrier is what makes the read safe: Galera's causal read waits until the node has applied,
/// and committed, everything the cluster had ordered when it ran, so the write (ordered before its COMMIT returned,
/// before its position was recorded) is visible to any later statement on that node. But MariaDB 10.11 skips
/// <c>wsrep_sync_wait</c> on a session that MySqlConnector's pool reset with COM_RESET_CONNECTION (the reset's session
/// cleanup clears the flag that marks it a client of the cluster; measured: 318 stale reads in 10,000 with it set
/// before each read on default pooled sessions). So the barrier runs on a separate pool of sessions to the same server
/// that are never reset, and the caller's session is left as it was.
/// </para>
/// <para>
/// The GTID wait bounds the wait by <see cref="ClusterOptions.CausalReadTimeout"/> with a clear error and leaves the
/// barrier little to do; the barrier gets what is left of that time (Galera's causal wait heeds no KILL, and its own
/// bound, <c>repl.causal_read_timeout</c>, is 30 s). It runs after the GTID wait, not beside it: beside it, on a node
/// that lags, every read that timed out would leave a barrier waiting on the server.
/// The GTID wait alone is not enough: it returns at once when the node has merely been assigned the GTID, before the
/// commit is visible (measured: 1-4 stale reads in 10,000). The writer's <c>wsrep_last_committed</c> is not enough either: it is
/// the point below which every write set has finished, and a write set committed just before ours may not have
/// finished when it is read (measured: 1 stale read in 30,000-60,000 with four writers and both checks, none with the
/// barrier). The writer's value is kept as an early filter and to order positions. GTIDs agree across nodes only with
/// <c>wsrep_gtid_mode=ON</c> and one <c>wsrep_gtid_domain_id</c>; the binary log gives <c>@@last_gtid</c>.
/// </para>
/// </remarks>
internal sealed class GaleraConsistency : IClusterConsistency
{
    public static readonly GaleraConsistency Instance = new();

    public async ValueTask<string?> ReadLastWriteAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var command = connection.CreateCommand();
        await using (command.ConfigureAwait(false))
        {
            // The session's GTID (the later of @@last_gtid, set when the commit is binlogged, and WSREP_LAST_WRITTEN_GTID())
            // and the node's wsrep_last_committed, the cluster-wide seqno up to which this node has committed: it includes
            // this session's commit, which has returned. See WaitForAsync for why both.
            command.CommandText = "SELECT @@last_gtid, WSREP_LAST_WRITTEN_GTID(); SHOW GLOBAL STATUS LIKE 'wsrep_last_committed'";
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    return null;
                }

                var binlog = Normalize(reader.GetValue(0));
                var wsrep = Normalize(reader.GetValue(1));
                var gtid = binlog is null ? wsrep : wsrep is null ? binlog : Compare(binlog, wsrep) >= 0 ? binlog : wsrep;
                var committed = await reader.NextResultAsync(cancellationToken).ConfigureAwait(false) && await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
                    ? ParseSeqno(reader.GetValue(1))
                    : null;
                return gtid is null ? null : committed is { } seqno ? $"{gtid}@{seqno.ToString(CultureInfo.InvariantCulture)}" : gtid;
            }
        }
    }

    public int Compare(string x, string y)
    {
        var a = Parse(x, nameof(x));
        var b = Parse(y, nameof(y));
        if (a.Committed is { } ca && b.Committed is { } cb)
        {
            return ca.CompareTo(cb);
        }

        // Different domains cannot be ordered; the newer report wins, which a caller treats as "later".
        return a.Domain != b.Domain ? 1 : a.Seqno.CompareTo(b.Seqno);
    }

    public async ValueTask WaitForAsync(DbConnection connection, string position, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var target = Parse(position, nameof(position));
        var deadline = DateTime.UtcNow + timeout;
        var node = await WaitForPositionAsync(connection, target, deadline, position, timeout, cancellationToken).ConfigureAwait(false);
        for (var attempt = 0; ; attempt++)
        {
            var barrier = CreateBarrier(connection);
            try
            {
                await using (barrier.ConfigureAwait(false))
                {
                    await barrier.OpenAsync(cancellationToken).ConfigureAwait(false);
                    var command = CreateBarrierCommand(barrier, deadline);
                    await using (command.ConfigureAwait(false))
                    {
                        CheckSameNode(connection, node, await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false));
                        return;
                    }
                }
            }
            catch (MySqlException ex) when (IsBarrierTimeout(ex))
            {
                throw NotApplied(connection, position, timeout, ex);
            }
            catch (MySqlException ex) when (attempt == 0 && IsDeadSession(ex))
            {
                var pool = CreateBarrier(connection);
                await using (pool.ConfigureAwait(false))
                {
                    await MySqlConnection.ClearPoolAsync(pool).ConfigureAwait(false);
                }
            }
        }
    }

    public void WaitFor(DbConnection connection, string position, TimeSpan timeout)
    {
        var target = Parse(position, nameof(position));
        var deadline = DateTime.UtcNow + timeout;
        var node = WaitForPosition(connection, target, deadline, position, timeout);
        for (var attempt = 0; ; attempt++)
        {
            var barrier = CreateBarrier(connection);
            try
            {
                using (barrier)
                {
                    barrier.Open();
                    using var command = CreateBarrierCommand(barrier, deadline);
                    CheckSameNode(connection, node, command.ExecuteScalar());
                    return;
                }
            }
            catch (MySqlException ex) when (IsBarrierTimeout(ex))
            {
                throw NotApplied(connection, position, timeout, ex);
            }
            catch (MySqlException ex) when (attempt == 0 && IsDeadSession(ex))
            {
                using var pool = CreateBarrier(connection);
                MySqlConnection.ClearPool(pool);
            }
        }
    }

    /// <summary>
    /// The GTID wait and the committed check on the caller's session, within the caller's timeout; returns the node's
    /// <c>wsrep_node_name</c>, which the barrier must report too.
    /// </summary>
    private static async ValueTask<string?> WaitForPositionAsync(DbConnection connection, (long Domain, long Server, long Seqno, long? Committed) target, DateTime deadline, string position, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var command = CreateWait(connection, target, timeout);
        await using (command.ConfigureAwait(false))
        {
            try
            {
                for (var poll = 0; ; poll++)
                {
                    var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                    (long? Committed, string? Node) state;
                    await using (reader.ConfigureAwait(false))
                    {
                        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                        var node = Normalize(reader.GetValue(1));
                        state = (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false) && await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
                            ? ParseSeqno(reader.GetValue(1))
                            : null, node);
                    }

                    if (IsCommitted(target, state.Committed, deadline, connection, position, timeout))
                    {
                        return state.Node;
                    }

                    if (poll == 0)
                    {
                        UsePoll(command);
                    }
                    else if (poll >= ImmediatePolls)
                    {
                        await Task.Delay(1, cancellationToken).ConfigureAwait(false);
                    }
                }
            }
            catch (MySqlException ex) when (ex.ErrorCode == MySqlErrorCode.LockWaitTimeout)
            {
                throw NotApplied(connection, position, timeout, ex);
            }
        }
    }

    private static string? WaitForPosition(DbConnection connection, (long Domain, long Server, long Seqno, long? Committed) target, DateTime deadline, string position, TimeSpan timeout)
    {
        using var command = CreateWait(connection, target, timeout);
        try
        {
            for (var poll = 0; ; poll++)
            {
                long? committed;
                string? node;
                using (var reader = command.ExecuteReader())
                {
                    reader.Read();
                    node = Normalize(reader.GetValue(1));
                    committed = reader.NextResult() && reader.Read() ? ParseSeqno(reader.GetValue(1)) : null;
                }

                if (IsCommitted(target, committed, deadline, connection, position, timeout))
                {
                    return node;
                }

                if (poll == 0)
                {
                    UsePoll(command);
                }
                else if (poll >= ImmediatePolls)
                {
                    Thread.Sleep(1);
                }
            }
        }
        catch (MySqlException ex) when (ex.ErrorCode == MySqlErrorCode.LockWaitTimeout)
        {
            throw NotApplied(connection, position, timeout, ex);
        }
    }

    // After the GTID wait, the commit is at most a few hundred microseconds away: poll at once, a round trip apart (~0.1 ms
    // here), before sleeping a millisecond between polls.
    private const int ImmediatePolls = 20;

    private const string CommittedQuery = "SHOW GLOBAL STATUS LIKE 'wsrep_last_committed'";

    /// <summary>Later polls only read wsrep_last_committed (and the node's name, in the same shape): the GTID wait has returned already.</summary>
    private static void UsePoll(DbCommand command)
    {
        command.Parameters.Clear();
        command.CommandText = "SELECT 0, @@wsrep_node_name; " + CommittedQuery;
    }

    /// <summary>
    /// Whether the node is past the writer's position as far as its own session can tell: its GTID wait returned, and
    /// its wsrep_last_committed has reached the writer's. Neither proves the write visible (see the class remarks); they
    /// do the long part of the waiting, within the caller's timeout, and the barrier after them the rest.
    /// </summary>
    private static bool IsCommitted((long Domain, long Server, long Seqno, long? Committed) target, long? committed, DateTime deadline, DbConnection connection, string position, TimeSpan timeout)
    {
        if (target.Committed is not { } needed || committed is not { } have || have >= needed)
        {
            return true;
        }

        if (DateTime.UtcNow > deadline)
        {
            throw NotApplied(connection, position, timeout, inner: null);
        }

        return false;
    }

    /// <summary>Galera's causal read: returns once the node has committed everything the cluster had ordered, then names the node.</summary>
    private const string BarrierQuery = "SET STATEMENT wsrep_sync_wait=1 FOR SELECT @@wsrep_node_name";

    // The barrier sessions' connection string per caller connection string (as the open connection reports it: without
    // the password unless the caller persists it, which CloneWith carries over). Bounded: one entry per node in practice.
    private static readonly ConcurrentDictionary<string, string> s_barrierConnectionStrings = new(StringComparer.Ordinal);
    private const int MaxBarrierConnectionStrings = 1024;

    /// <summary>
    /// An unopened connection to the same server as <paramref name="connection"/>, with its credentials, from a pool
    /// of sessions that are never reset (so that MariaDB runs <c>wsrep_sync_wait</c> on them). Only the barrier runs on
    /// them, so nothing of a caller's session state can carry over.
    /// </summary>
    /// <exception cref="InvalidOperationException">The connection is not MySqlConnector's: without the barrier a read could be stale.</exception>
    private static MySqlConnection CreateBarrier(DbConnection connection)
    {
        if (connection is not MySqlConnection mySql)
        {
            throw new InvalidOperationException(
                $"Galera causal reads need MySqlConnector connections (the node gave a {connection.GetType().Name}): the final wait runs on a session of ClusterSql's own, opened with the node's connection settings.");
        }

        var key = mySql.ConnectionString;
        if (!s_barrierConnectionStrings.TryGetValue(key, out var barrier))
        {
            barrier = new MySqlConnectionStringBuilder(key)
            {
                // Pooled whatever the caller's choice: a barrier is one short statement, and a physical open per read
                // would cost more than the read. Never reset: the reset is what makes MariaDB skip the causal wait.
                Pooling = true,
                ConnectionReset = false,
                MinimumPoolSize = 0,

                // A command timeout closes the socket rather than send KILL QUERY from MySqlConnector's timer thread
                // (Galera's causal wait does not heed KILL anyway).
                CancellationTimeout = -1,
            }.ConnectionString;
            if (s_barrierConnectionStrings.Count >= MaxBarrierConnectionStrings)
            {
                s_barrierConnectionStrings.Clear();
            }

            s_barrierConnectionStrings[key] = barrier;
        }

        return mySql.CloneWith(barrier);
    }

    /// <summary>The barrier, bounded by what is left of the caller's timeout (at least a second: the command's unit).</summary>
    private static MySqlCommand CreateBarrierCommand(MySqlConnection barrier, DateTime deadline)
    {
        var command = barrier.CreateCommand();
        command.CommandText = BarrierQuery;
        command.CommandTimeout = WholeSeconds(deadline - DateTime.UtcNow);
        return command;
    }

    private static int WholeSeconds(TimeSpan timeout) => (int)Math.Clamp(Math.Ceiling(timeout.TotalSeconds), 1, 3600);

    /// <summary>The barrier ran out of the caller's time (its socket closed), or the provider's causal-read timeout fired.</summary>
    private static bool IsBarrierTimeout(MySqlException error) =>
        error.ErrorCode is MySqlErrorCode.CommandTimeoutExpired or MySqlErrorCode.LockWaitTimeout;

    /// <summary>
    /// A pooled barrier session that died while idle (its node restarted): sessions that are never reset are handed out
    /// without a check, so the first use finds out. The pool is cleared and the barrier tried once more.
    /// </summary>
    private static bool IsDeadSession(MySqlException error) =>
        error.ErrorCode is not (MySqlErrorCode.CommandTimeoutExpired or MySqlErrorCode.QueryInterrupted) &&
        (error.Number == 0 || error.ErrorCode == MySqlErrorCode.UnableToConnectToHost || error.InnerException is System.IO.IOException or System.Net.Sockets.SocketException);

    /// <summary>The barrier must have run on the reader's node; another node's causal read proves nothing about this one.</summary>
    private static void CheckSameNode(DbConnection connection, string? readerNode, object? barrierNode)
    {
        if (readerNode is not null && Normalize(barrierNode) is { } other && !string.Equals(readerNode, other, StringComparison.Ordinal))
        {
            throw new InvalidOperationException(
                $"The causal read's barrier for the node at {connection.DataSource} reached Galera node '{other}', not '{readerNode}': a node's connection string must name one server (not a list, a proxy or a name with several addresses).");
        }
    }

    private static DbCommand CreateWait(DbConnection connection, (long Domain, long Server, long Seqno, long? Committed) target, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var command = connection.CreateCommand();
        command.CommandText = "SELECT WSREP_SYNC_WAIT_UPTO_GTID(@gtid, @timeout), @@wsrep_node_name; " + CommittedQuery;
        AddParameter(command, "@gtid", $"{target.Domain}-{target.Server}-{target.Seqno}".ToString(CultureInfo.InvariantCulture));

        // The server's timeout is in whole seconds; the command's own timeout is a little longer, so the server's clear
        // error (1205) is what the caller sees.
        var seconds = WholeSeconds(timeout);
        AddParameter(command, "@timeout", seconds);
        command.CommandTimeout = seconds + 5;
        return command;
    }

    private static void AddParameter(DbCommand command, string name, object value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value;
        command.Parameters.Add(parameter);
    }

    private static TimeoutException NotApplied(DbConnection connection, string position, TimeSpan timeout, Exception? inner) =>
        new($"The node at {connection.DataSource} did not apply write {position} within {timeout.TotalSeconds:0.###} s: it lags behind the cluster.", inner);

    private static long? ParseSeqno(object? value) =>
        Normalize(value) is { } text && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var seqno) && seqno >= 0 ? seqno : null;

    // The function returns a binary string, which MySqlConnector reads as bytes.
    private static string? Normalize(object? value) => value switch
    {
        null or DBNull => null,
        byte[] bytes => bytes.Length > 0 ? System.Text.Encoding.ASCII.GetString(bytes) : null,
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) is { Length: > 0 } text ? text : null,
    };

    private static bool TryParse(string position, out (long Domain, long Server, long Seqno, long? Committed) parsed)
    {
        parsed = default;
        var at = position.IndexOf('@', StringComparison.Ordinal);
        long? committed = null;
        if (at >= 0)
        {
            if (!long.TryParse(position.AsSpan(at + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var value))
            {
                return false;
            }

            committed = value;
            position = position[..at];
        }

        var parts = position.Split('-');
        if (parts.Length == 3 &&
            long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var domain) &&
            long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var server) &&
            long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var seqno))
        {
            parsed = (domain, server, seqno, committed);
            return true;
        }

        return false;
    }

    private static (long Domain, long Server, long Seqno, long? Committed) Parse(string gtid, string name)
    {
        ArgumentNullException.ThrowIfNull(gtid, name);
        if (TryParse(gtid, out var parsed))
        {
            return parsed;
        }

        // A GTID holds no secret, but a caller may pass anything here: say what is expected, not what was given.
        throw new ArgumentException("A Galera write position is a MariaDB GTID of the form domain-server-seqno (three non-negative integers), optionally followed by @ and the writer's wsrep_last_committed.", name);
    }
}

using System;
using System.Data.Common;
using System.Globalization;
using System.Threading;
using System.Threading.Tasks;
using MySqlConnector;

namespace ClusterSql.MySql;

/// <summary>
/// Read-your-writes on Galera with GTIDs. After a commit, <c>WSREP_LAST_WRITTEN_GTID()</c> names the session's write;
/// before a read, <c>WSREP_SYNC_WAIT_UPTO_GTID(gtid, timeout)</c> makes the reader's node wait until it has applied it.
/// </summary>
/// <remarks>
/// <para>
/// Chosen over <c>wsrep_sync_wait</c>, which MariaDB 10.11 skips on a session that MySqlConnector's pool reset with
/// COM_RESET_CONNECTION (measured here: stale reads with <c>wsrep_sync_wait=7</c> on default pooled sessions), and which
/// also costs a cluster-wide round trip per statement. The GTID wait is one local query per acquire, answered at once
/// when the node has already applied the write, and it is immune to session resets because it is a statement.
/// </para>
/// <para>
/// GTIDs are <c>domain-server-seqno</c>. Galera gives every write of the cluster a seqno in one total order; with
/// <c>wsrep_gtid_mode=ON</c> (and the same <c>wsrep_gtid_domain_id</c> on every node) every node names a write by the
/// same GTID. Two GTIDs of one domain are ordered by seqno.
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
            command.CommandText = "SELECT WSREP_LAST_WRITTEN_GTID()";
            var value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            return Normalize(value);
        }
    }

    public int Compare(string x, string y)
    {
        var a = Parse(x, nameof(x));
        var b = Parse(y, nameof(y));

        // Different domains cannot be ordered; the newer report wins, which a caller treats as "later".
        return a.Domain != b.Domain ? 1 : a.Seqno.CompareTo(b.Seqno);
    }

    public async ValueTask WaitForAsync(DbConnection connection, string position, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var command = CreateWait(connection, position, timeout);
        await using (command.ConfigureAwait(false))
        {
            try
            {
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (MySqlException ex) when (ex.ErrorCode == MySqlErrorCode.LockWaitTimeout)
            {
                throw NotApplied(connection, position, timeout, ex);
            }
        }
    }

    public void WaitFor(DbConnection connection, string position, TimeSpan timeout)
    {
        using var command = CreateWait(connection, position, timeout);
        try
        {
            command.ExecuteNonQuery();
        }
        catch (MySqlException ex) when (ex.ErrorCode == MySqlErrorCode.LockWaitTimeout)
        {
            throw NotApplied(connection, position, timeout, ex);
        }
    }

    private static DbCommand CreateWait(DbConnection connection, string position, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(connection);
        Parse(position, nameof(position));
        var command = connection.CreateCommand();
        command.CommandText = "SELECT WSREP_SYNC_WAIT_UPTO_GTID(@gtid, @timeout)";
        AddParameter(command, "@gtid", position);

        // The server's timeout is in whole seconds; the command's own timeout is a little longer, so the server's clear
        // error (1205) is what the caller sees.
        var seconds = (int)Math.Clamp(Math.Ceiling(timeout.TotalSeconds), 1, 3600);
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

    private static TimeoutException NotApplied(DbConnection connection, string position, TimeSpan timeout, Exception inner) =>
        new($"The node at {connection.DataSource} did not apply write {position} within {timeout.TotalSeconds:0.###} s (WSREP_SYNC_WAIT_UPTO_GTID timed out): it lags behind the cluster.", inner);

    private static string? Normalize(object? value) =>
        value is null or DBNull ? null : Convert.ToString(value, CultureInfo.InvariantCulture) is { Length: > 0 } text ? text : null;

    private static (long Domain, long Server, long Seqno) Parse(string gtid, string name)
    {
        ArgumentNullException.ThrowIfNull(gtid, name);
        var parts = gtid.Split('-');
        if (parts.Length == 3 &&
            long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var domain) &&
            long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var server) &&
            long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var seqno))
        {
            return (domain, server, seqno);
        }

        // A GTID holds no secret, but a caller may pass anything here: say what is expected, not what was given.
        throw new ArgumentException("A Galera write position is a MariaDB GTID of the form domain-server-seqno (three non-negative integers).", name);
    }
}

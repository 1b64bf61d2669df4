using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.Npgsql;
using Npgsql;

namespace ClusterSql.Cli;

/// <summary>A PostgreSQL node as the check read it: its role, timeline, WAL receiver and WAL positions (bytes from 0/0).</summary>
internal sealed record PostgresNodeState(bool Primary, long? Timeline, string? ReceiverStatus, long? CurrentLsn, long? ReplayLsn)
{
    /// <summary>The replay lag in bytes behind the newest primary's WAL position, or null for a primary or when no primary was read.</summary>
    public long? LagBytes { get; set; }

    public string Role => Primary ? "primary" : "standby";

    public string Summary => Primary
        ? string.Create(CultureInfo.InvariantCulture, $"primary, timeline {Timeline?.ToString(CultureInfo.InvariantCulture) ?? "?"}")
        : string.Create(CultureInfo.InvariantCulture, $"standby, timeline {Timeline?.ToString(CultureInfo.InvariantCulture) ?? "?"}, receiver {ReceiverStatus ?? "none"}, lag {(LagBytes is { } lag ? lag + " B" : "?")}");
}

/// <summary>
/// The PostgreSQL side of <c>clustersql check</c>: each node's role as the health probe reads it, and the write through
/// the writer role (the primary: standbys are read-only) read back on every other serving node within a bounded wait.
/// </summary>
internal static class PostgresCheck
{
    /// <summary>How long a standby is given to replay the check's row before the read-back fails.</summary>
    public static readonly TimeSpan ReadBackWait = TimeSpan.FromSeconds(5);

    /// <summary>Unpooled opens of the node (each one a real login), the last of which reads the node's state.</summary>
    public static async Task<List<TimeSpan>> OpenAndReadAsync(NpgsqlDataSource source, CheckCommand.NodeReport report, int opens, CancellationToken cancellationToken)
    {
        // CloneWith keeps the password, which the data source's ConnectionString no longer shows.
        var unpooled = new NpgsqlConnectionStringBuilder(source.ConnectionString) { Pooling = false, Timeout = 3, CommandTimeout = 3, ApplicationName = "clustersql check" };
        using var template = source.CreateConnection();
        var latencies = new List<TimeSpan>();
        for (var i = 0; i < opens; i++)
        {
            var started = Stopwatch.GetTimestamp();
            await using var connection = template.CloneWith(unpooled.ConnectionString);
            await connection.OpenAsync(cancellationToken);
            latencies.Add(Stopwatch.GetElapsedTime(started));
            if (i == opens - 1)
            {
                report.IsGalera = false;
                report.Postgres = await ReadStateAsync(connection, cancellationToken);
                report.GaleraSummary = report.Postgres.Summary;
            }
        }

        return latencies;
    }

    private static async Task<PostgresNodeState> ReadStateAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        // The health probe's own query: the check shows what the probe decides from.
        await using var command = new NpgsqlCommand(PostgresHealthProbe.Query, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            throw new TimeoutException("the status query returned no row");
        }

        var inRecovery = reader.GetBoolean(0);
        long? Int64(int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetInt64(ordinal);
        return new PostgresNodeState(
            Primary: !inRecovery,
            Timeline: inRecovery ? Int64(7) ?? Int64(9) : Int64(1),
            ReceiverStatus: reader.IsDBNull(8) ? null : reader.GetString(8),
            CurrentLsn: Int64(4),
            ReplayLsn: Int64(6));
    }

    /// <summary>Sets each standby's lag against the newest primary position read (the summary text follows).</summary>
    public static void ComputeLag(IReadOnlyList<CheckCommand.NodeReport> reports)
    {
        var primary = reports.Select(r => r.Postgres).Where(p => p is { Primary: true }).Max(p => p!.CurrentLsn);
        foreach (var report in reports)
        {
            if (report.Postgres is { Primary: false } standby)
            {
                standby.LagBytes = primary is { } lsn && standby.ReplayLsn is { } replay ? Math.Max(0, lsn - replay) : null;
                report.GaleraSummary = standby.Summary;
            }
        }
    }

    /// <summary>
    /// Where the check writes and reads back: the first node of the writer order (the node <c>cluster.Writer</c> opens
    /// on), when it serves and is a primary, and every other serving node; null when there is no such writer (the
    /// primary is down, or without the probe the writer role would open on a standby, which refuses writes).
    /// </summary>
    public static (string Writer, IReadOnlyList<string> Readers)? PlanWrite(IReadOnlyList<CheckCommand.NodeReport> serving, IReadOnlyList<string> writerOrder)
    {
        var writer = writerOrder.Count > 0 && serving.Any(r => r.Name == writerOrder[0] && r.Postgres is { Primary: true }) ? writerOrder[0] : null;
        return writer is null ? null : (writer, serving.Where(r => r.Name != writer).Select(r => r.Name).ToList());
    }

    /// <summary>Writes a row through the writer role and reads it back on every other serving node.</summary>
    public static async Task<CheckCommand.Replication> CheckReplicationAsync(ClusterDataSource cluster, List<CheckCommand.NodeReport> serving, CancellationToken cancellationToken)
    {
        var plan = PlanWrite(serving, cluster.Writer.Nodes.Select(n => n.Name).ToList());
        if (plan is not { } target)
        {
            return new CheckCommand.Replication(false, false, null, [], "no writer (the writer role's first node is not a serving primary)",
                "replication: not checked: no writer (the writer role's first node is not a serving primary); the cluster takes no writes through its writer role");
        }

        var id = Guid.NewGuid().ToString("N");
        string writtenOn;
        try
        {
            // Through the writer role, as an application writes: the role opens on the primary it ranks first.
            await using (var connection = await cluster.Writer.OpenNpgsqlConnectionAsync(cancellationToken))
            {
                await using var command = new NpgsqlCommand(
                    "CREATE TABLE IF NOT EXISTS clustersql_check (id text NOT NULL PRIMARY KEY, written_at timestamptz NOT NULL); " +
                    "DELETE FROM clustersql_check WHERE written_at < now() - interval '1 hour'; " +
                    "INSERT INTO clustersql_check VALUES (@id, now()); " +
                    "SELECT inet_server_port()", connection);
                command.Parameters.AddWithValue("id", id);
                var port = await command.ExecuteScalarAsync(cancellationToken);
                writtenOn = NodeOfPort(cluster, port as int?) ?? target.Writer;
            }

            var results = new List<string>();
            var readBack = new List<string>();
            foreach (var name in serving.Select(r => r.Name).Where(n => n != writtenOn))
            {
                var started = Stopwatch.GetTimestamp();
                var found = false;
                while (true)
                {
                    try
                    {
                        await using var connection = await cluster.GetNode(name)!.OpenNpgsqlConnectionAsync(cancellationToken);
                        await using var command = new NpgsqlCommand("SELECT count(*) FROM clustersql_check WHERE id = @id", connection);
                        command.Parameters.AddWithValue("id", id);
                        found = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture) == 1;
                    }
                    catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
                    {
                        // The first check on a cluster also created the table, which the standby has not replayed yet.
                    }

                    // Streaming replication is asynchronous: a standby replays the row shortly after the commit. Polled,
                    // bounded: a standby that has not replayed it within the wait fails the check.
                    if (found || Stopwatch.GetElapsedTime(started) > ReadBackWait)
                    {
                        break;
                    }

                    await Task.Delay(50, cancellationToken);
                }

                if (!found)
                {
                    return new CheckCommand.Replication(true, false, writtenOn, readBack,
                        $"the row written on {writtenOn} is not on {name} after {ReadBackWait.TotalSeconds:0} s");
                }

                readBack.Add(name);
                results.Add($"{name} ({Format.Millis(Stopwatch.GetElapsedTime(started))})");
            }

            return new CheckCommand.Replication(true, true, writtenOn, readBack, null, results.Count == 0
                ? $"replication: ok (a write on {writtenOn} through the writer role; no other serving node to read it back)"
                : $"replication: ok (written on {writtenOn} through the writer role, read back on {string.Join(", ", results)})");
        }
        catch (Exception ex) when (ex is NpgsqlException or ClusterException or TimeoutException)
        {
            // A PostgresException's Message has a line per field (POSITION, DETAIL...): the check prints one line.
            var message = ex is PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : ex.Message.ReplaceLineEndings(" ");
            return new CheckCommand.Replication(true, false, target.Writer, [], $"{ex.GetType().Name}: {message}");
        }
    }

    /// <summary>The node whose connection string names this port (the test nodes differ by port); null when not one.</summary>
    private static string? NodeOfPort(ClusterDataSource cluster, int? port)
    {
        if (port is null)
        {
            return null;
        }

        var matches = cluster.Nodes
            .Where(n => n.DataSource is NpgsqlDataSource s && new NpgsqlConnectionStringBuilder(s.ConnectionString).Port == port)
            .Select(n => n.Name)
            .ToList();
        return matches.Count == 1 ? matches[0] : null;
    }
}

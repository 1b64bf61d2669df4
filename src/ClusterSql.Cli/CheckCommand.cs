using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.MySql;
using MySqlConnector;
using Npgsql;

namespace ClusterSql.Cli;

/// <summary>
/// Validates a cluster the way the Go seed asked its users to do by running its tests: every node reachable, its open
/// latency, its Galera state, and a write through one node read back on every other.
/// </summary>
internal static class CheckCommand
{
    public const int Healthy = 0;
    public const int Degraded = 1;
    public const int Failed = 2;

    private const int OpensPerNode = 5;

    /// <param name="cluster">The cluster to check.</param>
    /// <param name="probed">Whether the cluster has a health probe, whose reports (rank, uptime, lag, read-only) the roles need.</param>
    /// <param name="showRoles">Whether to print the roles (the demo keeps its output as it was).</param>
    /// <param name="json">Print one JSON object (<see cref="CheckJson"/>) instead of text.</param>
    /// <param name="cancellationToken">Stops the check.</param>
    public static async Task<int> RunAsync(ClusterDataSource cluster, bool probed, bool showRoles, CancellationToken cancellationToken, bool json = false)
    {
        var output = json ? TextWriter.Null : Console.Out;
        var discovering = await WaitForDiscoveryAsync(cluster, cancellationToken);
        await output.WriteLineAsync($"clustersql check: {cluster.Nodes.Count} nodes ({string.Join(", ", cluster.Nodes.Select(n => n.Name))})");
        if (discovering)
        {
            var found = cluster.Nodes.Where(n => n.IsDiscovered).Select(n => n.Name).ToList();
            await output.WriteLineAsync(
                $"discovery: {cluster.Nodes.Count - found.Count} listed (seeds), {found.Count} discovered from the cluster's member list" +
                (found.Count == 0 ? string.Empty : $" ({string.Join(", ", found)})"));
            if ((cluster.Probes?.Probe as GaleraHealthProbe)?.Discovery is { Failures: > 0 } discovery)
            {
                await output.WriteLineAsync($"discovery failed {discovery.Failures} time(s); last: {discovery.LastFailure}");
            }
        }

        var reports = new List<NodeReport>();
        foreach (var node in cluster.Nodes)
        {
            reports.Add(await CheckNodeAsync(node, cancellationToken));
        }

        var postgres = reports.Count > 0 && cluster.Nodes.All(n => n.DataSource is NpgsqlDataSource);
        if (postgres)
        {
            PostgresCheck.ComputeLag(reports);
        }

        await output.WriteLineAsync(Table.Render(
            ["node", "source", "reachable", "open p50", "open max", postgres ? "postgres" : "galera", "state", "problem"],
            reports.Select(r => new[]
            {
                r.Name,
                cluster.GetNode(r.Name) is { IsDiscovered: true } ? "discovered" : "listed",
                r.Reachable ? "yes" : "NO",
                r.Reachable ? Format.Millis(r.OpenMedian) : "-",
                r.Reachable ? Format.Millis(r.OpenMax) : "-",
                r.GaleraSummary,
                r.Serves ? "serving" : "NOT SERVING",
                r.Problem ?? (cluster.GetNode(r.Name)?.GetStatistics().DrainReason is { } drained ? "drained: " + drained : string.Empty),
            })));

        var roles = showRoles ? await WriteRolesAsync(cluster, probed, output, cancellationToken) : null;

        var serving = reports.Where(r => r.Serves).ToList();
        var replication = serving.Count > 0
            ? postgres ? await PostgresCheck.CheckReplicationAsync(cluster, serving, cancellationToken) : await CheckReplicationAsync(cluster, serving, cancellationToken)
            : new Replication(Checked: false, Ok: false, WrittenOn: null, ReadBackOn: [], Error: "no node can serve: replication not checked");
        await output.WriteLineAsync(replication.Describe());

        var verdict = serving.Count == 0 || !replication.Ok
            ? Failed
            : serving.Count < reports.Count ? Degraded : Healthy;
        await output.WriteLineAsync(verdict switch
        {
            Healthy => "verdict: HEALTHY (every node serves; a write replicates to every node)",
            Degraded => $"verdict: DEGRADED ({reports.Count - serving.Count} of {reports.Count} nodes not serving; the rest replicate)",
            _ => replication.Checked || serving.Count == 0 ? "verdict: FAILED" : "verdict: FAILED (no node takes writes)",
        });
        if (json)
        {
            await Console.Out.WriteLineAsync(CliJson.Serialize(ToJson(reports, roles, replication, verdict)));
        }

        return verdict;
    }

    /// <summary>The check as <c>--json</c> prints it.</summary>
    internal static CheckJson ToJson(IReadOnlyList<NodeReport> reports, RoleView? roles, Replication replication, int verdict) => new(
        CliJson.Version,
        "check",
        verdict switch { Healthy => "healthy", Degraded => "degraded", _ => "failed" },
        verdict,
        reports.Select(r => new CheckNodeJson(
            r.Name,
            r.Reachable,
            r.Serves,
            r.Reachable ? CliJson.Millis(r.OpenMedian) : null,
            r.Reachable ? CliJson.Millis(r.OpenMax) : null,
            r.IsGalera && r.GaleraState is not null ? new GaleraJson(r.GaleraState, r.GaleraClusterStatus, r.GaleraReady, r.GaleraClusterSize) : null,
            r.Problem,
            r.Postgres is { } pg ? new PostgresJson(pg.Role, pg.Timeline, pg.ReceiverStatus, pg.LagBytes) : null)).ToList(),
        roles is null ? null : new RolesJson(
            // Only a node the check reached can take writes: with none reachable there is no writer to name.
            roles.WriterOrder.Where(name => reports.Any(r => r.Reachable && r.Name == name)).Take(roles.Options.MaxWriters).ToList(),
            roles.WriterOrder,
            roles.ReaderOrder,
            roles.Rows.Select(r => new RoleNodeJson(r.Name, r.Role, r.Rank, r.Priority, r.Uptime?.TotalSeconds, r.Settled, r.Lag, r.ReadOnly)).ToList()),
        new ReplicationJson(replication.Checked, replication.Ok, replication.WrittenOn, replication.ReadBackOn, replication.Error));

    /// <summary>
    /// With discovery on, waits until the member list has settled (the seeds checked, every member found, each new node's
    /// first check done), at most a few check timeouts; returns whether discovery is on.
    /// </summary>
    public static async Task<bool> WaitForDiscoveryAsync(ClusterDataSource cluster, CancellationToken cancellationToken)
    {
        if (cluster.Probes is null || (cluster.Probes.Probe as GaleraHealthProbe)?.Discovery is not { } discovery)
        {
            return false;
        }

        var deadline = Stopwatch.GetTimestamp() + (long)(((cluster.Options.HealthCheckTimeout.TotalSeconds * 3) + 1) * Stopwatch.Frequency);
        var stableSince = Stopwatch.GetTimestamp();
        var count = cluster.Nodes.Count;
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (cluster.Nodes.Count != count)
            {
                count = cluster.Nodes.Count;
                stableSince = Stopwatch.GetTimestamp();
            }

            var waiting = cluster.Nodes.Any(n => n.GetStatistics().DownReason?.StartsWith("discovered:", StringComparison.Ordinal) == true);
            if (discovery.AppliedViews > 0 && !waiting && Stopwatch.GetElapsedTime(stableSince) > TimeSpan.FromMilliseconds(500))
            {
                break;
            }

            await Task.Delay(50, cancellationToken);
        }

        return true;
    }

    /// <summary>
    /// The roles every client computes from the probe's data: the writer and why, the writer and reader orders, and the
    /// data per node. Informational: the verdict (and so the exit code) is the same as without roles.
    /// </summary>
    private static async Task<RoleView> WriteRolesAsync(ClusterDataSource cluster, bool probed, TextWriter output, CancellationToken cancellationToken)
    {
        if (probed)
        {
            // The probe checks every node at once when the cluster is built; a node it cannot reach gives no report
            // within its timeout, so wait for that long at most rather than for ever.
            var deadline = Stopwatch.GetTimestamp() + (long)((cluster.Options.HealthCheckTimeout.TotalSeconds + 0.5) * Stopwatch.Frequency);
            while (Stopwatch.GetTimestamp() < deadline && !cluster.Nodes.All(Reported))
            {
                await Task.Delay(50, cancellationToken);
            }
        }

        var view = RoleView.Of(cluster);
        await output.WriteLineAsync(probed
            ? "roles (what every client computes from the probe's data):"
            : "roles (no health probe: no rank, uptime or lag; the writer is the first node by priority and declared order):");
        foreach (var line in view.Explain())
        {
            await output.WriteLineAsync("  " + line);
        }

        await output.WriteLineAsync(Table.Render(RoleView.Header, view.Table()));
        return view;

        static bool Reported(ClusterNode node)
        {
            var statistics = node.GetStatistics();
            return statistics.Uptime is not null || statistics.State is ClusterNodeState.Down;
        }
    }

    private static async Task<NodeReport> CheckNodeAsync(ClusterNode node, CancellationToken cancellationToken)
    {
        var report = new NodeReport(node.Name);
        if (node.DataSource is NpgsqlDataSource npgsql)
        {
            try
            {
                return Measured(report, await PostgresCheck.OpenAndReadAsync(npgsql, report, OpensPerNode, cancellationToken));
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                report.Problem = $"{ex.GetType().Name}: {(ex is PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : ex.Message.ReplaceLineEndings(" "))}";
                return report;
            }
        }

        if (node.DataSource is not MySqlDataSource mySql)
        {
            report.Problem = "not a MySqlConnector or Npgsql node";
            return report;
        }

        // Unpooled opens, so that each one is a real login and its latency is the node's.
        var unpooled = new MySqlConnectionStringBuilder(mySql.ConnectionString) { Pooling = false, ConnectionTimeout = 3 }.ConnectionString;
        var latencies = new List<TimeSpan>();
        try
        {
            for (var i = 0; i < OpensPerNode; i++)
            {
                var started = Stopwatch.GetTimestamp();
                await using var connection = new MySqlConnection(unpooled);
                await connection.OpenAsync(cancellationToken);
                latencies.Add(Stopwatch.GetElapsedTime(started));
                if (i == OpensPerNode - 1)
                {
                    await ReadGaleraAsync(connection, report, cancellationToken);
                }
            }
        }
        catch (Exception ex) when (ex is MySqlException or TimeoutException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            report.Problem = $"{ex.GetType().Name}: {ex.Message}";
            return report;
        }

        return Measured(report, latencies);
    }

    private static NodeReport Measured(NodeReport report, List<TimeSpan> latencies)
    {
        latencies.Sort();
        report.Reachable = true;
        report.OpenMedian = latencies[latencies.Count / 2];
        report.OpenMax = latencies[^1];
        return report;
    }

    private static async Task ReadGaleraAsync(MySqlConnection connection, NodeReport report, CancellationToken cancellationToken)
    {
        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        await using (var command = new MySqlCommand(GaleraHealthProbe.Query + " UNION ALL SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN ('WSREP_CLUSTER_SIZE', 'WSREP_LOCAL_STATE_COMMENT')", connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                values[reader.GetString(0)] = reader.IsDBNull(1) ? string.Empty : reader.GetString(1);
            }
        }

        if (!values.ContainsKey("wsrep_local_state"))
        {
            report.GaleraSummary = "not Galera";
            report.IsGalera = false;
            return;
        }

        report.GaleraState = values.GetValueOrDefault("wsrep_local_state_comment");
        report.GaleraClusterStatus = values.GetValueOrDefault("wsrep_cluster_status");
        report.GaleraReady = values.GetValueOrDefault("wsrep_ready");
        report.GaleraClusterSize = long.TryParse(values.GetValueOrDefault("wsrep_cluster_size"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var size) ? size : null;

        report.GaleraSummary = string.Create(CultureInfo.InvariantCulture,
            $"{values.GetValueOrDefault("wsrep_local_state_comment", "?")}, {values.GetValueOrDefault("wsrep_cluster_status", "?")}, ready {values.GetValueOrDefault("wsrep_ready", "?")}, size {values.GetValueOrDefault("wsrep_cluster_size", "?")}");
        var health = GaleraHealthProbe.Evaluate(values, allowDonor: false);
        if (!health.IsHealthy)
        {
            report.Problem = health.Reason;
        }
    }

    /// <summary>Writes a row through the first serving node and reads it back on every other one (read-your-writes).</summary>
    private static async Task<Replication> CheckReplicationAsync(ClusterDataSource cluster, List<NodeReport> serving, CancellationToken cancellationToken)
    {
        var id = Guid.NewGuid().ToString("N");
        var writer = cluster.GetNode(serving[0].Name)!;
        try
        {
            await using (var connection = (MySqlConnection)await writer.OpenConnectionAsync(cancellationToken))
            await using (var command = new MySqlCommand(
                "CREATE TABLE IF NOT EXISTS clustersql_check (id VARCHAR(40) NOT NULL PRIMARY KEY, written_at DATETIME(6) NOT NULL); " +
                "DELETE FROM clustersql_check WHERE written_at < NOW(6) - INTERVAL 1 HOUR; " +
                "INSERT INTO clustersql_check VALUES (@id, NOW(6))", connection))
            {
                command.Parameters.AddWithValue("@id", id);
                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            var results = new List<string>();
            var readBack = new List<string>();
            var galera = serving.All(s => s.IsGalera);
            foreach (var reader in serving.Skip(1))
            {
                var started = Stopwatch.GetTimestamp();

                // A fresh session, not a pooled one: MariaDB skips wsrep_sync_wait on a session that MySqlConnector reset
                // for reuse (measured here; see README, "Reading your own writes on Galera"), and the read-back would
                // then race replication.
                var node = (MySqlDataSource)cluster.GetNode(reader.Name)!.DataSource;
                await using var connection = new MySqlConnection(new MySqlConnectionStringBuilder(node.ConnectionString) { Pooling = false }.ConnectionString);
                await connection.OpenAsync(cancellationToken);
                await using var command = new MySqlCommand((galera ? "SET SESSION wsrep_sync_wait=1; " : string.Empty) + "SELECT COUNT(*) FROM clustersql_check WHERE id = @id", connection);
                command.Parameters.AddWithValue("@id", id);
                var found = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
                if (found != 1)
                {
                    return new Replication(true, false, writer.Name, readBack, $"the row written on {writer.Name} is not on {reader.Name}");
                }

                readBack.Add(reader.Name);
                results.Add($"{reader.Name} ({Format.Millis(Stopwatch.GetElapsedTime(started))})");
            }

            return new Replication(true, true, writer.Name, readBack, null, results.Count == 0
                ? $"replication: ok (a write on {writer.Name}; no other serving node to read it back)"
                : $"replication: ok (written on {writer.Name}, read back on {string.Join(", ", results)})");
        }
        catch (Exception ex) when (ex is MySqlException or ClusterException or TimeoutException)
        {
            return new Replication(true, false, writer.Name, [], $"{ex.GetType().Name}: {ex.Message}");
        }
    }

    /// <summary>The write-and-read-back check: whether it ran, whether it passed, where, and the text line it prints.</summary>
    internal sealed record Replication(bool Checked, bool Ok, string? WrittenOn, IReadOnlyList<string> ReadBackOn, string? Error, string? Text = null)
    {
        public string Describe() => Text ?? (Checked ? $"replication: FAILED: {Error}" : Error ?? "replication: not checked");
    }

    internal sealed class NodeReport(string name)
    {
        public string Name { get; } = name;

        public bool Reachable { get; set; }

        public bool IsGalera { get; set; } = true;

        public TimeSpan OpenMedian { get; set; }

        public TimeSpan OpenMax { get; set; }

        public string GaleraSummary { get; set; } = "-";

        public string? GaleraState { get; set; }

        public string? GaleraClusterStatus { get; set; }

        public string? GaleraReady { get; set; }

        public long? GaleraClusterSize { get; set; }

        /// <summary>A PostgreSQL node's state as read by the check; null for another server or one not reached.</summary>
        public PostgresNodeState? Postgres { get; set; }

        public string? Problem { get; set; }

        public bool Serves => Reachable && Problem is null;
    }
}

using System;
using System.Globalization;
using System.Threading.Tasks;
using MySqlConnector;

namespace ClusterSql.Benchmarks.Load;

/// <summary>A node's <c>Connections</c> and <c>Aborted_connects</c> status counters.</summary>
internal readonly record struct ServerCounters(long Connections, long AbortedConnects)
{
    /// <summary>
    /// Reads the counters over the node's unix socket (so a blackholed TCP port does not matter), on a connection of
    /// its own that the Connections counter already includes; null when the node does not answer (hung, crashed).
    /// </summary>
    public static async Task<ServerCounters?> ReadAsync(int node)
    {
        try
        {
            await using var connection = new MySqlConnection(TestCluster.SocketConnectionString(node));
            await connection.OpenAsync().WaitAsync(TimeSpan.FromSeconds(3));
            await using var command = new MySqlCommand("SHOW GLOBAL STATUS WHERE Variable_name IN ('Connections', 'Aborted_connects')", connection);
            await using var reader = await command.ExecuteReaderAsync();
            long connections = -1, aborted = -1;
            while (await reader.ReadAsync())
            {
                var value = long.Parse(reader.GetString(1), CultureInfo.InvariantCulture);
                if (string.Equals(reader.GetString(0), "Connections", StringComparison.OrdinalIgnoreCase))
                {
                    connections = value;
                }
                else
                {
                    aborted = value;
                }
            }

            return connections < 0 ? null : new ServerCounters(connections, aborted);
        }
        catch (Exception ex) when (ex is MySqlException or TimeoutException or System.IO.IOException or OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Connections that others opened between two reads: the later read's own connection is not one of them.</summary>
    public static long OpenedBetween(ServerCounters before, ServerCounters after) => after.Connections - before.Connections - 1;
}

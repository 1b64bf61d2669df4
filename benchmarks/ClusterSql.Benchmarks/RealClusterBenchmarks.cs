using System;
using System.Data.Common;
using System.Threading.Tasks;
using BenchmarkDotNet.Attributes;
using ClusterSql.MySql;
using MySqlConnector;

namespace ClusterSql.Benchmarks;

/// <summary>
/// Open + <c>SELECT 1</c> + close against the real three-node Galera cluster on loopback (tests/cluster/cluster.sh up),
/// unpooled, pooled, and pooled without MySqlConnector's session reset: MySqlConnector to one node directly (the
/// baseline), ClusterSql over the three nodes, and MySqlConnector's own multi-host balancing over the same nodes. Healthy cluster only: faults belong to the load tool.
/// </summary>
/// <remarks>
/// MySqlConnector supports only FailOver and Random without pooling: an unpooled <c>LoadBalance=RoundRobin</c> open
/// goes to the first reachable host, exactly like FailOver (its MySqlConnection.CreateSessionAsync).
/// </remarks>
[MemoryDiagnoser]
public class RealClusterBenchmarks
{
    private const int ConnectTimeoutSeconds = 3;

    private MySqlDataSource _direct = null!;
    private ClusterDataSource _clusterSql = null!;
    private ClusterDataSource _clusterSqlRace = null!;
    private MySqlDataSource _roundRobin = null!;
    private MySqlDataSource _failOver = null!;

    /// <summary>Unpooled; pooled with MySqlConnector's default session reset on every open; pooled without it.</summary>
    public enum PoolingMode
    {
        Unpooled,
        Pooled,
        PooledNoReset,
    }

    [Params(PoolingMode.Unpooled, PoolingMode.Pooled, PoolingMode.PooledNoReset)]
    public PoolingMode Pooling { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var pooled = Pooling != PoolingMode.Unpooled;

        // Without the reset a pooled MySqlConnector open completes in-process, so ClusterSql can take its fast path.
        var extra = Pooling == PoolingMode.PooledNoReset ? ";Connection Reset=false" : string.Empty;
        _direct = new MySqlDataSource(TestCluster.NodeConnectionString(1, pooled, ConnectTimeoutSeconds) + extra);
        _clusterSql = BuildCluster(AcquirePolicy.LatencyAware, pooled, extra);
        _clusterSqlRace = BuildCluster(AcquirePolicy.Race, pooled, extra);
        _roundRobin = new MySqlDataSource(TestCluster.MultiHostConnectionString("RoundRobin", pooled, ConnectTimeoutSeconds) + extra);
        _failOver = new MySqlDataSource(TestCluster.MultiHostConnectionString("FailOver", pooled, ConnectTimeoutSeconds) + extra);

        // Fail at once, with the reason, when the cluster is not up, rather than after a run of timeouts.
        foreach (var source in new DbDataSource[] { _direct, _clusterSql, _roundRobin })
        {
            try
            {
                OpenSelectClose(source).AsTask().GetAwaiter().GetResult();
            }
            catch (Exception ex) when (ex is DbException or TimeoutException)
            {
                throw new InvalidOperationException("The Galera test cluster is not reachable on 127.0.0.21-23:3306; run 'tests/cluster/cluster.sh up' as root first.", ex);
            }
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _direct.Dispose();
        _clusterSql.Dispose();
        _clusterSqlRace.Dispose();
        _roundRobin.Dispose();
        _failOver.Dispose();
    }

    [Benchmark(Baseline = true, Description = "MySqlConnector, galera1 directly")]
    public ValueTask Direct() => OpenSelectClose(_direct);

    [Benchmark(Description = "ClusterSql LatencyAware")]
    public ValueTask ClusterSqlLatencyAware() => OpenSelectClose(_clusterSql);

    [Benchmark(Description = "ClusterSql Race (the Go seed)")]
    public ValueTask ClusterSqlRace() => OpenSelectClose(_clusterSqlRace);

    [Benchmark(Description = "MySqlConnector multi-host RoundRobin")]
    public ValueTask MultiHostRoundRobin() => OpenSelectClose(_roundRobin);

    [Benchmark(Description = "MySqlConnector multi-host FailOver")]
    public ValueTask MultiHostFailOver() => OpenSelectClose(_failOver);

    internal static ClusterDataSource BuildCluster(AcquirePolicy policy, bool pooled, string extra)
    {
        var builder = new ClusterDataSourceBuilder().UsePolicy(policy);
        builder.Options.ConnectTimeout = TimeSpan.FromSeconds(ConnectTimeoutSeconds);
        for (var node = 1; node <= TestCluster.NodeCount; node++)
        {
            builder.AddMySqlNode(TestCluster.NodeName(node), TestCluster.NodeConnectionString(node, pooled, ConnectTimeoutSeconds) + extra);
        }

        return builder.Build();
    }

    private static async ValueTask OpenSelectClose(DbDataSource source)
    {
        var connection = await source.OpenConnectionAsync();
        await using (connection)
        {
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT 1";
            await command.ExecuteScalarAsync();
        }
    }
}

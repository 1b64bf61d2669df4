using System.Data.Common;
using System.Threading.Tasks;
using BenchmarkDotNet.Attributes;
using ClusterSql.Benchmarks.Fakes;

namespace ClusterSql.Benchmarks;

/// <summary>
/// What the cluster adds to one acquire + release: the same synchronous, allocation-free in-process backend opened
/// directly (the baseline) and through a <see cref="ClusterDataSource"/> of 1, 3 or 5 such nodes, per policy.
/// </summary>
/// <remarks>
/// Every node completes its open synchronously, so the latency-aware, fail-over and round-robin policies stay on the
/// acquire's fast path (DESIGN.md, "The acquire path", step 4). Race starts every node by design, so it always takes
/// the slow path and allocates (every node's open, the order of the candidates): that is its cost, not a defect.
/// </remarks>
[MemoryDiagnoser]
public class CoreOverheadBenchmarks
{
    private SyncDataSource _direct = null!;
    private ClusterDataSource _latencyAware = null!;
    private ClusterDataSource _race = null!;
    private ClusterDataSource _failOver = null!;
    private ClusterDataSource _roundRobin = null!;

    [Params(1, 3, 5)]
    public int Nodes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _direct = new SyncDataSource("direct");
        _latencyAware = Build(AcquirePolicy.LatencyAware, Nodes);
        _race = Build(AcquirePolicy.Race, Nodes);
        _failOver = Build(AcquirePolicy.FailOver, Nodes);
        _roundRobin = Build(AcquirePolicy.RoundRobin, Nodes);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _direct.Dispose();
        _latencyAware.Dispose();
        _race.Dispose();
        _failOver.Dispose();
        _roundRobin.Dispose();
    }

    [Benchmark(Baseline = true, Description = "Direct backend")]
    public ValueTask Direct() => AcquireRelease(_direct);

    [Benchmark]
    public ValueTask LatencyAware() => AcquireRelease(_latencyAware);

    [Benchmark]
    public ValueTask FailOver() => AcquireRelease(_failOver);

    [Benchmark]
    public ValueTask RoundRobin() => AcquireRelease(_roundRobin);

    [Benchmark]
    public ValueTask Race() => AcquireRelease(_race);

    internal static ClusterDataSource Build(AcquirePolicy policy, int nodes) =>
        FakeDataSource.Cluster(policy, nodes, static name => new SyncDataSource(name));

    private static async ValueTask AcquireRelease(DbDataSource source)
    {
        var connection = await source.OpenConnectionAsync();
        await connection.DisposeAsync();
    }
}

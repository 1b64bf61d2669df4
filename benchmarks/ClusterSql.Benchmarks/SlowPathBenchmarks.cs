using System.Data.Common;
using System.Threading.Tasks;
using BenchmarkDotNet.Attributes;
using ClusterSql.Benchmarks.Fakes;

namespace ClusterSql.Benchmarks;

/// <summary>
/// What the cluster adds when the backend's open completes asynchronously (every unpooled open, and every pooled
/// MySqlConnector open with its default session reset): the acquire's slow path, with its pooled operation and attempt,
/// and the timer for a hedge or a connect timeout. The baseline is the same asynchronous backend opened
/// directly; it too pays one thread-pool hop (<c>Task.Yield</c>) and its own async state machine.
/// </summary>
[MemoryDiagnoser]
public class SlowPathBenchmarks
{
    private AsyncDataSource _direct = null!;
    private ClusterDataSource _latencyAware = null!;
    private ClusterDataSource _failOver = null!;

    [Params(1, 3)]
    public int Nodes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _direct = new AsyncDataSource("direct");
        _latencyAware = Build(AcquirePolicy.LatencyAware, Nodes);
        _failOver = Build(AcquirePolicy.FailOver, Nodes);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _direct.Dispose();
        _latencyAware.Dispose();
        _failOver.Dispose();
    }

    [Benchmark(Baseline = true, Description = "Direct async backend")]
    public Task Direct() => AcquireRelease(_direct);

    [Benchmark]
    public Task LatencyAware() => AcquireRelease(_latencyAware);

    [Benchmark]
    public Task FailOver() => AcquireRelease(_failOver);

    private static ClusterDataSource Build(AcquirePolicy policy, int nodes) =>
        FakeDataSource.Cluster(policy, nodes, static name => new AsyncDataSource(name));

    private static async Task AcquireRelease(DbDataSource source)
    {
        var connection = await source.OpenConnectionAsync();
        await connection.DisposeAsync();
    }
}

using System.Data.Common;
using System.Linq;
using System.Threading;
using BenchmarkDotNet.Attributes;
using ClusterSql.Benchmarks.Fakes;

namespace ClusterSql.Benchmarks;

/// <summary>
/// The slow path's own work: the same acquire as <see cref="SlowPathBenchmarks"/> (the backend's open completes
/// asynchronously, so the cluster runs its pooled operation, attempt and drains), but the backend completes the open on
/// the benchmark's own thread (<see cref="PendingDataSource"/>), so no thread-pool hand-off is measured. The baseline is
/// the same backend opened directly: a pending open completed at once.
/// </summary>
[MemoryDiagnoser]
public class SlowPathWorkBenchmarks
{
    private PendingDataSource _direct = null!;
    private ClusterDataSource _latencyAware = null!;
    private ClusterDataSource _failOver = null!;
    private PendingDataSource[] _latencyAwareNodes = null!;
    private PendingDataSource[] _failOverNodes = null!;

    [Params(1, 3)]
    public int Nodes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _direct = new PendingDataSource("direct");
        (_latencyAware, _latencyAwareNodes) = Build(AcquirePolicy.LatencyAware, Nodes);
        (_failOver, _failOverNodes) = Build(AcquirePolicy.FailOver, Nodes);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _direct.Dispose();
        _latencyAware.Dispose();
        _failOver.Dispose();
    }

    [Benchmark(Baseline = true, Description = "Direct pending backend")]
    public void Direct() => AcquireRelease(_direct, [_direct]);

    [Benchmark]
    public void LatencyAware() => AcquireRelease(_latencyAware, _latencyAwareNodes);

    [Benchmark]
    public void FailOver() => AcquireRelease(_failOver, _failOverNodes);

    private static (ClusterDataSource Cluster, PendingDataSource[] Nodes) Build(AcquirePolicy policy, int nodes)
    {
        var backends = Enumerable.Range(1, nodes).Select(i => new PendingDataSource("node" + i)).ToArray();
        var next = 0;
        return (FakeDataSource.Cluster(policy, nodes, _ => backends[next++]), backends);
    }

    private static void AcquireRelease(DbDataSource source, PendingDataSource[] backends)
    {
        var acquire = source.OpenConnectionAsync();
        foreach (var backend in backends)
        {
            backend.CompletePending();
        }

        // Completed by now on this thread, unless a drain of the cluster's own timer was running on the thread pool at
        // that moment (it then completes the acquire): wait for it without blocking a thread-pool thread.
        var spin = default(SpinWait);
        while (!acquire.IsCompleted)
        {
            spin.SpinOnce();
        }

        acquire.GetAwaiter().GetResult().Dispose();
    }
}

using System;
using System.Data.Common;
using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using ClusterSql.Benchmarks.Fakes;
using ClusterSql.Core;

namespace ClusterSql.Benchmarks;

/// <summary>
/// Where the latency-aware fast path spends its time: each step it takes, alone, on three in-process nodes. The sum
/// of the parts is roughly the cluster's overhead over the direct backend in <see cref="CoreOverheadBenchmarks"/>.
/// </summary>
[MemoryDiagnoser]
public class FastPathPartsBenchmarks
{
    private SyncDataSource _direct = null!;
    private ClusterDataSource _cluster = null!;
    private ClusterNode[] _nodes = null!;
    private NodeSelector _selector = null!;
    private CancellationPool _cancellations = null!;
    private HedgeBudget _hedgeBudget = null!;

    [GlobalSetup]
    public void Setup()
    {
        _direct = new SyncDataSource("direct");
        _cluster = CoreOverheadBenchmarks.Build(AcquirePolicy.LatencyAware, 3);
        _nodes = [.. _cluster.Nodes];
        var options = new ClusterOptions();
        _selector = new NodeSelector(options, TimeProvider.System, Random.Shared);
        _cancellations = new CancellationPool(TimeProvider.System);
        _hedgeBudget = new HedgeBudget(options.HedgeBudget);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _direct.Dispose();
        _cluster.Dispose();
    }

    [Benchmark(Baseline = true, Description = "Direct backend open")]
    public DbConnection DirectOpen() => _direct.OpenConnectionAsync().Result;

    [Benchmark(Description = "Timestamp (once per acquire)")]
    public long Timestamp() => Stopwatch.GetTimestamp();

    [Benchmark(Description = "Coarse tick count (twice per acquire)")]
    public long CoarseTickCount() => Environment.TickCount64;

    [Benchmark(Description = "Hedge budget deposit")]
    public void HedgeDeposit() => _hedgeBudget.Deposit();

    [Benchmark(Description = "Pick first (two choices), its clock read included")]
    public ClusterNode? PickFirst() => _selector.PickFirst(_nodes, Stopwatch.GetTimestamp(), payFrom: null, out _);

    [Benchmark(Description = "Connect-timeout source rent + return")]
    public void TimeoutRentReturn()
    {
        var timeout = _cancellations.Rent();
        _cancellations.Return(timeout);
    }

    [Benchmark(Description = "Node begin + complete attempt (fast win)")]
    public bool BeginComplete()
    {
        var node = _nodes[0];
        var start = node.BeginAttempt(isHedge: false, Stopwatch.GetTimestamp());
        var coarseStart = Environment.TickCount64;
        return node.CompleteFastWin(start, coarseStart, _direct.OpenConnectionAsync().Result);
    }

    [Benchmark(Description = "Whole acquire + release (latency-aware)")]
    public void WholeAcquire()
    {
        var connection = _cluster.OpenConnectionAsync().Result;
        connection.Dispose();
    }
}

using System;
using System.Data.Common;
using System.Diagnostics;
using System.Threading;
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
    private CancellationTokenSource _notFired = null!;

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
        _notFired = new CancellationTokenSource();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _direct.Dispose();
        _cluster.Dispose();
        _notFired.Dispose();
    }

    [Benchmark(Baseline = true, Description = "Direct backend open")]
    public DbConnection DirectOpen() => _direct.OpenConnectionAsync().Result;

    [Benchmark(Description = "Timestamp (x2 per acquire)")]
    public long Timestamp() => Stopwatch.GetTimestamp();

    [Benchmark(Description = "Hedge budget deposit")]
    public void HedgeDeposit() => _hedgeBudget.Deposit();

    [Benchmark(Description = "Pick first (two choices)")]
    public ClusterNode? PickFirst() => _selector.PickFirst(_nodes, Stopwatch.GetTimestamp(), out _);

    [Benchmark(Description = "Connect-timeout source rent + return")]
    public void TimeoutRentReturn()
    {
        var timeout = _cancellations.Rent();
        _cancellations.Return(timeout);
    }

    [Benchmark(Description = "Node begin + complete attempt")]
    public DbConnection? BeginComplete()
    {
        var node = _nodes[0];
        DbConnection? connection = _direct.OpenConnectionAsync().Result;
        var start = node.BeginAttempt(isHedge: false);
        node.CompleteAttempt(start, ref connection, error: null, _notFired, callerCancelled: false, poolWait: false, synchronous: true);
        return connection;
    }

    [Benchmark(Description = "Whole acquire + release (latency-aware)")]
    public void WholeAcquire()
    {
        var connection = _cluster.OpenConnectionAsync().Result;
        connection.Dispose();
    }
}

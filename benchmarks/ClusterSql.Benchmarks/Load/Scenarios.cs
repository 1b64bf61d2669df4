using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.MySql;
using MySqlConnector;

namespace ClusterSql.Benchmarks.Load;

internal enum FaultKind
{
    None,
    Blackhole,
    Hang,
    Crash,
    Slow,
}

/// <summary>One state of the cluster in which every client is measured; faults always hit galera1, the first host.</summary>
internal sealed record Scenario(string Id, string Title, FaultKind Fault, bool Pooled, bool Interleaved = false)
{
    public const int FaultNode = 1;
    public const int SlowMilliseconds = 50;

    public static IReadOnlyList<Scenario> All { get; } =
    [
        new("healthy-pooled", "All healthy, pooled", FaultKind.None, Pooled: true),
        new("healthy", "All healthy, unpooled", FaultKind.None, Pooled: false),
        new("healthy-interleaved", "All healthy, unpooled, sequential, clients interleaved in blocks", FaultKind.None, Pooled: false, Interleaved: true),
        new("healthy-pooled-interleaved", "All healthy, pooled, sequential, clients interleaved in blocks", FaultKind.None, Pooled: true, Interleaved: true),
        new("blackhole", "galera1 blackholed (TCP connects hang), unpooled", FaultKind.Blackhole, Pooled: false),
        new("hang", "galera1 hung (SIGSTOP: TCP connects, no greeting), unpooled", FaultKind.Hang, Pooled: false),
        new("crash", "galera1 crashed (kill -9: connects refused), unpooled", FaultKind.Crash, Pooled: false),
        new("slow", $"galera1 slowed ({SlowMilliseconds} ms per chunk each way), unpooled", FaultKind.Slow, Pooled: false),
    ];

}

internal enum ClientKind
{
    ClusterSql,
    ClusterSqlRace,
    MultiHostRoundRobin,
    MultiHostFailOver,
    MultiHostRandom,
    Direct1,
    Direct2,
    Direct3,
    DirectRotating,
    ClusterSqlOnDirectPools,
}

/// <summary>A way of getting a connection to the cluster.</summary>
internal sealed record Client(string Name, ClientKind Kind)
{
    public bool IsMultiHost => Kind is ClientKind.MultiHostRoundRobin or ClientKind.MultiHostFailOver or ClientKind.MultiHostRandom;

    public bool IsClusterSql => Kind is ClientKind.ClusterSql or ClientKind.ClusterSqlRace or ClientKind.ClusterSqlOnDirectPools;

    public static Client ClusterSql { get; } = new("ClusterSql", ClientKind.ClusterSql);

    public static Client ClusterSqlRace { get; } = new("ClusterSql Race", ClientKind.ClusterSqlRace);

    public static Client RoundRobin { get; } = new("MySqlConnector RoundRobin", ClientKind.MultiHostRoundRobin);

    public static Client FailOver { get; } = new("MySqlConnector FailOver", ClientKind.MultiHostFailOver);

    public static Client Random { get; } = new("MySqlConnector Random", ClientKind.MultiHostRandom);

    public static Client Direct(int node) => new("Direct " + TestCluster.NodeName(node), ClientKind.Direct1 + (node - 1));

    /// <summary>
    /// MySqlConnector to each node directly, one node after another: no cluster logic at all, but the load spread over
    /// the three servers as ClusterSql spreads it. It separates ClusterSql's own cost from the cost of spreading.
    /// </summary>
    public static Client DirectRotating { get; } = new("Direct, rotating over the nodes", ClientKind.DirectRotating);

    /// <summary>
    /// ClusterSql over the direct clients' own data sources (interleaved scenarios only): the same pooled server
    /// sessions as the single nodes, so that the comparison shows ClusterSql's own cost. Each client with a pool of its
    /// own has its own sessions, and two sessions of one server differ by up to about 10 µs on their own.
    /// </summary>
    public static Client ClusterSqlOnDirectPools { get; } = new("ClusterSql, on the direct clients' pools", ClientKind.ClusterSqlOnDirectPools);

    /// <summary>The clients measured in a scenario: single nodes and the Go seed's race only where the cluster is healthy.</summary>
    public static IReadOnlyList<Client> For(Scenario scenario)
    {
        if (scenario.Interleaved)
        {
            // The median comparison: the same moments for everyone, so drift on a shared machine cancels out.
            return [ClusterSql, ClusterSqlOnDirectPools, Direct(1), Direct(2), Direct(3), DirectRotating, Random];
        }

        var clients = new List<Client> { ClusterSql };
        if (scenario.Fault == FaultKind.None && !scenario.Pooled)
        {
            clients.Add(ClusterSqlRace);
        }

        clients.AddRange([RoundRobin, FailOver, Random]);
        if (scenario.Fault == FaultKind.None)
        {
            clients.AddRange([Direct(1), Direct(2), Direct(3)]);
        }

        return clients;
    }

    public DbDataSource CreateDataSource(bool pooled, int connectTimeoutSeconds, double? hedgeBudget = null) => Kind switch
    {
        ClientKind.ClusterSql => BuildCluster(AcquirePolicy.LatencyAware, pooled, connectTimeoutSeconds, hedgeBudget),
        ClientKind.ClusterSqlRace => BuildCluster(AcquirePolicy.Race, pooled, connectTimeoutSeconds, hedgeBudget),
        ClientKind.MultiHostRoundRobin => new MySqlDataSource(TestCluster.MultiHostConnectionString("RoundRobin", pooled, connectTimeoutSeconds)),
        ClientKind.MultiHostFailOver => new MySqlDataSource(TestCluster.MultiHostConnectionString("FailOver", pooled, connectTimeoutSeconds)),
        ClientKind.MultiHostRandom => new MySqlDataSource(TestCluster.MultiHostConnectionString("Random", pooled, connectTimeoutSeconds)),
        ClientKind.Direct1 or ClientKind.Direct2 or ClientKind.Direct3 =>
            new MySqlDataSource(TestCluster.NodeConnectionString(Kind - ClientKind.Direct1 + 1, pooled, connectTimeoutSeconds)),
        ClientKind.DirectRotating => new RotatingDataSource(
            [.. Enumerable.Range(1, TestCluster.NodeCount).Select(n => new MySqlDataSource(TestCluster.NodeConnectionString(n, pooled, connectTimeoutSeconds)))]),
        _ => throw new ArgumentOutOfRangeException(nameof(Kind), Kind, null),
    };

    /// <summary>
    /// ClusterSql over <paramref name="directSources"/> (galera1-3's, in order), which it borrows: the caller disposes
    /// them. Defaults as <see cref="BuildCluster"/>'s.
    /// </summary>
    public static ClusterDataSource BuildOnDirectPools(IReadOnlyList<DbDataSource> directSources, int connectTimeoutSeconds, double? hedgeBudget)
    {
        var builder = new ClusterDataSourceBuilder().UsePolicy(AcquirePolicy.LatencyAware);
        builder.Options.ConnectTimeout = TimeSpan.FromSeconds(connectTimeoutSeconds);
        if (hedgeBudget is { } share)
        {
            builder.Options.HedgeBudget = share;
        }

        for (var node = 1; node <= directSources.Count; node++)
        {
            builder.AddNode(TestCluster.NodeName(node), new BorrowedDataSource(directSources[node - 1]));
        }

        return builder.Build();
    }

    /// <summary>
    /// ClusterSql with its defaults except the connect timeout, which equals MySqlConnector's Connection Timeout for
    /// fairness. No Galera health probe: these faults are all handled by the passive path, and a probe's own
    /// connections would blur the server-side connection counts.
    /// </summary>
    private static ClusterDataSource BuildCluster(AcquirePolicy policy, bool pooled, int connectTimeoutSeconds, double? hedgeBudget)
    {
        var builder = new ClusterDataSourceBuilder().UsePolicy(policy);
        builder.Options.ConnectTimeout = TimeSpan.FromSeconds(connectTimeoutSeconds);
        if (hedgeBudget is { } share)
        {
            // Only to measure another budget on the real cluster (load --hedge-budget); the pages use the default.
            builder.Options.HedgeBudget = share;
        }
        for (var node = 1; node <= TestCluster.NodeCount; node++)
        {
            builder.AddMySqlNode(TestCluster.NodeName(node), TestCluster.NodeConnectionString(node, pooled, connectTimeoutSeconds));
        }

        return builder.Build();
    }
}

/// <summary>
/// Another client's data source, lent: opens go straight to it, and disposing this leaves it open (a cluster disposes
/// its nodes' data sources, and the owner disposes this one).
/// </summary>
internal sealed class BorrowedDataSource(DbDataSource source) : DbDataSource
{
    public override string ConnectionString => source.ConnectionString;

    protected override DbConnection CreateDbConnection() => source.CreateConnection();

    protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default) =>
        source.OpenConnectionAsync(cancellationToken);

    protected override DbConnection OpenDbConnection() => source.OpenConnection();
}

/// <summary>Opens on its data sources in turn: the benchmark's spread-without-logic baseline.</summary>
internal sealed class RotatingDataSource(DbDataSource[] sources) : DbDataSource
{
    private int _next = -1;

    public override string ConnectionString => sources[0].ConnectionString;

    private DbDataSource Next() => sources[(int)((uint)Interlocked.Increment(ref _next) % (uint)sources.Length)];

    protected override DbConnection CreateDbConnection() => Next().CreateConnection();

    protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default) =>
        Next().OpenConnectionAsync(cancellationToken);

    protected override DbConnection OpenDbConnection() => Next().OpenConnection();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var source in sources)
            {
                source.Dispose();
            }
        }
    }

    protected override async ValueTask DisposeAsyncCore()
    {
        foreach (var source in sources)
        {
            await source.DisposeAsync();
        }
    }
}

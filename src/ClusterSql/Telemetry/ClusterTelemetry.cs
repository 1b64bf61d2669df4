using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Reflection;

namespace ClusterSql.Telemetry;

/// <summary>
/// The one <see cref="Meter"/> and one <see cref="ActivitySource"/> named "ClusterSql". Instruments follow the
/// OpenTelemetry database-client conventions where they fit (<c>db.client.connection.*</c>, seconds,
/// <c>{connection}</c>), with the node as the <c>clustersql.node</c> attribute and the cluster as
/// <c>db.client.connection.pool.name</c>; what is ClusterSql's own is under <c>clustersql.*</c>.
/// </summary>
internal static class ClusterTelemetry
{
    public const string Name = "ClusterSql";
    public const string PoolNameTag = "db.client.connection.pool.name";
    public const string NodeTag = "clustersql.node";
    public const string RoleTag = "clustersql.role";
    public const string OutcomeTag = "clustersql.outcome";
    public const string StateTag = "clustersql.node.state";

    private static readonly string s_version = typeof(ClusterTelemetry).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";

    // Histogram buckets for open and wait times: 0.1 ms to 10 s, where opens on loopback and across regions fall.
    private static readonly double[] s_secondsBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    public static readonly ActivitySource ActivitySource = new(Name, s_version);

    public static readonly Meter Meter = new(Name, s_version);

    public static readonly Histogram<double> CreateTime = Meter.CreateHistogram(
        "db.client.connection.create_time", "s", "The time one open on one node took, by outcome (success, failure, timeout, cancelled).",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = s_secondsBuckets });

    public static readonly Histogram<double> WaitTime = Meter.CreateHistogram(
        "db.client.connection.wait_time", "s", "The time an acquire took to give a connection (or to fail).",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = s_secondsBuckets });

    public static readonly UpDownCounter<long> PendingRequests = Meter.CreateUpDownCounter<long>(
        "db.client.connection.pending_requests", "{request}", "Acquires in progress.");

    public static readonly Counter<long> Timeouts = Meter.CreateCounter<long>(
        "db.client.connection.timeouts", "{timeout}", "Opens that reached their node's connect timeout.");

    public static readonly Counter<long> Hedges = Meter.CreateCounter<long>(
        "clustersql.hedges", "{attempt}", "Opens started on a node because another node's open was slow.");

    public static readonly Counter<long> Ejections = Meter.CreateCounter<long>(
        "clustersql.ejections", "{ejection}", "Times a node was ejected after consecutive failures.");

    public static readonly Counter<long> Wins = Meter.CreateCounter<long>(
        "clustersql.node.wins", "{connection}", "Connections from the node that were handed out.");

    public static readonly Counter<long> Losses = Meter.CreateCounter<long>(
        "clustersql.node.losses", "{connection}", "Connections the node opened that another node beat; they went back to its pool.");

    public static readonly Histogram<int> Attempts = Meter.CreateHistogram<int>(
        "clustersql.acquire.attempts", "{attempt}", "Opens started for one acquire (1 when the first node serves at once).",
        advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 3, 4, 5, 8] });

    public static readonly Counter<long> AcquireFailures = Meter.CreateCounter<long>(
        "clustersql.acquire.failures", "{acquire}", "Acquires that failed on every node (a ClusterException).");

    private static readonly List<WeakReference<ClusterDataSource>> s_dataSources = [];

    static ClusterTelemetry()
    {
        Meter.CreateObservableGauge("clustersql.node.state", ObserveStates, "{node}", "1 for each node, with its state (healthy, ejected, half_open, down) as an attribute.");
        Meter.CreateObservableGauge("clustersql.node.latency", () => ObserveNodes(static s => s.SmoothedLatency.TotalSeconds), "s", "Each node's typical open latency (smoothed mean of successful opens), to read next to db.client.connection.create_time.");
        Meter.CreateObservableGauge("clustersql.node.latency.peak", () => ObserveNodes(static s => s.LatencyEstimate.TotalSeconds), "s", "Each node's steering latency (peak EWMA): pessimistic on purpose, what the latency-aware policy compares.");
        Meter.CreateObservableGauge("clustersql.node.connections.in_use", () => ObserveNodes(static s => (double)s.ConnectionsInUse), "{connection}", "Connections from each node that the cluster handed out and that are not closed yet.");
    }

    /// <summary>
    /// Adds one to a counter. A listener that throws must not break an acquire or a health check: telemetry is
    /// best-effort, and what it cannot record is dropped.
    /// </summary>
    public static void Count(Counter<long> counter, in TagList tags)
    {
        try
        {
            counter.Add(1, in tags);
        }
        catch (Exception)
        {
            // A faulty listener loses this measurement; the caller goes on.
        }
    }

    /// <summary>Records a histogram value; like <see cref="Count"/>, a throwing listener is contained.</summary>
    public static void Record(Histogram<double> histogram, double value, in TagList tags)
    {
        try
        {
            histogram.Record(value, in tags);
        }
        catch (Exception)
        {
            // As in Count.
        }
    }

    public static void Register(ClusterDataSource dataSource)
    {
        lock (s_dataSources)
        {
            s_dataSources.RemoveAll(w => !w.TryGetTarget(out _));
            s_dataSources.Add(new WeakReference<ClusterDataSource>(dataSource));
        }
    }

    public static void Unregister(ClusterDataSource dataSource)
    {
        lock (s_dataSources)
        {
            s_dataSources.RemoveAll(w => !w.TryGetTarget(out var d) || ReferenceEquals(d, dataSource));
        }
    }

    public static TagList NodeTags(string cluster, string node) => new()
    {
        { PoolNameTag, cluster },
        { NodeTag, node },
    };

    public static string StateName(ClusterNodeState state) => state switch
    {
        ClusterNodeState.Healthy => "healthy",
        ClusterNodeState.Ejected => "ejected",
        ClusterNodeState.HalfOpen => "half_open",
        ClusterNodeState.Down => "down",
        ClusterNodeState.Disposed => "disposed",
        _ => "removed",
    };

    private static IEnumerable<Measurement<double>> ObserveNodes(Func<ClusterNodeStatistics, double> value)
    {
        foreach (var dataSource in LiveDataSources())
        {
            foreach (var node in dataSource.Nodes)
            {
                yield return new Measurement<double>(value(node.GetStatistics()), NodeTags(dataSource.Context.Options.Name, node.Name));
            }
        }
    }

    private static List<ClusterDataSource> LiveDataSources()
    {
        List<ClusterDataSource> live = [];
        lock (s_dataSources)
        {
            foreach (var weak in s_dataSources)
            {
                if (weak.TryGetTarget(out var dataSource))
                {
                    live.Add(dataSource);
                }
            }
        }

        return live;
    }

    private static IEnumerable<Measurement<int>> ObserveStates()
    {
        var live = LiveDataSources();
        foreach (var dataSource in live)
        {
            foreach (var node in dataSource.Nodes)
            {
                var tags = NodeTags(dataSource.Context.Options.Name, node.Name);
                tags.Add(StateTag, StateName(node.State));
                yield return new Measurement<int>(1, tags);
            }
        }
    }
}

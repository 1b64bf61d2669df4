using System;
using System.Collections.Generic;
using System.Linq;

namespace ClusterSql.Benchmarks.Load;

/// <summary>One acquire as the load saw it: its latency, the node that served it (0 when none), and any error.</summary>
internal readonly record struct AcquireSample(double StartSeconds, double Milliseconds, int Node, bool Failed, string? Error, bool StatementFailed);

/// <summary>One of the slowest acquires of a mode: when it started (seconds into the mode), how long, which node.</summary>
internal sealed class SlowAcquire
{
    public double StartSeconds { get; set; }

    public double Milliseconds { get; set; }

    public int Node { get; set; }

    public string? Error { get; set; }
}

/// <summary>Everything one run of the load tool measured, as written to its JSON file.</summary>
internal sealed class LoadResults
{
    public DateTimeOffset StartedAt { get; set; }

    public double DurationSeconds { get; set; }

    public bool Quick { get; set; }

    public string Command { get; set; } = string.Empty;

    public LoadSettings Settings { get; set; } = new();

    public MachineInfo Machine { get; set; } = new();

    public List<ScenarioResult> Scenarios { get; set; } = [];
}

internal sealed class LoadSettings
{
    public int ConnectTimeoutSeconds { get; set; }

    /// <summary>ClusterSql's HedgeBudget for this run; null for its default.</summary>
    public double? HedgeBudget { get; set; }

    public int WarmUp { get; set; }

    public int Sequential { get; set; }

    public int Concurrent { get; set; }

    public int Workers { get; set; }

    /// <summary>Caps for MySqlConnector multi-host where a stalled first host makes each open wait its whole timeout.</summary>
    public int CappedSequential { get; set; }

    public int CappedConcurrent { get; set; }

    /// <summary>Caps for MySqlConnector multi-host where every open on the slowed first host pays its delay.</summary>
    public int SlowCappedSequential { get; set; }

    public int SlowCappedConcurrent { get; set; }

    public double ModeDeadlineSeconds { get; set; }

    /// <summary>The interleaved healthy comparison: rounds of one block of sequential acquires per client.</summary>
    public int InterleavedRounds { get; set; }

    public int InterleavedBlock { get; set; }

    /// <summary>ClusterSql's paced acquires per scenario (unpooled) and the pause between them.</summary>
    public int Paced { get; set; }

    public int PacedIntervalMilliseconds { get; set; }
}

internal sealed class ScenarioResult
{
    public string Id { get; set; } = string.Empty;

    public string Title { get; set; } = string.Empty;

    public string Fault { get; set; } = string.Empty;

    public bool Pooled { get; set; }

    /// <summary>Wall time of the scenario, fault injection and healing included.</summary>
    public double DurationSeconds { get; set; }

    public List<ClientResult> Clients { get; set; } = [];
}

internal sealed class ClientResult
{
    public string Client { get; set; } = string.Empty;

    public bool Capped { get; set; }

    public ModeResult Sequential { get; set; } = new();

    public ModeResult Concurrent { get; set; } = new();

    /// <summary>ClusterSql only: sequential acquires with a pause between them, as a rarely acquiring client makes.</summary>
    public ModeResult Paced { get; set; } = new();

    /// <summary>Server connections opened per node during both modes (Connections status delta); null where unreadable.</summary>
    public List<long?> ServerConnections { get; set; } = [];

    /// <summary>Why a node's count is missing or assumed, e.g. "down".</summary>
    public List<string?> ServerConnectionNotes { get; set; } = [];

    public double? ConnectionsPerAcquire { get; set; }

    public long? AbortedConnects { get; set; }

    /// <summary>ClusterSql's own view during the measurement: per node opens, wins, failures, hedges, ejections.</summary>
    public List<NodeStatisticsDelta>? ClusterStatistics { get; set; }

    public string? Error { get; set; }
}

internal sealed class NodeStatisticsDelta
{
    public string Name { get; set; } = string.Empty;

    public long Opens { get; set; }

    public long Wins { get; set; }

    public long Failures { get; set; }

    public long Hedges { get; set; }

    public long Ejections { get; set; }
}

internal sealed class ModeResult
{
    public string Mode { get; set; } = string.Empty;

    public int Workers { get; set; }

    public int Planned { get; set; }

    public int Acquires { get; set; }

    public int Failures { get; set; }

    public int StatementFailures { get; set; }

    public bool StoppedAtDeadline { get; set; }

    public double WallSeconds { get; set; }

    public double P50 { get; set; }

    public double P90 { get; set; }

    public double P99 { get; set; }

    public double Max { get; set; }

    public double Mean { get; set; }

    /// <summary>Acquires served per node (galera1..3).</summary>
    public List<int> NodeAcquires { get; set; } = [];

    /// <summary>The most frequent errors, "count x message".</summary>
    public List<string> Errors { get; set; } = [];

    /// <summary>The three slowest acquires, to tell a start-up cost from a recurring one.</summary>
    public List<SlowAcquire> Slowest { get; set; } = [];

    public static ModeResult From(string mode, int workers, int planned, IReadOnlyCollection<AcquireSample> samples, double wallSeconds, bool stoppedAtDeadline)
    {
        var latencies = samples.Select(s => s.Milliseconds).Order().ToArray();
        var nodes = new int[TestCluster.NodeCount];
        foreach (var sample in samples)
        {
            if (sample.Node is >= 1 and <= TestCluster.NodeCount)
            {
                nodes[sample.Node - 1]++;
            }
        }

        return new ModeResult
        {
            Mode = mode,
            Workers = workers,
            Planned = planned,
            Acquires = samples.Count,
            Failures = samples.Count(s => s.Failed),
            StatementFailures = samples.Count(s => s.StatementFailed),
            StoppedAtDeadline = stoppedAtDeadline,
            WallSeconds = wallSeconds,
            P50 = Percentile(latencies, 0.50),
            P90 = Percentile(latencies, 0.90),
            P99 = Percentile(latencies, 0.99),
            Max = latencies.Length == 0 ? 0 : latencies[^1],
            Mean = latencies.Length == 0 ? 0 : latencies.Average(),
            NodeAcquires = [.. nodes],
            Errors = [.. samples.Where(s => s.Error is not null)
                .GroupBy(s => s.Error!, StringComparer.Ordinal)
                .OrderByDescending(g => g.Count())
                .Take(3)
                .Select(g => $"{g.Count()} x {g.Key}")],
            Slowest = [.. samples.OrderByDescending(s => s.Milliseconds).Take(3)
                .Select(s => new SlowAcquire { StartSeconds = s.StartSeconds, Milliseconds = s.Milliseconds, Node = s.Node, Error = s.Error })],
        };
    }

    /// <summary>Nearest-rank percentile of sorted values (failed acquires included: their time is part of the tail).</summary>
    internal static double Percentile(double[] sorted, double p)
    {
        if (sorted.Length == 0)
        {
            return 0;
        }

        var rank = (int)Math.Ceiling(p * sorted.Length);
        return sorted[Math.Clamp(rank, 1, sorted.Length) - 1];
    }
}

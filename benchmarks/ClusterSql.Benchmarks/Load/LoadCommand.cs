using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql.Benchmarks.Load;

/// <summary>
/// <c>load [--quick] [--scenarios a,b] [--no-faults] [--connect-timeout S] [--out FILE]</c>: the fault-scenario load
/// tool. Exits non-zero only when the tool itself fails (a failed or slow acquire is a result, not an error).
/// </summary>
internal static class LoadCommand
{
    internal static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    private const string Usage =
        "usage: load [--quick] [--scenarios id,id,...] [--no-faults] [--connect-timeout SECONDS] [--hedge-budget SHARE] [--out FILE]\n" +
        "  scenarios: healthy-pooled, healthy, healthy-interleaved, healthy-pooled-interleaved, blackhole, hang, crash, slow (default: all)\n" +
        "  faults are injected into galera1 under flock /tmp/clustersql-cluster.lock and always removed in a finally";

    public static async Task<int> RunAsync(string[] args)
    {
        var quick = false;
        var noFaults = false;
        var connectTimeout = 3;
        double? hedgeBudget = null;
        string? output = null;
        IReadOnlyList<Scenario> scenarios = Scenario.All;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick":
                    quick = true;
                    break;
                case "--no-faults":
                    noFaults = true;
                    break;
                case "--connect-timeout" when i + 1 < args.Length && int.TryParse(args[i + 1], out var seconds) && seconds > 0:
                    connectTimeout = seconds;
                    i++;
                    break;
                case "--hedge-budget" when i + 1 < args.Length && double.TryParse(args[i + 1], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var share) && share is >= 0 and <= 1:
                    hedgeBudget = share;
                    i++;
                    break;
                case "--out" when i + 1 < args.Length:
                    output = args[++i];
                    break;
                case "--scenarios" when i + 1 < args.Length:
                    var ids = args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    var unknown = ids.Where(id => !Scenario.All.Any(s => s.Id == id)).ToArray();
                    if (unknown.Length > 0)
                    {
                        Console.Error.WriteLine($"load: unknown scenario(s) {string.Join(", ", unknown)}\n{Usage}");
                        return 2;
                    }

                    scenarios = [.. Scenario.All.Where(s => ids.Contains(s.Id))];
                    break;
                case "-h" or "--help":
                    Console.WriteLine(Usage);
                    return 0;
                default:
                    Console.Error.WriteLine($"load: unknown argument '{args[i]}'\n{Usage}");
                    return 2;
            }
        }

        if (noFaults)
        {
            scenarios = [.. scenarios.Where(s => s.Fault == FaultKind.None)];
        }

        var settings = quick
            ? new LoadSettings { WarmUp = 5, Sequential = 10, Concurrent = 20, Workers = 4, CappedSequential = 1, CappedConcurrent = 4, SlowCappedSequential = 10, SlowCappedConcurrent = 20, ModeDeadlineSeconds = 20, InterleavedRounds = 2, InterleavedBlock = 5, Paced = 4, PacedIntervalMilliseconds = 500 }
            : new LoadSettings { WarmUp = 100, Sequential = 300, Concurrent = 600, Workers = 8, CappedSequential = 8, CappedConcurrent = 16, SlowCappedSequential = 100, SlowCappedConcurrent = 200, ModeDeadlineSeconds = 90, InterleavedRounds = 30, InterleavedBlock = 20, Paced = 20, PacedIntervalMilliseconds = 500 };
        settings.ConnectTimeoutSeconds = connectTimeout;
        settings.HedgeBudget = hedgeBudget;
        output ??= Path.Combine(TestCluster.RepositoryRoot, "BenchmarkDotNet.Artifacts", quick ? "quick" : "full", "load-results.json");

        // Ctrl+C or SIGTERM stops the loops; the finally blocks still remove the fault and wait for a healthy cluster.
        using var stop = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });

        var clock = Stopwatch.StartNew();
        var results = new LoadResults
        {
            StartedAt = DateTimeOffset.UtcNow,
            Quick = quick,
            Command = "load " + string.Join(' ', args),
            Settings = settings,
        };

        using var clusterLock = scenarios.Any(s => s.Fault != FaultKind.None)
            ? await ClusterLock.AcquireAsync(TimeSpan.FromMinutes(10), stop.Token)
            : null;
        if (clusterLock is not null)
        {
            Console.WriteLine($"load: cluster lock {ClusterLock.LockPath} {clusterLock.How}");
        }

        if (!await EnsureHealthyAsync())
        {
            return 1;
        }

        results.Machine = await MachineInfo.GatherAsync();
        var runner = new LoadRunner(settings, stop.Token);
        await runner.WarmUpProcessAsync();
        foreach (var scenario in scenarios)
        {
            if (stop.IsCancellationRequested)
            {
                break;
            }

            results.Scenarios.Add(await runner.RunAsync(scenario));
        }

        results.DurationSeconds = clock.Elapsed.TotalSeconds;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        await File.WriteAllTextAsync(output, JsonSerializer.Serialize(results, JsonOptions));
        Console.WriteLine($"load: {results.Scenarios.Count} scenario(s) in {clock.Elapsed.TotalSeconds:0} s; results in {output}");
        if (stop.IsCancellationRequested)
        {
            Console.Error.WriteLine("load: interrupted");
            return 130;
        }

        return runner.ToolErrors == 0 ? 0 : 1;
    }

    /// <summary>Starts only on a healthy cluster with no fault active: a fault left by someone else is not ours to remove.</summary>
    private static async Task<bool> EnsureHealthyAsync()
    {
        var status = await Faults.StatusAsync();
        if (status == 1)
        {
            Console.WriteLine("load: the cluster is not healthy yet; waiting up to 120 s");
            try
            {
                await Faults.WaitHealthyAsync();
                status = await Faults.StatusAsync();
            }
            catch (Exception ex) when (ex is InvalidOperationException or TimeoutException)
            {
                status = 1;
            }
        }

        switch (status)
        {
            case 0:
                return true;
            case 2:
                Console.Error.WriteLine("load: a fault is active on the test cluster (tests/cluster/cluster.sh status); heal it first (cluster.sh heal-all)");
                return false;
            default:
                Console.Error.WriteLine("load: the test cluster is not healthy; start it with 'tests/cluster/cluster.sh up' (as root)");
                return false;
        }
    }
}

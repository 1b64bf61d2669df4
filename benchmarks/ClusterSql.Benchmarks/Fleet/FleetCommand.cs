using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;

namespace ClusterSql.Benchmarks.Fleet;

/// <summary>
/// <c>fleet [--quick] [--out FILE.md]</c>: many client instances, each its own ClusterDataSource, over shared simulated
/// servers on one virtual clock (issue 13). Writes docs/benchmarks-fleet.md by default. Needs no cluster; deterministic
/// (the same seed gives the same page).
/// </summary>
internal static class FleetCommand
{
    private const double FleetRate = 5000;

    /// <summary>Seeds each capacity figure is the mean of (ClusterSql and oracle alike).</summary>
    private const int CapacitySeeds = 3;

    private sealed record Size(int Clients, int Nodes);

    public static int Run(string[] args)
    {
        var quick = args.Contains("--quick");
        var output = Path.Combine(TestCluster.RepositoryRoot, "docs", "benchmarks-fleet.md");
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--out" && i + 1 < args.Length)
            {
                output = args[++i];
            }
            else if (args[i] != "--quick")
            {
                Console.Error.WriteLine("usage: fleet [--quick] [--out FILE.md]");
                return 2;
            }
        }

        var clock = Stopwatch.StartNew();
        Size[] sizes = quick ? [new(100, 3), new(1000, 3)] : [new(100, 3), new(100, 9), new(1000, 3), new(1000, 9)];
        var page = new StringBuilder();
        var all = new List<FleetResult>();
        var verdicts = new List<string>();

        FleetResult Go(FleetConfig config)
        {
            var result = Quiet(config);
            all.Add(result);
            return result;
        }

        FleetResult Quiet(FleetConfig config)
        {
            var result = new FleetSimulation(config).Run();
            Console.WriteLine($"fleet: {config.Name,-44}{(config.Seed == 1 ? string.Empty : $" seed {config.Seed}"),-7} {result.Succeeded,7} ok {result.Failed,5} failed p99 {result.P99Ms,7:0.00} ms hedges/acq {result.HedgesPerAcquire:0.0000} ({result.Events} events, {result.RealSeconds:0.0} s)");
            return result;
        }

        // 1. Recovery storm.
        const double downAt = 3, after = 4;
        var storm = new StringBuilder();
        storm.AppendLine("| clients × nodes | outage, options | first second after recovery (× fair share) | peak 100 ms (× fair share) | first 100 ms at ≥ 0.5× fair | failed acquires during the outage | |");
        storm.AppendLine("|---|---|---:|---:|---:|---:|---|");
        var stormVariants = new List<(string Name, double DownFor, Action<ClusterOptions>? Configure)> { ("down 3 s", 3, null) };
        if (!quick)
        {
            stormVariants.Add(("down 1 s", 1, null));
            stormVariants.Add(("down 10 s", 10, null));
            stormVariants.Add(("down 3 s, BaseEjectionTime 5 s", 3, o => o.BaseEjectionTime = TimeSpan.FromSeconds(5)));
        }

        foreach (var (variant, downFor, configure) in stormVariants)
        {
            var recovered = downAt + downFor;
            foreach (var size in sizes)
            {
                var r = Go(new FleetConfig
                {
                    Name = $"storm {size.Clients}x{size.Nodes} {variant}",
                    Clients = size.Clients,
                    Servers = Servers(size.Nodes, i => i == 0 ? new ServerModel { Down = (downAt, recovered) } : new ServerModel()),
                    Seconds = recovered + after,
                    WarmUpSeconds = 1,
                    FleetRate = FleetRate,
                    Configure = configure,
                });
                var first = r.LoadMultiple(0, recovered, recovered + 1);
                var peak = 0.0;
                double? back = null;
                for (var t = recovered; t < recovered + after - 0.05; t += SimServer.BucketSeconds)
                {
                    var m = r.LoadMultiple(0, t, t + SimServer.BucketSeconds);
                    peak = Math.Max(peak, m);
                    back ??= m >= 0.5 ? t - recovered : null;
                }

                var met = first <= 2;
                verdicts.Add($"recovery storm, {size.Clients}×{size.Nodes}, {variant}: {first:0.00}× ({(met ? "met" : "missed")})");
                storm.AppendLine(CultureInfo.InvariantCulture, $"| {size.Clients} × {size.Nodes} | {variant} | {first:0.00}× | {peak:0.00}× | {(back is { } b ? $"+{b:0.0} s" : "never")} | {r.Failed} | {(met ? "met" : "**missed**")} |");
            }
        }

        // 2. One node three times slower.
        var slow = new StringBuilder();
        slow.AppendLine("| clients × nodes | options | slow node's share of acquires | fair share | fleet p99, healthy | fleet p99, one slow | |");
        slow.AppendLine("|---|---|---:|---:|---:|---:|---|");
        var slowVariants = new List<(string Name, Action<ClusterOptions>? Configure)> { ("defaults", null) };
        if (!quick)
        {
            slowVariants.Add(("LatencyDecayTime 30 s", o => o.LatencyDecayTime = TimeSpan.FromSeconds(30)));
        }

        foreach (var (variant, configure) in slowVariants)
        {
            foreach (var size in sizes)
            {
                FleetConfig Config(bool slowNode) => new()
                {
                    Name = $"{(slowNode ? "slow" : "healthy")} {size.Clients}x{size.Nodes} {variant}",
                    Clients = size.Clients,
                    Servers = Servers(size.Nodes, i => new ServerModel { Slowdown = slowNode && i == 0 ? 3 : 1 }),
                    Seconds = 10,
                    WarmUpSeconds = 2,
                    FleetRate = FleetRate,
                    Configure = configure,
                };

                var healthy = Go(Config(false));
                var r = Go(Config(true));
                var share = r.WinShare(0, 2, 10);
                var met = share <= 0.10;
                verdicts.Add($"3x-slow node, {size.Clients}×{size.Nodes}, {variant}: {share:P1} ({(met ? "met" : "missed")})");
                slow.AppendLine(CultureInfo.InvariantCulture, $"| {size.Clients} × {size.Nodes} | {variant} | {share:P1} | {1.0 / size.Nodes:P1} | {healthy.P99Ms:0.00} ms | {r.P99Ms:0.00} ms | {(met ? "met" : "**missed**")} |");
            }
        }

        // 3. Capacity-limited nodes, closed loop, against an oracle that splits by capacity.
        var capacity = new StringBuilder();
        capacity.AppendLine("| clients × nodes | measured | options | workers | capacities | ClusterSql acquires/s | oracle acquires/s | ratio | ClusterSql p99 | oracle p99 | |");
        capacity.AppendLine("|---|---|---|---:|---|---:|---:|---:|---:|---:|---|");

        // Two windows of the same scenario: the fleet's first seconds, when 1,000 clients that all start at once know
        // nothing about the nodes, and its steady state, once each has taken its samples (the 3 s window alone read as
        // the steady state before, and was mostly the start).
        var capacityPhases = new List<(string Name, int Seconds, int WarmUp)> { (quick ? "start: 1-2 s" : "start: 1-3 s", quick ? 2 : 3, 1) };
        if (!quick)
        {
            capacityPhases.Add(("steady: 10-20 s", 20, 10));
        }

        var capacityVariants = new List<(string Name, Action<ClusterOptions>? Configure)> { ("defaults", null) };
        if (!quick)
        {
            capacityVariants.Add(("HedgeBudget 0 (no hedges)", o => o.HedgeBudget = 0));
            capacityVariants.Add(("LatencyDecayTime 30 s", o => o.LatencyDecayTime = TimeSpan.FromSeconds(30)));
        }

        foreach (var size in sizes)
        {
            var workersPerClient = size.Clients >= 1000 ? 1 : 4;
            var workers = size.Clients * workersPerClient;

            // Capacities 1:2:4 (repeated), in all a thirtieth of the workers: under the oracle each open takes about 2.5× base.
            double[] weights = [.. Enumerable.Range(0, size.Nodes).Select(i => (double)(1 << (i % 3)))];
            var scale = workers / 30.0 / weights.Sum();
            foreach (var phase in capacityPhases)
            {
                FleetConfig Config(ClientKind kind, string variant, Action<ClusterOptions>? configure) => new()
                {
                    Name = $"capacity {size.Clients}x{size.Nodes} {phase.Name} {(kind == ClientKind.ClusterSql ? variant : "oracle")}",
                    Configure = configure,
                    Clients = size.Clients,
                    Servers = Servers(size.Nodes, i => new ServerModel { Capacity = weights[i] * scale }),
                    Seconds = phase.Seconds,
                    WarmUpSeconds = phase.WarmUp,
                    Workers = workersPerClient,
                    HoldSeconds = 0.005,
                    ThinkSeconds = 0.05,
                    Kind = kind,
                };

                // One seed's figure moves by up to 1.5 points with any change to the random draws (a fleet of capacity-bound
                // servers is chaotic), which is as much as the margin being judged: every figure is the mean over
                // CapacitySeeds seeds, for ClusterSql and the oracle alike. The hedge table lists the first seed's runs.
                (double Throughput, double P99Ms) Mean(FleetConfig config)
                {
                    var runs = Enumerable.Range(1, CapacitySeeds).Select(seed => seed == 1 ? Go(config) : Quiet(config with { Seed = seed })).ToList();
                    return (runs.Average(run => run.Throughput), runs.Average(run => run.P99Ms));
                }

                var oracle = Mean(Config(ClientKind.CapacityOracle, "oracle", null));
                foreach (var (variant, configure) in capacityVariants)
                {
                    var r = Mean(Config(ClientKind.ClusterSql, variant, configure));
                    var ratio = r.Throughput / oracle.Throughput;
                    var met = ratio >= 0.9;
                    verdicts.Add($"capacity, {size.Clients}×{size.Nodes}, {phase.Name}, {variant}: {ratio:P1} of the oracle ({(met ? "met" : "missed")})");
                    var caps = string.Join(" : ", weights.Take(3).Select(w => (w * scale).ToString("0.#", CultureInfo.InvariantCulture))) + (size.Nodes > 3 ? " (×3)" : string.Empty);
                    capacity.AppendLine(CultureInfo.InvariantCulture, $"| {size.Clients} × {size.Nodes} | {phase.Name} | {variant} | {workers} | {caps} | {r.Throughput:0} | {oracle.Throughput:0} | {ratio:P1} | {r.P99Ms:0.00} ms | {oracle.P99Ms:0.00} ms | {(met ? "met" : "**missed**")} |");
                }
            }
        }

        // 4. Hedging fleet-wide: a 2% tail of 100 ms opens, then every node 5× slower from t = 5 s.
        var hedgeVariants = new List<(string Name, Action<ClusterOptions>? Configure)> { ("defaults", null) };
        if (!quick)
        {
            hedgeVariants.Add(("HedgeBudget 0.05", o => o.HedgeBudget = 0.05));
        }

        foreach (var (variant, configure) in hedgeVariants)
        {
            foreach (var size in sizes)
            {
                Go(new FleetConfig
                {
                    Name = $"tail+slowdown {size.Clients}x{size.Nodes} {variant}",
                    Configure = configure,
                    Clients = size.Clients,
                    Servers = Servers(size.Nodes, _ => new ServerModel { TailShare = 0.02, SlowdownFrom = (5, 5) }),
                    Seconds = 8,
                    WarmUpSeconds = 1,
                    FleetRate = FleetRate,
                });
            }
        }

        var hedges = new StringBuilder();
        hedges.AppendLine("| run | acquires | hedges / acquire | peak second (hedges / acquire) | extra server connections / acquire | attempts / acquire | |");
        hedges.AppendLine("|---|---:|---:|---:|---:|---:|---|");
        foreach (var r in all.Where(r => r.Config.Kind == ClientKind.ClusterSql))
        {
            var peak = r.PeakHedgesPerAcquire(out var second);
            // What the per-client bucket promises: 0.1 of each acquire, plus the one hedge each client starts with.
            var met = r.HedgesPerAcquire * r.AllAcquires <= (0.1 * r.AllAcquires) + (ClusterSql.Core.HedgeBudget.Initial * r.Config.Clients);
            hedges.AppendLine(CultureInfo.InvariantCulture, $"| {r.Config.Name} | {r.AllAcquires} | {r.HedgesPerAcquire:0.0000} | {peak:0.000} (t = {second} s) | {r.ExtraConnectionsPerAcquire:0.0000} | {r.Attempts / (double)Math.Max(1, r.AllAcquires):0.000} | {(met ? "met" : "**missed**")} |");
        }

        var took = clock.Elapsed.TotalSeconds;
        page.AppendLine("# ClusterSql fleet simulation (issue 13)");
        page.AppendLine();
        page.AppendLine(CultureInfo.InvariantCulture, $"Written by `dotnet run -c Release --project benchmarks/ClusterSql.Benchmarks -- fleet{(quick ? " --quick" : string.Empty)}` in {took:0} s of real time ({all.Sum(r => r.Events):N0} simulated events, {all.Count} runs). Deterministic: the same build gives the same numbers.");
        page.AppendLine();
        page.AppendLine(FleetDiscussion.Model(FleetRate));
        page.AppendLine("## Targets");
        page.AppendLine();
        foreach (var verdict in verdicts)
        {
            page.AppendLine("- " + verdict);
        }

        page.AppendLine();
        page.AppendLine(CultureInfo.InvariantCulture, $"## 1. A node that recovers after ejection (target: at most 2× its fair share in the first second)");
        page.AppendLine();
        page.AppendLine(CultureInfo.InvariantCulture, $"node1 refuses every open (in 0.5 ms) from t = {downAt} s for the outage's length, then is healthy again. Load = attempts started on the node (acquires, trials, hedges), as a multiple of all attempts in the same window divided by the node count.");
        page.AppendLine();
        page.Append(storm);
        page.AppendLine();
        page.AppendLine("## 2. One node three times slower (target: its share at most 10%)");
        page.AppendLine();
        page.AppendLine("node1's opens take 6 ms instead of 2 ms (±20%) for the whole run; share = successful acquires it served, t = 2 to 10 s. The healthy run is the same fleet and seed with node1 at 2 ms.");
        page.AppendLine();
        page.Append(slow);
        page.AppendLine();
        page.AppendLine("## 3. Capacity-limited nodes (target: throughput within 10% of the oracle)");
        page.AppendLine();
        page.AppendLine(CultureInfo.InvariantCulture, $"Closed loop: every worker acquires, holds 5 ms, releases, thinks 50 ms, again. An open's latency is 2 ms × max(1, (opens in progress + 1) / capacity). The oracle sends each open to a node drawn in proportion to its capacity (it knows them); ClusterSql knows nothing. Throughput = successful acquires per second in the measured window: every client starts at t = 0 knowing nothing; the start window is t = 1 to 3 s of a 3 s run, the steady one t = 10 to 20 s of a 20 s run. Every figure (throughput, ratio, p99) is the mean over {CapacitySeeds} seeds, for the oracle too: one seed's ratio moves by up to 1.5 points with any change to the random draws.");
        page.AppendLine();
        page.Append(capacity);
        page.AppendLine();
        page.AppendLine("## 4. Hedges and extra server connections per acquire, fleet-wide (budget: HedgeBudget = 0.1 of each client's acquires, plus the one hedge each client starts with)");
        page.AppendLine();
        page.AppendLine("Every ClusterSql run above, plus `tail+slowdown`: 2% of opens take 100 ms more, and from t = 5 s every node is 5× slower. Extra server connections = connections the servers made beyond one per successful acquire (hedge losers and opens that finished after their acquire had moved on); attempts include failed ones.");
        page.AppendLine();
        page.Append(hedges);
        page.AppendLine();
        page.AppendLine(FleetDiscussion.Text);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        File.WriteAllText(output, page.ToString());
        Console.WriteLine($"fleet: wrote {output} in {took:0} s");
        return 0;
    }

    private static ServerModel[] Servers(int count, Func<int, ServerModel> model) => [.. Enumerable.Range(0, count).Select(model)];
}

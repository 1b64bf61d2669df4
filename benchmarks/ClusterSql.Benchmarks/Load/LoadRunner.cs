using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql.Benchmarks.Load;

/// <summary>
/// Measures every client of a scenario, one after another: a healthy warm-up (pools filled, ClusterSql's latency
/// estimates learned), the server counters read, the fault injected, a fixed number of sequential and then of
/// concurrent acquires, the counters read again, and the fault removed in a finally.
/// </summary>
internal sealed class LoadRunner
{
    private readonly LoadSettings _settings;
    private readonly CancellationToken _stop;

    public LoadRunner(LoadSettings settings, CancellationToken stop)
    {
        _settings = settings;
        _stop = stop;
    }

    public int ToolErrors { get; private set; }

    /// <summary>
    /// Runs every client's code paths before anything is measured, so that the first client of the first scenario does
    /// not pay for JIT compilation and tiering.
    /// </summary>
    public async Task WarmUpProcessAsync()
    {
        foreach (var pooled in new[] { true, false })
        {
            foreach (var client in new[] { Client.ClusterSql, Client.ClusterSqlRace, Client.RoundRobin, Client.Direct(1) })
            {
                var source = client.CreateDataSource(pooled, _settings.ConnectTimeoutSeconds, _settings.HedgeBudget);
                await using (source)
                {
                    await RunModeAsync(source, "warm-up", 1, 10 * _settings.WarmUp);
                    await RunModeAsync(source, "warm-up", _settings.Workers, 10 * _settings.WarmUp);
                }
            }
        }
    }

    public async Task<ScenarioResult> RunAsync(Scenario scenario)
    {
        var result = new ScenarioResult { Id = scenario.Id, Title = scenario.Title, Fault = scenario.Fault.ToString(), Pooled = scenario.Pooled };
        Console.WriteLine($"== {scenario.Id}: {scenario.Title}");
        var clock = Stopwatch.StartNew();
        if (scenario.Interleaved)
        {
            await RunInterleavedAsync(scenario, result);
            result.DurationSeconds = clock.Elapsed.TotalSeconds;
            Console.WriteLine($"== {scenario.Id}: {result.DurationSeconds:0} s");
            return result;
        }

        foreach (var client in Client.For(scenario))
        {
            if (_stop.IsCancellationRequested)
            {
                break;
            }

            ClientResult clientResult;
            try
            {
                clientResult = await RunClientAsync(scenario, client);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !_stop.IsCancellationRequested)
            {
                // The tool itself failed (not a slow or failed acquire, which are results): report it and go on.
                ToolErrors++;
                Console.Error.WriteLine($"load: {scenario.Id} / {client.Name} failed: {ex}");
                clientResult = new ClientResult { Client = client.Name, Error = ex.GetType().Name + ": " + ex.Message };
            }

            result.Clients.Add(clientResult);
            Print(clientResult);
        }

        result.DurationSeconds = clock.Elapsed.TotalSeconds;
        Console.WriteLine($"== {scenario.Id}: {result.DurationSeconds:0} s");
        return result;
    }

    /// <summary>
    /// Sequential acquires of every client in turn, one block each per round, on the healthy cluster: the clients see
    /// the same moments of a shared, noisy machine, which measuring them one after another does not give.
    /// </summary>
    private async Task RunInterleavedAsync(Scenario scenario, ScenarioResult result)
    {
        var clients = Client.For(scenario);
        var sources = new DbDataSource[clients.Count];
        for (var c = 0; c < clients.Count; c++)
        {
            if (clients[c].Kind != ClientKind.ClusterSqlOnDirectPools)
            {
                sources[c] = clients[c].CreateDataSource(scenario.Pooled, _settings.ConnectTimeoutSeconds, _settings.HedgeBudget);
            }
        }

        // The direct clients' pools, lent to a second ClusterSql client: the same server sessions as theirs.
        var kinds = clients.Select(c => c.Kind).ToList();
        var direct = Enumerable.Range(0, TestCluster.NodeCount).Select(n => sources[kinds.IndexOf(ClientKind.Direct1 + n)]).ToArray();
        for (var c = 0; c < clients.Count; c++)
        {
            if (clients[c].Kind == ClientKind.ClusterSqlOnDirectPools)
            {
                sources[c] = Client.BuildOnDirectPools(direct, _settings.ConnectTimeoutSeconds, _settings.HedgeBudget);
            }
        }

        try
        {
            foreach (var source in sources)
            {
                await RunModeAsync(source, "warm-up", 1, _settings.WarmUp);
            }

            var samples = clients.Select(_ => new List<AcquireSample>()).ToArray();
            var start = Stopwatch.GetTimestamp();
            var deadline = start + (long)(2 * _settings.ModeDeadlineSeconds * Stopwatch.Frequency);
            var stopped = false;
            for (var round = 0; round < _settings.InterleavedRounds && !stopped; round++)
            {
                for (var c = 0; c < clients.Count && !stopped; c++)
                {
                    for (var i = 0; i < _settings.InterleavedBlock; i++)
                    {
                        if (_stop.IsCancellationRequested || Stopwatch.GetTimestamp() >= deadline)
                        {
                            stopped = true;
                            break;
                        }

                        samples[c].Add(await AcquireOnceAsync(sources[c], start, _stop));
                    }
                }
            }

            var wall = Stopwatch.GetElapsedTime(start).TotalSeconds;
            var planned = _settings.InterleavedRounds * _settings.InterleavedBlock;
            for (var c = 0; c < clients.Count; c++)
            {
                var client = new ClientResult
                {
                    Client = clients[c].Name,
                    Sequential = ModeResult.From("interleaved", 1, planned, samples[c], wall, stopped && samples[c].Count < planned),
                    Concurrent = new ModeResult { Mode = "concurrent" },
                };
                result.Clients.Add(client);
                Print(client);
            }
        }
        finally
        {
            foreach (var source in sources)
            {
                await source.DisposeAsync();
            }
        }
    }

    private async Task<ClientResult> RunClientAsync(Scenario scenario, Client client)
    {
        // MySqlConnector multi-host pays the whole fault on every open that starts at galera1 (its timeout, or the delay):
        // fewer acquires keep the run within minutes. ClusterSql and the single nodes always run the full count.
        var capped = client.IsMultiHost && scenario.Fault is FaultKind.Blackhole or FaultKind.Hang or FaultKind.Slow;
        var (sequential, concurrent) = !capped ? (_settings.Sequential, _settings.Concurrent)
            : scenario.Fault == FaultKind.Slow ? (_settings.SlowCappedSequential, _settings.SlowCappedConcurrent)
            : (_settings.CappedSequential, _settings.CappedConcurrent);
        var result = new ClientResult { Client = client.Name, Capped = capped };
        var source = client.CreateDataSource(scenario.Pooled, _settings.ConnectTimeoutSeconds, _settings.HedgeBudget);
        await using (source)
        {
            var warmUp = await RunModeAsync(source, "warm-up", 1, _settings.WarmUp);
            if (warmUp.Failures == warmUp.Acquires)
            {
                throw new InvalidOperationException($"every warm-up acquire failed on the healthy cluster: {string.Join("; ", warmUp.Errors)}");
            }

            var statisticsBefore = Snapshot(source);
            var before = await ReadAllAsync(skipNode: 0);
            var after = new ServerCounters?[TestCluster.NodeCount];
            var notes = new string?[TestCluster.NodeCount];
            var faultNode = Scenario.FaultNode;
            var unreadable = scenario.Fault is FaultKind.Hang or FaultKind.Crash ? faultNode : 0;
            try
            {
                await Faults.InjectAsync(scenario.Fault, faultNode);
                result.Sequential = await RunModeAsync(source, "sequential", 1, sequential);
                result.Concurrent = await RunModeAsync(source, "concurrent", _settings.Workers, concurrent);
                if (client.Kind == ClientKind.ClusterSql && !scenario.Pooled)
                {
                    // A client that acquires rarely: ClusterSql's memory (latency estimates, exploration of a node not
                    // tried for a while, ejection) behaves differently at two acquires a second than at thousands.
                    result.Paced = await RunModeAsync(source, "paced", 1, _settings.Paced, TimeSpan.FromMilliseconds(_settings.PacedIntervalMilliseconds));
                }

                result.ClusterStatistics = Delta(statisticsBefore, Snapshot(source));
                after = await ReadAllAsync(skipNode: unreadable);
            }
            finally
            {
                if (scenario.Fault != FaultKind.None)
                {
                    var hungNode = await RemoveFaultAsync(scenario.Fault, faultNode);
                    if (scenario.Fault == FaultKind.Hang)
                    {
                        after[faultNode - 1] = hungNode;
                        notes[faultNode - 1] = "read after resume";
                    }
                }
            }

            if (scenario.Fault == FaultKind.Crash)
            {
                // A killed server accepts nothing: every attempt on it was refused by the kernel.
                notes[faultNode - 1] = "down: 0 assumed";
            }

            long total = 0;
            long aborted = 0;
            var complete = true;
            for (var i = 0; i < TestCluster.NodeCount; i++)
            {
                long? opened = before[i] is { } b && after[i] is { } a ? ServerCounters.OpenedBetween(b, a) : null;
                if (opened is null && scenario.Fault == FaultKind.Crash && i == faultNode - 1)
                {
                    opened = 0;
                }

                result.ServerConnections.Add(opened);
                result.ServerConnectionNotes.Add(notes[i] ?? (opened is null ? "unreadable" : null));
                complete &= opened is not null;
                total += opened ?? 0;
                aborted += before[i] is { } b2 && after[i] is { } a2 ? a2.AbortedConnects - b2.AbortedConnects : 0;
            }

            var acquires = result.Sequential.Acquires + result.Concurrent.Acquires + result.Paced.Acquires;
            result.ConnectionsPerAcquire = complete && acquires > 0 ? total / (double)acquires : null;
            result.AbortedConnects = aborted;
        }

        return result;
    }

    /// <summary>Removes the fault and waits until Galera is healthy; on any trouble heals everything. Never cancelled.</summary>
    private static async Task<ServerCounters?> RemoveFaultAsync(FaultKind fault, int node)
    {
        ServerCounters? faultNodeCounters = null;
        try
        {
            await Faults.RemoveAsync(fault, node);
            if (fault == FaultKind.Hang)
            {
                // The resumed server first works through the handshakes queued in its backlog; they count too.
                await Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None);
                faultNodeCounters = await ServerCounters.ReadAsync(node);
            }

            await Faults.WaitHealthyAsync();
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"load: removing the {fault} of {TestCluster.NodeName(node)} failed ({ex.Message.Split('\n')[0]}); running heal-all");
            await Faults.HealAllAsync();
        }

        return faultNodeCounters;
    }

    private async Task<ModeResult> RunModeAsync(DbDataSource source, string mode, int workers, int count, TimeSpan pause = default)
    {
        var samples = new ConcurrentQueue<AcquireSample>();
        var start = Stopwatch.GetTimestamp();
        var deadline = start + (long)(_settings.ModeDeadlineSeconds * Stopwatch.Frequency);
        var next = 0;
        var stoppedAtDeadline = 0;

        async Task WorkerAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                if (Stopwatch.GetTimestamp() >= deadline)
                {
                    Volatile.Write(ref stoppedAtDeadline, 1);
                    return;
                }

                if (Interlocked.Increment(ref next) > count)
                {
                    return;
                }

                samples.Enqueue(await AcquireOnceAsync(source, start, _stop));
                if (pause > TimeSpan.Zero)
                {
                    await Task.Delay(pause, _stop).ContinueWith(static _ => { }, TaskScheduler.Default);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, workers).Select(_ => Task.Run(WorkerAsync, CancellationToken.None)));
        var wall = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return ModeResult.From(mode, workers, count, samples.ToArray(), wall, stoppedAtDeadline == 1 && samples.Count < count);
    }

    /// <summary>One acquire, timed until the open returns; then the serving node is asked its name (not timed).</summary>
    private static async Task<AcquireSample> AcquireOnceAsync(DbDataSource source, long modeStart, CancellationToken stop)
    {
        var start = Stopwatch.GetTimestamp();
        var offset = (start - modeStart) / (double)Stopwatch.Frequency;
        DbConnection connection;
        try
        {
            connection = await source.OpenConnectionAsync(stop);
        }
        catch (Exception ex)
        {
            return new AcquireSample(offset, Stopwatch.GetElapsedTime(start).TotalMilliseconds, 0, Failed: true, Describe(ex), StatementFailed: false);
        }

        var milliseconds = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        var node = 0;
        string? statementError = null;
        try
        {
            // Which node served it: MySqlConnector's multi-host connection does not say, the server does.
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT @@wsrep_node_name";
            command.CommandTimeout = 5;
            node = TestCluster.NodeOfName(await command.ExecuteScalarAsync(stop) as string);
        }
        catch (DbException ex)
        {
            statementError = "after open: " + Describe(ex);
        }
        finally
        {
            await connection.DisposeAsync();
        }

        return new AcquireSample(offset, milliseconds, node, Failed: false, statementError, StatementFailed: statementError is not null);
    }

    private static string Describe(Exception ex)
    {
        var message = ex.Message.Split('\n')[0];
        return ex.GetType().Name + ": " + (message.Length > 160 ? message[..160] + "…" : message);
    }

    private static async Task<ServerCounters?[]> ReadAllAsync(int skipNode)
    {
        var counters = new ServerCounters?[TestCluster.NodeCount];
        for (var node = 1; node <= TestCluster.NodeCount; node++)
        {
            counters[node - 1] = node == skipNode ? null : await ServerCounters.ReadAsync(node);
        }

        return counters;
    }

    private static ClusterNodeStatistics[]? Snapshot(DbDataSource source) =>
        source is ClusterDataSource cluster ? [.. cluster.Nodes.Select(n => n.GetStatistics())] : null;

    private static List<NodeStatisticsDelta>? Delta(ClusterNodeStatistics[]? before, ClusterNodeStatistics[]? after)
    {
        if (before is null || after is null)
        {
            return null;
        }

        return [.. after.Select(a =>
        {
            var b = Array.Find(before, x => x.Name == a.Name);
            return new NodeStatisticsDelta
            {
                Name = a.Name,
                Opens = a.Opens - (b?.Opens ?? 0),
                Wins = a.Wins - (b?.Wins ?? 0),
                Failures = a.Failures - (b?.Failures ?? 0),
                Hedges = a.Hedges - (b?.Hedges ?? 0),
                Ejections = a.Ejections - (b?.Ejections ?? 0),
            };
        })];
    }

    private static void Print(ClientResult result)
    {
        if (result.Error is not null)
        {
            Console.WriteLine($"   {result.Client,-28} ERROR {result.Error}");
            return;
        }

        var connections = result.ConnectionsPerAcquire is { } c ? c.ToString("0.00", CultureInfo.InvariantCulture) : "?";
        foreach (var mode in new[] { result.Sequential, result.Concurrent, result.Paced }.Where(m => m.Planned > 0))
        {
            var share = mode.Acquires == 0 ? "-" : string.Join("/", mode.NodeAcquires.Select(n => (100.0 * n / mode.Acquires).ToString("0", CultureInfo.InvariantCulture)));
            Console.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"   {result.Client,-28} {mode.Mode,-10} {mode.Acquires,4} acq {mode.Failures,4} failed  p50 {mode.P50,8:0.00}  p90 {mode.P90,8:0.00}  p99 {mode.P99,8:0.00}  max {mode.Max,8:0.00} ms  conns/acq {connections}  share% {share}"));
            foreach (var error in mode.Errors)
            {
                Console.WriteLine($"      {error}");
            }
        }
    }
}

using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql.Benchmarks.Fleet;

/// <summary>Who picks the node: each client's own ClusterDataSource, or an oracle that knows every server's capacity.</summary>
internal enum ClientKind
{
    /// <summary>A real <see cref="ClusterDataSource"/> per client (acquire path, selector, estimator, ejection, hedge budget).</summary>
    ClusterSql,

    /// <summary>No ClusterSql: each open goes to a server drawn at random in proportion to its capacity (known to the oracle).</summary>
    CapacityOracle,
}

/// <summary>One simulated run: a fleet of clients over shared servers on one virtual clock.</summary>
internal sealed record FleetConfig
{
    public string Name { get; init; } = "run";

    public int Clients { get; init; } = 100;

    public IReadOnlyList<ServerModel> Servers { get; init; } = [new(), new(), new()];

    /// <summary>Virtual seconds of arrivals; the first <see cref="WarmUpSeconds"/> are not measured.</summary>
    public double Seconds { get; init; } = 10;

    public double WarmUpSeconds { get; init; } = 2;

    /// <summary>Open loop: acquires per virtual second across the fleet, Poisson per client (rate / clients each).</summary>
    public double FleetRate { get; init; } = 5000;

    /// <summary>Closed loop when positive: each client runs this many loops of acquire, hold, release, think.</summary>
    public int Workers { get; init; }

    public double ThinkSeconds { get; init; }

    /// <summary>How long the application keeps each connection.</summary>
    public double HoldSeconds { get; init; } = 0.005;

    public ClientKind Kind { get; init; } = ClientKind.ClusterSql;

    /// <summary>Changes to the defaults, for every client.</summary>
    public Action<ClusterOptions>? Configure { get; init; }

    public int Seed { get; init; } = 1;
}

/// <summary>What one run measured.</summary>
internal sealed class FleetResult
{
    public required FleetConfig Config { get; init; }

    public required SimServer[] Servers { get; init; }

    /// <summary>Acquires started in the measured window that succeeded / failed.</summary>
    public long Succeeded { get; init; }

    public long Failed { get; init; }

    public double P50Ms { get; init; }

    public double P99Ms { get; init; }

    /// <summary>Successful acquires per virtual second in the measured window.</summary>
    public double Throughput { get; init; }

    /// <summary>Over the whole run: acquires that succeeded, the attempts and hedges ClusterSql's nodes counted.</summary>
    public long AllSucceeded { get; init; }

    public long AllAcquires { get; init; }

    public long Attempts { get; init; }

    public long Hedges { get; init; }

    /// <summary>Connections the servers made beyond one per successful acquire (hedge losers, late opens).</summary>
    public long ExtraConnections { get; init; }

    /// <summary>Per virtual second: fleet-wide hedges and acquires started.</summary>
    public required long[] HedgesPerSecond { get; init; }

    public required long[] AcquiresPerSecond { get; init; }

    public long Events { get; init; }

    public double RealSeconds { get; init; }

    /// <summary>A digest of the run's outcome: the same seed and config give the same value.</summary>
    public long Fingerprint { get; init; }

    public double HedgesPerAcquire => AllAcquires == 0 ? 0 : Hedges / (double)AllAcquires;

    public double ExtraConnectionsPerAcquire => AllAcquires == 0 ? 0 : ExtraConnections / (double)AllAcquires;

    /// <summary>Successful acquires per server in [from, to), as a share of all.</summary>
    public double WinShare(int server, double from, double to)
    {
        var all = Servers.Sum(s => s.WinsBetween(from, to));
        return all == 0 ? 0 : Servers[server].WinsBetween(from, to) / (double)all;
    }

    /// <summary>A server's attempts in [from, to) as a multiple of its fair share (all attempts / servers).</summary>
    public double LoadMultiple(int server, double from, double to)
    {
        var all = Servers.Sum(s => s.AttemptsBetween(from, to));
        return all == 0 ? 0 : Servers[server].AttemptsBetween(from, to) * Servers.Length / (double)all;
    }

    /// <summary>The highest fleet-wide hedges per acquire over any whole virtual second.</summary>
    public double PeakHedgesPerAcquire(out int second)
    {
        var best = 0.0;
        second = 0;
        for (var i = 0; i < HedgesPerSecond.Length; i++)
        {
            if (AcquiresPerSecond[i] > 0 && HedgesPerSecond[i] / (double)AcquiresPerSecond[i] > best)
            {
                best = HedgesPerSecond[i] / (double)AcquiresPerSecond[i];
                second = i;
            }
        }

        return best;
    }
}

/// <summary>
/// Runs a fleet deterministically. ClusterSql's acquire path hops to the thread pool where its results meet in a
/// channel; so that nothing runs concurrently and every run with the same seed is the same, the driver runs one event
/// at a time and, after each, waits (spinning, in real time, but not reading real time) until the thread pool has no
/// work queued and no thread processing any (beyond threads of the host that were already busy when the run began: a
/// test runner's). Nothing in the outcome depends on real time or on thread timing.
/// </summary>
internal sealed class FleetSimulation
{
    private readonly FleetConfig _config;
    private readonly VirtualClock _clock = new();
    private readonly SimServer[] _servers;
    private readonly Client[] _clients;
    private readonly List<double> _latencies = [];
    private readonly long[] _acquiresPerSecond;
    private readonly long[] _hedgesCumulative;
    private readonly double _capacityTotal;
    private long _succeeded;
    private long _failed;
    private long _allSucceeded;
    private long _allAcquires;
    private long _digest = 17;
    private bool _stopped;
    private int _maxWorkers;
    private int _foreignBusy;

    private sealed class Client(int id, ClusterDataSource? dataSource, Random random)
    {
        public int Id { get; } = id;

        public ClusterDataSource? DataSource { get; } = dataSource;

        public Random Random { get; } = random;
    }

    public FleetSimulation(FleetConfig config)
    {
        _config = config;
        var seconds = (int)Math.Ceiling(config.Seconds) + 1;
        _acquiresPerSecond = new long[seconds];
        _hedgesCumulative = new long[seconds + 1];
        _servers = config.Servers.Select((m, i) => new SimServer($"node{i + 1}", i, m, _clock, new Random(config.Seed * 7919 + i), config.Seconds + 30)).ToArray();
        _capacityTotal = config.Servers.Sum(s => s.Capacity ?? 1);
        _clients = new Client[config.Clients];
        for (var i = 0; i < config.Clients; i++)
        {
            ClusterDataSource? dataSource = null;
            if (config.Kind == ClientKind.ClusterSql)
            {
                var builder = new ClusterDataSourceBuilder().UseTimeProvider(_clock);
                builder.Random = new Random(unchecked((config.Seed * 1_000_003) + (i * 2) + 1));
                foreach (var server in _servers)
                {
                    builder.AddNode(server.Name, new SimDataSource(server));
                }

                builder.Options.Name = "client" + i;
                config.Configure?.Invoke(builder.Options);
                dataSource = builder.Build();
            }

            _clients[i] = new Client(i, dataSource, new Random(unchecked((config.Seed * 1_000_003) + (i * 2) + 2)));
        }
    }

    /// <summary>Runs the fleet; call it from a thread that is not a thread-pool thread (its own wait would never end).</summary>
    public FleetResult Run()
    {
        if (Thread.CurrentThread.IsThreadPoolThread)
        {
            throw new InvalidOperationException("The fleet simulation waits for the thread pool to go idle after every event; run it from a thread of its own, not a thread-pool thread.");
        }

        ThreadPool.GetMaxThreads(out _maxWorkers, out _);

        // Threads of the host that stay busy (a test runner's blocked thread) are not the simulation's: the pool counts
        // as idle when no more than these are processing work. Zero in the benchmarks' own process.
        _foreignBusy = int.MaxValue;
        for (var i = 0; i < 50; i++)
        {
            ThreadPool.GetAvailableThreads(out var available, out _);
            _foreignBusy = Math.Min(_foreignBusy, _maxWorkers - available);
            if (_foreignBusy == 0)
            {
                break;
            }

            Thread.Sleep(1);
        }

        var real = Stopwatch.StartNew();
        foreach (var client in _clients)
        {
            if (_config.Workers > 0)
            {
                for (var w = 0; w < _config.Workers; w++)
                {
                    // Spread the first acquires over the first 10 ms.
                    _clock.Schedule(VirtualClock.Ticks(client.Random.NextDouble() * 0.01), () => Acquire(client));
                }
            }
            else
            {
                ScheduleArrival(client);
            }
        }

        for (var s = 1; s <= _acquiresPerSecond.Length; s++)
        {
            var second = s;
            _clock.Schedule(VirtualClock.Ticks(second), () => _hedgesCumulative[second] = CountHedges());
        }

        _clock.RunUntil(VirtualClock.Ticks(_config.Seconds), Settle);
        _stopped = true;

        // Let what is in flight finish (opens, holds, hedges), with no new acquires.
        _clock.RunUntil(VirtualClock.Ticks(_config.Seconds + 30), Settle);
        var hedgesPerSecond = new long[_acquiresPerSecond.Length];
        for (var s = 0; s < hedgesPerSecond.Length; s++)
        {
            hedgesPerSecond[s] = Math.Max(0, _hedgesCumulative[s + 1] - _hedgesCumulative[s]);
        }

        long attempts = 0, hedges = 0;
        foreach (var client in _clients)
        {
            if (client.DataSource is null)
            {
                continue;
            }

            foreach (var node in client.DataSource.Nodes)
            {
                var stats = node.GetStatistics();
                attempts += stats.Opens;
                hedges += stats.Hedges;
            }
        }

        _latencies.Sort();
        var measured = _config.Seconds - _config.WarmUpSeconds;
        foreach (var server in _servers)
        {
            _digest = Mix(_digest, server.Attempts);
            _digest = Mix(_digest, server.Wins);
            _digest = Mix(_digest, server.Connections);
        }

        _digest = Mix(_digest, hedges);
        return new FleetResult
        {
            Config = _config,
            Servers = _servers,
            Succeeded = _succeeded,
            Failed = _failed,
            P50Ms = Percentile(0.50) * 1000,
            P99Ms = Percentile(0.99) * 1000,
            Throughput = _succeeded / measured,
            AllSucceeded = _allSucceeded,
            AllAcquires = _allAcquires,
            Attempts = attempts,
            Hedges = hedges,
            ExtraConnections = _servers.Sum(s => s.Connections) - _allSucceeded,
            HedgesPerSecond = hedgesPerSecond,
            AcquiresPerSecond = _acquiresPerSecond,
            Events = _clock.EventsRun,
            RealSeconds = real.Elapsed.TotalSeconds,
            Fingerprint = _digest,
        };
    }

    private long CountHedges()
    {
        long hedges = 0;
        foreach (var client in _clients)
        {
            if (client.DataSource is not null)
            {
                foreach (var node in client.DataSource.Nodes)
                {
                    hedges += node.GetStatistics().Hedges;
                }
            }
        }

        return hedges;
    }

    private static long Mix(long digest, long value) => unchecked((digest * 1_000_003) ^ value);

    private double Percentile(double p) => _latencies.Count == 0 ? 0 : _latencies[Math.Min(_latencies.Count - 1, (int)(p * _latencies.Count))];

    private void ScheduleArrival(Client client)
    {
        var rate = _config.FleetRate / _config.Clients;
        var gap = -Math.Log(1 - client.Random.NextDouble()) / rate;
        _clock.After(gap, () =>
        {
            if (_stopped)
            {
                return;
            }

            Acquire(client);
            ScheduleArrival(client);
        });
    }

    private void Acquire(Client client)
    {
        if (_stopped)
        {
            return;
        }

        var started = _clock.GetTimestamp();
        var second = (int)(started / VirtualClock.Frequency);
        if (second < _acquiresPerSecond.Length)
        {
            _acquiresPerSecond[second]++;
        }

        _allAcquires++;
        ValueTask<DbConnection> open;
        if (client.DataSource is { } dataSource)
        {
            open = dataSource.OpenConnectionAsync();
        }
        else
        {
            open = PickByCapacity(client).BeginOpen(CancellationToken.None);
        }

        if (open.IsCompleted)
        {
            Finish(client, started, open.AsTask());
        }
        else
        {
            _ = open.AsTask().ContinueWith(
                (t, _) => Finish(client, started, t),
                null,
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }

    private SimServer PickByCapacity(Client client)
    {
        var x = client.Random.NextDouble() * _capacityTotal;
        foreach (var server in _servers)
        {
            x -= server.Model.Capacity ?? 1;
            if (x < 0)
            {
                return server;
            }
        }

        return _servers[^1];
    }

    private void Finish(Client client, long started, Task<DbConnection> open)
    {
        var now = _clock.GetTimestamp();
        var startSeconds = started / (double)VirtualClock.Frequency;
        var measured = startSeconds >= _config.WarmUpSeconds && startSeconds < _config.Seconds;
        _digest = Mix(_digest, now - started);
        if (open.IsCompletedSuccessfully)
        {
            var connection = open.Result;
            var server = ((SimConnection)connection).Server;
            server.RecordWin();
            _allSucceeded++;
            if (measured)
            {
                _succeeded++;
                _latencies.Add((now - started) / (double)VirtualClock.Frequency);
            }

            _clock.After(_config.HoldSeconds, () =>
            {
                connection.Dispose();
                Next(client);
            });
        }
        else
        {
            _ = open.Exception;
            if (measured)
            {
                _failed++;
            }

            // A closed loop does not spin on a failure: the worker waits a little before its next acquire.
            _clock.After(0.001, () => Next(client));
        }
    }

    private void Next(Client client)
    {
        if (_config.Workers > 0)
        {
            if (_config.ThinkSeconds > 0)
            {
                _clock.After(_config.ThinkSeconds, () => Acquire(client));
            }
            else
            {
                Acquire(client);
            }
        }
    }

    /// <summary>Waits until the thread pool has nothing queued and no thread processing work (see the class summary).</summary>
    private void Settle()
    {
        var spinner = default(SpinWait);
        var real = 0L;
        while (true)
        {
            ThreadPool.GetAvailableThreads(out var available, out _);
            var busy = _maxWorkers - available;
            if (busy <= _foreignBusy && ThreadPool.PendingWorkItemCount == 0)
            {
                // Fewer busy than the host's own: one of those finished; count that many from now on.
                _foreignBusy = busy;
                return;
            }

            spinner.SpinOnce(sleep1Threshold: -1);
            if (spinner.Count % 100_000 == 0)
            {
                real = real == 0 ? Stopwatch.GetTimestamp() : real;
                if (Stopwatch.GetElapsedTime(real) > TimeSpan.FromSeconds(30))
                {
                    throw new InvalidOperationException("The thread pool stayed busy for 30 s: something outside the simulation holds a pool thread.");
                }
            }
        }
    }
}

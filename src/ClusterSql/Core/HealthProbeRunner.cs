using System;
using System.Collections.Concurrent;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql.Core;

/// <summary>
/// Runs an <see cref="IClusterNodeHealthProbe"/> for every node on the data source's <see cref="TimeProvider"/>:
/// one check at a time per node, the next one an interval after the last ended, so a slow check never piles up.
/// </summary>
/// <remarks>
/// A verdict (the probe returned an unhealthy result) acts at once. A check that could not reach the node (it timed out
/// or threw) acts only after <see cref="ClusterOptions.HealthCheckFailureThreshold"/> in a row, and marks the node down
/// as unreachable, which a panic acquire may still try. A check that keeps failing with an error a retry cannot fix (a
/// <see cref="DbException"/> that is not transient, such as a login refused for a wrong password) backs off
/// exponentially, so the probe does not knock on the server with a failed login every interval for ever.
/// </remarks>
internal sealed class HealthProbeRunner : IAsyncDisposable
{
    private readonly IClusterNodeHealthProbe _probe;
    private readonly ClusterContext _context;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<ClusterNode, NodeProbe> _probes = new();
    private int _scheduled;

    /// <summary>The probe this runner runs (the CLI reads the Galera discovery off it).</summary>
    internal IClusterNodeHealthProbe Probe => _probe;

    /// <summary>Checks scheduled so far (each node's next check, armed after its last one was applied); for deterministic tests on a fake clock.</summary>
    internal int Scheduled => Volatile.Read(ref _scheduled);

    public HealthProbeRunner(IClusterNodeHealthProbe probe, ClusterContext context)
    {
        _probe = probe;
        _context = context;
    }

    public void Start(ClusterNode node)
    {
        var nodeProbe = new NodeProbe(this, node);
        if (_probes.TryAdd(node, nodeProbe))
        {
            nodeProbe.Schedule(TimeSpan.Zero);
        }
    }

    public void Stop(ClusterNode node)
    {
        if (_probes.TryRemove(node, out var nodeProbe))
        {
            _ = StopAndForgetAsync(nodeProbe, node);
        }
    }

    /// <summary>Stops a removed node's checks, then lets the probe free what it holds for the node (its connection).</summary>
    private async Task StopAndForgetAsync(NodeProbe nodeProbe, ClusterNode node)
    {
        try
        {
            await nodeProbe.StopAsync().ConfigureAwait(false);
            if (!_stopping.IsCancellationRequested)
            {
                await _probe.NodeRemovedAsync(node).ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // A probe that fails to let go of a removed node can do no more harm than keep a connection until disposal.
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        foreach (var nodeProbe in _probes.Values)
        {
            await nodeProbe.StopAsync().ConfigureAwait(false);
        }

        // _stopping is not disposed: a check that a timer started just as the probes stopped may still read its token,
        // and a source with no timer and no wait handle holds nothing to free.
        _probes.Clear();

        // The data source owns the probe it was given, like its nodes' data sources.
        if (_probe is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync().ConfigureAwait(false);
        }
    }

    private sealed class NodeProbe
    {
        private readonly HealthProbeRunner _runner;
        private readonly ClusterNode _node;
        private readonly ITimer _timer;
        private Task _running = Task.CompletedTask;
        private Task _stuck = Task.CompletedTask;
        private Task _check = Task.CompletedTask;
        private volatile bool _stopped;
        private int _unreachable;
        private int _persistentFailures;

        public NodeProbe(HealthProbeRunner runner, ClusterNode node)
        {
            _runner = runner;
            _node = node;
            _timer = runner._context.TimeProvider.CreateTimer(static s => ((NodeProbe)s!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }

        public void Schedule(TimeSpan due)
        {
            if (!_stopped)
            {
                _timer.Change(due, Timeout.InfiniteTimeSpan);
                Interlocked.Increment(ref _runner._scheduled);
            }
        }

        public void Stop()
        {
            _stopped = true;
            _timer.Dispose();
        }

        public async Task StopAsync()
        {
            Stop();
            await _running.ConfigureAwait(false);

            // The probe's own work may outlive the wait that was cancelled: give it the check timeout to end, so that
            // the probe is not disposed under a check that is still opening a connection. A check stuck in a provider
            // that ignores cancellation is not waited for longer. This grace is wall-clock time on purpose: it bounds
            // real I/O at disposal, and a test's frozen clock must not turn it into a hang.
            var check = _check;
            if (!check.IsCompleted)
            {
                await Task.WhenAny(check, Task.Delay(_runner._context.Options.HealthCheckTimeout)).ConfigureAwait(false);
            }
        }

        private static void CancelInBackground(CancellationTokenSource source) =>
            ThreadPool.UnsafeQueueUserWorkItem(
                static s =>
                {
                    try
                    {
                        s.Cancel();
                    }
                    catch (Exception)
                    {
                        // Disposed meanwhile (the check ended), or the provider's own cancellation failed: either way
                        // the check is over or abandoned, and there is nothing left to do.
                    }
                },
                source,
                preferLocal: false);

        private async Task<ClusterNodeHealth> RunProbeAsync(CancellationToken cancellationToken)
        {
            // Yield first, so that a probe that blocks synchronously cannot hold the timer's thread.
            await Task.Yield();
            return await _runner._probe.CheckAsync(_node, cancellationToken).ConfigureAwait(false);
        }

        private void OnTimer()
        {
            if (!_stopped)
            {
                _running = CheckAsync();
            }
        }

        private async Task CheckAsync()
        {
            var context = _runner._context;
            var timeout = context.Options.HealthCheckTimeout;
            string? downReason;
            ClusterNodeHealth report = default;
            var unreachable = true;
            var persistent = false;
            if (_stopped || _runner._stopping.IsCancellationRequested)
            {
                return;
            }

            if (!_stuck.IsCompleted)
            {
                // The last check outlived its timeout and still runs (its provider ignores cancellation): the node
                // stays down, and no second check piles onto a server that does not answer.
                downReason = $"health check timed out after {timeout.TotalMilliseconds:0} ms and has not returned";
            }
            else
            {
                // The probe's token is cancelled on a thread-pool thread, never inline on the thread of the timer that
                // fired the timeout: providers run their cancellation callbacks synchronously, and some block there
                // (MySqlConnector opens a second connection to send KILL QUERY, which a hung or blackholed server does not
                // accept), which would hold up every timer queued behind this one, the acquires' hedges among them.
                var cancellation = new CancellationTokenSource();
                var check = RunProbeAsync(cancellation.Token);
                _check = check;
                try
                {
                    // The wait ends at the timeout, or when the probes stop, even when the probe does not.
                    var health = await check.WaitAsync(timeout, context.TimeProvider, _runner._stopping.Token).ConfigureAwait(false);
                    downReason = health.Reason;
                    report = health;
                    unreachable = false;
                }
                catch (Exception) when (_runner._stopping.IsCancellationRequested)
                {
                    return;
                }
                catch (TimeoutException ex) when (!ReferenceEquals(ex, check.Exception?.InnerException))
                {
                    downReason = $"health check timed out after {timeout.TotalMilliseconds:0} ms";
                }
                catch (Exception ex)
                {
                    downReason = $"health check failed: {ex.GetType().Name}: {ex.Message}";
                    persistent = ex is DbException { IsTransient: false };
                }
                finally
                {
                    if (!check.IsCompleted)
                    {
                        CancelInBackground(cancellation);
                        _stuck = check;
                        _ = check.ContinueWith(static (_, s) => ((IDisposable)s!).Dispose(), cancellation, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                    }
                    else
                    {
                        cancellation.Dispose();
                    }
                }
            }

            if (_stopped)
            {
                return;
            }

            Schedule(Apply(downReason, unreachable, persistent, report));
        }

        /// <summary>Applies one check's outcome to the node; returns when the next check is due.</summary>
        private TimeSpan Apply(string? downReason, bool unreachable, bool persistent, ClusterNodeHealth report)
        {
            var options = _runner._context.Options;
            if (!unreachable)
            {
                _unreachable = 0;
                _persistentFailures = 0;
                _node.SetProbeResult(downReason, health: report);
                return options.HealthCheckInterval;
            }

            _unreachable++;
            _persistentFailures = persistent ? _persistentFailures + 1 : 0;
            if ((_unreachable >= options.HealthCheckFailureThreshold || _node.IsAwaitingFirstCheck) && !_node.IsDownByVerdict)
            {
                // A node last judged by a verdict keeps it: only a check that passes lets it serve again. A node published
                // not yet checked takes its first check's error at once: it never served, and the real error must show.
                _node.SetProbeResult(downReason, unreachable: true);
            }

            if (_persistentFailures <= 1)
            {
                return options.HealthCheckInterval;
            }

            // Interval × 2^(k-1), at most 8 intervals and MaxEjectionTime (and never below the interval): an error a
            // provider calls permanent may still be fixed by an operator, and is then seen within 8 intervals.
            var doubling = Math.Min(_persistentFailures - 1, 3);
            var ticks = Math.Min(options.HealthCheckInterval.Ticks * (double)(1L << doubling), options.MaxEjectionTime.Ticks);
            return TimeSpan.FromTicks((long)Math.Max(ticks, options.HealthCheckInterval.Ticks));
        }
    }
}

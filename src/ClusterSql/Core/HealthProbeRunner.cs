using System;
using System.Collections.Concurrent;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql.Core;

/// <summary>
/// Runs an <see cref="IClusterNodeHealthProbe"/> for every node on the data source's <see cref="TimeProvider"/>:
/// one check at a time per node, the next one an interval after the last ended, so a slow check never piles up.
/// </summary>
internal sealed class HealthProbeRunner : IAsyncDisposable
{
    private readonly IClusterNodeHealthProbe _probe;
    private readonly ClusterContext _context;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<ClusterNode, NodeProbe> _probes = new();

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
            nodeProbe.Stop();
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

            _node.SetProbeResult(downReason);

            Schedule(context.Options.HealthCheckInterval);
        }
    }
}

using System;
using System.Threading;

namespace ClusterSql.Core;

/// <summary>
/// Two views of one node's open latency. Peak EWMA (Finagle's load balancer) steers: a sample above the estimate
/// replaces it at once, so a node that turns slow is avoided immediately, and the estimate decays towards lower
/// samples, and towards zero while the node is idle, so a node that recovers is tried again. The smoothed latency
/// and its mean deviation (RFC 6298) give the hedge delay.
/// </summary>
/// <remarks>
/// Fields are written without a lock: under contention an update can be lost, which an estimate tolerates, and no
/// acquire ever waits for another. 64-bit reads and writes are atomic on every runtime that ClusterSql targets.
/// </remarks>
internal sealed class LatencyEstimator
{
    private const double Alpha = 1.0 / 8;
    private const double Beta = 1.0 / 4;

    private readonly double _decayTicks;
    private double _peak;
    private long _peakStamp;
    private double _smoothed;
    private double _deviation;
    private int _samples;

    public LatencyEstimator(TimeSpan decayTime, TimeProvider timeProvider)
    {
        _decayTicks = decayTime.TotalSeconds * timeProvider.TimestampFrequency;
    }

    public bool HasSamples => Volatile.Read(ref _samples) > 0;

    /// <summary>The smoothed open latency, in seconds.</summary>
    public double Smoothed => Volatile.Read(ref _smoothed);

    /// <summary>Records a completed open.</summary>
    public void Observe(double seconds, long timestamp)
    {
        var weight = Weight(timestamp);
        var peak = Volatile.Read(ref _peak) * weight;
        Volatile.Write(ref _peak, seconds > peak ? seconds : peak + seconds * (1 - weight));
        Volatile.Write(ref _peakStamp, timestamp);

        if (Interlocked.Increment(ref _samples) == 1)
        {
            Volatile.Write(ref _smoothed, seconds);
            Volatile.Write(ref _deviation, seconds / 2);
            return;
        }

        var smoothed = Volatile.Read(ref _smoothed);
        Volatile.Write(ref _deviation, (1 - Beta) * Volatile.Read(ref _deviation) + Beta * Math.Abs(smoothed - seconds));
        Volatile.Write(ref _smoothed, (1 - Alpha) * smoothed + Alpha * seconds);
    }

    /// <summary>
    /// Forgets the failure penalties of an ejected node once its trial open succeeds: otherwise the penalty would keep
    /// a recovered node out of the two choices until it decayed, and the node would never be sampled again.
    /// </summary>
    public void ResetPeak(double seconds, long timestamp)
    {
        Volatile.Write(ref _peak, seconds);
        Volatile.Write(ref _peakStamp, timestamp);
    }

    /// <summary>
    /// Raises the peak to a latency known to be at least <paramref name="seconds"/> (an open still pending, or one that
    /// failed), without touching the smoothed latency: a node that refuses at once must not look fast.
    /// </summary>
    public void ObserveAtLeast(double seconds, long timestamp)
    {
        if (seconds > DecayedPeak(timestamp))
        {
            Volatile.Write(ref _peak, seconds);
            Volatile.Write(ref _peakStamp, timestamp);
        }
    }

    /// <summary>The peak-EWMA estimate at <paramref name="timestamp"/>, in seconds.</summary>
    public double DecayedPeak(long timestamp) => Volatile.Read(ref _peak) * Weight(timestamp);

    /// <summary>The hedge delay: smoothed + 4 × deviation, clamped; <paramref name="max"/> until the first sample.</summary>
    public TimeSpan HedgeDelay(TimeSpan min, TimeSpan max)
    {
        if (!HasSamples)
        {
            return max;
        }

        var seconds = Volatile.Read(ref _smoothed) + 4 * Volatile.Read(ref _deviation);
        var delay = TimeSpan.FromTicks((long)Math.Min(seconds * TimeSpan.TicksPerSecond, max.Ticks));
        return delay < min ? min : delay;
    }

    private double Weight(long timestamp)
    {
        // Below a thousandth of the decay time the weight differs from 1 by less than 0.1%: not worth an Exp on the
        // acquire path, where samples come microseconds apart.
        var elapsed = timestamp - Volatile.Read(ref _peakStamp);
        return elapsed <= _decayTicks * 0.001 ? 1.0 : Math.Exp(-elapsed / _decayTicks);
    }
}

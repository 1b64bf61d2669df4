using System;
using System.Threading;

namespace ClusterSql.Core;

/// <summary>
/// Two views of one node's open latency.
/// <list type="bullet">
/// <item>The peak steers (Finagle's peak EWMA): a sample above the estimate replaces it at once, so a node that turns
/// slow is avoided immediately; a sample below pulls it down; and while nobody samples the node it decays towards
/// zero, so a node that was slow is tried again.</item>
/// <item>The smoothed latency and its mean deviation (RFC 6298's SRTT and RTTVAR) are what a user reads as the node's
/// latency, next to measured percentiles, and give the hedge delay.</item>
/// </list>
/// </summary>
/// <remarks>
/// <para>
/// The decay is exact at every sample rate: each update applies the decay of the whole time since the previous one,
/// however short (an estimator that skipped "negligible" intervals never decayed at 100 opens/s and more). A series
/// replaces <see cref="Math.Exp"/> (see <see cref="DecayFactor"/>), so the acquire path pays no Exp.
/// </para>
/// <para>
/// A sample below the peak pulls it at least a quarter of the way down, whatever the time since the last one: the
/// evidence of many fast opens outweighs one slow one without waiting for the clock, so the estimate follows a step
/// down within a few samples at any rate instead of only after several decay times. Time still rules when samples are
/// rare (an idle node decays towards zero, as in Finagle).
/// </para>
/// <para>
/// The first samples of a node carry one-time costs (JIT compilation, the process's first connection, TLS and DNS
/// set-up, a pool's first physical login where later opens are pooled): until <see cref="WarmUpSamples"/> opens
/// succeeded, both views hold the fastest of them, and selection explores such a node again after a few of the data
/// source's opens rather than a tenth of the decay time (<see cref="ClusterNode.TryClaimExploration"/>), so one cold
/// open steers the load only briefly. Selection never samples a node before it judges it: a fleet starting together
/// would then ignore latency at its start (docs/benchmarks-fleet.md).
/// </para>
/// <para>
/// Fields are written without a lock: under contention an update can be lost, which an estimate tolerates, and no
/// acquire ever waits for another. 64-bit reads and writes are atomic on every runtime that ClusterSql targets.
/// </para>
/// </remarks>
internal sealed class LatencyEstimator
{
    /// <summary>Successful opens before a node's estimate is trusted as more than its fastest sample.</summary>
    public const int WarmUpSamples = 3;

    private const double Alpha = 1.0 / 8;
    private const double Beta = 1.0 / 4;

    // The least share of the distance to a lower sample that the peak moves on every sample.
    private const double MinPeakGain = 1.0 / 4;

    // 1 / (the decay time in clock ticks): a multiplication per decay rather than a division.
    private readonly double _perDecayTick;
    private double _peak;
    private long _peakStamp;
    private double _smoothed;
    private double _deviation;
    private int _samples;

    public LatencyEstimator(TimeSpan decayTime, TimeProvider timeProvider)
    {
        _perDecayTick = 1 / (decayTime.TotalSeconds * timeProvider.TimestampFrequency);
    }

    public bool HasSamples => Volatile.Read(ref _samples) > 0;

    /// <summary>Whether <see cref="WarmUpSamples"/> opens succeeded: the estimate is more than the fastest of a few.</summary>
    public bool IsWarm => Volatile.Read(ref _samples) >= WarmUpSamples;

    /// <summary>Whether at least one open, and fewer than <see cref="WarmUpSamples"/>, succeeded so far.</summary>
    public bool HasFewWarmUpSamples => Volatile.Read(ref _samples) is > 0 and < WarmUpSamples;

    /// <summary>The smoothed open latency, in seconds.</summary>
    public double Smoothed => Volatile.Read(ref _smoothed);

    /// <summary>Records a completed open.</summary>
    public void Observe(double seconds, long timestamp)
    {
        // Never below zero (a user's clock that went back): PeakBounds, and so selection, rely on a peak of at least 0.
        seconds = Math.Max(seconds, 0);

        // Counted only while warming up, which is all the count is for: a warm node's samples cost no interlocked
        // operation (the count stays at WarmUpSamples, or a little above when samples raced at its end).
        var samples = Volatile.Read(ref _samples);
        samples = samples < WarmUpSamples ? Interlocked.Increment(ref _samples) : WarmUpSamples + 1;

        if (samples <= WarmUpSamples)
        {
            // The fastest open so far stands for the node until it is warm; slower cold samples are set aside.
            // A racing first sample may not have stored its value yet (still 0): that is no sample.
            var prior = Volatile.Read(ref _smoothed);
            var fastest = samples == 1 || prior <= 0 ? seconds : Math.Min(prior, seconds);
            Volatile.Write(ref _smoothed, fastest);
            Volatile.Write(ref _deviation, fastest / 2);
            Volatile.Write(ref _peak, fastest);
            Volatile.Write(ref _peakStamp, timestamp);
            return;
        }

        var decay = Decay(timestamp);
        var peak = Volatile.Read(ref _peak) * decay;
        if (seconds >= peak)
        {
            peak = seconds;
        }
        else
        {
            peak += (seconds - peak) * Math.Max(1 - decay, MinPeakGain);
        }

        Volatile.Write(ref _peak, peak);
        Volatile.Write(ref _peakStamp, timestamp);

        var smoothed = Volatile.Read(ref _smoothed);
        Volatile.Write(ref _deviation, (1 - Beta) * Volatile.Read(ref _deviation) + Beta * Math.Abs(smoothed - seconds));
        Volatile.Write(ref _smoothed, (1 - Alpha) * smoothed + Alpha * seconds);
    }

    /// <summary>
    /// Forgets the failure penalties of an ejected node once an open of it succeeds (its trial's, usually): otherwise the penalty would keep
    /// a recovered node out of the two choices until it decayed, and the node would never be sampled again.
    /// </summary>
    public void ResetPeak(double seconds, long timestamp)
    {
        Volatile.Write(ref _peak, Math.Max(seconds, 0));
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
    public double DecayedPeak(long timestamp) => Volatile.Read(ref _peak) * Decay(timestamp);

    /// <summary>
    /// Bounds of <see cref="DecayedPeak"/> at <paramref name="timestamp"/> without computing the decay, for a peak of at
    /// least 0 (Observe and ResetPeak clamp, ObserveAtLeast only raises it). They hold for <see cref="DecayFactor"/>'s
    /// computed value, not only for e^(-x): at most 1, since its series is 1 less a non-negative product and squaring
    /// keeps that; at least 1 - x, since below x = 0.01 the series subtracts x times a factor of at most 1 (rounding is
    /// monotone), and above it its error (about 1e-10) is far below the gap e^(-x) - (1 - x) (at least 5e-5); exactly
    /// the peak for x of 0 or less, as DecayFactor returns 1 there.
    /// </summary>
    public (double Lower, double Upper) PeakBounds(long timestamp)
    {
        var peak = Volatile.Read(ref _peak);
        var x = Age(timestamp);
        return (x <= 0 ? peak : peak * Math.Max(0, 1 - x), peak);
    }

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

    /// <summary>
    /// e^(-x) without <see cref="Math.Exp"/> (the acquire path computes it for two nodes on every pick): a series for
    /// x below 0.01, and beyond, the series of x / 2^k squared k times (e^(-x) = (e^(-x/2^k))^(2^k)), relative error
    /// below 1e-9 up to 10 decay times.
    /// </summary>
    internal static double DecayFactor(double x)
    {
        if (x <= 0)
        {
            // Another thread stamped a later sample between our clock reading and this one: no time has passed.
            return 1.0;
        }

        if (x < 0.01)
        {
            return Series(x);
        }

        if (x > 700)
        {
            // e^-700 is 1e-304: nothing is left of any latency.
            return 0;
        }

        // The least k with x / 2^k < 0.01; ILogB and ScaleB read and set the exponent bits, exactly.
        var k = Math.ILogB(x * 100) + 1;
        var factor = Series(Math.ScaleB(x, -k));
        for (var i = 0; i < k; i++)
        {
            factor *= factor;
        }

        return factor;
    }

    // The next term, x^5/120, is below 1e-12 for x < 0.01.
    private static double Series(double x) => 1 - (x * (1 - (x * (0.5 - (x * ((1.0 / 6) - (x / 24)))))));

    private double Decay(long timestamp) => DecayFactor(Age(timestamp));

    // In decay times; one expression for Decay and PeakBounds, so that both see the same x to the last bit.
    private double Age(long timestamp) => (timestamp - Volatile.Read(ref _peakStamp)) * _perDecayTick;
}

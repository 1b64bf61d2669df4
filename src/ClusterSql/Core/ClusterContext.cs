using System;

namespace ClusterSql.Core;

/// <summary>What every node of one data source shares: its settings, clock, pools and budget.</summary>
internal sealed class ClusterContext
{
    public ClusterContext(ClusterOptions options, TimeProvider timeProvider, Random random)
    {
        Options = options;
        TimeProvider = timeProvider;
        Random = random;
        Cancellations = new CancellationPool(timeProvider);
        HedgeBudget = new HedgeBudget(options.HedgeBudget);
    }

    public ClusterOptions Options { get; }

    public TimeProvider TimeProvider { get; }

    /// <summary><see cref="Random.Shared"/> in production (thread-safe); a seeded one in deterministic tests.</summary>
    public Random Random { get; }

    public CancellationPool Cancellations { get; }

    public HedgeBudget HedgeBudget { get; }

    public double ToSeconds(long fromTimestamp, long toTimestamp) =>
        (toTimestamp - fromTimestamp) / (double)TimeProvider.TimestampFrequency;

    public long AddToTimestamp(long timestamp, TimeSpan duration) =>
        timestamp + (long)(duration.TotalSeconds * TimeProvider.TimestampFrequency);
}

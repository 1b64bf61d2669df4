using System;
using System.Diagnostics;
using ClusterSql.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ClusterSql.Core;

/// <summary>What every node of one data source shares: its settings, clock, pools and budget.</summary>
internal sealed class ClusterContext
{
    public ClusterContext(ClusterOptions options, TimeProvider timeProvider, Random random, ILogger? logger = null)
    {
        Options = options;
        Logger = logger is null ? NullLogger.Instance : new GuardedLogger(logger);
        PoolTag = new TagList { { ClusterTelemetry.PoolNameTag, options.Name } };
        TimeProvider = timeProvider;
        Random = random;
        Cancellations = new CancellationPool(timeProvider);
        HedgeBudget = new HedgeBudget(options.HedgeBudget);
    }

    public ClusterOptions Options { get; }

    public ILogger Logger { get; }

    /// <summary>The cluster's attribute for acquire-level instruments, built once.</summary>
    public TagList PoolTag { get; }

    public TimeProvider TimeProvider { get; }

    /// <summary><see cref="Random.Shared"/> in production (thread-safe); a seeded one in deterministic tests.</summary>
    public Random Random { get; }

    public CancellationPool Cancellations { get; }

    public HedgeBudget HedgeBudget { get; }

    /// <summary>A node's provider threw NotSupportedException from its synchronous open: synchronous acquires wait for the async core.</summary>
    public bool SyncOpenUnsupported { get; set; }

    public double ToSeconds(long fromTimestamp, long toTimestamp) =>
        (toTimestamp - fromTimestamp) / (double)TimeProvider.TimestampFrequency;

    public long AddToTimestamp(long timestamp, TimeSpan duration) =>
        timestamp + (long)(duration.TotalSeconds * TimeProvider.TimestampFrequency);
}

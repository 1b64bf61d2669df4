using System;
using System.Diagnostics;
using System.Threading;
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
        _frequency = timeProvider.TimestampFrequency;
        MaxHedgeDelaySeconds = options.MaxHedgeDelay.TotalSeconds;
        CoarseSyncTiming = timeProvider == TimeProvider.System && options.MaxHedgeDelay >= LongestCoarseTick;
    }

    /// <summary>A context for one role's acquires: everything shared with <paramref name="cluster"/> but the role's tag.</summary>
    private ClusterContext(ClusterContext cluster, string role)
    {
        _cluster = cluster;
        Options = cluster.Options;
        Logger = cluster.Logger;
        PoolTag = new TagList { { ClusterTelemetry.PoolNameTag, Options.Name }, { ClusterTelemetry.RoleTag, role } };
        Role = role;
        TimeProvider = cluster.TimeProvider;
        Random = cluster.Random;
        Cancellations = cluster.Cancellations;
        HedgeBudget = cluster.HedgeBudget;
        _frequency = cluster._frequency;
        MaxHedgeDelaySeconds = cluster.MaxHedgeDelaySeconds;
        CoarseSyncTiming = cluster.CoarseSyncTiming;
    }

    /// <summary>
    /// More than the longest step of <see cref="Environment.TickCount64"/> anywhere .NET runs: Windows' default timer
    /// resolution is 15.6 ms, Linux's coarse monotonic clock moves every jiffy (1 to 10 ms).
    /// </summary>
    internal static readonly TimeSpan LongestCoarseTick = TimeSpan.FromMilliseconds(32);

    /// <summary>
    /// Whether a synchronous open may be timed by <see cref="Environment.TickCount64"/> first, and by the precise clock
    /// only when that moved (ClusterNode.MayHoldSyncDuration): on the system's clock alone (a fake clock in tests is
    /// always read), and when an open shorter than one coarse tick can never count as blocking (MaxHedgeDelay above
    /// <see cref="LongestCoarseTick"/>).
    /// </summary>
    public bool CoarseSyncTiming { get; }

    /// <summary><see cref="ClusterOptions.MaxHedgeDelay"/> in seconds, computed once (the fast path compares with it).</summary>
    public double MaxHedgeDelaySeconds { get; }

    // TimestampFrequency is a virtual call; read once.
    private readonly double _frequency;

    private readonly ClusterContext? _cluster;

    /// <summary>The same cluster's context for the acquires of one role ("writer", "reader"), tagged with it in telemetry.</summary>
    public ClusterContext ForRole(string role) => new(_cluster ?? this, role);

    /// <summary>The role whose acquires this context serves; null for the cluster's own.</summary>
    public string? Role { get; }

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
    public bool SyncOpenUnsupported
    {
        get => _cluster?.SyncOpenUnsupported ?? _syncOpenUnsupported;
        set
        {
            if (_cluster is not null)
            {
                _cluster.SyncOpenUnsupported = value;
            }
            else
            {
                _syncOpenUnsupported = value;
            }
        }
    }

    private bool _syncOpenUnsupported;

    /// <summary>Bumped whenever something the roles' order depends on changes (a node's health, report, or the node set).</summary>
    public int RolesVersion => _cluster?.RolesVersion ?? Volatile.Read(ref _rolesVersion);

    public void RolesChanged()
    {
        if (_cluster is not null)
        {
            _cluster.RolesChanged();
        }
        else
        {
            Interlocked.Increment(ref _rolesVersion);
        }
    }

    private int _rolesVersion;

    public double ToSeconds(long fromTimestamp, long toTimestamp) =>
        (toTimestamp - fromTimestamp) / _frequency;

    public long AddToTimestamp(long timestamp, TimeSpan duration) =>
        timestamp + (long)(duration.TotalSeconds * _frequency);
}

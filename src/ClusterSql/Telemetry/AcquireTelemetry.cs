using System;
using System.Diagnostics;
using ClusterSql.Core;

namespace ClusterSql.Telemetry;

/// <summary>
/// What one acquire reports: the pending-requests gauge, the wait time and attempts, and an "acquire" span when
/// someone listens. Nothing is allocated unless a listener is attached.
/// </summary>
internal struct AcquireTelemetry
{
    public const string ActivityName = "ClusterSql acquire";

    private Activity? _activity;
    private bool _pendingCounted;

    public static AcquireTelemetry Start(ClusterContext context)
    {
        var telemetry = default(AcquireTelemetry);
        if (ClusterTelemetry.PendingRequests.Enabled)
        {
            ClusterTelemetry.PendingRequests.Add(1, context.PoolTag);
            telemetry._pendingCounted = true;
        }

        if (ClusterTelemetry.ActivitySource.HasListeners())
        {
            telemetry._activity = ClusterTelemetry.ActivitySource.StartActivity(ActivityName, ActivityKind.Client);
            telemetry._activity?.SetTag(ClusterTelemetry.PoolNameTag, context.Options.Name);
        }

        return telemetry;
    }

    public readonly void Succeeded(ClusterContext context, long started, ClusterNode winner, int attempts, int hedges)
    {
        End(context);
        if (ClusterTelemetry.WaitTime.Enabled)
        {
            ClusterTelemetry.WaitTime.Record(Elapsed(context, started), ClusterTelemetry.NodeTags(context.Options.Name, winner.Name));
        }

        RecordAttempts(context, attempts);
        if (_activity is { } activity)
        {
            activity.SetTag(ClusterTelemetry.NodeTag, winner.Name);
            activity.SetTag("clustersql.attempts", attempts);
            activity.SetTag("clustersql.hedges", hedges);
            activity.Stop();
        }
    }

    public readonly void Failed(ClusterContext context, long started, Exception error, int attempts, int hedges)
    {
        End(context);
        var cancelled = error is OperationCanceledException;
        if (ClusterTelemetry.WaitTime.Enabled)
        {
            var tags = context.PoolTag;
            tags.Add(ClusterTelemetry.OutcomeTag, cancelled ? "cancelled" : "failure");
            ClusterTelemetry.WaitTime.Record(Elapsed(context, started), tags);
        }

        RecordAttempts(context, attempts);
        if (!cancelled && ClusterTelemetry.AcquireFailures.Enabled)
        {
            ClusterTelemetry.AcquireFailures.Add(1, context.PoolTag);
        }

        if (_activity is { } activity)
        {
            activity.SetTag("clustersql.attempts", attempts);
            activity.SetTag("clustersql.hedges", hedges);
            activity.SetStatus(ActivityStatusCode.Error, cancelled ? "cancelled" : error.Message);
            activity.AddException(error);
            activity.Stop();
        }
    }

    private static double Elapsed(ClusterContext context, long started) =>
        context.ToSeconds(started, context.TimeProvider.GetTimestamp());

    private static void RecordAttempts(ClusterContext context, int attempts)
    {
        if (ClusterTelemetry.Attempts.Enabled)
        {
            ClusterTelemetry.Attempts.Record(attempts, context.PoolTag);
        }
    }

    private readonly void End(ClusterContext context)
    {
        if (_pendingCounted)
        {
            ClusterTelemetry.PendingRequests.Add(-1, context.PoolTag);
        }
    }
}

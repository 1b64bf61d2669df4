using System;
using System.Diagnostics;
using ClusterSql.Core;

namespace ClusterSql.Telemetry;

/// <summary>
/// What one acquire reports: the pending-requests gauge, the wait time and attempts, and an "acquire" span when
/// someone listens. Nothing is allocated unless a listener is attached. A listener that throws loses its measurement
/// and never breaks the acquire.
/// </summary>
internal struct AcquireTelemetry
{
    public const string ActivityName = "ClusterSql acquire";

    private Activity? _activity;
    private Activity? _callerActivity;
    private bool _pendingCounted;

    /// <summary>Whether an "acquire" span is recorded (someone listens).</summary>
    public readonly bool HasActivity => _activity is not null;

    public static AcquireTelemetry Start(ClusterContext context)
    {
        var telemetry = default(AcquireTelemetry);

        // Read only when a span may start: Activity.Current is an AsyncLocal lookup, which the fast path need not pay.
        Activity? caller = null;
        var callerRead = false;
        try
        {
            if (ClusterTelemetry.PendingRequests.Enabled)
            {
                ClusterTelemetry.PendingRequests.Add(1, context.PoolTag);
                telemetry._pendingCounted = true;
            }

            if (ClusterTelemetry.ActivitySource.HasListeners())
            {
                caller = Activity.Current;
                callerRead = true;
                telemetry._callerActivity = caller;
                telemetry._activity = ClusterTelemetry.ActivitySource.StartActivity(ActivityName, ActivityKind.Client);
                telemetry._activity?.SetTag(ClusterTelemetry.PoolNameTag, context.Options.Name);
                if (context.Role is not null)
                {
                    telemetry._activity?.SetTag(ClusterTelemetry.RoleTag, context.Role);
                }
            }
        }
        catch (Exception)
        {
            // Telemetry is best-effort (see the type's summary). A listener that threw in ActivityStarted leaves the span
            // it was given current, unended and unknown to us: the caller gets its own activity back.
            if (callerRead && telemetry._activity is null && Activity.Current != caller)
            {
                Activity.Current = caller;
            }
        }

        return telemetry;
    }

    /// <summary>
    /// The acquire goes on asynchronously: give the caller back its own activity now. The caller resumes with the
    /// context it has when the acquire returns its pending task, and a span left current there would parent the rest
    /// of the caller's request under a finished acquire.
    /// </summary>
    public readonly void ReturnCallerActivity()
    {
        if (_activity is not null)
        {
            Activity.Current = _callerActivity;
        }
    }

    /// <summary>Makes the acquire's span current inside its asynchronous part, so that the provider's spans nest in it.</summary>
    public readonly void ResumeActivity()
    {
        if (_activity is not null)
        {
            Activity.Current = _activity;
        }
    }

    public readonly void Succeeded(ClusterContext context, long started, ClusterNode winner, int attempts, int hedges)
    {
        try
        {
            RecordSuccess(context, started, winner, attempts, hedges);
        }
        catch (Exception)
        {
            // Telemetry is best-effort (see the type's summary).
        }
        finally
        {
            RestoreCaller();
        }
    }

    public readonly void Failed(ClusterContext context, long started, Exception error, int attempts, int hedges)
    {
        try
        {
            RecordFailure(context, started, error, attempts, hedges);
        }
        catch (Exception)
        {
            // Telemetry is best-effort (see the type's summary).
        }
        finally
        {
            RestoreCaller();
        }
    }

    private readonly void RecordSuccess(ClusterContext context, long started, ClusterNode winner, int attempts, int hedges)
    {
        End(context);
        if (ClusterTelemetry.WaitTime.Enabled)
        {
            var tags = ClusterTelemetry.NodeTags(context.Options.Name, winner.Name);
            if (context.Role is not null)
            {
                // A writer's and a reader's acquire times are told apart like their failures and attempts are.
                tags.Add(ClusterTelemetry.RoleTag, context.Role);
            }

            ClusterTelemetry.WaitTime.Record(Elapsed(context, started), tags);
        }

        RecordAttempts(context, attempts);
        if (_activity is { } activity)
        {
            activity.SetTag(ClusterTelemetry.NodeTag, winner.Name);
            activity.SetTag("clustersql.attempts", attempts);
            activity.SetTag("clustersql.hedges", hedges);
        }
    }

    private readonly void RecordFailure(ClusterContext context, long started, Exception error, int attempts, int hedges)
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
        }
    }

    /// <summary>Ends the span, whatever recording did before, and gives the caller back its activity.</summary>
    private readonly void RestoreCaller()
    {
        if (_activity is null)
        {
            return;
        }

        try
        {
            _activity.Stop();
        }
        catch (Exception)
        {
            // A listener's ActivityStopped threw; the span is stopped all the same.
        }

        if (Activity.Current == _activity)
        {
            Activity.Current = _callerActivity;
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

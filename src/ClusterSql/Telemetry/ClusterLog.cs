using System;
using Microsoft.Extensions.Logging;

namespace ClusterSql.Telemetry;

/// <summary>
/// ClusterSql's log events, with stable ids. Messages name nodes, never connection strings; provider error messages
/// are passed through as the provider wrote them (MySqlConnector's never contain the password).
/// </summary>
internal static partial class ClusterLog
{
    [LoggerMessage(EventId = 1, EventName = "NodeEjected", Level = LogLevel.Warning,
        Message = "Node {Node} of cluster {Cluster} ejected for {EjectionMilliseconds:0} ms after {Failures} consecutive failures; last error {ErrorType}: {ErrorMessage}")]
    public static partial void NodeEjected(ILogger logger, string cluster, string node, double ejectionMilliseconds, int failures, string errorType, string errorMessage);

    [LoggerMessage(EventId = 2, EventName = "NodeRecovered", Level = LogLevel.Information,
        Message = "Node {Node} of cluster {Cluster} recovered: an open succeeded after its ejection")]
    public static partial void NodeRecovered(ILogger logger, string cluster, string node);

    [LoggerMessage(EventId = 3, EventName = "ProbeFailed", Level = LogLevel.Warning,
        Message = "Node {Node} of cluster {Cluster} marked down by its health check: {Reason}")]
    public static partial void ProbeFailed(ILogger logger, string cluster, string node, string reason);

    [LoggerMessage(EventId = 4, EventName = "ProbePassed", Level = LogLevel.Information,
        Message = "Node {Node} of cluster {Cluster} passed its health check and serves again")]
    public static partial void ProbePassed(ILogger logger, string cluster, string node);

    [LoggerMessage(EventId = 5, EventName = "EveryNodeFailed", Level = LogLevel.Error,
        Message = "Cluster {Cluster}: no node could open a connection: {Errors}")]
    public static partial void EveryNodeFailed(ILogger logger, string cluster, string errors);

    [LoggerMessage(EventId = 6, EventName = "IdleCleared", Level = LogLevel.Information,
        Message = "Node {Node} of cluster {Cluster}: idle pooled connections dropped ({Reason})")]
    public static partial void IdleCleared(ILogger logger, string cluster, string node, string reason);

    [LoggerMessage(EventId = 7, EventName = "IdleClearFailed", Level = LogLevel.Warning,
        Message = "Node {Node} of cluster {Cluster}: dropping idle pooled connections failed: {ErrorType}: {ErrorMessage}")]
    public static partial void IdleClearFailed(ILogger logger, string cluster, string node, string errorType, string errorMessage);
}

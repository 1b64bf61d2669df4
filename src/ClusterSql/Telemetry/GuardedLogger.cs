using System;
using Microsoft.Extensions.Logging;

namespace ClusterSql.Telemetry;

/// <summary>
/// The user's logger, contained: ClusterSql logs from timer callbacks, health checks and the acquire path, where a
/// logging provider that throws would crash the process, hang an acquire or freeze a node's state. A log event that
/// cannot be written is dropped; the work that logged it goes on.
/// </summary>
internal sealed class GuardedLogger(ILogger inner) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull
    {
        try
        {
            return inner.BeginScope(state);
        }
        catch (Exception)
        {
            return null;
        }
    }

    public bool IsEnabled(LogLevel logLevel)
    {
        try
        {
            return inner.IsEnabled(logLevel);
        }
        catch (Exception)
        {
            return false;
        }
    }

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        try
        {
            inner.Log(logLevel, eventId, state, exception, formatter);
        }
        catch (Exception)
        {
            // Dropped on purpose (see the type's summary).
        }
    }
}

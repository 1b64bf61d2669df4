using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace ClusterSql.IntegrationTests;

/// <summary>
/// Keeps ClusterSql's log events (ejections, recoveries, probe verdicts) with their time, so that a fault test that
/// fails shows what the cluster data source saw and when.
/// </summary>
internal sealed class RecordingLoggerFactory : ILoggerFactory
{
    private const int Capacity = 500;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    /// <summary>The time base of the lines; the test's load clock once it runs, so that times line up.</summary>
    public Func<TimeSpan>? Clock { get; set; }

    public IReadOnlyCollection<string> Lines => _lines;

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class Logger(RecordingLoggerFactory owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            // "Every node failed" repeats each failed acquire, which the test reports itself.
            if (eventId.Name == "EveryNodeFailed" || owner._lines.Count >= Capacity)
            {
                return;
            }

            var now = owner.Clock?.Invoke() ?? owner._clock.Elapsed;
            owner._lines.Enqueue($"{now.TotalSeconds:0.000}s {eventId.Name}: {formatter(state, exception)}");
        }
    }
}

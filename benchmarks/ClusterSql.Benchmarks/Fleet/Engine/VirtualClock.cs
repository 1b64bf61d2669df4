using System;
using System.Collections.Generic;
using System.Threading;

namespace ClusterSql.Benchmarks.Fleet;

/// <summary>
/// A <see cref="TimeProvider"/> whose time moves only when the simulation says so: one event queue (ordered by time,
/// then by the order events were scheduled), timers that are events, and callbacks that run on the driving thread.
/// Every client of a simulated fleet shares one such clock.
/// </summary>
internal sealed class VirtualClock : TimeProvider
{
    /// <summary>Ticks per virtual second (TimeSpan ticks, 100 ns).</summary>
    public const long Frequency = TimeSpan.TicksPerSecond;

    private static readonly DateTimeOffset s_epoch = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly PriorityQueue<Entry, (long At, long Seq)> _queue = new();
    private readonly Lock _lock = new();
    private long _now;
    private long _seq;

    public override long TimestampFrequency => Frequency;

    public override long GetTimestamp() => Volatile.Read(ref _now);

    public override DateTimeOffset GetUtcNow() => s_epoch.AddTicks(Volatile.Read(ref _now));

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    /// <summary>The virtual time, in seconds since the start.</summary>
    public double Seconds => Volatile.Read(ref _now) / (double)Frequency;

    /// <summary>Events run so far.</summary>
    public long EventsRun { get; private set; }

    public static long Ticks(double seconds) => (long)Math.Round(seconds * Frequency);

    /// <summary>Runs <paramref name="action"/> at virtual time <paramref name="at"/> (not before now).</summary>
    public Entry Schedule(long at, Action action)
    {
        var entry = new Entry(action);
        Enqueue(entry, at);
        return entry;
    }

    public Entry After(double seconds, Action action) => Schedule(GetTimestamp() + Ticks(seconds), action);

    private void Enqueue(Entry entry, long at)
    {
        lock (_lock)
        {
            _queue.Enqueue(entry, (Math.Max(at, _now), _seq++));
        }
    }

    /// <summary>
    /// Runs every event due up to <paramref name="end"/>, in order, one at a time, moving the clock to each; after each,
    /// <paramref name="settle"/> waits until everything the event set off has run.
    /// </summary>
    public void RunUntil(long end, Action settle)
    {
        while (true)
        {
            Entry entry;
            lock (_lock)
            {
                if (!_queue.TryPeek(out entry!, out var key) || key.At > end)
                {
                    break;
                }

                _queue.Dequeue();
                Volatile.Write(ref _now, key.At);
            }

            if (entry.Cancelled)
            {
                continue;
            }

            EventsRun++;
            entry.Run();
            settle();
        }

        Volatile.Write(ref _now, Math.Max(Volatile.Read(ref _now), end));
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new VirtualTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>One scheduled event; cancelling it makes the queue skip it.</summary>
    internal sealed class Entry(Action action)
    {
        public bool Cancelled { get; set; }

        public void Run() => action();
    }

    private sealed class VirtualTimer(VirtualClock clock, TimerCallback callback, object? state) : ITimer
    {
        private Entry? _pending;
        private long _periodTicks;
        private bool _disposed;

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (clock._lock)
            {
                if (_disposed)
                {
                    return false;
                }

                _pending?.Cancelled = true;
                _pending = null;
                _periodTicks = period == Timeout.InfiniteTimeSpan || period <= TimeSpan.Zero ? 0 : period.Ticks;
                if (dueTime != Timeout.InfiniteTimeSpan)
                {
                    Arm(clock._now + Math.Max(0, dueTime.Ticks));
                }

                return true;
            }
        }

        private void Arm(long at)
        {
            var entry = new Entry(Fire);
            _pending = entry;
            clock._queue.Enqueue(entry, (Math.Max(at, clock._now), clock._seq++));
        }

        private void Fire()
        {
            lock (clock._lock)
            {
                _pending = null;
                if (_disposed)
                {
                    return;
                }

                if (_periodTicks > 0)
                {
                    Arm(clock._now + _periodTicks);
                }
            }

            callback(state);
        }

        public void Dispose()
        {
            lock (clock._lock)
            {
                _disposed = true;
                _pending?.Cancelled = true;
                _pending = null;
            }
        }

        public System.Threading.Tasks.ValueTask DisposeAsync()
        {
            Dispose();
            return default;
        }
    }
}

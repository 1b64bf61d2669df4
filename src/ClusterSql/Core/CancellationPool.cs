using System;
using System.Threading;

namespace ClusterSql.Core;

/// <summary>
/// Reuses the <see cref="CancellationTokenSource"/> whose token each node open gets (cancelled at its connect timeout or
/// for the caller), so that the fast path of an acquire allocates nothing. A source that fired is disposed, not reused.
/// </summary>
internal sealed class CancellationPool
{
    private readonly TimeProvider _timeProvider;
    private readonly CancellationTokenSource?[] _items = new CancellationTokenSource?[Math.Max(4, Environment.ProcessorCount * 4)];

    public CancellationPool(TimeProvider timeProvider) => _timeProvider = timeProvider;

    /// <summary>A source with no timer armed: the acquire path arms none for an open that completes synchronously.</summary>
    public CancellationTokenSource Rent()
    {
        var items = _items;
        for (var i = 0; i < items.Length; i++)
        {
            var item = Interlocked.Exchange(ref items[i], null);
            if (item is not null)
            {
                return item;
            }
        }

        return new CancellationTokenSource();
    }

    /// <summary>A source that cancels itself after <paramref name="timeout"/> on the TimeProvider's timers.</summary>
    public CancellationTokenSource Rent(TimeSpan timeout)
    {
        var items = _items;
        for (var i = 0; i < items.Length; i++)
        {
            var item = Interlocked.Exchange(ref items[i], null);
            if (item is not null)
            {
                item.CancelAfter(timeout);
                return item;
            }
        }

        // Created with the TimeProvider so that CancelAfter runs on its timers (FakeTimeProvider in tests).
        return new CancellationTokenSource(timeout, _timeProvider);
    }

    public void Return(CancellationTokenSource source)
    {
        if (!source.TryReset())
        {
            source.Dispose();
            return;
        }

        var items = _items;
        for (var i = 0; i < items.Length; i++)
        {
            if (Interlocked.CompareExchange(ref items[i], source, null) is null)
            {
                return;
            }
        }

        source.Dispose();
    }
}

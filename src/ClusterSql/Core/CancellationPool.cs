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

    // One source per thread before the shared slots: an acquire on the fast path rents and returns on the same thread,
    // and a thread's own slot costs no interlocked operation. Shared by every pool of the process; a source holds
    // nothing of its pool (no TimeProvider timer is ever armed on one rented by Rent()).
    [ThreadStatic]
    private static CancellationTokenSource? t_cached;

    /// <summary>A source with no timer armed: the acquire path arms none for an open that completes synchronously.</summary>
    public CancellationTokenSource Rent()
    {
        var cached = t_cached;
        if (cached is not null)
        {
            t_cached = null;
            return cached;
        }

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

    /// <summary>
    /// A new source that cancels itself after <paramref name="timeout"/> on the TimeProvider's timers (FakeTimeProvider
    /// in tests), for <see cref="ClusterNode.OpenConnectionAsync(CancellationToken)"/>. Never a pooled one: those may
    /// come from another data source's TimeProvider, or none.
    /// </summary>
    public CancellationTokenSource Rent(TimeSpan timeout) => new(timeout, _timeProvider);

    public void Return(CancellationTokenSource source)
    {
        if (!source.TryReset())
        {
            source.Dispose();
            return;
        }

        if (t_cached is null)
        {
            t_cached = source;
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

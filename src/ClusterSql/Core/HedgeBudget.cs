using System;
using System.Threading;

namespace ClusterSql.Core;

/// <summary>
/// A token bucket in the manner of gRPC's retry throttling: every acquire deposits <c>ratio</c> of a token, every
/// hedge withdraws one, so that over time hedges stay within that share of acquires, with a small burst allowance
/// for a cold start. Failovers after a failed attempt are not hedges and cost nothing. An exploration of a node
/// believed slower withdraws its hedge's token when it is claimed (<see cref="ClusterNode.TryClaimExploration"/>), and
/// the acquire gives it back if no hedge was started.
/// </summary>
internal sealed class HedgeBudget
{
    /// <summary>
    /// The most hedges a client can have saved up. A fleet of N clients can spend N times this at the moment a cluster
    /// turns slow everywhere, when hedging helps least: at 10 (the first default), 1,000 clients making 5 acquires a
    /// second hedged once per acquire in that second (docs/benchmarks-fleet.md). Three still relieve a burst of
    /// concurrent acquires that landed on one hung node before its stall was seen.
    /// </summary>
    internal const int Burst = 3;

    /// <summary>
    /// What a new client starts with: one hedge for its first slow open, the rest earned by acquires (a fleet that starts
    /// or scales out together would otherwise add N x Burst logins to servers that are, at that moment, the busiest).
    /// </summary>
    internal const int Initial = 1;

    // Milli-tokens in an int, so that deposit and withdrawal are single Interlocked operations.
    private const int Scale = 1000;
    private const int Capacity = Burst * Scale;

    private readonly int _deposit;
    private int _milliTokens;

    public HedgeBudget(double ratio)
    {
        _deposit = (int)(ratio * Scale);
        _milliTokens = ratio > 0 ? Initial * Scale : 0;
    }

    /// <summary>Whether acquires add to the bucket at all: a ratio under a thousandth deposits nothing.</summary>
    public bool Refills => _deposit > 0;

    public void Deposit()
    {
        while (true)
        {
            var current = Volatile.Read(ref _milliTokens);
            if (_deposit == 0 || current >= Capacity)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref _milliTokens, Math.Min(current + _deposit, Capacity), current) == current)
            {
                return;
            }
        }
    }

    public bool TryWithdraw()
    {
        while (true)
        {
            var current = Volatile.Read(ref _milliTokens);
            if (current < Scale)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _milliTokens, current - Scale, current) == current)
            {
                return true;
            }
        }
    }

    /// <summary>Gives back a token withdrawn for a hedge that could not start, or for an exploration that needed none.</summary>
    public void Refund()
    {
        while (true)
        {
            var current = Volatile.Read(ref _milliTokens);
            if (Interlocked.CompareExchange(ref _milliTokens, Math.Min(current + Scale, Capacity), current) == current)
            {
                return;
            }
        }
    }

    internal double Tokens => Volatile.Read(ref _milliTokens) / (double)Scale;

    /// <summary>Spends every token and fraction of one: a client that hedged its whole budget away (tests).</summary>
    internal void Empty() => Volatile.Write(ref _milliTokens, 0);
}

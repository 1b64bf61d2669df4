using System.Linq;
using System.Threading.Tasks;
using ClusterSql.Core;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>
/// The per-client hedge bucket, at the sizes that matter for a fleet: what a new client can spend, what an idle one has
/// saved, and the long-run share under concurrency.
/// </summary>
public sealed class HedgeBudgetTests
{
    [Test]
    public void NewClient_MayHedgeOnce_ThenEarnsEachHedgeWithTenAcquires()
    {
        var budget = new HedgeBudget(0.1);
        Assert.That(budget.TryWithdraw(), Is.True, "a new client's first slow open may be hedged");
        Assert.That(budget.TryWithdraw(), Is.False, "but not a second before acquires paid for it");

        for (var i = 0; i < 9; i++)
        {
            budget.Deposit();
        }

        Assert.That(budget.TryWithdraw(), Is.False, "nine acquires pay for 0.9 of a hedge");
        budget.Deposit();
        Assert.That(budget.TryWithdraw(), Is.True);
    }

    [Test]
    public void LongQuietRun_SavesAtMostTheBurst()
    {
        // A client that acquired a million times without hedging, at the moment its cluster turns slow everywhere.
        var budget = new HedgeBudget(0.1);
        for (var i = 0; i < 1_000_000; i++)
        {
            budget.Deposit();
        }

        var hedges = 0;
        while (budget.TryWithdraw())
        {
            hedges++;
        }

        Assert.That(hedges, Is.EqualTo(HedgeBudget.Burst));
        Assert.That(HedgeBudget.Burst, Is.LessThanOrEqualTo(3), "a fleet of N clients can spend N times this at once");
    }

    [Test]
    public void ConcurrentAcquiresAndHedges_StayWithinTheShareAndTheInitialToken()
    {
        // Eight threads acquiring and trying to hedge every acquire: the hedges never exceed 0.1 of the acquires plus the
        // initial token, and no token is lost to a race (the bucket is one interlocked integer).
        var budget = new HedgeBudget(0.1);
        var counts = new int[8];
        Parallel.For(0, 8, t =>
        {
            for (var i = 0; i < 100_000; i++)
            {
                budget.Deposit();
                if (budget.TryWithdraw())
                {
                    counts[t]++;
                }
            }
        });

        var hedges = counts.Sum();
        Assert.That(hedges, Is.LessThanOrEqualTo((int)(0.1 * 800_000) + HedgeBudget.Initial));
        Assert.That(hedges, Is.GreaterThanOrEqualTo((int)(0.1 * 800_000) - HedgeBudget.Burst), "every deposit was counted");
    }

    [Test]
    public void ZeroRatio_NeverHedges()
    {
        var budget = new HedgeBudget(0);
        budget.Deposit();
        Assert.That(budget.TryWithdraw(), Is.False);
    }
}

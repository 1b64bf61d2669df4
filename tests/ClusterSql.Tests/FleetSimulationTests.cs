using System;
using System.Threading;
using ClusterSql.Benchmarks.Fleet;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>The fleet simulation engine (benchmarks' <c>fleet</c> command) on a tiny fleet.</summary>
public class FleetSimulationTests
{
    private static FleetConfig Storm(int seed) => new()
    {
        Name = "tiny storm",
        Clients = 20,
        Servers = [new ServerModel { Down = (1, 2) }, new ServerModel(), new ServerModel()],
        Seconds = 4,
        WarmUpSeconds = 0.5,
        FleetRate = 1000,
        Seed = seed,
    };

    [Test]
    public void A_recovered_node_takes_a_bounded_share_again_and_the_same_seed_gives_the_same_run()
    {
        var first = RunOnOwnThread(Storm(seed: 7));
        var again = RunOnOwnThread(Storm(seed: 7));
        var other = RunOnOwnThread(Storm(seed: 8));

        Assert.Multiple(() =>
        {
            Assert.That(again.Fingerprint, Is.EqualTo(first.Fingerprint), "the same seed must replay the same run");
            Assert.That(again.Servers[0].Attempts, Is.EqualTo(first.Servers[0].Attempts));
            Assert.That(other.Fingerprint, Is.Not.EqualTo(first.Fingerprint), "another seed is another run");

            // While down, node1 refused; after it, it serves again, but not as a storm.
            Assert.That(first.Servers[0].Refused, Is.GreaterThan(0));
            Assert.That(first.Failed, Is.Zero, "failover hides a refusing node from every acquire");
            var load = first.LoadMultiple(0, 2, 3);
            Assert.That(double.IsFinite(load), Is.True);
            Assert.That(load, Is.LessThanOrEqualTo(2.0), "the recovered node's first-second load, × fair share");
            Assert.That(first.Servers[0].WinsBetween(2, 4), Is.GreaterThan(0), "the recovered node serves again within 2 s");
            Assert.That(first.Succeeded, Is.GreaterThan(2500));
        });
    }

    [Test]
    public void A_slow_node_gets_less_than_its_fair_share()
    {
        var result = RunOnOwnThread(new FleetConfig
        {
            Clients = 10,
            Servers = [new ServerModel { Slowdown = 3 }, new ServerModel(), new ServerModel()],
            Seconds = 3,
            WarmUpSeconds = 1,
            FleetRate = 1000,
        });

        Assert.That(result.WinShare(0, 1, 3), Is.LessThan(0.2));
    }

    // The engine waits for the thread pool to go idle after each event, so it must not run on a pool thread itself.
    private static FleetResult RunOnOwnThread(FleetConfig config)
    {
        FleetResult? result = null;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = new FleetSimulation(config).Run();
            }
            catch (Exception ex)
            {
                error = ex;
            }
        });
        thread.Start();
        thread.Join();
        if (error is not null)
        {
            throw new AssertionException("The simulation failed: " + error);
        }

        return result!;
    }
}

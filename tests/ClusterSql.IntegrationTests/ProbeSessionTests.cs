using System;
using System.Linq;
using System.Threading.Tasks;
using ClusterSql.MySql;
using MySqlConnector;
using NUnit.Framework;

namespace ClusterSql.IntegrationTests;

/// <summary>
/// The Galera probe's kept connection across faults that eat its FIN: the server must not keep a half-open session
/// from the probe after each fault (its TCP keepalive would hold it for two hours).
/// </summary>
[TestFixture]
public sealed class ProbeSessionTests : FaultFixture
{
    private const int Faulted = 2;

    [Test]
    public async Task GaleraProbe_RepeatedBlackholes_LeavesNoHalfOpenSessionOnTheServer()
    {
        var idle = TimeSpan.FromSeconds(3);
        await MySqlConnection.ClearAllPoolsAsync();
        var baseline = await TestCluster.Status(Faulted, "Threads_connected");

        var builder = new ClusterDataSourceBuilder();
        for (var node = 1; node <= TestCluster.NodeCount; node++)
        {
            builder.AddMySqlNode(TestCluster.NodeName(node), TestCluster.ConnectionString(node));
        }

        builder.Options.HealthCheckInterval = TimeSpan.FromMilliseconds(500);
        builder.Options.HealthCheckTimeout = TimeSpan.FromSeconds(1);
        builder.UseHealthProbe(new GaleraHealthProbe(allowDonor: false, sessionIdleTimeout: idle));
        await using var cluster = builder.Build();
        var node2 = cluster.GetNode(TestCluster.NodeName(Faulted))!;

        const int faults = 3;
        for (var i = 0; i < faults; i++)
        {
            await WaitFor(() => node2.State == ClusterNodeState.Healthy, TimeSpan.FromSeconds(20), "galera2 healthy before the fault");
            await TestCluster.Harness("blackhole", "galera2");
            await WaitFor(() => node2.State == ClusterNodeState.Down, TimeSpan.FromSeconds(10), "the probe gives its connection up");
            await TestCluster.Harness("restore", "galera2");
        }

        await WaitFor(() => node2.State == ClusterNodeState.Healthy, TimeSpan.FromSeconds(20), "galera2 healthy after the last fault");

        // The abandoned sessions end once the server's idle timeout for the probe's session passes.
        long now = 0;
        var deadline = DateTime.UtcNow + idle + TimeSpan.FromSeconds(10);
        do
        {
            await Task.Delay(500);
            now = await TestCluster.Status(Faulted, "Threads_connected");
        }
        while (now > baseline + 1 && DateTime.UtcNow < deadline);

        TestContext.Progress.WriteLine($"galera2 Threads_connected: {baseline} before, {now} after {faults} blackholes (the probe's live session is one)");
        Assert.That(now, Is.LessThanOrEqualTo(baseline + 1), "only the probe's current session is left; none of the abandoned ones");
    }

    private static async Task WaitFor(Func<bool> condition, TimeSpan limit, string what)
    {
        var deadline = DateTime.UtcNow + limit;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Gave up waiting for: {what}");
            }

            await Task.Delay(100);
        }
    }
}

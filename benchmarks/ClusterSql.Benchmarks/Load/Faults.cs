using System;
using System.Globalization;
using System.Threading.Tasks;

namespace ClusterSql.Benchmarks.Load;

/// <summary>Injects and removes one fault through tests/cluster/cluster.sh; only ever on the loopback test nodes.</summary>
internal static class Faults
{
    private static readonly TimeSpan s_harnessTimeout = TimeSpan.FromMinutes(3);

    public static async Task InjectAsync(FaultKind fault, int node)
    {
        var name = TestCluster.NodeName(node);
        switch (fault)
        {
            case FaultKind.None:
                return;
            case FaultKind.Blackhole:
                await TestCluster.HarnessAsync(s_harnessTimeout, "blackhole", name);
                return;
            case FaultKind.Hang:
                await TestCluster.HarnessAsync(s_harnessTimeout, "hang", name);
                return;
            case FaultKind.Crash:
                await TestCluster.HarnessAsync(s_harnessTimeout, "crash", name);
                return;
            case FaultKind.Slow:
                await TestCluster.HarnessAsync(s_harnessTimeout, "slow", name, Scenario.SlowMilliseconds.ToString(CultureInfo.InvariantCulture));
                return;
            default:
                throw new ArgumentOutOfRangeException(nameof(fault), fault, null);
        }
    }

    /// <summary>Removes the fault, without waiting for Galera to be healthy again (see <see cref="WaitHealthyAsync"/>).</summary>
    public static async Task RemoveAsync(FaultKind fault, int node)
    {
        var name = TestCluster.NodeName(node);
        var command = fault switch
        {
            FaultKind.None => null,
            FaultKind.Blackhole => "restore",
            FaultKind.Hang => "resume",
            FaultKind.Crash => "restart",
            FaultKind.Slow => "unslow",
            _ => throw new ArgumentOutOfRangeException(nameof(fault), fault, null),
        };
        if (command is not null)
        {
            await TestCluster.HarnessAsync(s_harnessTimeout, command, name);
        }
    }

    public static Task WaitHealthyAsync() => TestCluster.HarnessAsync(s_harnessTimeout, "wait-healthy", "120");

    /// <summary>The last resort when removing one fault failed: every fault gone, crashed nodes restarted.</summary>
    public static Task HealAllAsync() => TestCluster.HarnessAsync(s_harnessTimeout, "heal-all");

    /// <summary>0 healthy, 1 unhealthy, 2 healthy but some fault active (cluster.sh status).</summary>
    public static async Task<int> StatusAsync()
    {
        try
        {
            await TestCluster.HarnessAsync(TimeSpan.FromSeconds(60), "status");
            return 0;
        }
        catch (InvalidOperationException ex) when (ex.Message.Contains("exited with 2", StringComparison.Ordinal))
        {
            return 2;
        }
        catch (InvalidOperationException)
        {
            return 1;
        }
    }
}

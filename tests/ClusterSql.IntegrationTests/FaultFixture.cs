using System.Threading.Tasks;
using NUnit.Framework;

namespace ClusterSql.IntegrationTests;

/// <summary>
/// A fixture that injects faults into the test cluster: it needs the cluster, runs alone, and undoes every fault after
/// each test, whether it passed or not.
/// </summary>
[NonParallelizable]
public abstract class FaultFixture
{
    [SetUp]
    public void RequireCluster() => ClusterSetUp.RequireCluster();

    [TearDown]
    public async Task HealAll()
    {
        if (ClusterSetUp.Available)
        {
            await TestCluster.Harness("heal-all");
        }
    }
}

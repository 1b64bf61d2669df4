using System;
using System.Linq;
using System.Threading.Tasks;
using ClusterSql.MySql;
using MySqlConnector;
using NUnit.Framework;

namespace ClusterSql.IntegrationTests;

/// <summary>Bad input against the real servers: the others serve, the error names the node, never the password.</summary>
[TestFixture]
public sealed class BadInputTests
{
    private const string WrongPassword = "Wrong-pw-4b1d-not-the-real-one";

    [SetUp]
    public void SetUp() => ClusterSetUp.RequireCluster();

    private static ClusterDataSource Cluster(string brokenName, string brokenConnectionString, AcquirePolicy policy = AcquirePolicy.RoundRobin)
    {
        var builder = new ClusterDataSourceBuilder().UsePolicy(policy)
            .AddMySqlNode("galera1", TestCluster.ConnectionString(1))
            .AddMySqlNode(brokenName, brokenConnectionString)
            .AddMySqlNode("galera3", TestCluster.ConnectionString(3));
        builder.Options.ConnectTimeout = TimeSpan.FromSeconds(3);
        return builder.Build();
    }

    private static async Task AssertOthersServe(ClusterDataSource cluster, string broken)
    {
        for (var i = 0; i < 12; i++)
        {
            await using var connection = await cluster.OpenMySqlConnectionAsync();
            await using var command = new MySqlCommand("SELECT 1", connection);
            Assert.That(Convert.ToInt32(await command.ExecuteScalarAsync()), Is.EqualTo(1));
        }

        var stats = cluster.GetNode(broken)!.GetStatistics();
        Assert.That(stats.Wins, Is.Zero);
        Assert.That(stats.Failures, Is.GreaterThan(0), "round robin tried the broken node");
    }

    [Test]
    public async Task WrongPasswordOnOneNode_OthersServeAndTheErrorNamesTheNodeNotThePassword()
    {
        await using var cluster = Cluster("galera2", TestCluster.ConnectionString(2).Replace(TestCluster.Password, WrongPassword, StringComparison.Ordinal));
        await AssertOthersServe(cluster, "galera2");
        var stats = cluster.GetNode("galera2")!.GetStatistics();
        Assert.That(stats.LastErrorType, Is.EqualTo(nameof(MySqlException)));
        Assert.That(stats.LastErrorMessage, Does.Contain("Access denied"));
        Assert.That(stats.ToString() + stats.LastErrorMessage, Does.Not.Contain(WrongPassword));
    }

    [Test]
    public async Task WrongPasswordEverywhere_OneExceptionNamesEveryNodeAndNoPassword()
    {
        var builder = new ClusterDataSourceBuilder();
        for (var node = 1; node <= TestCluster.NodeCount; node++)
        {
            builder.AddMySqlNode(TestCluster.NodeName(node), TestCluster.ConnectionString(node).Replace(TestCluster.Password, WrongPassword, StringComparison.Ordinal));
        }

        await using var cluster = builder.Build();
        var ex = Assert.ThrowsAsync<ClusterException>(async () => await cluster.OpenMySqlConnectionAsync());
        Assert.That(ex!.NodeErrors.Select(e => e.NodeName), Is.EquivalentTo(new[] { "galera1", "galera2", "galera3" }));
        Assert.That(ex.NodeErrors.Select(e => e.Exception.Message), Is.All.Contain("Access denied"));
        Assert.That(ex.ToString(), Does.Not.Contain(WrongPassword).And.Not.Contain(TestCluster.Password));
        Assert.That(ex.IsTransient, Is.False, "a wrong password is not fixed by retrying");
    }

    [Test]
    public async Task UnknownHost_OthersServe()
    {
        // An empty label makes the name invalid, so the resolver fails locally: no query leaves the machine.
        await using var cluster = Cluster("nowhere", $"Server=no-such-node..invalid;User ID=clustersql;Password={TestCluster.Password};Database=test");
        await AssertOthersServe(cluster, "nowhere");
        Assert.That(cluster.GetNode("nowhere")!.GetStatistics().LastErrorMessage, Is.Not.Empty.And.Not.Contain(TestCluster.Password));
    }

    [Test]
    public async Task ClosedPort_OthersServe()
    {
        // 127.0.0.24 is on loopback, and nothing listens there.
        await using var cluster = Cluster("closed", $"Server=127.0.0.24;Port=3306;User ID=clustersql;Password={TestCluster.Password};Database=test");
        await AssertOthersServe(cluster, "closed");
        Assert.That(cluster.GetNode("closed")!.GetStatistics().LastErrorMessage, Does.Contain("Unable to connect"));
    }
}

using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Linq;
using System.Threading.Tasks;
using ClusterSql.Tests.Fakes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace ClusterSql.Tests;

[TestFixture]
public sealed class DependencyInjectionTests
{
    [Test]
    public async Task AddClusterSql_RegistersOneInstanceAsBothTypesAndTheContainerDisposesIt()
    {
        var time = new FakeTimeProvider();
        var nodes = new[] { new FakeNode("a", time, OpenScript.Succeed), new FakeNode("b", time, OpenScript.Succeed) };
        var services = new ServiceCollection().AddSingleton<TimeProvider>(time);
        services.AddClusterSql((_, builder) =>
        {
            foreach (var node in nodes)
            {
                builder.AddNode(node.Name, node);
            }
        });

        var provider = services.BuildServiceProvider();
        var cluster = provider.GetRequiredService<ClusterDataSource>();
        Assert.That(provider.GetRequiredService<DbDataSource>(), Is.SameAs(cluster));
        await using (var connection = await provider.GetRequiredService<DbDataSource>().OpenConnectionAsync())
        {
            Assert.That(connection, Is.TypeOf<FakeConnection>());
        }

        await provider.DisposeAsync();
        Assert.That(nodes.Select(n => n.DataSourceDisposed), Is.All.True);
        Assert.That(async () => await cluster.OpenConnectionAsync(), Throws.InstanceOf<ObjectDisposedException>());
    }

    [Test]
    public async Task AddKeyedClusterSql_TwoClusters_ResolveSeparately()
    {
        var time = new FakeTimeProvider();
        var services = new ServiceCollection();
        services.AddKeyedClusterSql("orders", (_, b) => b.AddNode("o1", new FakeNode("o1", time, OpenScript.Succeed)));
        services.AddKeyedClusterSql("users", (_, b) => b.AddNode("u1", new FakeNode("u1", time, OpenScript.Succeed)));
        await using var provider = services.BuildServiceProvider();

        var orders = provider.GetRequiredKeyedService<ClusterDataSource>("orders");
        Assert.That(orders.Nodes.Single().Name, Is.EqualTo("o1"));
        Assert.That(provider.GetRequiredKeyedService<DbDataSource>("users"), Is.SameAs(provider.GetRequiredKeyedService<ClusterDataSource>("users")));
        Assert.That(provider.GetRequiredKeyedService<ClusterDataSource>("users").Nodes.Single().Name, Is.EqualTo("u1"));
    }

    [Test]
    public async Task AddClusterSql_FromConfiguration_BindsNodesAndOptions()
    {
        var configuration = Configuration(new()
        {
            ["ClusterSql:Name"] = "orders",
            ["ClusterSql:Policy"] = "FailOver",
            ["ClusterSql:ConnectTimeout"] = "00:00:02",
            ["ClusterSql:HedgeBudget"] = "0.2",
            ["ClusterSql:Nodes:first"] = "Data Source=:memory:",
            ["ClusterSql:Nodes:second"] = "Data Source=:memory:",
        });
        var services = new ServiceCollection().AddClusterSql(configuration.GetSection("ClusterSql"), SqliteFactory.Instance);
        await using var provider = services.BuildServiceProvider();

        var cluster = provider.GetRequiredService<ClusterDataSource>();
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EquivalentTo(new[] { "first", "second" }));
        Assert.That(cluster.Options.Name, Is.EqualTo("orders"));
        Assert.That(cluster.Options.Policy, Is.EqualTo(AcquirePolicy.FailOver));
        Assert.That(cluster.Options.ConnectTimeout, Is.EqualTo(TimeSpan.FromSeconds(2)));
        Assert.That(cluster.Options.HedgeBudget, Is.EqualTo(0.2));
        await using var connection = await cluster.OpenConnectionAsync();
        Assert.That(connection, Is.TypeOf<SqliteConnection>());
    }

    [TestCase(null, "has no nodes: add 'ClusterSql:Nodes:<name>' = <connection string>")]
    [TestCase("bad name", "The node name 'bad name' has the character ' '")]
    [TestCase("empty", "Node 'empty' has no connection string")]
    public void AddClusterSql_InvalidConfiguration_FailsAtRegistrationNamingTheProblem(string? node, string expected)
    {
        var values = new Dictionary<string, string?> { ["ClusterSql:Name"] = "x" };
        if (node is not null)
        {
            values[$"ClusterSql:Nodes:{node}"] = node == "empty" ? " " : "Data Source=:memory:;Password=secret-in-config";
        }

        var ex = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddClusterSql(Configuration(values).GetSection("ClusterSql"), SqliteFactory.Instance));
        Assert.That(ex!.Message, Does.Contain(expected));
        Assert.That(ex.Message, Does.Not.Contain("secret-in-config"));
    }

    [TestCase("ClusterSql:HedgeBudget", "3", "HedgeBudget")]
    [TestCase("ClusterSql:ConnectTimeout", "-00:00:01", "ConnectTimeout")]
    [TestCase("ClusterSql:Policy", "Fastest", "ClusterSql:Policy")]
    public void AddClusterSql_InvalidOption_FailsAtRegistrationNamingTheSetting(string key, string value, string expected)
    {
        var configuration = Configuration(new() { ["ClusterSql:Nodes:a"] = "Data Source=:memory:", [key] = value });
        var ex = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddClusterSql(configuration.GetSection("ClusterSql"), SqliteFactory.Instance));
        Assert.That(ex!.Message, Does.StartWith("Configuration 'ClusterSql").And.Contain(expected));
    }

    private static IConfiguration Configuration(Dictionary<string, string?> values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values).Build();
}

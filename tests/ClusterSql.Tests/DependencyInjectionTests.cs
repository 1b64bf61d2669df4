using System;
using System.Collections.Generic;
using System.Data.Common;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading.Tasks;
using ClusterSql.Extensions;
using ClusterSql.Tests.Fakes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using MySqlConnector;
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
    public async Task AddClusterSql_RegistersTheRolesKeyedAsRoleAndDbDataSource()
    {
        var time = new FakeTimeProvider();
        var services = new ServiceCollection();
        services.AddClusterSql((_, b) => b.AddNode("a", new FakeNode("a", time, OpenScript.Succeed)).AddNode("b", new FakeNode("b", time, OpenScript.Succeed)));
        await using var provider = services.BuildServiceProvider();

        var cluster = provider.GetRequiredService<ClusterDataSource>();
        Assert.That(provider.GetRequiredKeyedService<ClusterRoleDataSource>(ClusterSqlServiceKeys.Writer), Is.SameAs(cluster.Writer));
        Assert.That(provider.GetRequiredKeyedService<DbDataSource>(ClusterSqlServiceKeys.Writer), Is.SameAs(cluster.Writer));
        Assert.That(provider.GetRequiredKeyedService<ClusterRoleDataSource>("readers"), Is.SameAs(cluster.Readers));
        Assert.That(provider.GetRequiredKeyedService<DbDataSource>("readers"), Is.SameAs(cluster.Readers));
        Assert.That(provider.GetRequiredService<DbDataSource>(), Is.SameAs(cluster), "the unkeyed DbDataSource stays the whole cluster");
        await using var connection = await provider.GetRequiredKeyedService<DbDataSource>("writer").OpenConnectionAsync();
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("a"), "without probe data the writer is the first declared node");
    }

    [Test]
    public async Task AddKeyedClusterSql_TwoClusters_RolesResolveUnderTheirClustersKeys()
    {
        var time = new FakeTimeProvider();
        var services = new ServiceCollection();
        services.AddKeyedClusterSql("orders", (_, b) => b.AddNode("o1", new FakeNode("o1", time, OpenScript.Succeed)));
        services.AddKeyedClusterSql("users", (_, b) => b.AddNode("u1", new FakeNode("u1", time, OpenScript.Succeed)));
        await using var provider = services.BuildServiceProvider();

        var orders = provider.GetRequiredKeyedService<ClusterDataSource>("orders");
        var users = provider.GetRequiredKeyedService<ClusterDataSource>("users");
        Assert.That(ClusterSqlServiceKeys.For("orders", ClusterRole.Writer), Is.EqualTo("orders:writer"));
        Assert.That(provider.GetRequiredKeyedService<ClusterRoleDataSource>("orders:writer"), Is.SameAs(orders.Writer));
        Assert.That(provider.GetRequiredKeyedService<DbDataSource>("orders:readers"), Is.SameAs(orders.Readers));
        Assert.That(provider.GetRequiredKeyedService<DbDataSource>(ClusterSqlServiceKeys.For("users", ClusterRole.Reader)), Is.SameAs(users.Readers));
        Assert.That(provider.GetKeyedService<ClusterRoleDataSource>(ClusterSqlServiceKeys.Writer), Is.Null, "a keyed cluster takes no unkeyed role keys");
    }

    [Test]
    public async Task AddClusterSql_GeneratedClusterShape_RegistersItsRoles()
    {
        var time = new FakeTimeProvider();
        var services = new ServiceCollection();
        services.AddClusterSql(
            _ => new GeneratedShape(new ClusterDataSourceBuilder().AddNode("a", new FakeNode("a", time, OpenScript.Succeed)).Build()),
            generated => generated.DataSource);
        await using var provider = services.BuildServiceProvider();

        var cluster = provider.GetRequiredService<ClusterDataSource>();
        Assert.That(provider.GetRequiredKeyedService<ClusterRoleDataSource>(ClusterSqlServiceKeys.Readers), Is.SameAs(cluster.Readers));
    }

    [Test]
    public async Task AddClusterSql_FromConfiguration_BindsRoleOptions()
    {
        var configuration = Json("""
            { "ClusterSql": {
                "MaxWriters": 2, "WriterIsAlsoReader": true, "MaxReaderLag": 7, "WriterFailbackDelay": "00:00:00",
                "CausalReadTimeout": "00:00:01.5",
                "Nodes": { "a": "Data Source=:memory:" } } }
            """);
        var services = new ServiceCollection().AddClusterSql(configuration.GetSection("ClusterSql"), SqliteFactory.Instance);
        await using var provider = services.BuildServiceProvider();

        var options = provider.GetRequiredService<ClusterDataSource>().Options;
        Assert.That(options.MaxWriters, Is.EqualTo(2));
        Assert.That(options.WriterIsAlsoReader, Is.True);
        Assert.That(options.MaxReaderLag, Is.EqualTo(7));
        Assert.That(options.WriterFailbackDelay, Is.EqualTo(TimeSpan.Zero));
        Assert.That(options.CausalReadTimeout, Is.EqualTo(TimeSpan.FromSeconds(1.5)));
        Assert.That(options.CausalReads, Is.False);
    }

    [TestCase("-1", null)]
    [TestCase("0", 0L)]
    public async Task AddClusterSql_FromConfiguration_MaxReaderLagMinusOneIsNoLimit(string value, long? expected)
    {
        var configuration = Configuration(new() { ["ClusterSql:Nodes:a"] = "Data Source=:memory:", ["ClusterSql:MaxReaderLag"] = value });
        var services = new ServiceCollection().AddClusterSql(configuration.GetSection("ClusterSql"), SqliteFactory.Instance);
        await using var provider = services.BuildServiceProvider();

        Assert.That(provider.GetRequiredService<ClusterDataSource>().Options.MaxReaderLag, Is.EqualTo(expected));
    }

    [Test]
    public void AddClusterSql_FromConfiguration_CausalReadsWithoutPositions_FailsNamingTheSetting()
    {
        var configuration = Configuration(new() { ["ClusterSql:Nodes:a"] = "Data Source=:memory:", ["ClusterSql:CausalReads"] = "true" });
        var services = new ServiceCollection().AddClusterSql(configuration.GetSection("ClusterSql"), SqliteFactory.Instance);
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<ClusterDataSource>());
        Assert.That(ex!.Message, Does.Contain("CausalReads").And.Contain("UseConsistency"));
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
    [TestCase("ClusterSql:MaxWriters", "0", "MaxWriters")]
    [TestCase("ClusterSql:MaxReaderLag", "-2", "MaxReaderLag")]
    [TestCase("ClusterSql:WriterFailbackDelay", "-00:00:01", "WriterFailbackDelay")]
    [TestCase("ClusterSql:CausalReadTimeout", "00:00:00", "CausalReadTimeout")]
    public void AddClusterSql_InvalidOption_FailsAtRegistrationNamingTheSetting(string key, string value, string expected)
    {
        var configuration = Configuration(new() { ["ClusterSql:Nodes:a"] = "Data Source=:memory:", [key] = value });
        var ex = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddClusterSql(configuration.GetSection("ClusterSql"), SqliteFactory.Instance));
        Assert.That(ex!.Message, Does.StartWith("Configuration 'ClusterSql").And.Contain(expected));
    }

    [Test]
    public async Task AddClusterSql_ObjectFormWithPriorities_FailOverFollowsPriorityNotNameOrder()
    {
        // "dr" sorts before "primary": configuration hands object members over in name order, so only Priority can say.
        var configuration = Json("""
            { "ClusterSql": { "Policy": "FailOver", "Nodes": {
                "primary": { "ConnectionString": "Data Source=primary;Mode=Memory", "Priority": 0 },
                "dr": { "ConnectionString": "Data Source=dr;Mode=Memory", "Priority": 1, "ConnectTimeout": "00:00:03" } } } }
            """);
        await using var provider = new ServiceCollection().AddClusterSql(configuration.GetSection("ClusterSql"), SqliteFactory.Instance).BuildServiceProvider();

        var cluster = provider.GetRequiredService<ClusterDataSource>();
        await using var connection = await cluster.OpenConnectionAsync();
        Assert.That(connection.ConnectionString, Does.Contain("primary"));
        Assert.That(cluster.GetNode("dr")!.ConnectTimeout, Is.EqualTo(TimeSpan.FromSeconds(3)));
    }

    [Test]
    public async Task AddClusterSql_ArrayForm_KeepsDeclaredOrder()
    {
        var configuration = Json("""
            { "ClusterSql": { "Policy": "FailOver", "Nodes": [
                { "Name": "primary", "ConnectionString": "Data Source=primary;Mode=Memory" },
                { "Name": "dr", "ConnectionString": "Data Source=dr;Mode=Memory" } ] } }
            """);
        await using var provider = new ServiceCollection().AddClusterSql(configuration.GetSection("ClusterSql"), SqliteFactory.Instance).BuildServiceProvider();

        var cluster = provider.GetRequiredService<ClusterDataSource>();
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "primary", "dr" }));
        await using var connection = await cluster.OpenConnectionAsync();
        Assert.That(connection.ConnectionString, Does.Contain("primary"));
    }

    [Test]
    public async Task AddClusterSql_ArrayFormOfTwelveNodes_KeepsNumericOrder()
    {
        var nodes = Enumerable.Range(0, 12).Select(i => $$"""{ "Name": "n{{i}}", "ConnectionString": "Data Source=:memory:" }""");
        var configuration = Json($$"""{ "ClusterSql": { "Nodes": [ {{string.Join(", ", nodes)}} ] } }""");
        await using var provider = new ServiceCollection().AddClusterSql(configuration.GetSection("ClusterSql"), SqliteFactory.Instance).BuildServiceProvider();

        Assert.That(provider.GetRequiredService<ClusterDataSource>().Nodes.Select(n => n.Name), Is.EqualTo(Enumerable.Range(0, 12).Select(i => $"n{i}")));
    }

    [TestCase("""{ "primary": { "ConnectionString": "Data Source=:memory:", "Priority": "first" } }""", "'ClusterSql:Nodes:primary:Priority' is not an integer")]
    [TestCase("""[ { "Name": "a", "ConnectionString": "Data Source=:memory:" }, { "Name": "A", "ConnectionString": "Data Source=:memory:" } ]""", "Node 'A' is declared twice")]
    [TestCase("""[ { "Name": "a" } ]""", "Node 'a' has no connection string")]
    [TestCase("""{ "a": { "ConnectionString": "Data Source=:memory:", "ConnectTimeout": "00:00:00" } }""", "ConnectTimeout of node 'a'")]
    public void AddClusterSql_InvalidNode_FailsAtRegistrationNamingIt(string nodes, string expected)
    {
        var configuration = Json($$"""{ "ClusterSql": { "Nodes": {{nodes}} } }""");
        var ex = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddClusterSql(configuration.GetSection("ClusterSql"), SqliteFactory.Instance));
        Assert.That(ex!.Message, Does.StartWith("Configuration 'ClusterSql'").And.Contain(expected));
    }

    [TestCaseSource(typeof(MySqlTests), nameof(MySqlTests.MalformedWithPassword))]
    public void AddClusterSql_MalformedMySqlConnectionString_EchoesNoPieceOfIt(string connectionString)
    {
        var configuration = Configuration(new() { ["ClusterSql:Nodes:galera1"] = connectionString });
        var ex = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddClusterSql(configuration.GetSection("ClusterSql"), MySqlConnectorFactory.Instance));
        Assert.That(ex!.Message, Does.StartWith("Configuration 'ClusterSql': The connection string of node 'galera1' does not parse as a MySqlConnector connection string ("));
        MySqlTests.AssertEchoesNoPiece(ex, MySqlTests.Token);
    }

    [TestCaseSource(typeof(MySqlTests), nameof(MySqlTests.MalformedWithPassword))]
    public void AddClusterSql_MalformedSqliteConnectionString_EchoesNoPieceOfIt(string connectionString)
    {
        var configuration = Configuration(new() { ["ClusterSql:Nodes:lite"] = connectionString.Replace("Server=a", "Data Source=:memory:", StringComparison.Ordinal) });
        var ex = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddClusterSql(configuration.GetSection("ClusterSql"), SqliteFactory.Instance));
        Assert.That(ex!.Message, Does.Contain("node 'lite' does not parse as a Sqlite connection string ("));
        MySqlTests.AssertEchoesNoPiece(ex, MySqlTests.Token);
    }

    /// <summary>What the generator makes: a class that owns a cluster (registering the cluster itself as TCluster would resolve itself).</summary>
    private sealed class GeneratedShape(ClusterDataSource dataSource) : IAsyncDisposable
    {
        public ClusterDataSource DataSource { get; } = dataSource;

        public ValueTask DisposeAsync() => DataSource.DisposeAsync();
    }

    private static IConfiguration Configuration(Dictionary<string, string?> values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values).Build();

    private static IConfiguration Json(string json) =>
        new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build();
}

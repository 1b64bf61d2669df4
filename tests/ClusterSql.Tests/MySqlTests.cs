using System;
using System.Collections.Generic;
using System.Data;
using System.Data.Common;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.MySql;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using MySqlConnector;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>The MySqlConnector integration's pure parts: Galera rules, stale views, connection strings.</summary>
[TestFixture]
public sealed class MySqlTests
{
    private static Dictionary<string, string> Synced(string confId = "5", string uuid = "u1") => new(StringComparer.OrdinalIgnoreCase)
    {
        ["wsrep_ready"] = "ON",
        ["wsrep_local_state"] = "4",
        ["wsrep_cluster_status"] = "Primary",
        ["wsrep_desync"] = "OFF",
        ["wsrep_reject_queries"] = "NONE",
        ["wsrep_cluster_conf_id"] = confId,
        ["wsrep_cluster_state_uuid"] = uuid,
    };

    [TestCase(2.5, 3u)]
    [TestCase(0.2, 1u)]
    public void ProbeConnectionString_UnpooledAndBoundedByTheNodesConnectTimeout(double connectSeconds, uint expected)
    {
        var probe = new MySqlConnector.MySqlConnectionStringBuilder(GaleraHealthProbe.ProbeConnectionString(
            "Server=127.0.0.21;User ID=app;Password=pw;Connection Timeout=15", TimeSpan.FromSeconds(connectSeconds)));
        Assert.That(
            (probe.Pooling, probe.ConnectionReset, probe.ConnectionTimeout, probe.DefaultCommandTimeout, probe.CancellationTimeout, probe.Server),
            Is.EqualTo((false, false, expected, expected, -1, "127.0.0.21")));
    }

    [Test]
    public void Evaluate_SyncedPrimaryNode_IsHealthy() =>
        Assert.That(GaleraHealthProbe.Evaluate(Synced(), allowDonor: false).IsHealthy, Is.True);

    [TestCase("wsrep_ready", "OFF", "wsrep_ready is OFF, not ON")]
    [TestCase("wsrep_cluster_status", "non-Primary", "wsrep_cluster_status is non-Primary, not Primary")]
    [TestCase("wsrep_local_state", "2", "wsrep_local_state is 2 (Donor/Desynced), not 4 (Synced)")]
    [TestCase("wsrep_local_state", "1", "wsrep_local_state is 1 (Joining), not 4 (Synced)")]
    [TestCase("wsrep_desync", "ON", "wsrep_desync is ON, not OFF")]
    [TestCase("wsrep_reject_queries", "ALL", "wsrep_reject_queries is ALL, not NONE")]
    public void Evaluate_EachRuleBroken_GivesTheReason(string variable, string value, string reason)
    {
        var values = Synced();
        values[variable] = value;
        Assert.That(GaleraHealthProbe.Evaluate(values, allowDonor: false).Reason, Is.EqualTo(reason));
    }

    [Test]
    public void Evaluate_DonorWhenAllowed_IsHealthy()
    {
        var values = Synced();
        values["wsrep_local_state"] = "2";
        Assert.That(GaleraHealthProbe.Evaluate(values, allowDonor: true).IsHealthy, Is.True);
    }

    [Test]
    public void Evaluate_NotGalera_IsUnhealthyWithAClearReason()
    {
        var reason = GaleraHealthProbe.Evaluate(new Dictionary<string, string>(), allowDonor: false).Reason;
        Assert.That(reason, Is.EqualTo("no wsrep status: the node is not a Galera node, or wsrep is off"));
    }

    [Test]
    public void ConfigurationTracker_NodeBehindTheOthers_IsStaleUntilItCatchesUp()
    {
        var time = new FakeTimeProvider();
        var tracker = new GaleraHealthProbe.ConfigurationTracker(time);
        Assert.That(tracker.Check(Synced("5")).IsHealthy, Is.True);
        Assert.That(tracker.Check(Synced("5")).IsHealthy, Is.True);
        Assert.That(tracker.Check(Synced("3")).Reason, Is.EqualTo("stale view of the group: wsrep_cluster_conf_id is 3, other nodes are at 5"));
        Assert.That(tracker.Check(Synced("6")).IsHealthy, Is.True, "the group moved on: a newer id is fine");
        Assert.That(tracker.Check(Synced("5")).IsHealthy, Is.False);
        Assert.That(tracker.Check(Synced("1", uuid: "u2")).IsHealthy, Is.True, "another cluster state starts afresh");
    }

    [Test]
    public void ConfigurationTracker_NewestIdNotSeenForLong_TrustsTheLowerOne()
    {
        var time = new FakeTimeProvider();
        var tracker = new GaleraHealthProbe.ConfigurationTracker(time);
        tracker.Check(Synced("9"));
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.That(tracker.Check(Synced("2")).IsHealthy, Is.False);
        time.Advance(TimeSpan.FromSeconds(25));
        Assert.That(tracker.Check(Synced("2")).IsHealthy, Is.True);
    }

    [Test]
    public void SplitHosts_MultiHostString_GivesANodePerHostWithoutLoadBalance()
    {
        var nodes = MySqlCluster.SplitHosts("Server=10.0.0.1, db-2.example ,[::1];Port=3307;User ID=app;Password=pw;LoadBalance=FailOver").ToList();
        Assert.That(nodes.Select(n => n.Name), Is.EqualTo(new[] { "10.0.0.1-3307", "db-2.example-3307", "--1-3307" }));
        Assert.That(nodes[1].ConnectionString, Does.Contain("Server=db-2.example").And.Contain("Port=3307").And.Not.Contain("Load Balance"));
    }

    [Test]
    public void AddMySqlNode_UnparsableConnectionString_NamesTheNodeNotThePassword()
    {
        var ex = Assert.Throws<ArgumentException>(() => new ClusterDataSourceBuilder().AddMySqlNode("galera1", "Server=a;Password=hunter2;Bogus Key=1"));
        Assert.That(ex!.Message, Does.StartWith("The connection string of node 'galera1' does not parse"));
        Assert.That(ex.Message, Does.Not.Contain("hunter2"));
    }

    [Test]
    public void SplitHosts_NoServer_Throws() =>
        Assert.That(() => MySqlCluster.SplitHosts("User ID=app").ToList(), Throws.ArgumentException.With.Message.Contains("names no server"));

    [TestCase("db-0.db-headless", 3306u, "db-0.db-headless")]
    [TestCase("10.0.0.1", 3307u, "10.0.0.1-3307")]
    [TestCase("[fe80::1]", 3306u, "fe80--1")]
    [TestCase("db-0.db-headless.payments-production-eu-west-1.svc.cluster.local", 3306u, "db-0.db-headless.payments-production-eu-west-1.svc.cluster.local")]
    [TestCase("mariadb-galera-0.mariadb-galera-headless.payments-production.svc.cluster.local", 3306u, "mariadb-galera-0.mariadb-galera-headless-f1127466")]
    [TestCase("mariadb-galera-0.mariadb-galera-headless.payments-production.svc.cluster.local", 3307u, "mariadb-galera-0.mariadb-galera-headless-f1127466-3307")]
    [TestCase("MariaDB-Galera-0.mariadb-galera-headless.payments-production.svc.cluster.local", 3306u, "MariaDB-Galera-0.mariadb-galera-headless-f1127466")]
    public void NodeName_Host_FollowsTheDocumentedRule(string host, uint port, string expected)
    {
        // The hashes are FNV-1a of the lower-case host, computed outside .NET: a name must not change between runs or versions.
        Assert.That(MySqlCluster.NodeName(host, port), Is.EqualTo(expected));
    }

    [Test]
    public void SplitHosts_LongSimilarAndDuplicateHosts_GivesValidUniqueNames()
    {
        var longLabel = new string('x', 300);
        string[] hosts =
        [
            "mariadb-galera-0.mariadb-galera-headless.payments-production.svc.cluster.local",
            "mariadb-galera-1.mariadb-galera-headless.payments-production.svc.cluster.local",
            "mariadb-galera-0.mariadb-galera-headless.payments-production.svc.cluster.local",
            longLabel,
            longLabel + "y",
            "[::1]",
            "--1",
            "DB-A",
            "db-a",
        ];

        var names = MySqlCluster.SplitHosts($"Server={string.Join(",", hosts)};User ID=app").Select(n => n.Name).ToList();

        Assert.That(names, Has.Count.EqualTo(hosts.Length));
        Assert.That(names.Distinct(StringComparer.OrdinalIgnoreCase).Count(), Is.EqualTo(hosts.Length), "names are unique, ignoring case");
        Assert.That(names, Has.All.Matches<string>(name => IsValidNodeName(name)));
        Assert.That(names[2], Is.EqualTo(names[0] + "-2"), "a repeated host gets a numbered suffix");
        Assert.That(names[6], Is.EqualTo("--1-2"), "an IPv6 literal and a host that look alike stay apart");
        Assert.That(names[8], Is.EqualTo("db-a-2"));
    }

    [Test]
    public async Task CreateDataSource_KubernetesHeadlessServiceHosts_BuildsWithNodesNamedAfterPods()
    {
        var hosts = Enumerable.Range(0, 3).Select(i => $"mariadb-galera-{i}.mariadb-galera-headless.payments-production.svc.cluster.local");
        await using var cluster = MySqlCluster.CreateDataSource($"Server={string.Join(",", hosts)};User ID=app;Password=pw", galera: false);

        Assert.That(cluster.Nodes.Select(n => n.Name), Has.All.StartsWith("mariadb-galera-").And.All.Length.LessThanOrEqualTo(64));
        Assert.That(cluster.Nodes.Select(n => n.Name.Split('.')[0]), Is.EqualTo(new[] { "mariadb-galera-0", "mariadb-galera-1", "mariadb-galera-2" }));
    }

    [Test]
    public async Task CreateDataSource_LoggerFactory_IsUsedByTheCluster()
    {
        var loggerFactory = new RecordingLoggerFactory();
        await using var cluster = MySqlCluster.CreateDataSource("Server=a,b;User ID=app", galera: false, loggerFactory: loggerFactory);

        Assert.That(loggerFactory.Categories, Does.Contain("ClusterSql"));
    }

    internal const string Token = "Zq7Xw9Vk3Jp";

    // Each string breaks the parser differently; each carries the token (or pieces of it) where a password would be.
    internal static readonly string[] MalformedWithPassword =
    [
        "Server=a;Password='Zq7X'w9V\"k3Jp'",
        "Server=a;Password=Zq7Xw9Vk3Jp;Bogus Key=1",
        "Server=a;Password=\"Zq7Xw9Vk3Jp",
        "Server=a;Password=Zq7Xw;9Vk3Jp",
        "Server=a;Password=Zq7Xw;9Vk3Jp=1",
        "Server=a;Password=Zq7Xw9Vk3Jp;Port=Zq7Xw9Vk3Jp",
        "Server=a;Password=Zq7Xw9Vk3Jp;SslMode=Zq7Xw9Vk3Jp",
        "Server=a;Password=Zq7Xw9Vk3Jp;Pooling=Zq7Xw9Vk3Jp",
        "Server=a;Password=Zq7Xw9Vk3Jp;Connection Timeout=-Zq7Xw9Vk3Jp",
        "Server=a;Zq7Xw9Vk3Jp",
        "Server=a;Password=Zq7Xw9Vk3Jp;=Zq7Xw",
    ];

    [TestCaseSource(nameof(MalformedWithPassword))]
    public void AddMySqlNode_MalformedConnectionString_EchoesNoPieceOfIt(string connectionString)
    {
        var ex = Assert.Throws<ArgumentException>(() => new ClusterDataSourceBuilder().AddMySqlNode("galera1", connectionString));
        Assert.That(ex!.Message, Does.StartWith("The connection string of node 'galera1' does not parse as a MySqlConnector connection string ("));
        AssertEchoesNoPiece(ex, Token);
    }

    [TestCaseSource(nameof(MalformedWithPassword))]
    public void CreateDataSource_MalformedConnectionString_EchoesNoPieceOfIt(string connectionString)
    {
        var ex = Assert.Throws<ArgumentException>(() => MySqlCluster.CreateDataSource(connectionString, galera: false));
        Assert.That(ex!.Message, Does.StartWith("The connection string does not parse as a MySqlConnector connection string ("));
        AssertEchoesNoPiece(ex, Token);
    }

    [TestCase("Server=a;Port=eighty", "the value of 'Port' is malformed")]
    [TestCase("Server=a;ssl mode=Maybe", "the value of 'ssl mode' is malformed")]
    [TestCase("Server=a;Certificate Password=x;Bogus=1", "a key is unknown, or a value is malformed: check quoting")]
    [TestCase("Server='a", "it is not a list of key=value pairs: check quoting and ';'")]
    public void AddMySqlNode_MalformedConnectionString_SaysWhatIsWrongInGeneralTerms(string connectionString, string reason)
    {
        var ex = Assert.Throws<ArgumentException>(() => new ClusterDataSourceBuilder().AddMySqlNode("galera1", connectionString));
        Assert.That(ex!.Message, Does.Contain($"({reason})").IgnoreCase);
    }

    [Test]
    public async Task OpenMySqlConnectionAsync_MySqlNode_ReturnsTheNodesConnection()
    {
        await using var cluster = new ClusterDataSourceBuilder().AddNode("m", new UnopenedMySqlDataSource()).Build();
        await using var connection = await cluster.Nodes[0].OpenMySqlConnectionAsync();
        Assert.That(connection.ConnectionString, Does.Contain("unopened.example"));
    }

    [Test]
    public async Task OpenMySqlConnection_MySqlNode_ReturnsTheNodesConnection()
    {
        await using var cluster = new ClusterDataSourceBuilder().AddNode("m", new UnopenedMySqlDataSource()).Build();
        using var connection = cluster.Nodes[0].OpenMySqlConnection();
        Assert.That(connection.ConnectionString, Does.Contain("unopened.example"));
    }

    [Test]
    public async Task OpenMySqlConnectionAsync_SqliteNode_ThrowsAndDisposesTheConnection()
    {
        var sqlite = new TrackingSqliteDataSource();
        await using var cluster = new ClusterDataSourceBuilder().AddNode("lite", sqlite).Build();
        var ex = Assert.ThrowsAsync<InvalidOperationException>(async () => await cluster.GetNode("lite")!.OpenMySqlConnectionAsync());
        Assert.That(ex!.Message, Does.Contain("SqliteConnection, not a MySqlConnection"));
        Assert.That(sqlite.Opened!.State, Is.EqualTo(ConnectionState.Closed), "the wrong-typed connection is disposed");
    }

    [Test]
    public async Task OpenMySqlConnection_SqliteNode_Throws()
    {
        await using var cluster = new ClusterDataSourceBuilder().AddNode("lite", new TrackingSqliteDataSource()).Build();
        Assert.That(() => cluster.Nodes[0].OpenMySqlConnection(), Throws.InvalidOperationException.With.Message.Contains("not a MySqlConnection"));
    }

    [Test]
    public void OpenMySqlConnection_NullNode_Throws() =>
        Assert.That(() => ((ClusterNode)null!).OpenMySqlConnection(), Throws.ArgumentNullException);

    /// <summary>Asserts that no 4-character piece of <paramref name="secret"/> appears anywhere in the exception, inner ones and stack included.</summary>
    internal static void AssertEchoesNoPiece(Exception exception, string secret)
    {
        var text = exception.ToString();
        Assert.That(exception.InnerException, Is.Null, "the provider's exception carries its message");
        for (var i = 0; i + 4 <= secret.Length; i++)
        {
            Assert.That(text, Does.Not.Contain(secret.Substring(i, 4)), $"the exception echoes '{secret.Substring(i, 4)}'");
        }
    }

    private static bool IsValidNodeName(string name)
    {
        try
        {
            ClusterDataSourceBuilder.ValidateName(name);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private sealed class RecordingLoggerFactory : ILoggerFactory
    {
        public List<string> Categories { get; } = [];

        public ILogger CreateLogger(string categoryName)
        {
            Categories.Add(categoryName);
            return NullLogger.Instance;
        }

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose()
        {
        }
    }

    /// <summary>Hands out MySqlConnections without a server: opening is the provider's business, the typing is ours.</summary>
    private sealed class UnopenedMySqlDataSource : DbDataSource
    {
        public override string ConnectionString => "Server=unopened.example";

        protected override DbConnection CreateDbConnection() => new MySqlConnection(ConnectionString);

        protected override DbConnection OpenDbConnection() => CreateDbConnection();

        protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default) => new(CreateDbConnection());
    }

    private sealed class TrackingSqliteDataSource : DbDataSource
    {
        public SqliteConnection? Opened { get; private set; }

        public override string ConnectionString => "Data Source=:memory:";

        protected override DbConnection CreateDbConnection() => new SqliteConnection(ConnectionString);

        protected override DbConnection OpenDbConnection()
        {
            Opened = new SqliteConnection(ConnectionString);
            Opened.Open();
            return Opened;
        }

        protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default) => new(OpenDbConnection());
    }
}

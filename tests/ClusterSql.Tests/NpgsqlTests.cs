using System;
using System.Data.Common;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.Npgsql;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using NUnit.Framework;
using Status = ClusterSql.Npgsql.PostgresHealthProbe.PostgresStatus;

namespace ClusterSql.Tests;

/// <summary>The Npgsql integration's pure parts: the role mapping, timelines, connection strings.</summary>
[TestFixture]
public sealed class NpgsqlTests
{
    private const string Cluster = "7714167547550546680";

    [Test]
    public void Evaluate_Primary_WriterRankedByTimeline()
    {
        var tracker = new PostgresHealthProbe.TimelineTracker(new FakeTimeProvider());
        var health = tracker.Evaluate(new Status(InRecovery: false, Timeline: 3, ReplayLagBytes: null, ReceivedTimeline: null, UptimeSeconds: 90, SystemIdentifier: Cluster));
        Assert.Multiple(() =>
        {
            Assert.That(health.IsHealthy, Is.True);
            Assert.That(health.ReadOnly, Is.False);
            Assert.That(health.WriterRank, Is.EqualTo(-3));
            Assert.That(health.Uptime, Is.EqualTo(TimeSpan.FromSeconds(90)));
        });
    }

    [Test]
    public void Evaluate_Standby_ReadOnlyWithReplayLagInBytes()
    {
        var tracker = new PostgresHealthProbe.TimelineTracker(new FakeTimeProvider());
        var health = tracker.Evaluate(new Status(InRecovery: true, Timeline: null, ReplayLagBytes: 4096, ReceivedTimeline: 1, UptimeSeconds: 5, SystemIdentifier: Cluster));
        Assert.Multiple(() =>
        {
            Assert.That(health.IsHealthy, Is.True);
            Assert.That(health.ReadOnly, Is.True);
            Assert.That(health.WriterRank, Is.Null);
            Assert.That(health.ReplicationLag, Is.EqualTo(4096));
        });
    }

    [Test]
    public void Evaluate_OlderPrimaryAfterPromotion_Superseded_ItsStandbyLastForReads()
    {
        var tracker = new PostgresHealthProbe.TimelineTracker(new FakeTimeProvider());
        Assert.That(tracker.Evaluate(new Status(false, 1, null, null, 100, Cluster)).IsHealthy, Is.True, "alone, the old primary is the writer");
        Assert.That(tracker.Evaluate(new Status(false, 2, null, null, 100, Cluster)).IsHealthy, Is.True, "the promoted one");

        var old = tracker.Evaluate(new Status(false, 1, null, null, 100, Cluster));
        Assert.That(old.IsHealthy, Is.False);
        Assert.That(old.Reason, Does.Contain("superseded").And.Contain("timeline 2"));

        var follower = tracker.Evaluate(new Status(true, null, 0, ReceivedTimeline: 1, 100, Cluster));
        Assert.That(follower.IsHealthy && follower.ReplicationLag == long.MaxValue, Is.True, "a standby still streaming the old timeline");
        var current = tracker.Evaluate(new Status(true, null, 0, ReceivedTimeline: 2, 100, Cluster));
        Assert.That(current.ReplicationLag, Is.EqualTo(0));
        var unknown = tracker.Evaluate(new Status(true, null, 0, ReceivedTimeline: null, 100, Cluster));
        Assert.That(unknown.ReplicationLag, Is.EqualTo(0), "no pg_read_all_stats, or no stream: no timeline check");
    }

    [Test]
    public void Evaluate_NewerTimelineNotSeenForAMinute_Forgotten()
    {
        var time = new FakeTimeProvider();
        var tracker = new PostgresHealthProbe.TimelineTracker(time);
        tracker.Evaluate(new Status(false, 2, null, null, 100, Cluster));
        time.Advance(TimeSpan.FromSeconds(59));
        Assert.That(tracker.Evaluate(new Status(false, 1, null, null, 100, Cluster)).IsHealthy, Is.False);
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.That(tracker.Evaluate(new Status(false, 1, null, null, 100, Cluster)).IsHealthy, Is.True, "a cluster rebuilt from an older copy");
    }

    [Test]
    public void Evaluate_OtherCluster_NotComparedByTimeline()
    {
        var tracker = new PostgresHealthProbe.TimelineTracker(new FakeTimeProvider());
        tracker.Evaluate(new Status(false, 5, null, null, 100, Cluster));
        Assert.That(tracker.Evaluate(new Status(false, 1, null, null, 100, "1234")).IsHealthy, Is.True);
    }

    [Test]
    public void SplitHosts_MultiHost_OneNodePerHostWithoutNpgsqlMultiHostSettings()
    {
        var nodes = NpgsqlCluster.SplitHosts(
            "Host=127.0.0.41:5441, db-2.example ,[::1]:5434,[fe80::1];Port=5433;Username=app;Password=pw;Target Session Attributes=primary;Load Balance Hosts=true").ToList();
        Assert.That(nodes.Select(n => n.Name), Is.EqualTo(new[] { "127.0.0.41-5441", "db-2.example-5433", "--1-5434", "fe80--1-5433" }));
        var second = new NpgsqlConnectionStringBuilder(nodes[1].ConnectionString);
        Assert.Multiple(() =>
        {
            Assert.That(second.Host, Is.EqualTo("db-2.example"));
            Assert.That(second.Port, Is.EqualTo(5433));
            Assert.That(second.Password, Is.EqualTo("pw"));
            Assert.That(second.TargetSessionAttributes, Is.Null);
            Assert.That(second.LoadBalanceHosts, Is.False);
            Assert.That(new NpgsqlConnectionStringBuilder(nodes[2].ConnectionString).Host, Is.EqualTo("[::1]"));
        });
    }

    [Test]
    public void SplitHosts_DefaultPort_NoSuffix_DuplicatesNumbered()
    {
        var names = NpgsqlCluster.SplitHosts("Host=db,db,DB;Username=app").Select(n => n.Name);
        Assert.That(names, Is.EqualTo(new[] { "db", "db-2", "DB-3" }));
    }

    [Test]
    public void SplitHosts_NoHost_ClearError()
    {
        var ex = Assert.Throws<ArgumentException>(() => NpgsqlCluster.SplitHosts("Username=app;Password=pw").ToList());
        Assert.That(ex!.Message, Does.Contain("names no host"));
    }

    [TestCase("Host=a;Password='Zq7X'w9V\"k3Jp'")]
    [TestCase("Host=a;Password=Zq7Xw9Vk3Jp;Bogus Key=1")]
    [TestCase("Host=a;Password=\"Zq7Xw9Vk3Jp")]
    [TestCase("Host=a;Port=Zq7Xw9Vk3Jp")]
    public void AddNpgsqlNode_UnparsableConnectionString_NamesTheNodeNotTheString(string connectionString)
    {
        var ex = Assert.Throws<ArgumentException>(() => new ClusterDataSourceBuilder().AddNpgsqlNode("pg1", connectionString));
        Assert.That(ex!.Message, Does.Contain("'pg1'").And.Contain("Npgsql"));
        Assert.That(ex.Message, Does.Not.Contain("Zq7X").And.Not.Contain("w9V").And.Not.Contain("k3Jp"));
        Assert.That(ex.InnerException, Is.Null, "the provider's exception quotes the string");

        var multi = Assert.Throws<ArgumentException>(() => new ClusterDataSourceBuilder().AddNpgsqlNodes(connectionString));
        Assert.That(multi!.Message, Does.Not.Contain("Zq7X").And.Not.Contain("w9V").And.Not.Contain("k3Jp"));
    }

    [Test]
    public void AddNpgsqlNode_SeveralHosts_Rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() => new ClusterDataSourceBuilder().AddNpgsqlNode("pg1", "Host=a,b;Password=secret"));
        Assert.That(ex!.Message, Does.Contain("several hosts").And.Not.Contain("secret"));
    }

    [Test]
    public async Task CreateDataSource_WithProbe_LagBoundInBytes_ConfigureWins()
    {
        await using (var cluster = NpgsqlCluster.CreateDataSource("Host=127.0.0.1:1,127.0.0.1:2;Username=app;Password=pw"))
        {
            Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "127.0.0.1-1", "127.0.0.1-2" }));
            Assert.That(cluster.Nodes[0].DataSource, Is.InstanceOf<NpgsqlDataSource>());
        }

        var seen = (long?)0;
        await using (NpgsqlCluster.CreateDataSource("Host=a;Username=app", configure: o => seen = o.MaxReaderLag))
        {
            Assert.That(seen, Is.EqualTo(1024 * 1024));
        }

        await using (NpgsqlCluster.CreateDataSource("Host=a;Username=app", healthProbe: false, configure: o => seen = o.MaxReaderLag))
        {
            Assert.That(seen, Is.EqualTo(new ClusterOptions().MaxReaderLag), "no probe: the options are the cluster's defaults");
        }
    }

    [Test]
    public async Task OpenNpgsqlConnectionAsync_SqliteNode_ThrowsAndDisposesTheConnection()
    {
        var sqlite = new TrackingSqliteDataSource();
        await using var cluster = new ClusterDataSourceBuilder().AddNode("lite", sqlite).Build();
        var ex = Assert.ThrowsAsync<InvalidOperationException>(async () => await cluster.OpenNpgsqlConnectionAsync());
        Assert.That(ex!.Message, Does.Contain("SqliteConnection, not an NpgsqlConnection"));
        Assert.That(sqlite.Opened!.State, Is.EqualTo(System.Data.ConnectionState.Closed), "the wrong-typed connection is disposed");
        Assert.That(() => cluster.Readers.OpenNpgsqlConnection(), Throws.InvalidOperationException.With.Message.Contains("not an NpgsqlConnection"));
        Assert.That(() => cluster.Nodes[0].OpenNpgsqlConnection(), Throws.InvalidOperationException);
    }

    [Test]
    public async Task Probe_SqliteNode_UnhealthyWithReason()
    {
        await using var cluster = new ClusterDataSourceBuilder().AddNode("lite", new TrackingSqliteDataSource()).Build();
        await using var probe = new PostgresHealthProbe();
        var health = await probe.CheckAsync(cluster.Nodes[0], default);
        Assert.That(health.Reason, Does.Contain("not an Npgsql node"));
    }

    [Test]
    public void ProbeConnectionString_Unpooled_BoundedByConnectTimeout_NoNpgsqlMultiHostSettings()
    {
        var probe = new NpgsqlConnectionStringBuilder(PostgresHealthProbe.ProbeConnectionString(
            "Host=a;Username=app;Pooling=true;Timeout=15;Target Session Attributes=primary", TimeSpan.FromMilliseconds(1500)));
        Assert.Multiple(() =>
        {
            Assert.That(probe.Pooling, Is.False);
            Assert.That(probe.Timeout, Is.EqualTo(2));
            Assert.That(probe.CommandTimeout, Is.EqualTo(2));
            Assert.That(probe.CancellationTimeout, Is.EqualTo(-1));
            Assert.That(probe.TargetSessionAttributes, Is.Null);
        });
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

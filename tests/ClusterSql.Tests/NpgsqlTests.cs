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

    private const long MiB = 1024 * 1024;

    private static readonly TimeSpan Freshness = TimeSpan.FromSeconds(5);

    private static PostgresHealthProbe.TimelineTracker Tracker(FakeTimeProvider? time = null) => new(time ?? new FakeTimeProvider(), () => Freshness);

    /// <summary>Three nodes to report on (SQLite: the tracker only needs their identity and <see cref="ClusterNode.MarkDown"/>).</summary>
    private static ClusterDataSource Nodes()
    {
        var builder = new ClusterDataSourceBuilder();
        for (var i = 1; i <= 3; i++)
        {
            builder.AddNode($"pg{i}", new TrackingSqliteDataSource());
        }

        return builder.Build();
    }

    private static Status Primary(long timeline, long lsn = 0, string cluster = Cluster) =>
        new(InRecovery: false, Timeline: timeline, UptimeSeconds: 100, SystemIdentifier: cluster, CurrentLsn: lsn);

    private static Status Standby(long receive, long replay, long? receivedTimeline = 1, string? receiver = "streaming", long? checkpointTimeline = 1, string cluster = Cluster) =>
        new(InRecovery: true, Timeline: null, UptimeSeconds: 100, SystemIdentifier: cluster, ReceiveLsn: receive, ReplayLsn: replay,
            ReceivedTimeline: receivedTimeline, ReceiverStatus: receiver, CheckpointTimeline: checkpointTimeline);

    [Test]
    public async Task Evaluate_Primary_WriterRankedByTimeline()
    {
        await using var nodes = Nodes();
        var health = Tracker().Evaluate(nodes.Nodes[0], new Status(InRecovery: false, Timeline: 3, UptimeSeconds: 90, SystemIdentifier: Cluster));
        Assert.Multiple(() =>
        {
            Assert.That(health.IsHealthy, Is.True);
            Assert.That(health.ReadOnly, Is.False);
            Assert.That(health.WriterRank, Is.EqualTo(-3));
            Assert.That(health.Uptime, Is.EqualTo(TimeSpan.FromSeconds(90)));
        });
    }

    [Test]
    public async Task Evaluate_Standby_ReadOnlyWithReplayLagInBytes()
    {
        await using var nodes = Nodes();
        var health = Tracker().Evaluate(nodes.Nodes[1], Standby(receive: 10_000, replay: 5_904));
        Assert.Multiple(() =>
        {
            Assert.That(health.IsHealthy, Is.True);
            Assert.That(health.ReadOnly, Is.True);
            Assert.That(health.WriterRank, Is.Null);
            Assert.That(health.ReplicationLag, Is.EqualTo(4096));
        });
    }

    [Test]
    public async Task Evaluate_OlderPrimaryAfterPromotion_Superseded_ItsStandbyLastForReads()
    {
        await using var nodes = Nodes();
        var (pg1, pg2, pg3) = (nodes.Nodes[0], nodes.Nodes[1], nodes.Nodes[2]);
        var tracker = Tracker();
        Assert.That(tracker.Evaluate(pg1, Primary(1)).IsHealthy, Is.True, "alone, the old primary is the writer");
        Assert.That(tracker.Evaluate(pg2, Primary(2)).IsHealthy, Is.True, "the promoted one");

        var old = tracker.Evaluate(pg1, Primary(1));
        Assert.That(old.IsHealthy, Is.False);
        Assert.That(old.Reason, Does.Contain("superseded").And.Contain("timeline 2"));

        var follower = tracker.Evaluate(pg3, Standby(100, 100, receivedTimeline: 1));
        Assert.That(follower.IsHealthy && follower.ReplicationLag == long.MaxValue, Is.True, "a standby still streaming the old timeline");
        var current = tracker.Evaluate(pg3, Standby(100, 100, receivedTimeline: 2));
        Assert.That(current.ReplicationLag, Is.EqualTo(0));
        var noStats = tracker.Evaluate(pg3, Standby(100, 100, receivedTimeline: null, receiver: null, checkpointTimeline: 2));
        Assert.That(noStats.ReplicationLag, Is.EqualTo(0), "no pg_read_all_stats: its checkpoint timeline is the current one");
    }

    [Test]
    public async Task Evaluate_StandbyNeverStreamed_Lagging()
    {
        await using var nodes = Nodes();
        var health = Tracker().Evaluate(nodes.Nodes[1], new Status(InRecovery: true, Timeline: null, UptimeSeconds: 5, SystemIdentifier: Cluster, ReplayLsn: 4096, CheckpointTimeline: 1));
        Assert.That(health.ReplicationLag, Is.EqualTo(long.MaxValue), "no receive position: unknown is not fresh");
    }

    [Test]
    public async Task Evaluate_StandbyBehindThePrimary_LagCountsWalNotYetReceived_WhileThePrimaryIsSeen()
    {
        await using var nodes = Nodes();
        var time = new FakeTimeProvider();
        var tracker = Tracker(time);
        tracker.Evaluate(nodes.Nodes[0], Primary(1, lsn: 10 * MiB));
        time.Advance(TimeSpan.FromSeconds(2));

        // Its receiver stopped at 1 MiB and it replayed all of it: 0 by its own measure, 9 MiB behind the primary.
        Assert.That(tracker.Evaluate(nodes.Nodes[1], Standby(receive: MiB, replay: MiB)).ReplicationLag, Is.EqualTo(9 * MiB));
        Assert.That(tracker.Evaluate(nodes.Nodes[1], Standby(receive: 10 * MiB, replay: 10 * MiB)).ReplicationLag, Is.EqualTo(0), "caught up");
        Assert.That(tracker.Evaluate(nodes.Nodes[1], Standby(receive: 12 * MiB, replay: 11 * MiB)).ReplicationLag, Is.EqualTo(MiB), "ahead of the primary's last check: its own distance");

        // Not streaming while the primary is up: what it has is all it will get.
        Assert.That(tracker.Evaluate(nodes.Nodes[2], Standby(receive: 10 * MiB, replay: 10 * MiB, receiver: "waiting")).ReplicationLag, Is.EqualTo(long.MaxValue));

        // The primary not seen for longer than the freshness (it crashed): no newer data exists anywhere to be behind.
        time.Advance(Freshness);
        Assert.That(tracker.Evaluate(nodes.Nodes[1], Standby(receive: MiB, replay: MiB)).ReplicationLag, Is.EqualTo(0));
        Assert.That(tracker.Evaluate(nodes.Nodes[2], Standby(receive: MiB, replay: MiB, receiver: "waiting")).ReplicationLag, Is.EqualTo(0));
    }

    [Test]
    public async Task Evaluate_StandbyLeftOnTheOldTimelineAfterPromotion_Lagging()
    {
        // pg1 crashed, pg2 was promoted; pg3 still points at the dead pg1: no receiver, a frozen distance of 0.
        await using var nodes = Nodes();
        var tracker = Tracker();
        tracker.Evaluate(nodes.Nodes[0], Primary(1, lsn: 5 * MiB));
        tracker.Evaluate(nodes.Nodes[1], Primary(2, lsn: 5 * MiB));
        var stale = tracker.Evaluate(nodes.Nodes[2], Standby(receive: 5 * MiB, replay: 5 * MiB, receivedTimeline: null, receiver: null, checkpointTimeline: 1));
        Assert.That(stale.ReplicationLag, Is.EqualTo(long.MaxValue));
    }

    [Test]
    public async Task Evaluate_NewerTimeline_NeverForgottenByTime_OnlyWhenItsNodeIsRebuilt()
    {
        await using var nodes = Nodes();
        var (pg1, pg2) = (nodes.Nodes[0], nodes.Nodes[1]);
        var time = new FakeTimeProvider();
        var tracker = Tracker(time);
        tracker.Evaluate(pg2, Primary(2));
        time.Advance(TimeSpan.FromHours(1));
        Assert.That(tracker.Evaluate(pg1, Primary(1)).IsHealthy, Is.False, "an unfenced old primary stays superseded while the new one is out of reach");

        // pg2 rebuilt as a standby of pg1 (same cluster, timeline 1): what it showed before no longer stands.
        tracker.Evaluate(pg2, Standby(100, 100, receivedTimeline: 1, checkpointTimeline: 1));
        Assert.That(tracker.Evaluate(pg1, Primary(1)).IsHealthy, Is.True);

        // And a node rebuilt into another cluster (a new initdb) no longer counts for this one.
        tracker.Evaluate(pg2, Primary(3));
        Assert.That(tracker.Evaluate(pg1, Primary(1)).IsHealthy, Is.False);
        tracker.Evaluate(pg2, Primary(1, cluster: "42"));
        Assert.That(tracker.Evaluate(pg1, Primary(1)).IsHealthy, Is.True);
    }

    [Test]
    public async Task Evaluate_StandbyOnANewerTimeline_SupersedesTheOldPrimary_WithoutSeeingTheNewOne()
    {
        await using var nodes = Nodes();
        var tracker = Tracker();
        Assert.That(tracker.Evaluate(nodes.Nodes[0], Primary(1)).IsHealthy, Is.True);
        tracker.Evaluate(nodes.Nodes[2], Standby(100, 100, receivedTimeline: 2, checkpointTimeline: 1));
        Assert.That(tracker.Evaluate(nodes.Nodes[0], Primary(1)).Reason, Does.Contain("superseded"));
    }

    [Test]
    public async Task Evaluate_NewPrimaryChecked_OldPrimaryMarkedDownAtOnce()
    {
        await using var nodes = Nodes();
        var tracker = Tracker();
        tracker.Evaluate(nodes.Nodes[0], Primary(1));
        Assert.That(nodes.Nodes[0].GetStatistics().DownReason, Is.Null);
        tracker.Evaluate(nodes.Nodes[1], Primary(2));
        Assert.That(nodes.Nodes[0].GetStatistics().DownReason, Does.Contain("superseded"), "not left a writer failover target until its own next check");
        Assert.That(nodes.Nodes[1].GetStatistics().DownReason, Is.Null);
    }

    [Test]
    public async Task Evaluate_OtherCluster_NotComparedByTimeline()
    {
        await using var nodes = Nodes();
        var tracker = Tracker();
        tracker.Evaluate(nodes.Nodes[0], Primary(5));
        Assert.That(tracker.Evaluate(nodes.Nodes[1], Primary(1, cluster: "1234")).IsHealthy, Is.True);
    }

    [Test]
    public async Task Probe_SessionIdleTimeout_FollowsTheCheckInterval()
    {
        await using var probe = new PostgresHealthProbe(new ClusterOptions { HealthCheckInterval = TimeSpan.FromSeconds(60), HealthCheckTimeout = TimeSpan.FromSeconds(5) }, TimeProvider.System);
        Assert.That(probe.SessionIdleTimeout, Is.EqualTo(TimeSpan.FromSeconds(125)), "longer than the gap between two checks");
        await using var defaults = new PostgresHealthProbe();
        Assert.That(defaults.SessionIdleTimeout, Is.EqualTo(TimeSpan.FromSeconds(6)));
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
    [TestCase("Host=a;Password=a;Zq7Xw9Vk3Jp=b")]
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
    public async Task AddNpgsqlNode_TargetSessionAttributes_DroppedAsForMultiHost()
    {
        await using var cluster = new ClusterDataSourceBuilder()
            .AddNpgsqlNode("pg1", "Host=a;Username=app;Target Session Attributes=primary;Load Balance Hosts=true").Build();
        var node = new NpgsqlConnectionStringBuilder(cluster.Nodes[0].DataSource.ConnectionString);
        Assert.That(node.TargetSessionAttributes, Is.Null, "a standby node must still serve reads");
        Assert.That(node.LoadBalanceHosts, Is.False);
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

using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using ClusterSql.MySql;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using MySqlConnector;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>
/// Galera discovery over views fed by hand (no server, no probe): address parsing, the trust rule, the grace period,
/// identity of a member listed by host name, and pin, exclude and rename. Deterministic on a fake clock.
/// </summary>
[TestFixture]
public sealed class GaleraDiscoveryTests
{
    private const string StateUuid = "ae6c7e2b-ed30-11f1-b579-ca39f10e899f";
    private const string Seed = "Server=10.0.0.1;Port=3306;User ID=app;Password=s3cret-pw;Database=orders;Connection Timeout=3";

    private static readonly TimeSpan s_grace = TimeSpan.FromSeconds(30);

    // ---- parsing ----------------------------------------------------------------------------------------------------

    [TestCase("10.0.0.5:3306", "10.0.0.5", 3306)]
    [TestCase(" 10.0.0.5:3307 ", "10.0.0.5", 3307)]
    [TestCase("DB-1.Example.com:3306", "db-1.example.com", 3306)]
    [TestCase("db-1.example.com", "db-1.example.com", null)]
    [TestCase("[fd00::5]:3307", "fd00::5", 3307)]
    [TestCase("[FD00:0:0::5]", "fd00::5", null)]
    [TestCase("fd00::5", "fd00::5", null)]
    [TestCase("::ffff:10.0.0.7", "10.0.0.7", null)]
    public void MemberAddress_Parse_HostPortIPv6AndBareHost(string text, string host, int? port)
    {
        var parsed = MemberAddress.Parse(text);
        Assert.That(parsed, Is.EqualTo(new MemberAddress(host, port)));
    }

    [TestCase(null)]
    [TestCase("")]
    [TestCase("   ")]
    [TestCase("AUTO")]
    [TestCase("auto")]
    [TestCase("0.0.0.0:3306")]
    [TestCase("[::]:3306")]
    [TestCase("host:notaport")]
    [TestCase("host:0")]
    [TestCase("host:70000")]
    [TestCase("[::1]x")]
    [TestCase("[db1]:3306")]
    [TestCase("bad host:3306")]
    public void MemberAddress_Parse_SkipsWhatNoClientCanReach(string? text) => Assert.That(MemberAddress.Parse(text), Is.Null);

    [Test]
    public void MemberAddress_ToString_BracketsIPv6()
    {
        Assert.That(new MemberAddress("fd00::5", 3306).ToString(), Is.EqualTo("[fd00::5]:3306"));
        Assert.That(new MemberAddress("10.0.0.1", 3306).ToString(), Is.EqualTo("10.0.0.1:3306"));
    }

    [Test]
    public void View_FromIncomingAddresses_KeepsGarbdsPlace_AndFindsTheReporter()
    {
        var view = View(healthy: true, confId: 5, reporterIndex: 2, "10.0.0.1:3306", "", "10.0.0.3:3306", "AUTO");
        Assert.Multiple(() =>
        {
            Assert.That(view.Members, Has.Count.EqualTo(4));
            Assert.That(view.Members[1], Is.Null, "garbd's empty address");
            Assert.That(view.Members[3], Is.Null, "AUTO");
            Assert.That(view.IncludesReporter, Is.True);
            Assert.That(view.ReporterAddress, Is.EqualTo(new MemberAddress("10.0.0.3", 3306)));
        });

        // A list that does not match wsrep_cluster_size cannot be indexed: the reporter is not found in it.
        var values = Values(true, 5, 0, "10.0.0.1:3306,10.0.0.2:3306");
        values["wsrep_cluster_size"] = "3";
        var mismatched = GaleraView.From(values, healthy: true, memberRows: null)!;
        Assert.That(mismatched.IncludesReporter, Is.False);
    }

    [Test]
    public void View_FromMemberTable_UsesUuids()
    {
        var view = GaleraView.From(Values(true, 5, 0, "ignored:1", reporterUuid: "u1"), true, [("u1", "galera1", "10.0.0.1:3306"), ("u2", "galera2", "AUTO")])!;
        Assert.Multiple(() =>
        {
            Assert.That(view.FromMemberTable, Is.True);
            Assert.That(view.Members[0], Is.EqualTo(new GaleraMember("u1", "galera1", new MemberAddress("10.0.0.1", 3306))));
            Assert.That(view.Members[1], Is.Null);
            Assert.That(view.ReporterAddress, Is.EqualTo(new MemberAddress("10.0.0.1", 3306)), "the reporter's own row, by its wsrep_gcomm_uuid");
        });
    }

    // ---- adding -----------------------------------------------------------------------------------------------------

    [Test]
    public async Task TrustedView_AddsMissingMembers_WithTheSeedsSettings_DownUntilTheirFirstCheck()
    {
        var (cluster, discovery, _) = Build();
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        discovery.Report(seed, View(true, 7, 0, "10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3307"));

        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "db1", "10.0.0.2", "10.0.0.3-3307" }));
        var added = cluster.GetNode("10.0.0.3-3307")!;
        var settings = new MySqlConnectionStringBuilder(((MySqlDataSource)added.DataSource).ConnectionString);
        Assert.Multiple(() =>
        {
            Assert.That((settings.Server, settings.Port), Is.EqualTo(("10.0.0.3", 3307u)), "only the host and port replaced");
            Assert.That((settings.UserID, settings.Password, settings.Database, settings.ConnectionTimeout), Is.EqualTo(("app", "s3cret-pw", "orders", 3u)));
            Assert.That(added.IsDiscovered, Is.True);
            Assert.That(added.GetStatistics().Discovered, Is.True);
            Assert.That(seed.GetStatistics().Discovered, Is.False);
            Assert.That(added.State, Is.EqualTo(ClusterNodeState.Down), "a member may still be joining: it serves once its own check passes");
            Assert.That(added.GetStatistics().DownReason, Does.Contain("first health check"));
            Assert.That(added.GetStatistics().ToString(), Does.Contain("(discovered)").And.Not.Contain("s3cret"));
            Assert.That(cluster.ConnectionString, Does.Not.Contain("s3cret"));
        });
    }

    [Test]
    public async Task View_AgainAndAgain_AddsEachMemberOnce_AndMatchesTheReportersOwnEntry()
    {
        var (cluster, discovery, _) = Build();
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        for (var i = 0; i < 3; i++)
        {
            discovery.Report(seed, View(true, 7, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        }

        // The discovered node's own report of the same view changes nothing either.
        discovery.Report(cluster.GetNode("10.0.0.2")!, View(true, 7, 1, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "db1", "10.0.0.2" }));
    }

    [Test]
    public async Task BareHostMember_TakesTheSeedsPort()
    {
        var (cluster, discovery, _) = Build(seed: Seed.Replace("Port=3306", "Port=3307", StringComparison.Ordinal));
        await using var _c = cluster;
        discovery.Report(cluster.GetNode("db1")!, View(true, 7, 0, "10.0.0.1", "10.0.0.2"));
        var added = cluster.Nodes.Single(n => n.IsDiscovered);
        Assert.That(added.Name, Is.EqualTo("10.0.0.2-3307"));
        Assert.That(new MySqlConnectionStringBuilder(((MySqlDataSource)added.DataSource).ConnectionString).Port, Is.EqualTo(3307u));
    }

    [Test]
    public async Task IPv6Member_IsAddedWithAValidName()
    {
        var (cluster, discovery, _) = Build();
        await using var _c = cluster;
        discovery.Report(cluster.GetNode("db1")!, View(true, 7, 0, "10.0.0.1:3306", "[fd00::2]:3306"));
        var added = cluster.Nodes.Single(n => n.IsDiscovered);
        Assert.That(added.Name, Is.EqualTo("fd00--2"));
        Assert.That(new MySqlConnectionStringBuilder(((MySqlDataSource)added.DataSource).ConnectionString).Server, Is.EqualTo("fd00::2"));
    }

    // ---- the trust rule ---------------------------------------------------------------------------------------------

    [Test]
    public async Task UntrustedViews_AddNothing()
    {
        var (cluster, discovery, _) = Build();
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;

        discovery.Report(seed, View(false, 7, 0, "10.0.0.1:3306", "10.0.0.9:3306"));
        Assert.That(cluster.Nodes, Has.Count.EqualTo(1), "a reporter that is not Primary and Synced");

        discovery.Report(seed, View(true, 7, -1, "10.0.0.1:3306", "10.0.0.9:3306"));
        Assert.That(cluster.Nodes, Has.Count.EqualTo(1), "a view that does not list its reporter");

        var noUuid = GaleraView.From(Values(true, 7, 0, "10.0.0.1:3306,10.0.0.9:3306", stateUuid: ""), true, null)!;
        discovery.Report(seed, noUuid);
        Assert.That(cluster.Nodes, Has.Count.EqualTo(1), "no wsrep_cluster_state_uuid");

        discovery.Report(seed, View(true, 7, 0, "10.0.0.1:3306"));
        discovery.Report(seed, View(true, 6, 0, "10.0.0.1:3306", "10.0.0.9:3306"));
        Assert.That(cluster.Nodes, Has.Count.EqualTo(1), "an older configuration than one already trusted");

        discovery.Report(seed, ViewOfCluster("00000000-0000-0000-0000-000000000001", true, 8, 0, "10.0.0.1:3306", "10.0.0.9:3306"));
        Assert.That(cluster.Nodes, Has.Count.EqualTo(1), "another cluster's state uuid while this one's views are fresh");
        Assert.That(discovery.AppliedViews, Is.EqualTo(1));
    }

    [Test]
    public async Task AnotherStateUuid_IsAdoptedOnlyAfterTheOldOneWentQuietForTheGracePeriod()
    {
        var (cluster, discovery, time) = Build();
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        discovery.Report(seed, View(true, 7, 0, "10.0.0.1:3306"));
        time.Advance(s_grace);
        discovery.Report(seed, ViewOfCluster("00000000-0000-0000-0000-000000000001", true, 1, 0, "10.0.0.1:3306", "10.0.0.5:3306"));
        Assert.That(cluster.GetNode("10.0.0.5"), Is.Not.Null, "a cluster bootstrapped afresh (new state uuid, configuration count restarted)");
    }

    [Test]
    public async Task WholeClusterRestart_CountsConfigurationsAgain_AndIsTrustedAfterTheGracePeriod()
    {
        var (cluster, discovery, time) = Build();
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        discovery.Report(seed, View(true, 40, 0, "10.0.0.1:3306"));

        // Restarted from its data: same state uuid, configuration 3.
        discovery.Report(seed, View(true, 3, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(cluster.Nodes, Has.Count.EqualTo(1), "while configuration 40 is fresh, 3 is a stale view");
        time.Advance(s_grace);
        discovery.Report(seed, View(true, 3, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(cluster.GetNode("10.0.0.2"), Is.Not.Null);
        discovery.Report(seed, View(true, 2, 0, "10.0.0.1:3306"));
        Assert.That(cluster.GetNode("10.0.0.2")!.State, Is.Not.EqualTo(ClusterNodeState.Draining), "the count restarted at 3: 2 is stale again");
    }

    [Test]
    public async Task PartitionedReportersView_NeverDrainsOrRemovesOthers()
    {
        var (cluster, discovery, time) = Build();
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        discovery.Report(seed, View(true, 7, 0, "10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3306"));
        foreach (var node in cluster.Nodes)
        {
            node.MarkUp();
        }

        // The seed is cut off: non-Primary, it sees itself alone. Its views keep coming, well past the grace period.
        for (var i = 0; i < 10; i++)
        {
            discovery.Report(seed, View(false, 8, 0, "10.0.0.1:3306"));
            time.Advance(TimeSpan.FromSeconds(10));
        }

        Assert.That(cluster.Nodes, Has.Count.EqualTo(3));
        Assert.That(cluster.Nodes.Select(n => n.State), Is.All.EqualTo(ClusterNodeState.Healthy));
    }

    // ---- leaving ----------------------------------------------------------------------------------------------------

    [Test]
    public async Task MemberThatLeaves_IsDrained_ThenRemovedAfterTheGracePeriod()
    {
        var (cluster, discovery, time) = Build();
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        discovery.Report(seed, View(true, 7, 0, "10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3306"));
        var leaving = cluster.GetNode("10.0.0.3")!;
        leaving.MarkUp();

        discovery.Report(seed, View(true, 8, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(leaving.State, Is.EqualTo(ClusterNodeState.Draining));
        Assert.That(leaving.GetStatistics().DrainReason, Does.Contain("left the cluster").And.Contain("db1"));

        time.Advance(s_grace - TimeSpan.FromSeconds(1));
        discovery.Report(seed, View(true, 8, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(cluster.GetNode("10.0.0.3"), Is.SameAs(leaving), "not before the grace period");

        time.Advance(TimeSpan.FromSeconds(1));
        discovery.Report(seed, View(true, 8, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(cluster.GetNode("10.0.0.3"), Is.Null);
        Assert.That(leaving.State, Is.EqualTo(ClusterNodeState.Removed));

        // It comes back: a new node for it.
        discovery.Report(seed, View(true, 9, 0, "10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3306"));
        Assert.That(cluster.GetNode("10.0.0.3"), Is.Not.Null.And.Not.SameAs(leaving));
    }

    [Test]
    public async Task MemberThatReturnsWithinTheGracePeriod_IsUndrained()
    {
        var (cluster, discovery, time) = Build();
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        var node = DiscoverSecond(cluster, discovery, seed);
        node.MarkUp();
        discovery.Report(seed, View(true, 8, 0, "10.0.0.1:3306"));
        Assert.That(node.State, Is.EqualTo(ClusterNodeState.Draining));

        time.Advance(TimeSpan.FromSeconds(20));
        discovery.Report(seed, View(true, 9, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(node.State, Is.EqualTo(ClusterNodeState.Healthy));

        // The absence clock starts again: a later departure waits out a whole grace period.
        discovery.Report(seed, View(true, 10, 0, "10.0.0.1:3306"));
        time.Advance(TimeSpan.FromSeconds(20));
        discovery.Report(seed, View(true, 10, 0, "10.0.0.1:3306"));
        Assert.That(cluster.GetNode("10.0.0.2"), Is.SameAs(node));
    }

    [Test]
    public async Task ListedNodes_AreNeverDrainedOrRemoved()
    {
        var (cluster, discovery, time) = Build(extra: ("db2", Seed.Replace("10.0.0.1", "10.0.0.2", StringComparison.Ordinal)));
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        discovery.Checked(cluster.GetNode("db2")!);
        discovery.Report(seed, View(true, 7, 0, "10.0.0.1:3306"));
        time.Advance(s_grace * 2);
        discovery.Report(seed, View(true, 7, 0, "10.0.0.1:3306"));
        Assert.That(cluster.GetNode("db2")!.State, Is.EqualTo(ClusterNodeState.Healthy));
    }

    [Test]
    public async Task ApplicationDrain_IsNotUndoneByDiscovery()
    {
        var (cluster, discovery, _) = Build();
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        var node = DiscoverSecond(cluster, discovery, seed);
        node.MarkUp();
        node.Drain("upgrade");
        discovery.Report(seed, View(true, 8, 0, "10.0.0.1:3306"));
        discovery.Report(seed, View(true, 9, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(node.GetStatistics().DrainReason, Is.EqualTo("upgrade"));
    }

    [Test]
    public async Task ApplicationDrainOfADownNode_IsNeitherOverwrittenNorUndone()
    {
        // A drained node that is also down reports Down: discovery must look at the drain reason, not the state.
        var (cluster, discovery, _) = Build();
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        var node = DiscoverSecond(cluster, discovery, seed);
        node.Drain("upgrade");
        Assert.That(node.State, Is.EqualTo(ClusterNodeState.Down), "not checked yet, and drained");
        discovery.Report(seed, View(true, 8, 0, "10.0.0.1:3306"));
        Assert.That(node.GetStatistics().DrainReason, Is.EqualTo("upgrade"), "not overwritten");
        discovery.Report(seed, View(true, 9, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(node.GetStatistics().DrainReason, Is.EqualTo("upgrade"), "not undone");
    }

    [Test]
    public async Task ApplicationDrainAfterDiscoveryDrained_IsNotUndoneWhenTheMemberReturns()
    {
        var (cluster, discovery, _) = Build();
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        var node = DiscoverSecond(cluster, discovery, seed);
        node.MarkUp();
        discovery.Report(seed, View(true, 8, 0, "10.0.0.1:3306"));
        Assert.That(node.GetStatistics().DrainReason, Does.Contain("left the cluster"));
        node.Drain("upgrade");
        discovery.Report(seed, View(true, 9, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(node.GetStatistics().DrainReason, Is.EqualTo("upgrade"));
        Assert.That(node.State, Is.EqualTo(ClusterNodeState.Draining));
    }

    [Test]
    public async Task NodeTheApplicationReaddedUnderADiscoveredName_IsNeverRemovedByDiscovery()
    {
        var (cluster, discovery, time) = Build();
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        var discovered = DiscoverSecond(cluster, discovery, seed);

        // The application replaces the discovered node with its own, under the same name and for the same member.
        Assert.That(cluster.RemoveNode("10.0.0.2"), Is.True);
        var own = cluster.AddNode("10.0.0.2", new MySqlDataSource(Seed.Replace("10.0.0.1", "10.0.0.2", StringComparison.Ordinal)));

        // Its own report names it as 10.0.0.2, the removed discovered node's address: the removed one is forgotten,
        // the application's node stays.
        discovery.Report(own, View(true, 7, 1, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(cluster.GetNode("10.0.0.2"), Is.SameAs(own));
        discovery.Report(seed, View(true, 8, 0, "10.0.0.1:3306"));
        time.Advance(s_grace * 2);
        discovery.Report(seed, View(true, 8, 0, "10.0.0.1:3306"));
        Assert.That(cluster.GetNode("10.0.0.2"), Is.SameAs(own));
        Assert.That(own.State, Is.EqualTo(ClusterNodeState.Healthy));
        Assert.That(discovered.State, Is.EqualTo(ClusterNodeState.Removed));
    }

    [Test]
    public async Task ReportOfARemovedReporter_ChangesNothing()
    {
        var (cluster, discovery, _) = Build(extra: ("db2", Seed.Replace("10.0.0.1", "10.0.0.2", StringComparison.Ordinal)));
        await using var _c = cluster;
        var db2 = cluster.GetNode("db2")!;
        discovery.Checked(db2);
        cluster.RemoveNode("db2");
        discovery.Report(db2, View(true, 7, 1, "10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3306"));
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "db1" }));
        Assert.That(discovery.AppliedViews, Is.Zero);
    }

    [Test]
    public async Task DiscoveredNode_IsPublishedNotServing_AwaitingItsFirstCheck()
    {
        var (cluster, discovery, _) = Build();
        await using var _c = cluster;
        discovery.Report(cluster.GetNode("db1")!, View(true, 7, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        var added = cluster.GetNode("10.0.0.2")!;
        Assert.That(added.IsAwaitingFirstCheck, Is.True, "set before AddNode published it, not by a MarkDown after");
        Assert.That(added.IsDownByVerdict, Is.False, "so that the first check's outcome replaces it, whatever it is");
    }

    [Test]
    public async Task FailureInsideDiscovery_IsRecordedOnTheDiscovery_NotThrownIntoTheReportersCheck()
    {
        var (cluster, discovery, _) = Build();
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;

        // A view that breaks discovery's own work (stands for any bug or a cluster changed under it).
        var broken = new GaleraView { Healthy = true, StateUuid = StateUuid, ConfId = 7, ReporterUuid = "u1", Members = null!, ReporterIndex = 0 };
        Assert.DoesNotThrow(() => discovery.Report(seed, broken));
        Assert.That(discovery.Failures, Is.EqualTo(1));
        Assert.That(discovery.LastFailure, Does.Contain("db1").And.Contain("NullReferenceException"));
        Assert.That(seed.GetStatistics().DownReason, Is.Null);
    }

    [Test]
    public async Task ShortGracePeriod_DoesNotWeakenTheTrustRule()
    {
        // GracePeriod zero: removal at once, but a stale configuration is still refused for the trust window.
        var (cluster, discovery, time) = Build(new GaleraDiscoveryOptions { GracePeriod = TimeSpan.Zero });
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        discovery.Report(seed, View(true, 9, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        time.Advance(TimeSpan.FromSeconds(5));
        var applied = discovery.AppliedViews;
        discovery.Report(seed, View(true, 8, 0, "10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3306"));
        Assert.That(discovery.AppliedViews, Is.EqualTo(applied), "an older configuration is stale");
        Assert.That(cluster.GetNode("10.0.0.3"), Is.Null);
        discovery.Report(seed, ViewOfCluster("00000000-0000-0000-0000-000000000001", true, 1, 0, "10.0.0.1:3306", "10.0.0.4:3306"));
        Assert.That(cluster.GetNode("10.0.0.4"), Is.Null, "another cluster's uuid is not adopted while the old one is fresh");
    }

    [Test]
    public async Task LoopbackAndLinkLocalMembers_AreNotSentTheSeedsCredentials()
    {
        var (cluster, discovery, _) = Build();
        await using var _c = cluster;
        discovery.Report(cluster.GetNode("db1")!, View(true, 7, 0, "10.0.0.1:3306", "127.0.0.1:3306", "[::1]:3306", "localhost:3306", "[fe80::1]:3306", "10.0.0.5:3306"));
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "db1", "10.0.0.5" }));
    }

    [Test]
    public async Task LoopbackMembers_AreAdded_WhenTheSeedIsLoopback()
    {
        var (cluster, discovery, _) = Build(seed: Seed.Replace("10.0.0.1", "127.0.0.21", StringComparison.Ordinal));
        await using var _c = cluster;
        discovery.Report(cluster.GetNode("db1")!, View(true, 7, 0, "127.0.0.21:3306", "127.0.0.22:3306", "[fe80::1]:3306"));
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "db1", "127.0.0.22" }));
    }

    [Test]
    public void UnixSocketSeed_IsRejectedForDiscovery()
    {
        // MySqlConnector wants the socket file to exist; nothing connects to it.
        var socket = System.IO.Path.GetTempFileName();
        try
        {
            var error = Assert.Throws<ArgumentException>(() => new ClusterDataSourceBuilder()
                .AddMySqlNode("db1", $"Server={socket};Protocol=Unix;User ID=app;Password=s3cret-pw")
                .UseGaleraDiscovery()
                .Build())!;
            Assert.That(error.Message, Does.Contain("db1").And.Contain("Unix socket").And.Not.Contain("s3cret").And.Not.Contain(socket));
        }
        finally
        {
            System.IO.File.Delete(socket);
        }
    }

    [TestCase("Exclude", null, 0)]
    [TestCase("Exclude", "  ", 1)]
    [TestCase("Pin", "host:notaport", 0)]
    [TestCase("Pin", "Server=10.0.0.9;Password=s3cret-pw", 1)]
    public void ExcludeAndPinEntries_AreValidated_ByIndex_WithoutEchoingThem(string setting, string? entry, int index)
    {
        var options = new GaleraDiscoveryOptions();
        var list = setting == "Exclude" ? options.Exclude : options.Pin;
        if (index == 1)
        {
            list.Add("10.0.0.9");
        }

        list.Add(entry!);
        var error = Assert.Throws<ArgumentException>(() => new ClusterDataSourceBuilder().UseGaleraDiscovery(options))!;
        Assert.That(error.Message, Does.Contain($"{setting}[{index}]").And.Not.Contain("s3cret").And.Not.Contain("notaport"));
        Assert.That(error.ParamName, Is.EqualTo(setting));
    }

    [Test]
    public void TwoMembersNamedAlike_AreRejected()
    {
        var options = new GaleraDiscoveryOptions();
        options.Names["10.0.0.2"] = "galera2";
        options.Names["10.0.0.3"] = "GALERA2";
        Assert.That(Assert.Throws<ArgumentException>(() => new ClusterDataSourceBuilder().UseGaleraDiscovery(options))!.Message, Does.Contain("Names").And.Contain("galera2").IgnoreCase);
    }

    [Test]
    public async Task ListedNodeThatIsNotAMySqlNode_CountsAsChecked()
    {
        // Its check answers at once (not a MySqlDataSource): it must still count as checked, or no member is ever added.
        var (cluster, discovery, time) = Build();
        await using var _c = cluster;
        var other = cluster.AddNode("other", new ClusterSql.Tests.Fakes.FakeNode("other", time));
        await using var probe = new GaleraHealthProbe(false, discovery, time);
        var health = await probe.CheckAsync(other, System.Threading.CancellationToken.None);
        Assert.That(health.Reason, Does.Contain("not a MySqlConnector node"));
        discovery.Report(cluster.GetNode("db1")!, View(true, 7, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(cluster.GetNode("10.0.0.2"), Is.Not.Null);
    }

    [Test]
    public async Task MemberTable_IsAskedOnlyOfANodeWhoseLastCheckSaidPrimarySyncedReady()
    {
        // Any other node refuses mysql.wsrep_cluster_members with error 1047, which would cost the check its precise
        // verdict (the status rows say why the node must not serve).
        var (cluster, discovery, time) = Build();
        await using var _c = cluster;
        await using var probe = new GaleraHealthProbe(false, discovery, time);
        var node = cluster.GetNode("db1")!;
        Assert.That(probe.WantsMemberTable(node), Is.False, "not before a check said the node is ready");

        var ready = Values(true, 7, 0, "10.0.0.1:3306");
        ready["wsrep_ready"] = "ON";
        ready["wsrep_local_state"] = "4";
        probe.NoteStatus(node, ready);
        Assert.That(probe.WantsMemberTable(node), Is.True);

        var joining = new Dictionary<string, string>(ready, StringComparer.OrdinalIgnoreCase) { ["wsrep_local_state"] = "1" };
        probe.NoteStatus(node, joining);
        Assert.That(probe.WantsMemberTable(node), Is.False, "a joining node");

        var nonPrimary = new Dictionary<string, string>(ready, StringComparer.OrdinalIgnoreCase) { ["wsrep_cluster_status"] = "non-Primary" };
        probe.NoteStatus(node, ready);
        probe.NoteStatus(node, nonPrimary);
        Assert.That(probe.WantsMemberTable(node), Is.False, "a partitioned node");

        await using var withoutDiscovery = new GaleraHealthProbe(false, time);
        withoutDiscovery.NoteStatus(node, ready);
        Assert.That(withoutDiscovery.WantsMemberTable(node), Is.False, "only discovery reads the table");
    }

    [Test]
    public void CreateDataSource_DiscoveryWithoutGalera_Throws() =>
        Assert.That(
            Assert.Throws<ArgumentException>(() => MySqlCluster.CreateDataSource(LoopbackSeed, galera: false, discovery: new GaleraDiscoveryOptions()))!.ParamName,
            Is.EqualTo("discovery"));

    // ---- pin, exclude, rename ---------------------------------------------------------------------------------------

    [Test]
    public async Task Exclude_Pin_AndNames()
    {
        var options = new GaleraDiscoveryOptions { GracePeriod = s_grace };
        options.Exclude.Add("10.0.0.4");            // by host, any port
        options.Exclude.Add("[FD00::5]:3306");      // an IPv6 address written another way
        options.Pin.Add("10.0.0.3:3306");
        options.Names["10.0.0.2:3306"] = "galera2";
        options.Names["10.0.0.3"] = "galera3";
        var (cluster, discovery, time) = Build(options);
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        discovery.Report(seed, View(true, 7, 0, "10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3306", "10.0.0.4:3306", "[fd00::5]:3306"));
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "db1", "galera2", "galera3" }));

        var pinned = cluster.GetNode("galera3")!;
        pinned.MarkUp();
        discovery.Report(seed, View(true, 8, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        time.Advance(s_grace * 2);
        discovery.Report(seed, View(true, 8, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(cluster.GetNode("galera3"), Is.SameAs(pinned), "a pinned member stays");
        Assert.That(pinned.State, Is.EqualTo(ClusterNodeState.Healthy), "and is not drained: its health alone decides");
    }

    [Test]
    public async Task NameTakenByAnotherNode_GetsASuffix()
    {
        var options = new GaleraDiscoveryOptions();
        options.Names["10.0.0.2"] = "db1";
        var (cluster, discovery, _) = Build(options);
        await using var _c = cluster;
        discovery.Report(cluster.GetNode("db1")!, View(true, 7, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "db1", "db1-2" }));
    }

    [Test]
    public async Task MemberTable_MatchesByUuid_RenamesAndExcludesByNodeName()
    {
        var options = new GaleraDiscoveryOptions();
        options.Names["galera2"] = "second";
        options.Exclude.Add("uuid-3");
        var (cluster, discovery, _) = Build(options);
        await using var _c = cluster;
        var seed = cluster.GetNode("db1")!;
        var rows = new List<(string, string, string)> { ("uuid-1", "galera1", "10.0.0.1:3306"), ("uuid-2", "galera2", "10.0.0.2:3306"), ("uuid-3", "galera3", "10.0.0.3:3306") };
        discovery.Report(seed, GaleraView.From(Values(true, 7, 0, "", reporterUuid: "uuid-1"), true, rows)!);
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "db1", "second" }));

        // The member moved to another address but kept its UUID: still the same node.
        rows[1] = ("uuid-2", "galera2", "10.0.0.22:3306");
        discovery.Report(seed, GaleraView.From(Values(true, 8, 0, "", reporterUuid: "uuid-1"), true, rows)!);
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "db1", "second" }));
    }

    // ---- identity: host name against IP ------------------------------------------------------------------------------

    [Test]
    public async Task NodesListedByHostName_AreMatchedByTheirOwnReport_NoDuplicates()
    {
        var (cluster, discovery, _) = Build(
            seed: Seed.Replace("10.0.0.1", "db1.example", StringComparison.Ordinal),
            extra: ("db2", Seed.Replace("10.0.0.1", "db2.example", StringComparison.Ordinal)));
        await using var _c = cluster;
        var db1 = cluster.GetNode("db1")!;
        var db2 = cluster.GetNode("db2")!;

        // db1's view names members by IP; db1 is entry 0, and db2 has not been checked: it could be 10.0.0.2.
        discovery.Report(db1, View(true, 7, 0, "10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3306"));
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "db1", "db2" }), "nothing added while a listed node's identity is unknown");

        // db2 reports: it is 10.0.0.2. Now only 10.0.0.3 is new.
        discovery.Report(db2, View(true, 7, 1, "10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3306"));
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "db1", "db2", "10.0.0.3" }));
    }

    [Test]
    public async Task DiscoveredDuplicateOfAListedNode_IsRemovedWhenTheListedNodeReports()
    {
        var (cluster, discovery, _) = Build(extra: ("db2", Seed.Replace("10.0.0.1", "db2.example", StringComparison.Ordinal)));
        await using var _c = cluster;
        var db1 = cluster.GetNode("db1")!;
        var db2 = cluster.GetNode("db2")!;

        // db2 was unreachable at its first check, so 10.0.0.2 was added as a member of its own.
        discovery.Checked(db2);
        discovery.Report(db1, View(true, 7, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(cluster.GetNode("10.0.0.2"), Is.Not.Null);

        // db2 answers: it is 10.0.0.2. The duplicate goes; db2 stands for the member.
        discovery.Report(db2, View(true, 7, 1, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "db1", "db2" }));
        discovery.Report(db1, View(true, 7, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "db1", "db2" }));
    }

    // ---- settings and wiring -----------------------------------------------------------------------------------------

    [Test]
    public void Options_AreValidated_NamingTheSetting()
    {
        var negative = new GaleraDiscoveryOptions { GracePeriod = TimeSpan.FromSeconds(-1) };
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => new ClusterDataSourceBuilder().UseGaleraDiscovery(negative))!.Message, Does.Contain("GracePeriod"));
        var badName = new GaleraDiscoveryOptions();
        badName.Names["10.0.0.2"] = "no spaces";
        Assert.That(Assert.Throws<ArgumentException>(() => new ClusterDataSourceBuilder().UseGaleraDiscovery(badName))!.Message, Does.Contain("Names").And.Contain("no spaces"));
    }

    [Test]
    public async Task Options_AreCopied_WhenDiscoveryIsSetUp()
    {
        var options = new GaleraDiscoveryOptions();
        var (cluster, discovery, _) = Build(options);
        await using var _c = cluster;
        options.Exclude.Add("10.0.0.2");
        discovery.Report(cluster.GetNode("db1")!, View(true, 7, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        Assert.That(cluster.GetNode("10.0.0.2"), Is.Not.Null);
    }

    // A probe runs in these two: their seed is a closed loopback port, never another address.
    private const string LoopbackSeed = "Server=127.0.0.1;Port=9;User ID=app;Password=s3cret-pw;Connection Timeout=1";

    [Test]
    public async Task OneDiscovery_ServesOneCluster()
    {
        var probe = new GaleraHealthProbe(false, new GaleraDiscovery(new GaleraDiscoveryOptions()));
        var time = new FakeTimeProvider();
        await using var first = new ClusterDataSourceBuilder().UseTimeProvider(time).AddMySqlNode("db1", LoopbackSeed).UseHealthProbe(probe).Build();
        Assert.Throws<InvalidOperationException>(() => new ClusterDataSourceBuilder().UseTimeProvider(time).AddMySqlNode("db1", LoopbackSeed).UseHealthProbe(probe).Build());
    }

    [Test]
    public async Task CreateDataSource_WithDiscovery_UsesTheDiscoveringProbe()
    {
        await using var cluster = MySqlCluster.CreateDataSource(LoopbackSeed, discovery: new GaleraDiscoveryOptions());
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "127.0.0.1-9" }));
        Assert.That(cluster.Probes, Is.Not.Null);
    }

    [Test]
    public async Task Options_BindFromConfiguration_AndDependencyInjectionRegistersADiscoveringCluster()
    {
        var configuration = new Microsoft.Extensions.Configuration.ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ClusterSql:Nodes:galera1"] = LoopbackSeed,
            ["ClusterSql:Discovery:GracePeriod"] = "00:00:10",
            ["ClusterSql:Discovery:Exclude:0"] = "10.0.0.9",
            ["ClusterSql:Discovery:Pin:0"] = "galera3",
            ["ClusterSql:Discovery:Names:galera2"] = "second",
        }).Build();
        var section = configuration.GetSection("ClusterSql");
        var bound = section.GetSection("Discovery").Get<GaleraDiscoveryOptions>()!;
        Assert.Multiple(() =>
        {
            Assert.That(bound.GracePeriod, Is.EqualTo(TimeSpan.FromSeconds(10)));
            Assert.That(bound.Exclude, Is.EqualTo(new[] { "10.0.0.9" }));
            Assert.That(bound.Pin, Is.EqualTo(new[] { "galera3" }));
            Assert.That(bound.Names["galera2"], Is.EqualTo("second"));
        });

        var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection();
        services.AddClusterSql(section, MySqlConnectorFactory.Instance, (_, cluster) => cluster.UseGaleraDiscovery(bound));
        await using var provider = services.BuildServiceProvider();
        var registered = provider.GetRequiredService<ClusterDataSource>();
        Assert.That(registered.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "galera1" }), "the configured nodes are the seeds");
        Assert.That((registered.Probes!.Probe as GaleraHealthProbe)?.Discovery, Is.Not.Null);
    }

    // ---- helpers ----------------------------------------------------------------------------------------------------

    private static (ClusterDataSource Cluster, GaleraDiscovery Discovery, FakeTimeProvider Time) Build(
        GaleraDiscoveryOptions? options = null, string seed = Seed, (string Name, string ConnectionString)? extra = null)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero));
        var builder = new ClusterDataSourceBuilder().UseTimeProvider(time).AddMySqlNode("db1", seed);
        if (extra is { } node)
        {
            builder.AddMySqlNode(node.Name, node.ConnectionString);
        }

        // No probe runs: the test feeds the views the probe would read, so nothing connects anywhere.
        var cluster = builder.Build();
        var discovery = new GaleraDiscovery(options ?? new GaleraDiscoveryOptions { GracePeriod = s_grace }, time);
        discovery.Attach(cluster);
        discovery.Checked(cluster.GetNode("db1")!);
        return (cluster, discovery, time);
    }

    private static Dictionary<string, string> Values(bool primary, long confId, int reporterIndex, string incoming, string stateUuid = StateUuid, string? reporterUuid = null)
    {
        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            ["wsrep_cluster_status"] = primary ? "Primary" : "non-Primary",
            ["wsrep_cluster_state_uuid"] = stateUuid,
            ["wsrep_cluster_conf_id"] = confId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["wsrep_local_index"] = reporterIndex.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["wsrep_incoming_addresses"] = incoming,
            ["wsrep_gcomm_uuid"] = reporterUuid ?? $"uuid-of-entry-{reporterIndex}",
        };
        return values;
    }

    /// <summary>The seed reports a view (conf_id 7) of itself and 10.0.0.2: the second member, as discovery added it.</summary>
    private static ClusterNode DiscoverSecond(ClusterDataSource cluster, GaleraDiscovery discovery, ClusterNode seed)
    {
        discovery.Report(seed, View(true, 7, 0, "10.0.0.1:3306", "10.0.0.2:3306"));
        return cluster.GetNode("10.0.0.2")!;
    }

    private static GaleraView View(bool healthy, long confId, int reporterIndex, params string[] addresses) =>
        GaleraView.From(Values(healthy, confId, reporterIndex, string.Join(",", addresses)), healthy, memberRows: null)!;

    private static GaleraView ViewOfCluster(string stateUuid, bool healthy, long confId, int reporterIndex, string a, string b) =>
        GaleraView.From(Values(healthy, confId, reporterIndex, string.Join(",", a, b), stateUuid), healthy, memberRows: null)!;
}

using System;
using System.Collections.Generic;
using System.Linq;
using ClusterSql.MySql;
using Microsoft.Extensions.Time.Testing;
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
        Assert.That(nodes.Select(n => n.Name), Is.EqualTo(new[] { "10.0.0.1-3307", "db-2.example-3307", "---1--3307" }));
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
}

using System;
using System.Collections.Generic;
using System.IO;
using System.Reflection;
using ClusterSql.MySql;
using MySqlConnector;
using NUnit.Framework;
using static ClusterSql.MySql.MySqlCluster;

namespace ClusterSql.Tests;

/// <summary>Galera's role data, GTID positions and the retry API's error classification.</summary>
[TestFixture]
internal sealed class GaleraRoleTests
{
    [Test]
    public void WithRoleData_ReadsRankUptimeQueueAndReadOnly()
    {
        var health = GaleraHealthProbe.WithRoleData(new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            ["WSREP_LOCAL_INDEX"] = "2",
            ["UPTIME"] = "3600",
            ["WSREP_LOCAL_RECV_QUEUE"] = "17",
            ["READ_ONLY"] = "ON",
        });
        Assert.That(health.IsHealthy, Is.True);
        Assert.That(health.WriterRank, Is.EqualTo(2));
        Assert.That(health.Uptime, Is.EqualTo(TimeSpan.FromHours(1)));
        Assert.That(health.ReplicationLag, Is.EqualTo(17));
        Assert.That(health.ReadOnly, Is.True);

        var none = GaleraHealthProbe.WithRoleData(new Dictionary<string, string> { ["read_only"] = "OFF", ["wsrep_local_index"] = "x" });
        Assert.That((none.WriterRank, none.Uptime, none.ReplicationLag, none.ReadOnly), Is.EqualTo(((long?)null, (TimeSpan?)null, (long?)null, false)));
    }

    [Test]
    public void GtidPositions_OrderBySeqno_AndRejectOtherFormsWithoutQuotingThem()
    {
        var consistency = GaleraConsistency.Instance;
        Assert.That(consistency.Compare("1-1-10", "1-1-9"), Is.GreaterThan(0));
        Assert.That(consistency.Compare("1-1-9", "1-1-10"), Is.LessThan(0));
        Assert.That(consistency.Compare("1-1-10", "1-1-10"), Is.Zero);
        Assert.That(consistency.Compare("1-1-10@500", "1-1-11@499"), Is.GreaterThan(0), "the committed seqno orders when both have it");
        Assert.That(consistency.Compare("1-1-10@500", "1-1-11"), Is.LessThan(0));
        Assert.Throws<ArgumentException>(() => consistency.Compare("1-1-10@x", "1-1-10"));
        var error = Assert.Throws<ArgumentException>(() => consistency.Compare("1-1-10", "secret-password"));
        Assert.That(error!.Message, Does.Not.Contain("secret"));
        Assert.That(error.Message, Does.Contain("domain-server-seqno"));
    }

    [TestCase(MySqlErrorCode.LockDeadlock, "40001", false, RetryReason.Conflict)]
    [TestCase(MySqlErrorCode.LockDeadlock, "40001", true, RetryReason.Conflict)]
    [TestCase(MySqlErrorCode.UnknownCommand, "08S01", false, RetryReason.NotReady)]
    [TestCase(MySqlErrorCode.UnknownCommand, "08S01", true, RetryReason.OutcomeUnknown)]
    [TestCase(MySqlErrorCode.ErrorDuringCommit, "HY000", true, RetryReason.OutcomeUnknown)]
    [TestCase(MySqlErrorCode.ErrorDuringCommit, "HY000", false, RetryReason.CommitFailed)]
    [TestCase(MySqlErrorCode.LockWaitTimeout, "HY000", false, RetryReason.LockWait)]
    [TestCase(MySqlErrorCode.DuplicateKeyEntry, "23000", false, RetryReason.None)]
    [TestCase(MySqlErrorCode.ServerShutdown, "08S01", false, RetryReason.Connection)]
    [TestCase(MySqlErrorCode.ServerShutdown, "08S01", true, RetryReason.OutcomeUnknown)]
    public void Classify_ServerErrors(MySqlErrorCode code, string sqlState, bool commitSent, RetryReason expected) =>
        Assert.That(Classify(ServerError(code, sqlState), commitSent), Is.EqualTo(expected));

    [Test]
    public void Classify_LostConnections_RetryBeforeCommitOnly()
    {
        var lost = ClientError(MySqlErrorCode.None, "Failed to read the result set.", new EndOfStreamException());
        var timeout = ClientError(MySqlErrorCode.CommandTimeoutExpired, "The Command Timeout expired", null);
        Assert.That(Classify(lost, commitSent: false), Is.EqualTo(RetryReason.Connection));
        Assert.That(Classify(lost, commitSent: true), Is.EqualTo(RetryReason.OutcomeUnknown));
        Assert.That(Classify(timeout, commitSent: false), Is.EqualTo(RetryReason.Connection));
        Assert.That(Classify(timeout, commitSent: true), Is.EqualTo(RetryReason.OutcomeUnknown));
        Assert.That(Classify(new IOException("reset"), commitSent: true), Is.EqualTo(RetryReason.OutcomeUnknown));
        Assert.That(Classify(new InvalidOperationException("a bug in the unit of work"), commitSent: false), Is.EqualTo(RetryReason.None));
        Assert.That(Classify(ServerError(MySqlErrorCode.LockDeadlock, "40001"), commitSent: false, transactionEndedByWork: true), Is.EqualTo(RetryReason.None), "a unit of work that committed itself is never run again");
    }

    // MySqlConnector makes its exceptions itself; its constructor is internal.
    private static MySqlException ServerError(MySqlErrorCode code, string sqlState) =>
        Create([typeof(MySqlErrorCode), typeof(string), typeof(string)], code, sqlState, $"server error {(int)code}");

    private static MySqlException ClientError(MySqlErrorCode code, string message, Exception? inner) =>
        Create([typeof(MySqlErrorCode), typeof(string), typeof(Exception)], code, message, inner);

    private static MySqlException Create(Type[] signature, params object?[] arguments)
    {
        var constructor = typeof(MySqlException).GetConstructor(BindingFlags.Instance | BindingFlags.NonPublic, signature)
            ?? throw new MissingMethodException("MySqlException's internal constructor changed: update the test.");
        return (MySqlException)constructor.Invoke(arguments);
    }
}

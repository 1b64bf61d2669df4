using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading.Tasks;
using ClusterSql.Npgsql;
using Npgsql;
using NUnit.Framework;

namespace ClusterSql.Postgres.IntegrationTests;

/// <summary>
/// The roles of ClusterSql on a real PostgreSQL primary with two streaming standbys: writes on the primary, reads on the
/// standbys, through a primary crash, a promotion, a split brain and a lagging standby. Every fault is undone by
/// pg.sh reset in TearDown.
/// </summary>
[NonParallelizable]
public sealed class PostgresRoleTests
{
    [SetUp]
    public void RequirePostgres() => PostgresSetUp.RequirePostgres();

    [TearDown]
    public async Task ResetAsync() => await TestPostgres.Harness("reset");

    [Test]
    public async Task Roles_NormalTopology_PrimaryWritesStandbysRead()
    {
        await using var cluster = TestPostgres.Build();
        await WaitForProbes(cluster);

        await using (var writer = await cluster.Writer.OpenNpgsqlConnectionAsync())
        {
            Assert.That(await TestPostgres.NodeOf(writer), Is.EqualTo(1));
        }

        var readers = new HashSet<int>();
        for (var i = 0; i < 40; i++)
        {
            // Two at a time: a client with one connection at a time stays on its warm reader (NodeSelector.NoteWin), so
            // only load to spread shows the spread.
            await using var reader = await cluster.Readers.OpenNpgsqlConnectionAsync();
            await using var second = await cluster.Readers.OpenNpgsqlConnectionAsync();
            readers.Add(await TestPostgres.NodeOf(reader));
            readers.Add(await TestPostgres.NodeOf(second));
        }

        Assert.That(readers, Is.EquivalentTo(new[] { 2, 3 }), "reads spread over both standbys, never the primary");
        var stats = cluster.Nodes.Select(n => n.GetStatistics()).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(stats.Select(s => s.Name), Is.EqualTo(new[] { "127.0.0.41-5441", "127.0.0.42-5442", "127.0.0.43-5443" }));
            Assert.That(stats[0].ReadOnly, Is.False);
            Assert.That(stats[0].WriterRank, Is.EqualTo(-1), "minus the primary's timeline (1 after initdb)");
            Assert.That(stats[1].ReadOnly && stats[2].ReadOnly, Is.True);
            Assert.That(stats[1].ReplicationLag, Is.Not.Null.And.LessThan(NpgsqlCluster.DefaultMaxReaderLagBytes));
        });
    }

    [Test]
    public async Task OpenNpgsqlConnection_Sync_RolesAndNodes()
    {
        await using var cluster = TestPostgres.Build();
        await WaitForProbes(cluster);
        using (var writer = cluster.Writer.OpenNpgsqlConnection())
        using (var command = new NpgsqlCommand("SELECT inet_server_port()", writer))
        {
            Assert.That(command.ExecuteScalar(), Is.EqualTo(5441));
        }

        using (var reader = cluster.Readers.OpenNpgsqlConnection())
        using (var command = new NpgsqlCommand("SELECT pg_is_in_recovery()", reader))
        {
            Assert.That(command.ExecuteScalar(), Is.True, "a reader session is on a standby");
        }

        using (var any = cluster.OpenNpgsqlConnection())
        {
            Assert.That(any.State, Is.EqualTo(System.Data.ConnectionState.Open));
        }

        using var pinned = cluster.Nodes[2].OpenNpgsqlConnection();
        using var pinnedCommand = new NpgsqlCommand("SELECT inet_server_port()", pinned);
        Assert.That(pinnedCommand.ExecuteScalar(), Is.EqualTo(5443));
    }

    [Test]
    public async Task Acquire_WrongPassword_ErrorsAndStatisticsQuoteNoPassword()
    {
        const string Wrong = "Wr0ng-Pw-8q2z";
        await using var cluster = NpgsqlCluster.CreateDataSource(
            TestPostgres.MultiHostConnectionString().Replace(TestPostgres.Password, Wrong, StringComparison.Ordinal),
            configure: o => o.HealthCheckInterval = TimeSpan.FromMilliseconds(200));
        var ex = Assert.ThrowsAsync<ClusterException>(async () => await cluster.Writer.OpenNpgsqlConnectionAsync());
        await TestPostgres.WaitUntil("the probe's failures recorded", () => Task.FromResult(cluster.Nodes.All(n => n.GetStatistics().DownReason is not null)), TimeSpan.FromSeconds(10));
        var everything = ex!.ToString() + string.Join("\n", cluster.Nodes.Select(n => n.GetStatistics().ToString() + n.GetStatistics().LastErrorMessage + n.ToString())) + cluster;
        Assert.That(everything, Does.Contain("password authentication failed"), "the reason is there");
        Assert.That(everything, Does.Not.Contain(Wrong).And.Not.Contain("Wr0ng").And.Not.Contain("8q2z"));
    }

    [Test]
    public async Task Readers_PrimaryCrashed_KeepWorking_WriterFails()
    {
        await using var cluster = TestPostgres.Build();
        await WaitForProbes(cluster);
        var failures = new List<string>();
        var served = new HashSet<int>();
        var reads = 0;
        try
        {
            var stop = Stopwatch.StartNew();
            var crashed = false;
            while (stop.Elapsed < TimeSpan.FromSeconds(6))
            {
                if (!crashed && stop.Elapsed > TimeSpan.FromSeconds(1))
                {
                    await TestPostgres.Harness("crash", "1");
                    crashed = true;
                }

                try
                {
                    await using var reader = await cluster.Readers.OpenNpgsqlConnectionAsync();
                    served.Add(await TestPostgres.NodeOf(reader));
                    reads++;
                }
                catch (Exception ex) when (ex is ClusterException or NpgsqlException)
                {
                    failures.Add(ex.GetType().Name + ": " + ex.Message);
                }
            }

            // No primary: the writer role has no node; it fails rather than sending a write to a standby.
            await TestPostgres.WaitUntil("pg1 marked down", () => Task.FromResult(cluster.Nodes[0].GetStatistics().DownReason is not null), TimeSpan.FromSeconds(10));
            Assert.ThrowsAsync<ClusterException>(async () => await cluster.Writer.OpenNpgsqlConnectionAsync());
        }
        finally
        {
            await TestPostgres.Harness("reset");
        }

        TestContext.Progress.WriteLine($"{reads} reads through the crash, served by pg{string.Join(", pg", served.Order())}");
        Assert.That(failures, Is.Empty, "no read failed while the primary crashed");
        Assert.That(reads, Is.GreaterThan(100));
        Assert.That(served, Is.EquivalentTo(new[] { 2, 3 }));
    }

    [Test]
    public async Task Writer_StandbyPromotedAfterPrimaryCrash_WritesMoveWithinOneProbeInterval()
    {
        await using var cluster = TestPostgres.Build();
        await WaitForProbes(cluster);
        await using (var setup = await cluster.Writer.OpenNpgsqlConnectionAsync())
        {
            await using var create = new NpgsqlCommand("CREATE TABLE IF NOT EXISTS promote_test (id bigserial PRIMARY KEY, at text)", setup);
            await create.ExecuteNonQueryAsync();
        }

        // The standby must have replayed the table before it is promoted.
        await TestPostgres.WaitUntil("pg2 has the table", async () => (bool)(await TestPostgres.Scalar(2, "SELECT to_regclass('promote_test') IS NOT NULL"))!, TimeSpan.FromSeconds(10));
        TimeSpan moved;
        try
        {
            await TestPostgres.Harness("crash", "1");
            await TestPostgres.WaitUntil("pg1 marked down", () => Task.FromResult(cluster.Nodes[0].GetStatistics().DownReason is not null), TimeSpan.FromSeconds(10));
            await TestPostgres.Harness("promote", "2");
            var sincePromote = Stopwatch.StartNew();
            while (true)
            {
                try
                {
                    await using var writer = await cluster.Writer.OpenNpgsqlConnectionAsync();
                    Assert.That(await TestPostgres.NodeOf(writer), Is.EqualTo(2), "the only primary left is pg2");
                    await using var insert = new NpgsqlCommand("INSERT INTO promote_test (at) VALUES ('after promote')", writer);
                    Assert.That(await insert.ExecuteNonQueryAsync(), Is.EqualTo(1));
                    moved = sincePromote.Elapsed;
                    break;
                }
                catch (ClusterException) when (sincePromote.Elapsed < TimeSpan.FromSeconds(10))
                {
                    await Task.Delay(20);
                }
            }

            // pg3 still points at the dead pg1 (no WAL receiver, a frozen receive-replay distance of 0): it must not be a
            // preferred reader, since it will never see a write made after the promotion.
            await TestPostgres.WaitUntil("pg3 known to be on the old timeline", () => Task.FromResult(cluster.Nodes[2].GetStatistics().ReplicationLag == long.MaxValue), TimeSpan.FromSeconds(5));
            var stale = 0;
            for (var i = 0; i < 20; i++)
            {
                await using var reader = await cluster.Readers.OpenNpgsqlConnectionAsync();
                await using var read = new NpgsqlCommand("SELECT count(*) FROM promote_test WHERE at = 'after promote'", reader);
                stale += (long)(await read.ExecuteScalarAsync())! == 0 ? 1 : 0;
            }

            Assert.That(stale, Is.Zero, "every read after the promotion sees the write made after it");
        }
        finally
        {
            await TestPostgres.Harness("reset");
        }

        TestContext.Progress.WriteLine($"writes moved to the promoted pg2 {moved.TotalMilliseconds:0} ms after the promote returned");

        // One probe interval (500 ms) for pg2's next check to run, plus that check's own time (bounded by the check
        // timeout, 1 s): a second interval would mean the probe's first answer after the promote was not acted on.
        Assert.That(moved, Is.LessThan(TimeSpan.FromMilliseconds(500) + TimeSpan.FromSeconds(1)));
    }

    [Test]
    public async Task Writer_StandbyPromotedWhileOldPrimaryUp_OnlyNewTimelineWrites()
    {
        await using var cluster = TestPostgres.Build();
        await WaitForProbes(cluster);
        try
        {
            await TestPostgres.Harness("promote", "2");
            await TestPostgres.WaitUntil(
                "pg1 superseded",
                () => Task.FromResult(cluster.Nodes[0].GetStatistics().DownReason?.Contains("superseded", StringComparison.Ordinal) == true),
                TimeSpan.FromSeconds(5));

            // pg1 is marked down as soon as pg2 is checked on its new timeline; pg3 is known to follow the old one only
            // at its own next check.
            await TestPostgres.WaitUntil("pg3 seen on the old timeline", () => Task.FromResult(cluster.Nodes[2].GetStatistics().ReplicationLag == long.MaxValue), TimeSpan.FromSeconds(5));
            var writers = new HashSet<int>();
            var readers = new HashSet<int>();
            for (var i = 0; i < 20; i++)
            {
                await using (var writer = await cluster.Writer.OpenNpgsqlConnectionAsync())
                {
                    writers.Add(await TestPostgres.NodeOf(writer));
                }

                await using var reader = await cluster.Readers.OpenNpgsqlConnectionAsync();
                readers.Add(await TestPostgres.NodeOf(reader));
            }

            var stats = cluster.Nodes.Select(n => n.GetStatistics()).ToArray();
            TestContext.Progress.WriteLine(string.Join("\n", stats.Select(s => $"{s.Name}: rank {s.WriterRank}, lag {s.ReplicationLag}, down {s.DownReason}")));
            Assert.Multiple(() =>
            {
                Assert.That(writers, Is.EqualTo(new[] { 2 }), "both pg1 and pg2 accept writes; only the newer timeline may get them");
                Assert.That(stats[1].WriterRank, Is.EqualTo(-2));

                // pg3 still streams timeline 1 from the superseded pg1: the last choice for reads, after the writer pg2.
                Assert.That(stats[2].ReplicationLag, Is.EqualTo(long.MaxValue));
                Assert.That(readers, Is.EqualTo(new[] { 2 }));
            });
        }
        finally
        {
            await TestPostgres.Harness("reset");
        }
    }

    [Test]
    public async Task Readers_StandbyLags_Skipped()
    {
        const long MaxLag = 64 * 1024;
        await using var cluster = TestPostgres.Build(o => o.MaxReaderLag = MaxLag);
        await WaitForProbes(cluster);
        await using (var setup = await cluster.Writer.OpenNpgsqlConnectionAsync())
        {
            await using var create = new NpgsqlCommand("CREATE TABLE IF NOT EXISTS lag_test (id bigint, payload text)", setup);
            await create.ExecuteNonQueryAsync();
        }

        try
        {
            await TestPostgres.Harness("lag", "2");
            await using (var writer = await cluster.Writer.OpenNpgsqlConnectionAsync())
            {
                // About 2 MB of WAL that pg2 receives and does not replay.
                await using var insert = new NpgsqlCommand("INSERT INTO lag_test SELECT g, repeat('x', 100) FROM generate_series(1, 10000) g", writer);
                await insert.ExecuteNonQueryAsync();
            }

            // pg3 may itself be seen behind the primary's position while it replays the insert: wait for its next check.
            await TestPostgres.WaitUntil(
                "pg2 reported lagging, pg3 caught up",
                () => Task.FromResult(cluster.Nodes[1].GetStatistics().ReplicationLag > MaxLag && cluster.Nodes[2].GetStatistics().ReplicationLag <= MaxLag),
                TimeSpan.FromSeconds(5));
            var readers = new HashSet<int>();
            for (var i = 0; i < 30; i++)
            {
                await using var reader = await cluster.Readers.OpenNpgsqlConnectionAsync();
                readers.Add(await TestPostgres.NodeOf(reader));
            }

            // A read whose open on pg3 is slow (a loaded machine) may be hedged to the next of the readers' order, the
            // writer pg1, and won there: allowed. Never on the lagging pg2.
            Assert.That(readers, Does.Contain(3).And.Not.Contain(2), "the lagging pg2 is skipped while pg3 can serve:\n" + Describe(cluster));

            await TestPostgres.Harness("unlag", "2");
            await TestPostgres.WaitUntil("pg2 caught up", () => Task.FromResult(cluster.Nodes[1].GetStatistics().ReplicationLag <= MaxLag), TimeSpan.FromSeconds(10));
            Assert.That(cluster.Readers.Nodes.Take(2).Select(n => n.Name), Is.EquivalentTo(new[] { "127.0.0.42-5442", "127.0.0.43-5443" }), "pg2 a preferred reader again");

            // Its first open is a cold connect: the latency steering may keep reads on the warm pg3 for a moment, so reads
            // go on (spaced) until pg2 serves one.
            readers.Clear();
            var watch = Stopwatch.StartNew();
            while (!readers.Contains(2) && watch.Elapsed < TimeSpan.FromSeconds(5))
            {
                await using (var reader = await cluster.Readers.OpenNpgsqlConnectionAsync())
                {
                    readers.Add(await TestPostgres.NodeOf(reader));
                }

                await Task.Delay(10);
            }

            Assert.That(readers, Does.Contain(2), "pg2 serves reads again once it caught up:\n" + Describe(cluster));
        }
        finally
        {
            await TestPostgres.Harness("unlag", "2");
        }
    }

    [Test]
    public async Task Readers_StandbyHung_SkippedAndUsedAgainAfterResume()
    {
        await using var cluster = TestPostgres.Build();
        await WaitForProbes(cluster);
        try
        {
            await TestPostgres.Harness("hang", "3");
            await TestPostgres.WaitUntil("pg3 marked down", () => Task.FromResult(cluster.Nodes[2].GetStatistics().DownReason is not null), TimeSpan.FromSeconds(10));
            var readers = new HashSet<int>();
            for (var i = 0; i < 20; i++)
            {
                await using var reader = await cluster.Readers.OpenNpgsqlConnectionAsync();
                readers.Add(await TestPostgres.NodeOf(reader));
            }

            Assert.That(readers, Is.EqualTo(new[] { 2 }));
            await TestPostgres.Harness("resume", "3");
            await TestPostgres.WaitUntil("pg3 up again", () => Task.FromResult(cluster.Nodes[2].GetStatistics().DownReason is null), TimeSpan.FromSeconds(10));
        }
        finally
        {
            await TestPostgres.Harness("resume", "3");
        }
    }

    [Test]
    public async Task Readers_StandbyBlackholed_SkippedUntilRestored()
    {
        await using var cluster = TestPostgres.Build();
        await WaitForProbes(cluster);
        try
        {
            await TestPostgres.Harness("blackhole", "3");
            await TestPostgres.WaitUntil("pg3 marked down", () => Task.FromResult(cluster.Nodes[2].GetStatistics().DownReason is not null), TimeSpan.FromSeconds(10));
            var readers = new HashSet<int>();
            for (var i = 0; i < 20; i++)
            {
                await using var reader = await cluster.Readers.OpenNpgsqlConnectionAsync();
                readers.Add(await TestPostgres.NodeOf(reader));
            }

            Assert.That(readers, Is.EqualTo(new[] { 2 }), "no read waits on the blackholed pg3");
            await TestPostgres.Harness("unblackhole", "3");
            await TestPostgres.WaitUntil("pg3 up again", () => Task.FromResult(cluster.Nodes[2].GetStatistics().DownReason is null), TimeSpan.FromSeconds(15));
        }
        finally
        {
            await TestPostgres.Harness("unblackhole", "3");
        }
    }

    /// <summary>Waits until every node has been checked once, so that the roles are known.</summary>
    private static async Task WaitForProbes(ClusterDataSource cluster)
    {
        var watch = Stopwatch.StartNew();
        while (!cluster.Nodes.All(n => n.GetStatistics() is { ReadOnly: true } or { WriterRank: not null }))
        {
            if (watch.Elapsed > TimeSpan.FromSeconds(10))
            {
                Assert.Fail("Not every node was probed within 10 s:\n" + Describe(cluster));
            }

            await Task.Delay(50);
        }
    }

    private static string Describe(ClusterDataSource cluster) => string.Join("\n", cluster.Nodes.Select(n => n.GetStatistics()));
}

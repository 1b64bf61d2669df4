using System.Collections.Generic;
using System;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.MySql;
using MySqlConnector;
using NUnit.Framework;

namespace ClusterSql.IntegrationTests;

/// <summary>
/// Reads that see writes made through another node, and conflicting writers, on the real cluster with MySqlConnector's
/// default pooled sessions (whose COM_RESET_CONNECTION makes MariaDB skip wsrep_sync_wait).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class ConsistencyTests
{
    private const int Pairs = 10_000;
    private const int Workers = 4;

    [SetUp]
    public void RequireCluster() => ClusterSetUp.RequireCluster();

    [Test]
    public async Task CausalReads_TenThousandWriteThenReadPairs_NoStaleRead_AndWithoutThemSomeAreStale()
    {
        var without = await WriteThenRead(causal: false, Pairs);
        var with = await WriteThenRead(causal: true, Pairs);
        var token = await WriteThenRead(causal: false, Pairs / 5, useToken: true);
        TestContext.Progress.WriteLine(
            $"causal reads: {Pairs} write-then-read pairs each: without {without.Stale} stale ({without.OtherNode} read on another node than the write), " +
            $"with {with.Stale} stale ({with.OtherNode} on another node); reader acquire median {without.AcquireMedian.TotalMicroseconds:0} us without, " +
            $"{with.AcquireMedian.TotalMicroseconds:0} us with the wait (p99 {without.AcquireP99.TotalMicroseconds:0} / {with.AcquireP99.TotalMicroseconds:0} us); " +
            $"per-acquire tokens: {token.Stale} stale of {Pairs / 5}, median {token.AcquireMedian.TotalMicroseconds:0} us");
        Assert.Multiple(() =>
        {
            // A read falls back to the writer only when no other node can serve it at that moment (an ejection, a probe
            // that timed out once); the claim is about reads on other nodes, so nearly all must be.
            Assert.That(with.OtherNode, Is.GreaterThanOrEqualTo(Pairs * 99 / 100), "reads ran on another node than their write");
            Assert.That(with.Stale, Is.Zero, "with causal reads no read misses the write before it");
            Assert.That(without.Stale, Is.GreaterThan(0), "without them the same loop reads stale rows (so this test can fail)");
            Assert.That(token.Stale, Is.Zero, "a token passed to OpenConnectionAsync(afterWrite) is waited for");
        });
    }

    private static async Task<(int Stale, int OtherNode, TimeSpan AcquireMedian, TimeSpan AcquireP99)> WriteThenRead(bool causal, int pairs, bool useToken = false)
    {
        var table = useToken ? "causal_token" : causal ? "causal_on" : "causal_off";
        await using var cluster = TestCluster.Build(o => o.CausalReads = causal, configureBuilder: b => b.UseGaleraConsistency());
        await using (var connection = await cluster.Writer.OpenMySqlConnectionAsync())
        await using (var create = new MySqlCommand($"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id INT NOT NULL PRIMARY KEY, v INT NOT NULL)", connection))
        {
            await create.ExecuteNonQueryAsync();
        }

        await WriterRoleTests.Until(() => cluster.Nodes.All(n => n.GetStatistics().WriterRank is not null), TimeSpan.FromSeconds(10), "every node's rank read");
        var stale = 0;
        var otherNode = 0;
        var acquireTimes = new ConcurrentBag<double>();
        await Task.WhenAll(Enumerable.Range(0, Workers).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; i < pairs / Workers; i++)
            {
                string writtenOn;
                string? token = null;
                if (useToken)
                {
                    // A plain write on a writer connection, its position read by hand and passed on as a token.
                    await using var writer = await cluster.Writer.OpenMySqlConnectionAsync();
                    await using (var upsert = new MySqlCommand($"INSERT INTO {table} VALUES (@id, @v) ON DUPLICATE KEY UPDATE v = @v", writer))
                    {
                        upsert.Parameters.AddWithValue("@id", worker);
                        upsert.Parameters.AddWithValue("@v", i);
                        await upsert.ExecuteNonQueryAsync();
                    }

                    token = await cluster.RecordWriteAsync(writer);
                    writtenOn = writer.DataSource;
                }
                else
                {
                    writtenOn = await cluster.Writer.ExecuteTransactionAsync(async (connection, transaction, cancellation) =>
                    {
                        await using var upsert = new MySqlCommand($"INSERT INTO {table} VALUES (@id, @v) ON DUPLICATE KEY UPDATE v = @v", connection, transaction);
                        upsert.Parameters.AddWithValue("@id", worker);
                        upsert.Parameters.AddWithValue("@v", i);
                        await upsert.ExecuteNonQueryAsync(cancellation);
                        return connection.DataSource;
                    });
                }

                // What a causal read will wait for (diagnostics only: the acquire reads it again).
                var waitedFor = cluster.LastWrite;
                var started = Stopwatch.GetTimestamp();
                await using var reader = token is null ? await cluster.Readers.OpenMySqlConnectionAsync() : (MySqlConnection)await cluster.Readers.OpenConnectionAsync(token);
                acquireTimes.Add(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
                await using var select = new MySqlCommand($"SELECT v FROM {table} WHERE id = @id", reader);
                select.Parameters.AddWithValue("@id", worker);
                var read = await select.ExecuteScalarAsync();
                if (read is not int value || value != i)
                {
                    if (Interlocked.Increment(ref stale) <= 5 && (causal || useToken))
                    {
                        await using var seen = new MySqlCommand("SELECT WSREP_LAST_SEEN_GTID(), @@gtid_binlog_pos, (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_LAST_COMMITTED'), (SELECT v FROM " + table + " WHERE id = " + worker + ")", reader);
                        await using var r = await seen.ExecuteReaderAsync();
                        await r.ReadAsync();
                        TestContext.Progress.WriteLine($"stale: token {token} expected {i} read {read} on {reader.DataSource} (written on {writtenOn}); waited for {waitedFor}, last write now {cluster.LastWrite}; reader seen {r.GetValue(0) switch { byte[] b => System.Text.Encoding.ASCII.GetString(b), var o => o }} binlog {r.GetValue(1)} committed {r.GetValue(2)}, reads {r.GetValue(3)} now");
                    }
                }

                if (reader.DataSource != writtenOn)
                {
                    Interlocked.Increment(ref otherNode);
                }
            }
        })));

        await using (var connection = await cluster.Writer.OpenMySqlConnectionAsync())
        await using (var drop = new MySqlCommand($"DROP TABLE IF EXISTS {table}", connection))
        {
            await drop.ExecuteNonQueryAsync();
        }

        var sorted = acquireTimes.OrderBy(t => t).ToArray();
        return (stale, otherNode, TimeSpan.FromMicroseconds(sorted[sorted.Length / 2]), TimeSpan.FromMicroseconds(sorted[(int)(sorted.Length * 0.99)]));
    }

    [Test]
    public async Task CausalRead_EndsWithGaleraCausalWait_OnTheReadersNode_AsyncAndSync_CallersSessionUnchanged()
    {
        // The guarantee is Galera's causal read (wsrep_sync_wait), which MariaDB skips on a session MySqlConnector's pool
        // has reset: each causal acquire must have run one on the node it returned, before returning, which that node's
        // wsrep_causal_reads counter shows (other sessions can only add to it). The caller's session keeps its own
        // setting.
        const int Reads = 30;
        await using var cluster = TestCluster.Build(o => o.CausalReads = true, configureBuilder: b => b.UseGaleraConsistency());
        await CreateBarrierTable(cluster);
        Assert.That(cluster.LastWrite, Is.Not.Null, "the retry API recorded the write");

        var readsOn = new int[4];
        for (var i = 0; i < Reads; i++)
        {
            var before = new long[4];
            for (var node = 1; node <= 3; node++)
            {
                before[node] = await TestCluster.Status(node, "wsrep_causal_reads");
            }

            // Half through the synchronous open, which has its own wait.
            await using var reader = i % 2 == 0 ? await cluster.Readers.OpenMySqlConnectionAsync() : (MySqlConnection)cluster.Readers.OpenConnection();
            var on = TestCluster.NodeOfHost(reader.DataSource);
            readsOn[on]++;
            Assert.That(await TestCluster.Status(on, "wsrep_causal_reads") - before[on], Is.GreaterThanOrEqualTo(1), $"acquire {i} ran Galera's causal read on galera{on} before it returned");
            await using var select = new MySqlCommand("SELECT @@session.wsrep_sync_wait", reader);
            Assert.That(Convert.ToInt64(await select.ExecuteScalarAsync()), Is.Zero, "the caller's session is not changed");
        }

        TestContext.Progress.WriteLine($"causal acquires per node: galera1 {readsOn[1]}, galera2 {readsOn[2]}, galera3 {readsOn[3]}");
    }

    [Test]
    public async Task CausalRead_BarrierSessionsKilledWhileIdle_NextReadsStillSucceed()
    {
        // Sessions that are never reset are handed out by the pool without a check: after their node restarted (here:
        // every idle session killed), the first barrier on each finds a dead socket. It must clear that pool and run
        // again rather than fail the read. No health probe here, so that the kill cannot take a node out.
        // Every global pool emptied first, so that the idle sessions killed below are this test's own: a pool of another
        // test that is never reset would otherwise be handed a dead session later.
        await MySqlConnection.ClearAllPoolsAsync();
        await using var cluster = TestCluster.Build(o => o.CausalReads = true, galera: false, configureBuilder: b => b.UseGaleraConsistency());
        await CreateBarrierTable(cluster);
        await ReadOnEveryNode(cluster);

        var killed = 0;
        for (var node = 1; node <= 3; node++)
        {
            await using var admin = new MySqlConnection(TestCluster.ConnectionString(node, "Pooling=false"));
            await admin.OpenAsync();
            var ids = new List<long>();
            await using (var list = new MySqlCommand("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'clustersql' AND COMMAND = 'Sleep' AND ID <> CONNECTION_ID()", admin))
            await using (var reader = await list.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    ids.Add(Convert.ToInt64(reader.GetValue(0)));
                }
            }

            foreach (var id in ids)
            {
                await using var kill = new MySqlCommand($"KILL {id}", admin);
                try
                {
                    await kill.ExecuteNonQueryAsync();
                    killed++;
                }
                catch (MySqlException)
                {
                    // Gone already.
                }
            }
        }

        Assert.That(killed, Is.GreaterThanOrEqualTo(3), "idle sessions to kill (the barrier's among them)");
        await ReadOnEveryNode(cluster);
    }

    private static async Task CreateBarrierTable(ClusterDataSource cluster) =>
        await cluster.Writer.ExecuteTransactionAsync(async (connection, transaction, cancellation) =>
        {
            await using var create = new MySqlCommand("CREATE TABLE IF NOT EXISTS causal_barrier (id INT NOT NULL PRIMARY KEY)", connection, transaction);
            await create.ExecuteNonQueryAsync(cancellation);
        });

    /// <summary>
    /// Thirty causal reads, three held at a time (one of them a synchronous open), so that a node's barrier pool holds
    /// several sessions; every one must succeed.
    /// </summary>
    private static async Task ReadOnEveryNode(ClusterDataSource cluster)
    {
        var served = new int[4];
        for (var i = 0; i < 10; i++)
        {
            var readers = new List<MySqlConnection>();
            try
            {
                readers.Add(await cluster.Readers.OpenMySqlConnectionAsync());
                readers.Add(await cluster.Readers.OpenMySqlConnectionAsync());
                readers.Add((MySqlConnection)cluster.Readers.OpenConnection());
                foreach (var reader in readers)
                {
                    await using var select = new MySqlCommand("SELECT 1", reader);
                    Assert.That(await select.ExecuteScalarAsync(), Is.EqualTo(1));
                    served[TestCluster.NodeOfHost(reader.DataSource)]++;
                }
            }
            finally
            {
                foreach (var reader in readers)
                {
                    await reader.DisposeAsync();
                }
            }
        }

        Assert.That(served.Max(), Is.GreaterThanOrEqualTo(10), $"served: {string.Join(", ", served)}");
    }

    [Test]
    public async Task CausalRead_PositionNoNodeHasApplied_FailsWithTheTimeoutError_AsyncAndSync_AndReadsGoOnAfterIt()
    {
        // A position the cluster has not reached: the GTID wait times out on the server after CausalReadTimeout, and the
        // barrier never starts: the caller gets the wait's clear error.
        const string Future = "1-1-999999999999@999999999999";
        await using var cluster = TestCluster.Build(o => { o.CausalReads = true; o.CausalReadTimeout = TimeSpan.FromSeconds(1); }, configureBuilder: b => b.UseGaleraConsistency());
        for (var i = 0; i < 3; i++)
        {
            var error = Assert.ThrowsAsync<TimeoutException>(async () => await cluster.Readers.OpenConnectionAsync(Future));
            Assert.That(error!.Message, Does.Contain("did not apply write").And.Contain("within 1 s"));
        }

        cluster.RecordWrite(Future);
        Assert.That(cluster.LastWrite, Is.EqualTo(Future));
        Assert.Throws<TimeoutException>(() => cluster.Readers.OpenConnection().Dispose(), "the synchronous open waits the same way");
        Assert.ThrowsAsync<TimeoutException>(async () => await (await cluster.Readers.OpenConnectionAsync()).DisposeAsync(), "CausalReads waits for the recorded position");

        // Without the future position, causal reads work.
        await using var plain = TestCluster.Build(o => o.CausalReads = true, configureBuilder: b => b.UseGaleraConsistency());
        await CreateBarrierTable(plain);
        for (var i = 0; i < 20; i++)
        {
            await using var reader = await plain.Readers.OpenMySqlConnectionAsync();
            await using var select = new MySqlCommand("SELECT 1", reader);
            Assert.That(await select.ExecuteScalarAsync(), Is.EqualTo(1));
        }
    }

    [Test]
    public async Task Conflicts_WritersOnTwoNodes_ConflictWithoutTheRetryApi_AndSumExactlyWithIt_AndTheWriterRoleAvoidsThem()
    {
        const int Rows = 4;
        const int UnitsPerWorker = 1500;
        await MySqlConnection.ClearAllPoolsAsync();
        await using var setup = TestCluster.Build();
        await using (var connection = await setup.OpenMySqlConnectionAsync())
        await using (var create = new MySqlCommand($"DROP TABLE IF EXISTS counters; CREATE TABLE counters (id INT NOT NULL PRIMARY KEY, v BIGINT NOT NULL); INSERT INTO counters VALUES (0,0),(1,0),(2,0),(3,0)", connection))
        {
            await create.ExecuteNonQueryAsync();
        }

        var retries = new ConcurrentDictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "ClusterSql" && instrument.Name == "clustersql.transaction.retries")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "clustersql.reason")
                {
                    retries.AddOrUpdate((string)tag.Value!, value, (_, v) => v + value);
                }
            }
        });
        listener.Start();

        // 1. Two workers on galera1 and two on galera2, no retry: certification conflicts fail the COMMIT.
        var conflicts = 0;
        var committed = 0;
        await Task.WhenAll(Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            await using var node = new MySqlDataSource(TestCluster.ConnectionString(1 + (w % 2)));
            var random = new Random(w);
            for (var i = 0; i < UnitsPerWorker; i++)
            {
                try
                {
                    await using var connection = await node.OpenConnectionAsync();
                    await using var transaction = await connection.BeginTransactionAsync();
                    await using var update = new MySqlCommand("UPDATE counters SET v = v + 1 WHERE id = @id", connection, transaction);
                    update.Parameters.AddWithValue("@id", random.Next(Rows));
                    await update.ExecuteNonQueryAsync();
                    await transaction.CommitAsync();
                    Interlocked.Increment(ref committed);
                }
                catch (MySqlException ex) when (ex.ErrorCode == MySqlErrorCode.LockDeadlock)
                {
                    Interlocked.Increment(ref conflicts);
                }
            }
        })));
        var sumAfterPlain = await Sum(setup);

        // 2. The same writers through the retry API: every unit commits once, whatever the conflicts.
        retries.Clear();
        var failures = 0;
        await Task.WhenAll(Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            await using var node = new MySqlDataSource(TestCluster.ConnectionString(1 + (w % 2)));
            var random = new Random(100 + w);
            for (var i = 0; i < UnitsPerWorker; i++)
            {
                var id = random.Next(Rows);
                try
                {
                    await node.ExecuteTransactionAsync(async (connection, transaction, token) =>
                    {
                        await using var update = new MySqlCommand("UPDATE counters SET v = v + 1 WHERE id = @id", connection, transaction);
                        update.Parameters.AddWithValue("@id", id);
                        await update.ExecuteNonQueryAsync(token);
                    }, new ClusterRetryOptions { MaxAttempts = 50 });
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref failures);
                }
            }
        })));
        var sumAfterRetry = await Sum(setup);
        var retriedConflicts = retries.TryGetValue("conflict", out var c) ? c : 0;

        // 3. Two independent clients, two workers each, through the writer role: one node takes every write.
        retries.Clear();
        var roleFailures = 0;
        var clients = new[] { TestCluster.Build(), TestCluster.Build() };
        foreach (var client in clients)
        {
            await WriterRoleTests.Until(() => client.Nodes.All(n => n.GetStatistics().WriterRank is not null), TimeSpan.FromSeconds(10), "every node's rank read");
        }

        await Task.WhenAll(Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            var random = new Random(200 + w);
            for (var i = 0; i < UnitsPerWorker; i++)
            {
                var id = random.Next(Rows);
                try
                {
                    await clients[w % 2].Writer.ExecuteTransactionAsync(async (connection, transaction, token) =>
                    {
                        await using var update = new MySqlCommand("UPDATE counters SET v = v + 1 WHERE id = @id", connection, transaction);
                        update.Parameters.AddWithValue("@id", id);
                        await update.ExecuteNonQueryAsync(token);
                    }, new ClusterRetryOptions { MaxAttempts = 50 });
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref roleFailures);
                }
            }
        })));
        var sumAfterRole = await Sum(setup);
        var roleConflicts = retries.TryGetValue("conflict", out var r) ? r : 0;
        foreach (var client in clients)
        {
            await client.DisposeAsync();
        }

        var units = 4 * UnitsPerWorker;
        TestContext.Progress.WriteLine(
            $"conflicts: two nodes without retry: {conflicts} of {units} units failed at certification ({1000.0 * conflicts / Math.Max(committed, 1):0.0} per 1,000 commits); " +
            $"with the retry API: {failures} failed, {retriedConflicts} conflicts retried ({1000.0 * retriedConflicts / units:0.0} per 1,000 commits), sum +{sumAfterRetry - sumAfterPlain} of {units}; " +
            $"writer role, two clients: {roleFailures} failed, {roleConflicts} conflicts retried, sum +{sumAfterRole - sumAfterRetry} of {units}");
        Assert.Multiple(() =>
        {
            Assert.That(conflicts, Is.GreaterThan(0), "writers on two nodes collide at certification");
            Assert.That(sumAfterPlain, Is.EqualTo(committed), "every committed increment counted, no failed one");
            Assert.That(failures, Is.Zero, "the retry API fails no unit");
            Assert.That(sumAfterRetry - sumAfterPlain, Is.EqualTo(units), "every unit applied exactly once");
            Assert.That(roleFailures, Is.Zero);
            Assert.That(sumAfterRole - sumAfterRetry, Is.EqualTo(units));
            Assert.That(roleConflicts, Is.LessThanOrEqualTo(units / 200), "one writer: conflicts close to none");
        });

        await using var cleanup = await setup.OpenMySqlConnectionAsync();
        await using var drop = new MySqlCommand("DROP TABLE IF EXISTS counters", cleanup);
        await drop.ExecuteNonQueryAsync();
    }

    private static async Task<long> Sum(ClusterDataSource cluster)
    {
        await using var connection = new MySqlConnection(TestCluster.ConnectionString(3, "Pooling=false"));
        await connection.OpenAsync();
        await using var sum = new MySqlCommand("SET SESSION wsrep_sync_wait=1; SELECT SUM(v) FROM counters", connection);
        return Convert.ToInt64(await sum.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}

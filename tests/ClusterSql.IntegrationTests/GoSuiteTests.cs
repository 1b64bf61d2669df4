using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.MySql;
using MySqlConnector;
using NUnit.Framework;

namespace ClusterSql.IntegrationTests;

/// <summary>The Go clustersql suite (open, CRUD, concurrency up to max_connections), ported to the cluster data source.</summary>
[TestFixture]
[NonParallelizable]
public sealed class GoSuiteTests
{
    [SetUp]
    public void SetUp() => ClusterSetUp.RequireCluster();

    [Test]
    public async Task Open_ThroughTheCluster_GivesAMySqlConnectionToANode()
    {
        await using var cluster = TestCluster.Build();
        await using var connection = await cluster.OpenMySqlConnectionAsync();
        Assert.That(connection.State, Is.EqualTo(System.Data.ConnectionState.Open));
        await using var command = new MySqlCommand("SELECT 1", connection);
        Assert.That(Convert.ToInt32(await command.ExecuteScalarAsync()), Is.EqualTo(1));
        Assert.That(cluster.Nodes.Sum(n => n.GetStatistics().Wins), Is.EqualTo(1));
    }

    [Test]
    public async Task Crud_ThroughTheCluster_BehavesAsOnOneServer()
    {
        // Each statement may go to another node, so each one first waits for the writes before it to be applied there
        // (wsrep_sync_wait=7: reads, updates and deletes, inserts); without it an UPDATE can match 0 rows of an INSERT
        // just made elsewhere. That wait needs sessions that are not reset for reuse (TestCluster.CausalReads).
        await using var cluster = TestCluster.Build(extra: TestCluster.CausalReads);
        async Task<int> Execute(string sql)
        {
            await using var connection = await cluster.OpenMySqlConnectionAsync();
            await using var command = new MySqlCommand("SET SESSION wsrep_sync_wait=7; " + sql, connection);
            return await command.ExecuteNonQueryAsync();
        }

        async Task<object?> Scalar(string sql)
        {
            await using var connection = await cluster.OpenMySqlConnectionAsync();
            await using var command = new MySqlCommand("SET SESSION wsrep_sync_wait=7; " + sql, connection);
            return await command.ExecuteScalarAsync();
        }

        await Execute("DROP TABLE IF EXISTS go_suite");
        await Execute("CREATE TABLE go_suite (id INT NOT NULL PRIMARY KEY, value VARCHAR(32) NOT NULL)");
        Assert.That(await Scalar("SELECT value FROM go_suite WHERE id = 1"), Is.Null, "empty select");
        Assert.That(await Execute("INSERT INTO go_suite VALUES (1, 'one')"), Is.EqualTo(1), "one row affected");
        Assert.That(await Scalar("SELECT value FROM go_suite WHERE id = 1"), Is.EqualTo("one"));
        Assert.That(await Execute("UPDATE go_suite SET value = 'uno' WHERE id = 1"), Is.EqualTo(1));
        Assert.That(await Scalar("SELECT value FROM go_suite WHERE id = 1"), Is.EqualTo("uno"));
        Assert.That(await Execute("DELETE FROM go_suite WHERE id = 1"), Is.EqualTo(1));
        Assert.That(await Scalar("SELECT COUNT(*) FROM go_suite"), Is.EqualTo(0L));
        await Execute("DROP TABLE go_suite");
    }

    [Test]
    public async Task Concurrency_UpToMaxConnections_OnlyTooManyConnectionsMayFail()
    {
        await using var cluster = TestCluster.Build(o => o.ConnectTimeout = TimeSpan.FromSeconds(10));
        await using (var admin = await cluster.OpenMySqlConnectionAsync())
        {
            await using var command = new MySqlCommand("CREATE TABLE IF NOT EXISTS go_concurrent (id INT PRIMARY KEY)", admin);
            await command.ExecuteNonQueryAsync();
        }

        // The Go suite's shape: every worker holds a transaction open until all workers have one.
        const int Workers = 250;
        var remaining = Workers;
        var allOpen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Arrive()
        {
            if (Interlocked.Decrement(ref remaining) == 0)
            {
                allOpen.SetResult();
            }
        }

        var unexpected = new ConcurrentBag<Exception>();
        var tooMany = 0;
        var succeeded = 0;

        async Task Worker()
        {
            var counted = false;
            try
            {
                await using var connection = await cluster.OpenMySqlConnectionAsync();
                await using var transaction = await connection.BeginTransactionAsync();
                await using var command = new MySqlCommand("SELECT COUNT(*) FROM go_concurrent", connection, transaction);
                await command.ExecuteScalarAsync();
                Arrive();
                counted = true;
                await allOpen.Task.WaitAsync(TimeSpan.FromMinutes(1));
                await transaction.CommitAsync();
                Interlocked.Increment(ref succeeded);
            }
            catch (Exception ex) when (IsTooManyConnections(ex))
            {
                Interlocked.Increment(ref tooMany);
            }
            catch (Exception ex)
            {
                unexpected.Add(ex);
            }
            finally
            {
                if (!counted)
                {
                    Arrive();
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Workers).Select(_ => Task.Run(Worker)));
        Assert.That(unexpected, Is.Empty, string.Join("\n", unexpected.Select(e => e.Message)));
        Assert.That(succeeded + tooMany, Is.EqualTo(Workers));
        Assert.That(succeeded, Is.GreaterThan(0));
        TestContext.Progress.WriteLine($"concurrency: {succeeded} held transactions at once, {tooMany} too-many-connections");
    }

    private static bool IsTooManyConnections(Exception ex) => ex switch
    {
        MySqlException { ErrorCode: MySqlErrorCode.ConnectionCountError } => true,
        ClusterException cluster => cluster.NodeErrors.All(e => IsTooManyConnections(e.Exception)),
        _ => false,
    };

    [Test]
    public async Task Replication_WriteThroughOneNode_IsReadBackOnEveryNode()
    {
        await using var cluster = TestCluster.Build(extra: TestCluster.CausalReads);
        await using (var connection = await cluster.OpenMySqlConnectionAsync())
        {
            await using var command = new MySqlCommand("CREATE TABLE IF NOT EXISTS replication_check (id CHAR(36) PRIMARY KEY)", connection);
            await command.ExecuteNonQueryAsync();
        }

        var id = Guid.NewGuid().ToString();
        await using (var writer = await cluster.GetNode("galera1")!.OpenConnectionAsync())
        {
            await using var insert = new MySqlCommand($"INSERT INTO replication_check VALUES ('{id}')", (MySqlConnection)writer);
            Assert.That(await insert.ExecuteNonQueryAsync(), Is.EqualTo(1));
        }

        foreach (var node in cluster.Nodes)
        {
            await using var reader = (MySqlConnection)await node.OpenConnectionAsync();
            await using var select = new MySqlCommand($"SET SESSION wsrep_sync_wait=1; SELECT COUNT(*) FROM replication_check WHERE id = '{id}'", reader);
            Assert.That(await select.ExecuteScalarAsync(), Is.EqualTo(1L), $"{node.Name} sees the row");
        }
    }

    [Test]
    public async Task GaleraProbe_HealthyCluster_KeepsEveryNodeHealthy()
    {
        await using var cluster = TestCluster.Build();
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Assert.That(cluster.Nodes.Select(n => n.State), Is.All.EqualTo(ClusterNodeState.Healthy));
        Assert.That(cluster.Nodes.Select(n => n.GetStatistics().DownReason), Is.All.Null);
    }

    [Test]
    public async Task MultiHostConnectionString_SwitchesWithOneLine()
    {
        await using var cluster = MySqlCluster.CreateDataSource(TestCluster.MultiHostConnectionString("LoadBalance=RoundRobin"));
        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "127.0.0.21", "127.0.0.22", "127.0.0.23" }));
        await using var connection = await cluster.OpenMySqlConnectionAsync();
        Assert.That(connection.State, Is.EqualTo(System.Data.ConnectionState.Open));
    }
}

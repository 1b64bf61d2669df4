using System;
using System.Collections.Generic;
using System.Data;
using System.Linq;
using System.Threading.Tasks;
using Dapper;
using MySqlConnector;
using NUnit.Framework;

namespace ClusterSql.IntegrationTests;

/// <summary>
/// The connection of <c>cluster.CreateConnection()</c> against the real cluster, used the way Dapper and ADO.NET code
/// use a connection: synchronous Dapper (whose readers close the connection), StateChange, and MySqlConnector batches.
/// </summary>
[TestFixture]
public sealed class WrapperConnectionTests
{
    [SetUp]
    public void SetUp() => ClusterSetUp.RequireCluster();

    private static long TotalWins(ClusterDataSource cluster) => cluster.Nodes.Sum(n => n.GetStatistics().Wins);

    [Test]
    public void DapperQuery_TwiceSynchronouslyOnOneCreateConnection_BothRun()
    {
        using var cluster = TestCluster.Build();
        using var connection = cluster.CreateConnection();

        // Dapper opens the closed connection and executes with CommandBehavior.CloseConnection: the reader closes it.
        var first = connection.Query<int>("SELECT @value + 1", new { value = 41 }).Single();
        var second = connection.QueryFirst<string>("SELECT @@hostname");
        var third = connection.QuerySingle<int>("SELECT 3");

        Assert.That(first, Is.EqualTo(42));
        Assert.That(second, Is.Not.Empty);
        Assert.That(third, Is.EqualTo(3));
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
        Assert.That(TotalWins(cluster), Is.EqualTo(3));
    }

    [Test]
    public void DapperQueryMultiple_TwiceSynchronouslyOnOneCreateConnection_ReadsEveryResult()
    {
        using var cluster = TestCluster.Build();
        using var connection = cluster.CreateConnection();

        for (var i = 0; i < 2; i++)
        {
            using var grid = connection.QueryMultiple("SELECT @a; SELECT @b", new { a = i, b = i + 10 });
            Assert.That(grid.ReadSingle<int>(), Is.EqualTo(i));
            Assert.That(grid.ReadSingle<int>(), Is.EqualTo(i + 10));
        }

        Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
        Assert.That(TotalWins(cluster), Is.EqualTo(2));
    }

    [Test]
    public async Task DapperQueryAsync_AfterASynchronousQueryOnOneCreateConnection_Runs()
    {
        await using var cluster = TestCluster.Build();
        await using var connection = cluster.CreateConnection();

        var sync = connection.QueryFirst<int>("SELECT 1");
        var async = await connection.QueryFirstAsync<int>("SELECT 2");
        var syncAgain = connection.QueryFirst<int>("SELECT 3");

        Assert.That(new[] { sync, async, syncAgain }, Is.EqualTo(new[] { 1, 2, 3 }));
        Assert.That(TotalWins(cluster), Is.EqualTo(3));
    }

    [Test]
    public void ExecuteReader_CloseConnectionTwiceViaCreateCommand_BothRun()
    {
        using var cluster = TestCluster.Build();
        using var connection = cluster.CreateConnection();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT @@hostname";

        var hosts = new List<string>();
        for (var i = 0; i < 2; i++)
        {
            connection.Open();
            using var reader = command.ExecuteReader(CommandBehavior.CloseConnection);
            Assert.That(reader.Read(), Is.True);
            hosts.Add(reader.GetString(0));
        }

        Assert.That(hosts, Has.Count.EqualTo(2).And.All.Not.Empty);
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
    }

    [Test]
    public async Task ExecuteReaderAsync_CloseConnectionTwiceViaCreateCommand_BothRun()
    {
        await using var cluster = TestCluster.Build();
        await using var connection = cluster.CreateConnection();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 7";

        for (var i = 0; i < 2; i++)
        {
            await connection.OpenAsync();
            await using var reader = await command.ExecuteReaderAsync(CommandBehavior.CloseConnection);
            Assert.That(await reader.ReadAsync(), Is.True);
            Assert.That(reader.GetInt32(0), Is.EqualTo(7));
        }

        Assert.That(TotalWins(cluster), Is.EqualTo(2));
    }

    [Test]
    public void StateChange_SynchronousDapperQueries_SeenOpenAndClosedForEach()
    {
        using var cluster = TestCluster.Build();
        using var connection = cluster.CreateConnection();
        var seen = new List<(object Sender, ConnectionState From, ConnectionState To)>();
        connection.StateChange += (sender, e) => seen.Add((sender, e.OriginalState, e.CurrentState));

        connection.QueryFirst<int>("SELECT 1");
        connection.QueryFirst<int>("SELECT 2");

        var opened = (connection, ConnectionState.Closed, ConnectionState.Open);
        var closed = (connection, ConnectionState.Open, ConnectionState.Closed);
        Assert.That(seen, Is.EqualTo(new[] { opened, closed, opened, closed }));
    }

    [Test]
    public async Task StateChange_AsynchronousDapperQueries_SeenOpenAndClosedForEach()
    {
        await using var cluster = TestCluster.Build();
        await using var connection = cluster.CreateConnection();
        var seen = new List<(object Sender, ConnectionState From, ConnectionState To)>();
        connection.StateChange += (sender, e) => seen.Add((sender, e.OriginalState, e.CurrentState));

        await connection.QueryFirstAsync<int>("SELECT 1");
        await connection.QueryFirstAsync<int>("SELECT 2");

        var opened = (connection, ConnectionState.Closed, ConnectionState.Open);
        var closed = (connection, ConnectionState.Open, ConnectionState.Closed);
        Assert.That(seen, Is.EqualTo(new[] { opened, closed, opened, closed }));
    }

    [Test]
    public void CreateBatch_TwoCommandsOnTheWrapper_RunInOneRoundTrip()
    {
        using var cluster = TestCluster.Build();
        using var connection = cluster.CreateConnection();
        Assert.That(connection.CanCreateBatch, Is.True);

        using var batch = connection.CreateBatch();
        var insert = batch.CreateBatchCommand();
        insert.CommandText = "CREATE TABLE IF NOT EXISTS wrapper_batch (id VARCHAR(40) PRIMARY KEY)";
        batch.BatchCommands.Add(insert);
        var id = Guid.NewGuid().ToString();
        batch.BatchCommands.Add(new MySqlBatchCommand("INSERT INTO wrapper_batch VALUES (@id)") { Parameters = { new MySqlParameter("@id", id) } });
        connection.Open();

        Assert.That(batch.ExecuteNonQuery(), Is.EqualTo(1));

        using var select = connection.CreateBatch();
        select.BatchCommands.Add(new MySqlBatchCommand("SELECT COUNT(*) FROM wrapper_batch WHERE id = @id") { Parameters = { new MySqlParameter("@id", id) } });
        select.BatchCommands.Add(new MySqlBatchCommand("SELECT 2"));
        using var reader = select.ExecuteReader();
        Assert.That(reader.Read() && reader.GetInt64(0) == 1, Is.True);
        Assert.That(reader.NextResult() && reader.Read() && reader.GetInt32(0) == 2, Is.True);
    }

    [Test]
    public async Task CreateBatchAsync_OnTheWrapperAfterAReopen_BindsToTheNewConnection()
    {
        await using var cluster = TestCluster.Build();
        await using var connection = cluster.CreateConnection();
        await using var batch = connection.CreateBatch();
        batch.BatchCommands.Add(new MySqlBatchCommand("SELECT 1"));
        batch.BatchCommands.Add(new MySqlBatchCommand("SELECT 2"));

        for (var i = 0; i < 2; i++)
        {
            await connection.OpenAsync();
            Assert.That(await batch.ExecuteScalarAsync(), Is.EqualTo(1));
            await using (var reader = await batch.ExecuteReaderAsync(CommandBehavior.CloseConnection))
            {
                Assert.That(await reader.ReadAsync(), Is.True);
                Assert.That(await reader.NextResultAsync() && await reader.ReadAsync(), Is.True);
                Assert.That(reader.GetInt32(0), Is.EqualTo(2));
            }

            Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
        }

        Assert.That(TotalWins(cluster), Is.EqualTo(2));
    }

    [Test]
    public async Task CreateBatch_WithATransactionOnTheWrapper_Commits()
    {
        await using var cluster = TestCluster.Build();
        await using var connection = cluster.CreateConnection();
        await connection.OpenAsync();
        await connection.ExecuteAsync("CREATE TABLE IF NOT EXISTS wrapper_batch (id VARCHAR(40) PRIMARY KEY)");
        var ids = new[] { Guid.NewGuid().ToString(), Guid.NewGuid().ToString() };

        await using (var transaction = await connection.BeginTransactionAsync())
        await using (var batch = connection.CreateBatch())
        {
            batch.Transaction = transaction;
            foreach (var id in ids)
            {
                batch.BatchCommands.Add(new MySqlBatchCommand("INSERT INTO wrapper_batch VALUES (@id)") { Parameters = { new MySqlParameter("@id", id) } });
            }

            Assert.That(await batch.ExecuteNonQueryAsync(), Is.EqualTo(2));
            await transaction.CommitAsync();
        }

        var count = await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM wrapper_batch WHERE id IN @ids", new { ids });
        Assert.That(count, Is.EqualTo(2));
    }

    [Test]
    public void DataSourceCreateBatch_TwoCommands_OpensThroughTheClusterAndCloses()
    {
        using var cluster = TestCluster.Build();
        using var batch = cluster.CreateBatch();
        foreach (var text in new[] { "SELECT 1", "SELECT @@hostname" })
        {
            var command = batch.CreateBatchCommand();
            command.CommandText = text;
            batch.BatchCommands.Add(command);
        }

        using (var reader = batch.ExecuteReader())
        {
            Assert.That(reader.Read() && reader.GetInt32(0) == 1, Is.True);
            Assert.That(reader.NextResult() && reader.Read(), Is.True);
            Assert.That(reader.GetString(0), Is.Not.Empty);
        }

        Assert.That(batch.ExecuteScalar(), Is.EqualTo(1));
        Assert.That(TotalWins(cluster), Is.EqualTo(2));
    }

    [Test]
    public async Task DataSourceCreateBatchAsync_TwoCommands_OpensThroughTheClusterAndCloses()
    {
        await using var cluster = TestCluster.Build();
        await using var batch = cluster.CreateBatch();
        batch.BatchCommands.Add(new MySqlBatchCommand("SELECT 1"));
        batch.BatchCommands.Add(new MySqlBatchCommand("SELECT 2"));

        Assert.That(await batch.ExecuteScalarAsync(), Is.EqualTo(1));
        await using (var reader = await batch.ExecuteReaderAsync())
        {
            Assert.That(await reader.ReadAsync(), Is.True);
            Assert.That(await reader.NextResultAsync() && await reader.ReadAsync(), Is.True);
            Assert.That(reader.GetInt32(0), Is.EqualTo(2));
        }

        Assert.That(TotalWins(cluster), Is.EqualTo(2));
    }
}

using System;
using System.Collections.Generic;
using System.Data;
using System.Data.Common;
using System.IO;
using System.Threading.Tasks;
using ClusterSql.MySql;
using ClusterSql.Tests.Fakes;
using Microsoft.Data.Sqlite;
using MySqlConnector;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>
/// The wrapper that <c>ClusterDataSource.CreateConnection()</c> returns keeps the DbConnection contract: reopening after
/// the provider connection closed itself, StateChange, disposal, ConnectionString, commands and batches. SQLite nodes in
/// process run the statements; MySqlConnector nodes that are never opened show batches, which SQLite does not have.
/// </summary>
[TestFixture]
public sealed class ClusterConnectionTests
{
    private string _directory = null!;

    [SetUp]
    public void SetUp()
    {
        _directory = Path.Combine(Path.GetTempPath(), "clustersql-conn-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
    }

    [TearDown]
    public void TearDown()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    private ClusterDataSource BuildSqlite() => new ClusterDataSourceBuilder()
        .UsePolicy(AcquirePolicy.FailOver)
        .AddNode("primary", SqliteFactory.Instance.CreateDataSource($"Data Source={Path.Combine(_directory, "a.db")}"))
        .AddNode("secondary", SqliteFactory.Instance.CreateDataSource($"Data Source={Path.Combine(_directory, "b.db")}"))
        .Build();

    // Never opened: MySqlConnector makes connections, commands and batches without a server.
    private static ClusterDataSource BuildMySql() => new ClusterDataSourceBuilder()
        .AddMySqlNode("galera1", "Server=127.0.0.1;Port=1;User ID=app;Password=pw-never-shown")
        .AddMySqlNode("galera2", "Server=127.0.0.2;Port=1;User ID=app;Password=pw-never-shown")
        .Build();

    private static long Wins(ClusterDataSource cluster) => cluster.GetNode("primary")!.GetStatistics().Wins;

    [Test]
    public void EnlistTransaction_IsRefusedWithItsReason()
    {
        using var cluster = BuildSqlite();
        using var connection = cluster.CreateConnection();
        using var scope = new System.Transactions.CommittableTransaction();
        var error = Assert.Throws<NotSupportedException>(() => connection.EnlistTransaction(scope));
        Assert.That(error!.Message, Does.Contain("TransactionScope").And.Contain("BeginTransaction"));
    }

    [Test]
    public void Open_AfterACloseConnectionReaderClosedTheProviderConnection_AcquiresAfresh()
    {
        using var cluster = BuildSqlite();
        using var connection = cluster.CreateConnection();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT 42";

        connection.Open();
        var first = ((ClusterConnection)connection).InnerConnection;
        using (var reader = command.ExecuteReader(CommandBehavior.CloseConnection))
        {
            Assert.That(reader.Read(), Is.True);
            Assert.That(reader.GetInt64(0), Is.EqualTo(42L));
        }

        Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
        connection.Open();

        Assert.That(connection.State, Is.EqualTo(ConnectionState.Open));
        Assert.That(((ClusterConnection)connection).InnerConnection, Is.Not.SameAs(first));
        Assert.That(command.ExecuteScalar(), Is.EqualTo(42L));
        Assert.That(Wins(cluster), Is.EqualTo(2));
    }

    [Test]
    public async Task OpenAsync_AfterACloseConnectionReaderClosedTheProviderConnection_AcquiresAfresh()
    {
        await using var cluster = BuildSqlite();
        await using var connection = cluster.CreateConnection();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 42";

        await connection.OpenAsync();
        var first = ((ClusterConnection)connection).InnerConnection;
        await using (var reader = await command.ExecuteReaderAsync(CommandBehavior.CloseConnection))
        {
            Assert.That(await reader.ReadAsync(), Is.True);
        }

        Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
        await connection.OpenAsync();

        Assert.That(connection.State, Is.EqualTo(ConnectionState.Open));
        Assert.That(((ClusterConnection)connection).InnerConnection, Is.Not.SameAs(first));
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(42L));
        Assert.That(Wins(cluster), Is.EqualTo(2));
    }

    [Test]
    public void ExecuteReader_CloseConnectionTwiceOnOneConnection_BothRun()
    {
        using var cluster = BuildSqlite();
        using var connection = cluster.CreateConnection();

        // What Dapper's synchronous Query does on a closed connection, twice.
        for (var i = 1; i <= 2; i++)
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT {i}";
            connection.Open();
            using var reader = command.ExecuteReader(CommandBehavior.CloseConnection);
            Assert.That(reader.Read(), Is.True);
            Assert.That(reader.GetInt64(0), Is.EqualTo(i));
        }

        Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
        Assert.That(Wins(cluster), Is.EqualTo(2));
    }

    [Test]
    public void Open_WhileOpen_Throws()
    {
        using var cluster = BuildSqlite();
        using var connection = cluster.CreateConnection();
        connection.Open();

        Assert.That(connection.Open, Throws.InvalidOperationException.With.Message.Contains("already open"));
        Assert.That(async () => await connection.OpenAsync(), Throws.InvalidOperationException.With.Message.Contains("already open"));
    }

    [Test]
    public void StateChange_OpenCloseAndASelfClosingReader_ReportsEachTransitionOnce()
    {
        using var cluster = BuildSqlite();
        var connection = cluster.CreateConnection();
        var seen = new List<(object Sender, ConnectionState From, ConnectionState To)>();
        connection.StateChange += (sender, e) => seen.Add((sender, e.OriginalState, e.CurrentState));
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";

        connection.Open();
        connection.Close();
        connection.Open();
        command.ExecuteReader(CommandBehavior.CloseConnection).Dispose();
        connection.Close(); // already closed by the reader: no second Open->Closed
        connection.Open();
        connection.Dispose();

        var opened = (connection, ConnectionState.Closed, ConnectionState.Open);
        var closed = (connection, ConnectionState.Open, ConnectionState.Closed);
        Assert.That(seen, Is.EqualTo(new[] { opened, closed, opened, closed, opened, closed }));
    }

    [Test]
    public async Task StateChange_OpenAsyncCloseAsyncAndASelfClosingReader_ReportsEachTransitionOnce()
    {
        await using var cluster = BuildSqlite();
        var connection = cluster.CreateConnection();
        var seen = new List<(object Sender, ConnectionState From, ConnectionState To)>();
        connection.StateChange += (sender, e) => seen.Add((sender, e.OriginalState, e.CurrentState));
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";

        await connection.OpenAsync();
        await connection.CloseAsync();
        await connection.OpenAsync();
        await (await command.ExecuteReaderAsync(CommandBehavior.CloseConnection)).DisposeAsync();
        await connection.CloseAsync();
        await connection.OpenAsync();
        await connection.DisposeAsync();

        var opened = (connection, ConnectionState.Closed, ConnectionState.Open);
        var closed = (connection, ConnectionState.Open, ConnectionState.Closed);
        Assert.That(seen, Is.EqualTo(new[] { opened, closed, opened, closed, opened, closed }));
    }

    [Test]
    public void Open_AfterDispose_ThrowsObjectDisposedAndCloseIsANoOp()
    {
        using var cluster = BuildSqlite();
        var connection = cluster.CreateConnection();
        connection.Open();
        connection.Dispose();

        Assert.That(connection.Open, Throws.TypeOf<ObjectDisposedException>());
        Assert.That(connection.Close, Throws.Nothing);
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
        Assert.That(Wins(cluster), Is.EqualTo(1));
    }

    [Test]
    public async Task OpenAsync_AfterDisposeAsync_ThrowsObjectDisposedAndCloseAsyncIsANoOp()
    {
        await using var cluster = BuildSqlite();
        var connection = cluster.CreateConnection();
        await connection.OpenAsync();
        await connection.DisposeAsync();

        Assert.That(async () => await connection.OpenAsync(), Throws.TypeOf<ObjectDisposedException>());
        Assert.That(connection.CloseAsync, Throws.Nothing);
        Assert.That(connection.State, Is.EqualTo(ConnectionState.Closed));
        Assert.That(Wins(cluster), Is.EqualTo(1));
    }

    [Test]
    public void Dispose_WhileOpen_ReturnsTheProviderConnection()
    {
        using var cluster = BuildSqlite();
        var connection = cluster.CreateConnection();
        connection.Open();
        var inner = ((ClusterConnection)connection).InnerConnection!;

        connection.Dispose();

        Assert.That(inner.State, Is.EqualTo(ConnectionState.Closed));
        Assert.That(((ClusterConnection)connection).InnerConnection, Is.Null);
    }

    [Test]
    public async Task ConnectionString_Get_IsTheClusterDescriptionWithoutPasswords()
    {
        await using var cluster = FakeCluster.Create(2);
        await using var connection = cluster.DataSource.CreateConnection();

        Assert.That(connection.ConnectionString, Is.EqualTo(cluster.DataSource.ConnectionString));
        Assert.That(connection.ConnectionString, Does.Contain("node1").And.Not.Contain(FakeNode.Secret));
    }

    [Test]
    public async Task ConnectionString_SetToItsOwnValue_IsANoOp()
    {
        await using var cluster = FakeCluster.Create(2);
        await using var connection = cluster.DataSource.CreateConnection();
        var description = connection.ConnectionString;

        Assert.That(() => connection.ConnectionString = description, Throws.Nothing);
        Assert.That(connection.ConnectionString, Is.EqualTo(description));
    }

    [TestCase("Data Source=elsewhere.db")]
    [TestCase("")]
    [TestCase(null)]
    public async Task ConnectionString_SetToAnotherValue_ThrowsNotSupported(string? value)
    {
        await using var cluster = FakeCluster.Create(2);
        await using var connection = cluster.DataSource.CreateConnection();

        Assert.That(() => connection.ConnectionString = value, Throws.TypeOf<NotSupportedException>().With.Message.Contains("ClusterDataSource"));
    }

    [Test]
    public void Command_ReusedAcrossReopensWithTransactions_BindsToEachNewProviderConnection()
    {
        using var cluster = BuildSqlite();
        using var connection = cluster.CreateConnection();
        using var command = connection.CreateCommand();
        connection.Open();
        command.CommandText = "CREATE TABLE t (v INTEGER)";
        command.ExecuteNonQuery();
        connection.Close();

        for (var i = 0; i < 2; i++)
        {
            connection.Open();
            using var transaction = connection.BeginTransaction();
            command.Transaction = transaction;
            command.CommandText = "INSERT INTO t VALUES (1)";
            Assert.That(command.ExecuteNonQuery(), Is.EqualTo(1));
            Assert.That(command.Transaction, Is.SameAs(transaction));
            transaction.Commit();
            command.Transaction = null;
            connection.Close();
        }

        connection.Open();
        command.CommandText = "SELECT count(*) FROM t";
        Assert.That(command.ExecuteScalar(), Is.EqualTo(2L));
    }

    [Test]
    public async Task Transaction_ReportsTheClusterConnection_AndRollsBackThroughIt()
    {
        await using var cluster = BuildSqlite();
        await using var connection = cluster.CreateConnection();
        await connection.OpenAsync();
        await using (var create = connection.CreateCommand())
        {
            create.CommandText = "CREATE TABLE t (v INTEGER)";
            await create.ExecuteNonQueryAsync();
        }

        // EF Core refuses a transaction whose Connection is not the connection it holds: it must be the cluster's.
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            Assert.That(transaction.Connection, Is.SameAs(connection));
            await using var insert = connection.CreateCommand();
            insert.Transaction = transaction;
            insert.CommandText = "INSERT INTO t VALUES (1)";
            Assert.That(await insert.ExecuteNonQueryAsync(), Is.EqualTo(1));
            Assert.That(insert.Transaction, Is.SameAs(transaction));
            await transaction.RollbackAsync();
            Assert.That(transaction.Connection, Is.Null, "an ended transaction has no connection, as the provider's");
        }

        using (var synchronous = connection.BeginTransaction())
        {
            Assert.That(synchronous.Connection, Is.SameAs(connection));
            synchronous.Commit();
        }

        await using var count = connection.CreateCommand();
        count.CommandText = "SELECT count(*) FROM t";
        Assert.That(await count.ExecuteScalarAsync(), Is.EqualTo(0L), "the insert was rolled back");
    }

    [Test]
    public async Task CommandAsync_ReusedAcrossReopensWithTransactions_BindsToEachNewProviderConnection()
    {
        await using var cluster = BuildSqlite();
        await using var connection = cluster.CreateConnection();
        await using var command = connection.CreateCommand();
        await connection.OpenAsync();
        command.CommandText = "CREATE TABLE t (v INTEGER)";
        await command.ExecuteNonQueryAsync();
        command.CommandText = "SELECT 1";
        await (await command.ExecuteReaderAsync(CommandBehavior.CloseConnection)).DisposeAsync();

        for (var i = 0; i < 2; i++)
        {
            await connection.OpenAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            command.Transaction = transaction;
            command.CommandText = "INSERT INTO t VALUES (1)";
            Assert.That(await command.ExecuteNonQueryAsync(), Is.EqualTo(1));
            await transaction.CommitAsync();
            command.Transaction = null;
            await connection.CloseAsync();
        }

        await connection.OpenAsync();
        command.CommandText = "SELECT count(*) FROM t";
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(2L));
    }

    [Test]
    public void CommandConnection_SetToNullThenAnotherClusterConnection_RunsThere()
    {
        using var cluster = BuildSqlite();
        using var first = cluster.CreateConnection();
        using var second = cluster.CreateConnection();
        using var command = first.CreateCommand();
        command.CommandText = "SELECT 5";

        command.Connection = null;
        Assert.That(command.ExecuteScalar, Throws.InvalidOperationException.With.Message.Contains("no connection"));

        command.Connection = second;
        second.Open();
        Assert.That(command.Connection, Is.SameAs(second));
        Assert.That(command.ExecuteScalar(), Is.EqualTo(5L));
        Assert.That(first.State, Is.EqualTo(ConnectionState.Closed));
    }

    [Test]
    public void CommandConnection_SetToAProviderConnection_ThrowsArgument()
    {
        using var cluster = BuildSqlite();
        using var connection = cluster.CreateConnection();
        using var command = connection.CreateCommand();
        using var provider = new SqliteConnection("Data Source=:memory:");

        Assert.That(() => command.Connection = provider, Throws.ArgumentException);
        Assert.That(command.Connection, Is.SameAs(connection));
    }

    [Test]
    public async Task CreateBatch_ProviderWithoutBatches_CannotAndThrowsNotSupported()
    {
        await using var cluster = BuildSqlite();
        await using var connection = cluster.CreateConnection();

        Assert.That(connection.CanCreateBatch, Is.False);
        Assert.That(connection.CreateBatch, Throws.TypeOf<NotSupportedException>().With.Message.Contains("cannot create batches").And.Message.Contains("SqliteConnection"));
        Assert.That(cluster.CreateBatch, Throws.TypeOf<NotSupportedException>().With.Message.Contains("cannot create batches"));
    }

    [Test]
    public async Task CreateBatch_ProviderWithBatches_WrapsAnUnboundProviderBatch()
    {
        await using var cluster = BuildMySql();
        await using var connection = cluster.CreateConnection();
        Assert.That(connection.CanCreateBatch, Is.True);

        await using var batch = connection.CreateBatch();
        var command = batch.CreateBatchCommand();
        command.CommandText = "SELECT 1";
        batch.BatchCommands.Add(command);
        batch.Timeout = 17;

        Assert.That(batch.GetType().Name, Is.EqualTo("ClusterBatch"));
        Assert.That(command, Is.TypeOf<MySqlBatchCommand>());
        Assert.That(batch.BatchCommands, Has.Count.EqualTo(1));
        Assert.That(batch.Timeout, Is.EqualTo(17));
        Assert.That(batch.Connection, Is.SameAs(connection));
        Assert.That(batch.Transaction, Is.Null);
    }

    [Test]
    public async Task CreateBatch_ExecutedOnAClosedConnection_ThrowsNotOpen()
    {
        await using var cluster = BuildMySql();
        await using var connection = cluster.CreateConnection();
        await using var batch = connection.CreateBatch();
        batch.BatchCommands.Add(new MySqlBatchCommand("SELECT 1"));

        Assert.That(() => batch.ExecuteNonQuery(), Throws.InvalidOperationException.With.Message.Contains("not open"));
        Assert.That(() => batch.ExecuteScalar(), Throws.InvalidOperationException.With.Message.Contains("not open"));
        Assert.That(() => batch.ExecuteReader(), Throws.InvalidOperationException.With.Message.Contains("not open"));
        Assert.That(async () => await batch.ExecuteNonQueryAsync(), Throws.InvalidOperationException.With.Message.Contains("not open"));
        Assert.That(async () => await batch.ExecuteScalarAsync(), Throws.InvalidOperationException.With.Message.Contains("not open"));
        Assert.That(async () => await batch.ExecuteReaderAsync(), Throws.InvalidOperationException.With.Message.Contains("not open"));
        Assert.That(async () => await batch.PrepareAsync(), Throws.InvalidOperationException.With.Message.Contains("not open"));
    }

    [Test]
    public async Task BatchConnection_SetToAProviderConnectionOrNull_ThrowsOrUnbinds()
    {
        await using var cluster = BuildMySql();
        await using var connection = cluster.CreateConnection();
        await using var batch = connection.CreateBatch();
        await using var provider = new MySqlConnection();

        Assert.That(() => batch.Connection = provider, Throws.ArgumentException);
        batch.Connection = null;
        Assert.That(batch.ExecuteNonQuery, Throws.InvalidOperationException.With.Message.Contains("no connection"));
    }

    [Test]
    public async Task DataSourceCreateBatch_ProviderWithBatches_MakesProviderBatchCommands()
    {
        await using var cluster = BuildMySql();
        await using var batch = cluster.CreateBatch();

        // DbDataSource's own batch throws NotImplementedException here: provider-agnostic code could not add a command.
        var command = batch.CreateBatchCommand();
        command.CommandText = "SELECT 1";
        batch.BatchCommands.Add(command);
        batch.Timeout = 9;

        Assert.That(command, Is.TypeOf<MySqlBatchCommand>());
        Assert.That(batch.BatchCommands, Has.Count.EqualTo(1));
        Assert.That(batch.Timeout, Is.EqualTo(9));
    }

    [Test]
    public async Task DataSourceCreateBatch_ConnectionTransactionOrPrepare_ThrowNotSupported()
    {
        await using var cluster = BuildMySql();
        await using var batch = cluster.CreateBatch();

        Assert.That(() => batch.Connection, Throws.TypeOf<NotSupportedException>().With.Message.Contains("own connection"));
        Assert.That(() => batch.Transaction = null, Throws.TypeOf<NotSupportedException>());
        Assert.That(batch.Prepare, Throws.TypeOf<NotSupportedException>());
        Assert.That(async () => await batch.PrepareAsync(), Throws.TypeOf<NotSupportedException>());
    }

    [Test]
    public async Task DataSourceCreateBatch_NoNodeOpens_ThrowsClusterExceptionSyncAndAsync()
    {
        await using var cluster = BuildMySql();
        await using var batch = cluster.CreateBatch();
        batch.BatchCommands.Add(batch.CreateBatchCommand());

        // Port 1 on loopback refuses at once: the acquire fails on both nodes.
        Assert.That(() => batch.ExecuteNonQuery(), Throws.TypeOf<ClusterException>());
        Assert.That(async () => await batch.ExecuteScalarAsync(), Throws.TypeOf<ClusterException>());
    }
}

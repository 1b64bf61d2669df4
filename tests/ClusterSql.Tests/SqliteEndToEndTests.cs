using System;
using System.Data.Common;
using System.IO;
using System.Threading.Tasks;
using Microsoft.Data.Sqlite;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>The core is provider-agnostic: a cluster of SQLite "nodes" (one database file each) in process.</summary>
[TestFixture]
public sealed class SqliteEndToEndTests
{
    private string _directory = null!;

    [SetUp]
    public void SetUp()
    {
        _directory = Path.Combine(Path.GetTempPath(), "clustersql-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
    }

    [TearDown]
    public void TearDown()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    private ClusterDataSource Build(AcquirePolicy policy = AcquirePolicy.FailOver) => new ClusterDataSourceBuilder()
        .UsePolicy(policy)
        .AddNode("primary", SqliteFactory.Instance.CreateDataSource($"Data Source={Path.Combine(_directory, "a.db")}"))
        .AddNode("secondary", SqliteFactory.Instance.CreateDataSource($"Data Source={Path.Combine(_directory, "b.db")}"))
        .Build();

    [Test]
    public async Task OpenConnectionAsync_Sqlite_ReturnsTheProvidersConnectionAndRunsStatements()
    {
        await using var cluster = Build();
        await using var connection = await cluster.OpenConnectionAsync();
        Assert.That(connection, Is.TypeOf<SqliteConnection>());

        await using var command = connection.CreateCommand();
        command.CommandText = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('x'); SELECT count(*) FROM t;";
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(1L));
        Assert.That(cluster.GetNode("primary")!.GetStatistics().Wins, Is.EqualTo(1));
    }

    [Test]
    public void OpenConnection_Sync_Works()
    {
        using var cluster = Build(AcquirePolicy.LatencyAware);
        using var connection = cluster.OpenConnection();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT 41 + 1";
        Assert.That(command.ExecuteScalar(), Is.EqualTo(42L));
    }

    [Test]
    public async Task CreateConnection_CommandMadeBeforeOpen_RunsOnTheChosenNode()
    {
        await using var cluster = Build();
        await using var connection = cluster.CreateConnection();
        Assert.That(connection.State, Is.EqualTo(System.Data.ConnectionState.Closed));

        // Dapper's order: create the command, then open the connection, then execute.
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT $a * 2";
        var parameter = command.CreateParameter();
        parameter.ParameterName = "$a";
        parameter.Value = 21;
        command.Parameters.Add(parameter);
        await connection.OpenAsync();

        Assert.That(connection.State, Is.EqualTo(System.Data.ConnectionState.Open));
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(42L));
        Assert.That(connection.DataSource, Does.EndWith("a.db"));

        await using (var transaction = await connection.BeginTransactionAsync())
        {
            command.Transaction = transaction;
            Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(42L));
            await transaction.CommitAsync();
        }

        await connection.CloseAsync();
        Assert.That(connection.State, Is.EqualTo(System.Data.ConnectionState.Closed));
        Assert.That(async () => await command.ExecuteScalarAsync(), Throws.InvalidOperationException.With.Message.Contains("not open"));
    }

    [Test]
    public async Task DataSourceCommand_OpensThroughTheCluster()
    {
        await using var cluster = Build();
        await using DbCommand command = cluster.CreateCommand("SELECT 7");
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(7L));
    }

    [Test]
    public async Task OpenConnectionAsync_FirstNodeUnopenable_FailsOverToTheSecond()
    {
        await using var cluster = new ClusterDataSourceBuilder()
            .UsePolicy(AcquirePolicy.FailOver)
            .AddNode("broken", SqliteFactory.Instance.CreateDataSource($"Data Source={Path.Combine(_directory, "missing", "x.db")};Mode=ReadOnly"))
            .AddNode("ok", SqliteFactory.Instance.CreateDataSource($"Data Source={Path.Combine(_directory, "ok.db")}"))
            .Build();

        await using var connection = await cluster.OpenConnectionAsync();
        Assert.That(connection.DataSource, Does.EndWith("ok.db"));
        var broken = cluster.GetNode("broken")!.GetStatistics();
        Assert.That(broken.Failures, Is.EqualTo(1));
        Assert.That(broken.LastErrorType, Is.EqualTo(nameof(SqliteException)));
    }
}

using System;
using System.Linq;
using System.Threading.Tasks;
using ClusterSql.MySql;
using Dapper;
using NUnit.Framework;

namespace ClusterSql.IntegrationTests;

/// <summary>Dapper over connections from the cluster, against the real cluster: both the typed open and CreateConnection.</summary>
[TestFixture]
public sealed class DapperTests
{
    [SetUp]
    public void SetUp() => ClusterSetUp.RequireCluster();

    private sealed record Item(int Id, string Name);

    [Test]
    public async Task Dapper_OnAnOpenedClusterConnection_QueriesAndExecutes()
    {
        await using var cluster = TestCluster.Build();
        await using var connection = await cluster.OpenMySqlConnectionAsync();
        await connection.ExecuteAsync("CREATE TABLE IF NOT EXISTS dapper_items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL); DELETE FROM dapper_items");
        var inserted = await connection.ExecuteAsync("INSERT INTO dapper_items VALUES (@Id, @Name)", new[] { new Item(1, "one"), new Item(2, "two") });
        Assert.That(inserted, Is.EqualTo(2));

        var items = (await connection.QueryAsync<Item>("SELECT id AS Id, name AS Name FROM dapper_items ORDER BY id")).ToList();
        Assert.That(items, Is.EqualTo(new[] { new Item(1, "one"), new Item(2, "two") }));
    }

    [Test]
    public async Task Dapper_OnCreateConnection_OpensThroughTheClusterAndClosesAgain()
    {
        await using var cluster = TestCluster.Build();
        await using var connection = cluster.CreateConnection();

        // Dapper opens a closed connection for the call and closes it after: each call is one acquire.
        var first = await connection.QuerySingleAsync<int>("SELECT @value + 1", new { value = 41 });
        var second = await connection.ExecuteScalarAsync<string>("SELECT @@hostname");
        Assert.That(first, Is.EqualTo(42));
        Assert.That(second, Is.Not.Empty);
        Assert.That(connection.State, Is.EqualTo(System.Data.ConnectionState.Closed));
        Assert.That(cluster.Nodes.Sum(n => n.GetStatistics().Wins), Is.EqualTo(2));
    }

    [Test]
    public async Task Dapper_Transaction_CommitsOnTheAcquiredNode()
    {
        // The read-back may go to another node and waits for replication (wsrep_sync_wait): sessions not reset for reuse.
        await using var cluster = TestCluster.Build(extra: TestCluster.CausalReads);
        await using var connection = await cluster.OpenMySqlConnectionAsync();
        await connection.ExecuteAsync("CREATE TABLE IF NOT EXISTS dapper_tx (id VARCHAR(40) PRIMARY KEY)");
        var id = Guid.NewGuid().ToString();
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await connection.ExecuteAsync("INSERT INTO dapper_tx VALUES (@id)", new { id }, transaction);
            await transaction.CommitAsync();
        }

        await using var reader = await cluster.OpenMySqlConnectionAsync();
        var count = await reader.ExecuteScalarAsync<long>("SET SESSION wsrep_sync_wait=1; SELECT COUNT(*) FROM dapper_tx WHERE id = @id", new { id });
        Assert.That(count, Is.EqualTo(1));
    }
}

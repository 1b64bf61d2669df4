using ClusterSql.EntityFrameworkCore;
using System;
using System.Linq;
using System.Threading.Tasks;

using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using MySqlConnector;
using NUnit.Framework;

// Under ClusterSql.IntegrationTests, so that its set-up fixture (is the cluster up?) covers these tests too.
namespace ClusterSql.IntegrationTests.EntityFrameworkCore;

/// <summary>
/// EF Core with Pomelo on the real Galera cluster: every open of a context's connection is a cluster acquire through
/// a role, SaveChanges and queries keep working through a writer crash, a certification conflict is retried whole,
/// and a migration is applied through the cluster.
/// </summary>
[TestFixture]
public sealed class EntityFrameworkCoreTests : FaultFixture
{
    [SetUp]
    public async Task CreateTable()
    {
        await using var connection = new MySqlConnection(TestCluster.ConnectionString(1));
        await connection.OpenAsync();
        await using var command = new MySqlCommand(
            $"DROP TABLE IF EXISTS {ItemsContext.Table}; CREATE TABLE {ItemsContext.Table} (Id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, Name VARCHAR(100) NOT NULL, Counter INT NOT NULL)",
            connection);
        await command.ExecuteNonQueryAsync();
    }

    [Test]
    public async Task SingleChange_WithClusterRetry_IsSavedInATransaction()
    {
        // Without a transaction a connection lost during the autocommit INSERT leaves its outcome unknown; with one,
        // it is lost before COMMIT and retried: EnableClusterRetry makes SaveChanges always use one.
        await using var cluster = Ef.Cluster();
        var commits = new CommitCounter();
        foreach (var enableRetry in new[] { true, false })
        {
            commits.Count = 0;
            await using var context = new ItemsContext(new DbContextOptionsBuilder<ItemsContext>()
                .UseClusterSql(cluster, Ef.Server, mySql =>
                {
                    if (enableRetry)
                    {
                        mySql.EnableClusterRetry();
                    }
                })
                .AddInterceptors(commits)
                .Options);
            context.Items.Add(new Item { Name = "single-" + enableRetry, Counter = 1 });
            Assert.That(await context.SaveChangesAsync(), Is.EqualTo(1));
            Assert.That(commits.Count, Is.EqualTo(enableRetry ? 1 : 0), $"enableRetry {enableRetry}");
            Assert.That(context.Database.AutoTransactionBehavior, Is.EqualTo(AutoTransactionBehavior.WhenNeeded), "the context's own setting is restored");
        }
    }

    private sealed class CommitCounter : Microsoft.EntityFrameworkCore.Diagnostics.DbTransactionInterceptor
    {
        public int Count { get; set; }

        public override Task TransactionCommittedAsync(System.Data.Common.DbTransaction transaction, Microsoft.EntityFrameworkCore.Diagnostics.TransactionEndEventData eventData, System.Threading.CancellationToken cancellationToken = default)
        {
            Count++;
            return Task.CompletedTask;
        }
    }

    [Test]
    public async Task Crud_ThroughTheWriter_EveryOpenIsAnAcquireOnTheWriter()
    {
        await using var cluster = Ef.Cluster();
        await Ef.Settled(cluster);
        var writer = cluster.Writer.Nodes[0].Name;
        var winsBefore = cluster.Nodes.ToDictionary(n => n.Name, n => n.GetStatistics().Wins);

        await using (var context = Ef.Items(cluster))
        {
            context.Items.AddRange(new Item { Name = "tea", Counter = 1 }, new Item { Name = "coffee", Counter = 2 }, new Item { Name = "water", Counter = 3 });
            Assert.That(await context.SaveChangesAsync(), Is.EqualTo(3));
        }

        await using (var context = Ef.Items(cluster))
        {
            var tea = await context.Items.SingleAsync(i => i.Name == "tea");
            tea.Counter = 10;
            context.Items.Remove(await context.Items.SingleAsync(i => i.Name == "water"));
            Assert.That(await context.SaveChangesAsync(), Is.EqualTo(2));
        }

        await using (var context = Ef.Items(cluster))
        {
            var items = await context.Items.OrderBy(i => i.Name).Select(i => new { i.Name, i.Counter }).ToListAsync();
            Assert.That(items.Select(i => $"{i.Name}={i.Counter}"), Is.EqualTo(new[] { "coffee=2", "tea=10" }));

            // Synchronous EF calls open synchronously through the same acquire.
            Assert.That(context.Items.Count(), Is.EqualTo(2));
        }

        // Seven opens (two per SaveChanges context: its query opens and SaveChanges opens; three reads), every one a win of the writer.
        var gained = cluster.Nodes.ToDictionary(n => n.Name, n => n.GetStatistics().Wins - winsBefore[n.Name]);
        Assert.That(gained[writer], Is.GreaterThanOrEqualTo(6), $"writer {writer}: {string.Join(", ", gained)}");
        Assert.That(gained.Where(g => g.Key != writer).Sum(g => g.Value), Is.Zero, $"writer {writer}: {string.Join(", ", gained)}");
    }

    [Test]
    public async Task PomeloFeatures_SqlModeOnOpenAndContextPooling_WorkThroughTheCluster()
    {
        // DisableBackslashEscaping: MySqlConnector must know too (NoBackslashEscapes), or it escapes what the server keeps.
        using (var plain = Ef.Cluster())
        {
            var error = Assert.Throws<ArgumentException>(() => new DbContextOptionsBuilder<ItemsContext>().UseClusterSql(plain, Ef.Server, mySql => mySql.DisableBackslashEscaping()));
            Assert.That(error!.Message, Does.Contain("NoBackslashEscapes=True").And.Not.Contain(TestCluster.Password));
        }

        await using var cluster = TestCluster.Build(extra: Ef.PomeloOptions + ";NoBackslashEscapes=True");

        // It sets the session's sql_mode on every open: Pomelo runs it on the connection it opened.
        var options = new DbContextOptionsBuilder<ItemsContext>()
            .UseClusterSql(cluster, Ef.Server, mySql => mySql.DisableBackslashEscaping())
            .Options;
        await using (var context = new ItemsContext(options))
        {
            await context.Database.OpenConnectionAsync();
            var mode = await context.Database.SqlQueryRaw<string>("SELECT @@SESSION.sql_mode AS Value").SingleAsync();
            Assert.That(mode, Does.Contain("NO_BACKSLASH_ESCAPES"));
            context.Items.Add(new Item { Name = @"back\slash" });
            await context.SaveChangesAsync();
            await context.Database.CloseConnectionAsync();
        }

        // A pooled context is reset between leases: its connection is closed (back to its node's pool) and opens afresh.
        var services = new ServiceCollection();
        services.AddDbContextPool<ItemsContext>(o => o.UseClusterSql(cluster, Ef.Server, mySql => mySql.EnableClusterRetry()));
        await using var provider = services.BuildServiceProvider();
        for (var lease = 0; lease < 3; lease++)
        {
            await using var scope = provider.CreateAsyncScope();
            var context = scope.ServiceProvider.GetRequiredService<ItemsContext>();
            context.Items.Add(new Item { Name = $"lease {lease}" });
            await context.SaveChangesAsync();
            Assert.That(await context.Items.CountAsync(i => i.Name.StartsWith("lease")), Is.EqualTo(lease + 1));
        }

        await using var check = Ef.Items(cluster);
        var names = await check.Items.Select(i => i.Name).ToListAsync();
        Assert.That(names, Does.Contain(@"back\slash"), "the backslash is stored as written: " + string.Join(" | ", names));
    }

    [Test]
    public async Task Readers_QueriesGoToReaders_AndSaveChangesIsRefused()
    {
        await using var cluster = Ef.Cluster();
        await using (var context = Ef.Items(cluster))
        {
            context.Items.Add(new Item { Name = "read me", Counter = 7 });
            await context.SaveChangesAsync();
        }

        await Ef.Settled(cluster);
        var writer = cluster.Writer.Nodes[0].Name;
        var winsBefore = cluster.Nodes.ToDictionary(n => n.Name, n => n.GetStatistics().Wins);
        await using (var readers = Ef.Items(cluster.Readers))
        {
            // Galera applies a commit on the other nodes a moment after it returns on the writer.
            Item? item = null;
            for (var i = 0; i < 50 && item is null; i++)
            {
                item = await readers.Items.AsNoTracking().SingleOrDefaultAsync(x => x.Name == "read me");
                if (item is null)
                {
                    await Task.Delay(20);
                }
            }

            Assert.That(item?.Counter, Is.EqualTo(7));
            readers.Items.Add(new Item { Name = "refused" });
            var error = Assert.ThrowsAsync<InvalidOperationException>(() => readers.SaveChangesAsync());
            Assert.That(error!.Message, Does.Contain("ClusterDataSource.Readers"));
        }

        var gained = cluster.Nodes.ToDictionary(n => n.Name, n => n.GetStatistics().Wins - winsBefore[n.Name]);
        Assert.That(gained[writer], Is.Zero, $"writer {writer}: {string.Join(", ", gained)}");
        Assert.That(gained.Values.Sum(), Is.GreaterThanOrEqualTo(1));
    }

    [Test]
    public async Task Crash_TheWriterBetweenTwoSaveChanges_TheSecondGoesToTheNextNode()
    {
        await using var cluster = Ef.Cluster(o => o.ConnectTimeout = TimeSpan.FromSeconds(2));
        await Ef.Settled(cluster);
        var writer = cluster.Writer.Nodes[0].Name;
        var next = cluster.Writer.Nodes[1].Name;
        try
        {
            await using var context = Ef.Items(cluster);
            context.Items.Add(new Item { Name = "before the crash" });
            await context.SaveChangesAsync();
            var winsBefore = cluster.Nodes.ToDictionary(n => n.Name, n => n.GetStatistics().Wins);

            // The context's connection is closed between the two: its pooled session on the writer is idle in the pool.
            await TestCluster.Harness("crash", writer);
            context.Items.Add(new Item { Name = "after the crash" });
            await context.SaveChangesAsync();

            var gained = cluster.Nodes.ToDictionary(n => n.Name, n => n.GetStatistics().Wins - winsBefore[n.Name]);
            Assert.That(gained[writer], Is.Zero, string.Join(", ", gained));
            Assert.That(gained[next], Is.GreaterThan(0), $"the next writer is {next}: {string.Join(", ", gained)}");
            await using var check = Ef.Items(cluster);
            Assert.That(await check.Items.OrderBy(i => i.Id).Select(i => i.Name).ToListAsync(), Is.EqualTo(new[] { "before the crash", "after the crash" }));
        }
        finally
        {
            await TestCluster.Harness("restart", writer);
            await TestCluster.Harness("wait-healthy");
        }
    }

    [Test]
    public async Task Conflict_AtCommit_TheUnitOfWorkRunsAgainAndApplies()
    {
        await using var cluster = Ef.Cluster();

        // Another client writes the same row through another node while the unit of work's transaction is open on the
        // writer: Galera certifies that write first and aborts the unit of work (1213 deadlock) on COMMIT or sooner.
        var other = await SeedHotRowAsync(cluster);
        await using var context = Ef.Items(cluster);
        var strategy = context.Database.CreateExecutionStrategy();
        var runs = 0;
        await strategy.ExecuteAsync(async () =>
        {
            runs++;
            context.ChangeTracker.Clear();
            await using var transaction = await context.Database.BeginTransactionAsync();
            var item = await context.Items.SingleAsync(i => i.Name == "hot");
            item.Counter += 1;
            await context.SaveChangesAsync();
            if (runs == 1)
            {
                await InterloperWritesHotRowAsync(other);
            }

            await transaction.CommitAsync();
        });

        Assert.That(runs, Is.EqualTo(2), "the conflict should have run the unit of work once more");
        await using var check = Ef.Items(cluster.Writer);
        Assert.That((await check.Items.AsNoTracking().SingleAsync(i => i.Name == "hot")).Counter, Is.EqualTo(101), "the retry must see the other client's write");
    }

    [Test]
    public async Task Conflict_WithoutRetryEnabled_ReachesTheCaller()
    {
        await using var cluster = Ef.Cluster();
        var other = await SeedHotRowAsync(cluster);
        await using var context = Ef.Items(cluster, enableRetry: false);
        await using var transaction = await context.Database.BeginTransactionAsync();
        var item = await context.Items.SingleAsync(i => i.Name == "hot");
        item.Counter += 1;
        await context.SaveChangesAsync();
        await InterloperWritesHotRowAsync(other);

        // Without the strategy nobody runs it again: the certification conflict reaches the caller as it is.
        var error = Assert.CatchAsync(() => transaction.CommitAsync());
        Assert.That(error, Is.InstanceOf<MySqlException>().With.Property(nameof(MySqlException.ErrorCode)).EqualTo(MySqlErrorCode.LockDeadlock), error?.ToString());
    }

    [Test]
    public async Task DuplicateKey_IsNotRetried()
    {
        await using var cluster = Ef.Cluster();
        await using var context = Ef.Items(cluster);
        context.Items.Add(new Item { Id = 42, Name = "first" });
        await context.SaveChangesAsync();
        context.ChangeTracker.Clear();

        var runs = 0;
        var strategy = context.Database.CreateExecutionStrategy();
        Assert.ThrowsAsync<DbUpdateException>(() => strategy.ExecuteAsync(async () =>
        {
            runs++;
            context.ChangeTracker.Clear();
            context.Items.Add(new Item { Id = 42, Name = "second" });
            await context.SaveChangesAsync();
        }));
        Assert.That(runs, Is.EqualTo(1));
    }

    [Test]
    public async Task Migrate_ThroughTheCluster_CreatesTheTableOnEveryNodeOnce()
    {
        await using (var connection = new MySqlConnection(TestCluster.ConnectionString(1)))
        {
            await connection.OpenAsync();
            await using var drop = new MySqlCommand($"DROP TABLE IF EXISTS {MigratedContext.Table}, {MigratedContext.HistoryTable}", connection);
            await drop.ExecuteNonQueryAsync();
        }

        await using var cluster = Ef.Cluster();
        await using (var context = Ef.Migrated(cluster))
        {
            Assert.That(await context.Database.GetPendingMigrationsAsync(), Is.EqualTo(new[] { "20261201000000_CreateMigratedItems" }));
            await context.Database.MigrateAsync();
            Assert.That(await context.Database.GetAppliedMigrationsAsync(), Is.EqualTo(new[] { "20261201000000_CreateMigratedItems" }));
            Assert.That(await context.Database.GetPendingMigrationsAsync(), Is.Empty);
        }

        // Applying again changes nothing (synchronously this time).
        await using (var context = Ef.Migrated(cluster))
        {
            context.Database.Migrate();
            context.Items.Add(new MigratedItem { Label = "added through EF" });
            await context.SaveChangesAsync();
            Assert.That(await context.Items.OrderBy(i => i.Id).Select(i => i.Label).ToListAsync(), Is.EqualTo(new[] { "seeded by the migration", "added through EF" }));
        }

        // Galera replicated the DDL: every node has the table and one history row.
        for (var node = 1; node <= TestCluster.NodeCount; node++)
        {
            await using var connection = new MySqlConnection(TestCluster.ConnectionString(node, "Pooling=false"));
            await connection.OpenAsync();
            await using var sync = new MySqlCommand("SET SESSION wsrep_sync_wait=1", connection);
            await sync.ExecuteNonQueryAsync();
            await using var count = new MySqlCommand($"SELECT COUNT(*) FROM {MigratedContext.HistoryTable}", connection);
            Assert.That(Convert.ToInt64(await count.ExecuteScalarAsync()), Is.EqualTo(1), $"galera{node}");
            await using var rows = new MySqlCommand($"SELECT COUNT(*) FROM {MigratedContext.Table}", connection);
            Assert.That(Convert.ToInt64(await rows.ExecuteScalarAsync()), Is.EqualTo(2), $"galera{node}");
        }
    }

    [Test]
    public void UseClusterSql_ANodeWithoutPomeloOptions_FailsNamingTheNodeNotTheString()
    {
        using var cluster = TestCluster.Build(galera: false);
        var error = Assert.Throws<ArgumentException>(() => new DbContextOptionsBuilder<ItemsContext>().UseClusterSql(cluster, Ef.Server));
        Assert.That(error!.Message, Does.Contain("galera1").And.Contain("AllowUserVariables=True"));
        Assert.That(error.Message, Does.Not.Contain(TestCluster.Password));
    }

    [TestCase(";Database=other", "different databases")]
    [TestCase(";Database=", "names no database")]
    public void UseClusterSql_NodesNamingDifferentDatabases_FailsNamingTheNodeNotTheString(string secondNodeExtra, string expected)
    {
        // A closed cluster connection reports the first node's database; Pomelo and EF read it before opening.
        var builder = new ClusterDataSourceBuilder();
        ClusterSql.MySql.MySqlCluster.AddMySqlNode(builder, "galera1", TestCluster.ConnectionString(1, Ef.PomeloOptions));
        ClusterSql.MySql.MySqlCluster.AddMySqlNode(builder, "galera2", TestCluster.ConnectionString(2, Ef.PomeloOptions + secondNodeExtra));
        using var cluster = builder.Build();
        var error = Assert.Throws<ArgumentException>(() => new DbContextOptionsBuilder<ItemsContext>().UseClusterSql(cluster, Ef.Server));
        Assert.That(error!.Message, Does.Contain("galera2").And.Contain(expected));
        Assert.That(error.Message, Does.Not.Contain(TestCluster.Password));
    }

    [Test]
    public void UseClusterSql_WithPomelosEnableRetryOnFailure_IsRefused()
    {
        using var cluster = TestCluster.Build(galera: false, extra: Ef.PomeloOptions);
        var error = Assert.Throws<ArgumentException>(() => new DbContextOptionsBuilder<ItemsContext>().UseClusterSql(cluster, Ef.Server, mySql => mySql.EnableRetryOnFailure()));
        Assert.That(error!.Message, Does.Contain("EnableRetryOnFailure").And.Contain("EnableClusterRetry"));

        // EnableClusterRetry is accepted.
        Assert.That(() => new DbContextOptionsBuilder<ItemsContext>().UseClusterSql(cluster, Ef.Server, mySql => mySql.EnableClusterRetry()), Throws.Nothing);
    }

    /// <summary>Seeds the row 'hot' (Counter 0); once the roles have settled, returns a node that is not the writer.</summary>
    private static async Task<int> SeedHotRowAsync(ClusterDataSource cluster)
    {
        await using (var seed = Ef.Items(cluster))
        {
            seed.Items.Add(new Item { Name = "hot", Counter = 0 });
            await seed.SaveChangesAsync();
        }

        await Ef.Settled(cluster);
        var writer = cluster.Writer.Nodes[0].Name;
        return Enumerable.Range(1, TestCluster.NodeCount).First(n => TestCluster.NodeName(n) != writer);
    }

    /// <summary>Another client sets the row 'hot' to 100 through <paramref name="node"/>, outside any unit of work.</summary>
    private static async Task InterloperWritesHotRowAsync(int node)
    {
        await using var interloper = new MySqlConnection(TestCluster.ConnectionString(node, "Pooling=false"));
        await interloper.OpenAsync();
        await using var update = new MySqlCommand($"UPDATE {ItemsContext.Table} SET Counter = 100 WHERE Name = 'hot'", interloper);
        Assert.That(await update.ExecuteNonQueryAsync(), Is.EqualTo(1));
    }
}

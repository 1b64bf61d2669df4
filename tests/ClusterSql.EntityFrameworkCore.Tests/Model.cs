using ClusterSql.EntityFrameworkCore;
using System;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;

using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

// Under ClusterSql.IntegrationTests, so that its set-up fixture (is the cluster up?) covers these tests too.
namespace ClusterSql.IntegrationTests.EntityFrameworkCore;

public sealed class Item
{
    public long Id { get; set; }

    public string Name { get; set; } = "";

    public int Counter { get; set; }
}

public sealed class ItemsContext(DbContextOptions<ItemsContext> options) : DbContext(options)
{
    public const string Table = "ef_items";

    public DbSet<Item> Items => Set<Item>();

    protected override void OnModelCreating(ModelBuilder modelBuilder) =>
        modelBuilder.Entity<Item>(item =>
        {
            item.ToTable(Table);
            item.Property(i => i.Name).HasMaxLength(100);
        });
}

public sealed class MigratedItem
{
    public int Id { get; set; }

    public string Label { get; set; } = "";
}

public sealed class MigratedContext(DbContextOptions<MigratedContext> options) : DbContext(options)
{
    public const string Table = "ef_migrated_items";
    public const string HistoryTable = "ef_clustersql_migrations";

    public DbSet<MigratedItem> Items => Set<MigratedItem>();

    protected override void OnModelCreating(ModelBuilder modelBuilder) =>
        modelBuilder.Entity<MigratedItem>(item =>
        {
            item.ToTable(Table);
            item.Property(i => i.Label).HasMaxLength(50).IsRequired();
        });
}

/// <summary>A migration as `dotnet ef migrations add` writes one (without its designer snapshot).</summary>
[DbContext(typeof(MigratedContext))]
[Migration("20261201000000_CreateMigratedItems")]
public sealed class CreateMigratedItems : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: MigratedContext.Table,
            columns: table => new
            {
                Id = table.Column<int>(type: "int", nullable: false).Annotation("MySql:ValueGenerationStrategy", Microsoft.EntityFrameworkCore.Metadata.MySqlValueGenerationStrategy.IdentityColumn),
                Label = table.Column<string>(type: "varchar(50)", maxLength: 50, nullable: false),
            },
            constraints: table => table.PrimaryKey("PK_" + MigratedContext.Table, x => x.Id));
        migrationBuilder.InsertData(MigratedContext.Table, ["Id", "Label"], ["int", "varchar(50)"], [1, "seeded by the migration"]);
    }

    protected override void Down(MigrationBuilder migrationBuilder) => migrationBuilder.DropTable(MigratedContext.Table);
}

internal static class Ef
{
    /// <summary>Pomelo needs both in every node's connection string (it uses user variables; concurrency checks count matched rows).</summary>
    public const string PomeloOptions = "AllowUserVariables=True;UseAffectedRows=False";

    public static readonly ServerVersion Server = new MariaDbServerVersion(new Version(10, 11));

    public static ClusterDataSource Cluster(Action<ClusterOptions>? configure = null) =>
        TestCluster.Build(configure, extra: PomeloOptions + ";Default Command Timeout=5");

    /// <summary>
    /// Waits until the health probe has read every node's rank once: before that the writer order is the declared order,
    /// and a test that asks which node is the writer must ask after the order every acquire will use is known.
    /// </summary>
    public static async Task Settled(ClusterDataSource cluster)
    {
        for (var i = 0; i < 100 && cluster.Nodes.Any(n => n.GetStatistics().WriterRank is null); i++)
        {
            await Task.Delay(50);
        }

        Assert.That(cluster.Nodes.Select(n => n.GetStatistics().WriterRank), Has.None.Null, "the probe should have read every node's rank");
    }

    public static ItemsContext Items(System.Data.Common.DbDataSource source, ClusterRetryOptions? retry = null, bool enableRetry = true) =>
        new(new DbContextOptionsBuilder<ItemsContext>()
            .UseClusterSql(source, Server, mySql =>
            {
                if (enableRetry)
                {
                    mySql.EnableClusterRetry(retry);
                }
            })
            .Options);

    public static MigratedContext Migrated(ClusterDataSource cluster) =>
        new(new DbContextOptionsBuilder<MigratedContext>()
            .UseClusterSql(cluster, Server, mySql => mySql.MigrationsHistoryTable(MigratedContext.HistoryTable).EnableClusterRetry())
            // The migration comes without its model snapshot (the designer file): EF Core 9 would call that pending changes.
            .ConfigureWarnings(w => w.Ignore(RelationalEventId.PendingModelChangesWarning))
            .Options);
}

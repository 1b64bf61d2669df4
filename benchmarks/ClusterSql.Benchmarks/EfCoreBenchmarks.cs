using System;
using System.Linq;
using System.Threading.Tasks;
using BenchmarkDotNet.Attributes;
using ClusterSql.EntityFrameworkCore;
using ClusterSql.MySql;
using Microsoft.EntityFrameworkCore;
using MySqlConnector;

namespace ClusterSql.Benchmarks;

/// <summary>
/// One EF Core unit of work (a new context, a no-tracking query by key, dispose) against the real cluster, pooled:
/// Pomelo on galera1's MySqlDataSource directly (the baseline), and a context on ClusterSql through the writer role
/// and through the readers. The difference is what a cluster acquire adds to an EF query (opens are pooled).
/// </summary>
[MemoryDiagnoser]
public class EfCoreBenchmarks
{
    private static readonly ServerVersion s_server = new MariaDbServerVersion(new Version(10, 11));
    private const string Pomelo = ";AllowUserVariables=True;UseAffectedRows=False";

    private MySqlDataSource _direct = null!;
    private ClusterDataSource _cluster = null!;
    private DbContextOptions<BenchContext> _directOptions = null!;
    private DbContextOptions<BenchContext> _writerOptions = null!;
    private DbContextOptions<BenchContext> _readerOptions = null!;

    [GlobalSetup]
    public void Setup()
    {
        _direct = new MySqlDataSource(TestCluster.NodeConnectionString(1, pooled: true, 3) + Pomelo);
        _cluster = RealClusterBenchmarks.BuildCluster(AcquirePolicy.LatencyAware, pooled: true, Pomelo);
        using (var connection = _direct.OpenConnection())
        using (var command = new MySqlCommand(
            "CREATE TABLE IF NOT EXISTS ef_bench (Id INT NOT NULL PRIMARY KEY, Name VARCHAR(50) NOT NULL); INSERT IGNORE INTO ef_bench VALUES (1, 'one')", connection))
        {
            command.ExecuteNonQuery();
        }

        _directOptions = new DbContextOptionsBuilder<BenchContext>().UseMySql(_direct, s_server).Options;
        _writerOptions = new DbContextOptionsBuilder<BenchContext>().UseClusterSql(_cluster, s_server).Options;
        _readerOptions = new DbContextOptionsBuilder<BenchContext>().UseClusterSql(_cluster.Readers, s_server).Options;

        // Every variant answers before it is measured (the readers see the row once Galera applied it).
        foreach (var options in new[] { _directOptions, _writerOptions, _readerOptions })
        {
            if (Query(options).GetAwaiter().GetResult() != 1)
            {
                throw new InvalidOperationException("ef_bench has no row 1.");
            }
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _cluster.Dispose();
        _direct.Dispose();
    }

    [Benchmark(Baseline = true, Description = "Pomelo UseMySql, galera1 directly")]
    public Task<int> Direct() => Query(_directOptions);

    [Benchmark(Description = "UseClusterSql, cluster.Writer")]
    public Task<int> ClusterWriter() => Query(_writerOptions);

    [Benchmark(Description = "UseClusterSql, cluster.Readers")]
    public Task<int> ClusterReaders() => Query(_readerOptions);

    private static async Task<int> Query(DbContextOptions<BenchContext> options)
    {
        await using var context = new BenchContext(options);
        return await context.Rows.AsNoTracking().Where(r => r.Id == 1).Select(r => r.Id).FirstAsync();
    }

    public sealed class BenchRow
    {
        public int Id { get; set; }

        public string Name { get; set; } = "";
    }

    public sealed class BenchContext(DbContextOptions<BenchContext> options) : DbContext(options)
    {
        public DbSet<BenchRow> Rows => Set<BenchRow>();

        protected override void OnModelCreating(ModelBuilder modelBuilder) => modelBuilder.Entity<BenchRow>().ToTable("ef_bench");
    }
}

using System;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading.Tasks;
using ClusterSql.Cli;
using ClusterSql.Npgsql;
using Npgsql;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>
/// `clustersql --provider postgres`: option parsing, which nodes and probe each source builds, and the check's
/// deterministic parts (where it writes, the standbys' lag, the JSON). The live check against the PostgreSQL test nodes
/// runs in eng/test.sh.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class CliPostgresTests
{
    private string _directory = null!;

    [SetUp]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("clustersql-cli-pg-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    [Test]
    public void Provider_ParsesTheTwoNamesOnly()
    {
        Assert.That(ClusterTarget.ParseProvider(null), Is.EqualTo(ClusterProvider.MySql));
        Assert.That(ClusterTarget.ParseProvider("mysql"), Is.EqualTo(ClusterProvider.MySql));
        Assert.That(ClusterTarget.ParseProvider("postgres"), Is.EqualTo(ClusterProvider.Postgres));
        Assert.That(() => ClusterTarget.ParseProvider("oracle"), Throws.ArgumentException.With.Message.Contains("mysql, postgres"));
    }

    [TestCase("check", "--provider", "oracle")]
    [TestCase("watch", "--provider")]
    public void Provider_UnknownOrMissingValue_IsUsage64(params string[] args)
    {
        var (exitCode, error) = CliRunner.Run(args);
        Assert.That(exitCode, Is.EqualTo(64), error);
        Assert.That(error, Does.StartWith("clustersql: "));
    }

    [Test]
    public void Provider_Postgres_RefusesDiscoverAndAMissingConnectionString_EvenThroughTheOldNoGaleraName()
    {
        // --no-galera still parses (an alias of --no-probe): the error is the combination, not an unknown option.
        var (exitCode, error) = CliRunner.Run("check", "--provider", "postgres", "--no-galera", "--discover", "-c", "Host=127.0.0.1:1;Username=u;Password=hunter2-secret");
        Assert.That(exitCode, Is.EqualTo(64), error);
        Assert.That(error, Does.Contain("--discover").And.Contain("--provider postgres").And.Not.Contain("hunter2"));

        Assume.That(Environment.GetEnvironmentVariable("CLUSTERSQL_CONNECTION_STRING"), Is.Null);
        Assert.That(() => ClusterTarget.Open(null, null, galera: true, provider: ClusterProvider.Postgres),
            Throws.ArgumentException.With.Message.Contains("--provider postgres needs --connection-string"));
    }

    [Test]
    public async Task Postgres_ConnectionString_MakesNpgsqlNodesPerHost_WithThePostgresProbeOrNone()
    {
        // Port 1 on loopback refuses at once: the probe's first checks fail fast and touch no real server.
        const string connectionString = "Host=127.0.0.1:1,127.0.0.2:1;Username=u;Password=p;Database=test";
        await using (var probed = ClusterTarget.Open(connectionString, null, galera: true, provider: ClusterProvider.Postgres))
        {
            Assert.That(probed.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "127.0.0.1-1", "127.0.0.2-1" }));
            Assert.That(probed.Nodes.Select(n => n.DataSource), Is.All.InstanceOf<NpgsqlDataSource>());
            Assert.That(probed.Probes?.Probe, Is.InstanceOf<PostgresHealthProbe>());
            Assert.That(probed.Options.MaxReaderLag, Is.EqualTo(1024 * 1024));
        }

        await using var bare = ClusterTarget.Open(connectionString, null, galera: false, provider: ClusterProvider.Postgres);
        Assert.That(bare.Probes, Is.Null);
        Assert.That(bare.Nodes.Select(n => n.DataSource), Is.All.InstanceOf<NpgsqlDataSource>());
    }

    [Test]
    public async Task Postgres_Config_ReadsTheSameSectionWithNpgsqlNodes_AndKeepsTheFilesLagBound()
    {
        var path = Path.Combine(_directory, "appsettings.json");
        await File.WriteAllTextAsync(path, """
            { "ClusterSql": { "Nodes": [
                { "Name": "pg1", "ConnectionString": "Host=127.0.0.1;Port=1;Username=u;Password=p" },
                { "Name": "pg2", "ConnectionString": "Host=127.0.0.2;Port=1;Username=u;Password=p", "Priority": 1 } ] } }
            """);
        await using (var cluster = ClusterTarget.Open(null, path, galera: true, provider: ClusterProvider.Postgres))
        {
            Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "pg1", "pg2" }));
            Assert.That(cluster.Nodes.Select(n => n.DataSource), Is.All.InstanceOf<NpgsqlDataSource>());
            Assert.That(cluster.Nodes[1].Priority, Is.EqualTo(1));
            Assert.That(cluster.Probes?.Probe, Is.InstanceOf<PostgresHealthProbe>());
            Assert.That(cluster.Options.MaxReaderLag, Is.EqualTo(1024 * 1024), "bytes of WAL, not Galera's 100");
        }

        var bounded = Path.Combine(_directory, "bounded.json");
        await File.WriteAllTextAsync(bounded, """{ "ClusterSql": { "MaxReaderLag": 4096, "Nodes": { "pg1": "Host=127.0.0.1;Port=1;Username=u;Password=p" } } }""");
        await using (var cluster = ClusterTarget.Open(null, bounded, galera: true, provider: ClusterProvider.Postgres))
        {
            Assert.That(cluster.Options.MaxReaderLag, Is.EqualTo(4096));
        }

        // The default provider still reads the file as MySqlConnector nodes.
        var mysql = Path.Combine(_directory, "mysql.json");
        await File.WriteAllTextAsync(mysql, """{ "ClusterSql": { "Nodes": { "a": "Server=10.0.0.1" } } }""");
        await using (var cluster = ClusterTarget.Open(null, mysql, galera: false))
        {
            Assert.That(cluster.Nodes[0].DataSource, Is.InstanceOf<MySqlConnector.MySqlDataSource>());
        }
    }

    [Test]
    public void PlanWrite_WritesOnTheFirstServingPrimaryOfTheWriterOrder_ReadsBackOnEveryOtherServingNode()
    {
        var pg1 = Serving("pg1", primary: true);
        var pg2 = Serving("pg2", primary: false);
        var pg3 = Serving("pg3", primary: false);

        var plan = PostgresCheck.PlanWrite([pg1, pg2, pg3], writerOrder: ["pg1"]);
        Assert.That(plan?.Writer, Is.EqualTo("pg1"));
        Assert.That(plan?.Readers, Is.EqualTo(new[] { "pg2", "pg3" }));

        // Without the probe every node is in the writer order: when the role would open on a standby, which refuses
        // writes, the step is skipped rather than written around the role.
        Assert.That(PostgresCheck.PlanWrite([pg1, pg2, pg3], writerOrder: ["pg2", "pg3", "pg1"]), Is.Null);

        // No serving primary (it is down, or only standbys answer): no writer, so the write step is skipped.
        Assert.That(PostgresCheck.PlanWrite([pg2, pg3], writerOrder: ["pg1", "pg2"]), Is.Null);
        Assert.That(PostgresCheck.PlanWrite([pg1, pg2], writerOrder: []), Is.Null, "a primary outside the writer role (superseded) is not written to");
    }

    [Test]
    public void ComputeLag_MeasuresEachStandbyAgainstTheNewestPrimaryPosition()
    {
        var primary = Serving("pg1", primary: true, currentLsn: 10_000);
        var behind = Serving("pg2", primary: false, replayLsn: 9_000);
        var unknown = Serving("pg3", primary: false, replayLsn: null);
        PostgresCheck.ComputeLag([primary, behind, unknown]);

        Assert.That(behind.Postgres!.LagBytes, Is.EqualTo(1_000));
        Assert.That(behind.GaleraSummary, Is.EqualTo("standby, timeline 1, receiver streaming, lag 1000 B"));
        Assert.That(unknown.Postgres!.LagBytes, Is.Null);
        Assert.That(primary.Postgres!.LagBytes, Is.Null);

        var orphan = Serving("pg2", primary: false, replayLsn: 9_000);
        PostgresCheck.ComputeLag([orphan]);
        Assert.That(orphan.Postgres!.LagBytes, Is.Null, "no primary read: no lag to state");
        Assert.That(orphan.GaleraSummary, Does.EndWith("lag ?"));
    }

    [Test]
    public void CheckJson_PostgresNode_HasThePostgresObject_AndNoGalera()
    {
        var primary = Serving("pg1", primary: true, currentLsn: 500);
        var standby = Serving("pg2", primary: false, replayLsn: 200);
        PostgresCheck.ComputeLag([primary, standby]);
        var replication = new CheckCommand.Replication(false, false, null, [], "no writer (no serving primary in the writer role)", "replication: not checked");

        using var document = JsonDocument.Parse(CliJson.Serialize(CheckCommand.ToJson([primary, standby], roles: null, replication, CheckCommand.Failed)));
        var nodes = document.RootElement.GetProperty("nodes").EnumerateArray().ToList();
        Assert.That(nodes[0].GetProperty("galera").ValueKind, Is.EqualTo(JsonValueKind.Null));
        var pg = nodes[1].GetProperty("postgres");
        Assert.That(pg.EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "role", "timeline", "receiverStatus", "lagBytes" }));
        Assert.That((pg.GetProperty("role").GetString(), pg.GetProperty("timeline").GetInt64(), pg.GetProperty("lagBytes").GetInt64()), Is.EqualTo(("standby", 1L, 300L)));
        Assert.That(nodes[0].GetProperty("postgres").GetProperty("role").GetString(), Is.EqualTo("primary"));
        Assert.That(document.RootElement.GetProperty("replication").GetProperty("checked").GetBoolean(), Is.False);
        Assert.That(document.RootElement.GetProperty("version").GetInt32(), Is.EqualTo(1));
    }

    private static CheckCommand.NodeReport Serving(string name, bool primary, long? currentLsn = null, long? replayLsn = null) => new(name)
    {
        Reachable = true,
        IsGalera = false,
        Postgres = new PostgresNodeState(primary, Timeline: 1, ReceiverStatus: primary ? null : "streaming", primary ? currentLsn : null, primary ? null : replayLsn),
    };

    /// <summary>Runs the tool's entry point in process with its error output captured.</summary>
    private static class CliRunner
    {
        public static (int ExitCode, string Error) Run(params string[] args)
        {
            var (output, error) = (new StringWriter(), new StringWriter());
            var (oldOut, oldError) = (Console.Out, Console.Error);
            Console.SetOut(output);
            Console.SetError(error);
            try
            {
                var result = typeof(CliErrors).Assembly.EntryPoint!.Invoke(null, [args]);
                var exitCode = result is Task<int> task ? task.GetAwaiter().GetResult() : (int)result!;
                return (exitCode, error.ToString());
            }
            finally
            {
                Console.SetOut(oldOut);
                Console.SetError(oldError);
            }
        }
    }
}

using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading.Tasks;
using ClusterSql.Cli;
using MySqlConnector;
using NUnit.Framework;

namespace ClusterSql.Tests;

/// <summary>
/// `clustersql --json` (the field names and types scripts rely on) and `--config` (the section AddClusterSql binds,
/// read by ClusterSql.Extensions' own code). The live output against the real cluster is checked in eng/test.sh.
/// </summary>
[TestFixture]
public sealed class CliJsonAndConfigTests
{
    private string _directory = null!;

    [SetUp]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("clustersql-cli-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    [Test]
    public void CheckJson_HasTheDocumentedFields()
    {
        var healthy = new CheckCommand.NodeReport("galera1")
        {
            Reachable = true,
            OpenMedian = TimeSpan.FromMilliseconds(1.25),
            OpenMax = TimeSpan.FromMilliseconds(3),
            GaleraState = "Synced",
            GaleraClusterStatus = "Primary",
            GaleraReady = "ON",
            GaleraClusterSize = 2,
        };
        var down = new CheckCommand.NodeReport("galera2") { Problem = "MySqlException: Connect Timeout expired." };
        var replication = new CheckCommand.Replication(true, true, "galera1", [], null, "replication: ok");

        using var document = JsonDocument.Parse(CliJson.Serialize(CheckCommand.ToJson([healthy, down], roles: null, replication, CheckCommand.Degraded)));
        var root = document.RootElement;
        Assert.That(Names(root), Is.EqualTo(new[] { "version", "type", "verdict", "exitCode", "nodes", "roles", "replication" }));
        Assert.That((root.GetProperty("version").GetInt32(), root.GetProperty("type").GetString(), root.GetProperty("verdict").GetString(), root.GetProperty("exitCode").GetInt32()),
            Is.EqualTo((1, "check", "degraded", 1)));
        Assert.That(root.GetProperty("roles").ValueKind, Is.EqualTo(JsonValueKind.Null));

        var nodes = root.GetProperty("nodes").EnumerateArray().ToList();
        Assert.That(Names(nodes[0]), Is.EqualTo(new[] { "name", "reachable", "serving", "openP50Ms", "openMaxMs", "galera", "problem", "postgres" }));
        Assert.That(nodes[0].GetProperty("postgres").ValueKind, Is.EqualTo(JsonValueKind.Null));
        Assert.That(nodes[0].GetProperty("openP50Ms").GetDouble(), Is.EqualTo(1.25));
        Assert.That(nodes[0].GetProperty("serving").GetBoolean(), Is.True);
        Assert.That(Names(nodes[0].GetProperty("galera")), Is.EqualTo(new[] { "state", "clusterStatus", "ready", "clusterSize" }));
        Assert.That(nodes[0].GetProperty("galera").GetProperty("clusterSize").GetInt64(), Is.EqualTo(2));

        // Unknown is null, never a missing field.
        Assert.That(nodes[1].GetProperty("reachable").GetBoolean(), Is.False);
        Assert.That(nodes[1].GetProperty("openP50Ms").ValueKind, Is.EqualTo(JsonValueKind.Null));
        Assert.That(nodes[1].GetProperty("galera").ValueKind, Is.EqualTo(JsonValueKind.Null));
        Assert.That(nodes[1].GetProperty("problem").GetString(), Does.StartWith("MySqlException"));
        Assert.That(Names(root.GetProperty("replication")), Is.EqualTo(new[] { "checked", "ok", "writtenOn", "readBackOn", "error" }));
    }

    [Test]
    public void WatchJson_IntervalLine_HasTheDocumentedFieldsOnOneLine()
    {
        var statistics = new ClusterNodeStatistics("galera1", ClusterNodeState.Healthy, opens: 10, successes: 10, wins: 8, failures: 1, hedges: 2, cancellations: 0, ejections: 0,
            pendingOpens: 0, connectionsInUse: 0, poolWaits: 0, consecutiveFailures: 0, lastErrorType: null, lastErrorMessage: null, lastErrorAt: null, lastSuccessAt: null, ejectedUntil: null,
            latencyEstimate: TimeSpan.FromMilliseconds(2), smoothedLatency: TimeSpan.FromMilliseconds(1), hedgeDelay: TimeSpan.FromMilliseconds(5), downReason: null);
        var line = CliJson.Serialize(WatchCommand.ToJson(
            TimeSpan.FromSeconds(1), [TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(3)], seconds: 1, acquireFailures: 0, statementErrors: 0, lastError: null,
            [new NodeInterval(statistics, 4)], new Dictionary<string, string> { ["galera1"] = "writer" }));

        Assert.That(line, Does.Not.Contain("\n"));
        using var document = JsonDocument.Parse(line);
        var root = document.RootElement;
        Assert.That(Names(root), Is.EqualTo(new[] { "version", "type", "elapsedSeconds", "acquiresPerSecond", "p50Ms", "p99Ms", "acquireFailures", "statementErrors", "lastError", "nodes" }));
        Assert.That(root.GetProperty("type").GetString(), Is.EqualTo("interval"));
        Assert.That(root.GetProperty("acquiresPerSecond").GetDouble(), Is.EqualTo(2));
        var node = root.GetProperty("nodes")[0];
        Assert.That(Names(node), Is.EqualTo(new[] { "name", "state", "role", "winsPerSecond", "share", "wins", "failures", "hedges", "latencyMs", "peakMs", "hedgeDelayMs", "lastError", "downReason" }));
        Assert.That((node.GetProperty("state").GetString(), node.GetProperty("role").GetString(), node.GetProperty("wins").GetInt64(), node.GetProperty("share").GetDouble()),
            Is.EqualTo(("Healthy", "writer", 8L, 1.0)));

        using var summary = JsonDocument.Parse(CliJson.Serialize(new WatchSummaryJson(CliJson.Version, "summary", 5, 0, 0, 1.5, 2, 0)));
        Assert.That(Names(summary.RootElement), Is.EqualTo(new[] { "version", "type", "acquires", "acquireFailures", "statementErrors", "slowestMs", "elapsedSeconds", "exitCode" }));
    }

    [Test]
    public async Task Config_TheAddClusterSqlSection_BuildsThatCluster()
    {
        var path = Write("appsettings.json", """
            {
              "Logging": { "LogLevel": { "Default": "Information" } },
              "ClusterSql": {
                "Name": "orders", "Policy": "FailOver", "ConnectTimeout": "00:00:02", "MaxReaderLag": 50,
                "Nodes": [
                  { "Name": "primary", "ConnectionString": "Server=10.0.0.1;User ID=app;Password=s3cret" },
                  { "Name": "dr", "ConnectionString": "Server=10.0.0.2;User ID=app;Password=s3cret", "Priority": 1 }
                ]
              }
            }
            """);

        await using var cluster = ClusterTarget.Open(connectionString: null, configFile: path, galera: false);

        Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "primary", "dr" }));
        Assert.That((cluster.Options.Name, cluster.Options.Policy, cluster.Options.ConnectTimeout, cluster.Options.MaxReaderLag),
            Is.EqualTo(("orders", AcquirePolicy.FailOver, TimeSpan.FromSeconds(2), (long?)50)));
        Assert.That(cluster.Nodes[1].Priority, Is.EqualTo(1));
        Assert.That(cluster.Nodes[0].DataSource, Is.InstanceOf<MySqlDataSource>());
    }

    [Test]
    public async Task Config_NamedSectionOrWholeFile_AreRead()
    {
        var nested = Write("nested.json", """{ "Databases": { "Orders": { "Nodes": { "a": "Server=10.0.0.1", "b": "Server=10.0.0.2" } } } }""");
        await using (var cluster = ClusterTarget.Open(null, nested, galera: false, section: "Databases:Orders"))
        {
            Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "a", "b" }));
        }

        // A file that is only the section (the tool's earlier format, lowercase keys included) still reads.
        var bare = Write("bare.json", """{ "nodes": { "galera1": "Server=10.0.0.1", "galera2": "Server=10.0.0.2" }, "policy": "RoundRobin" }""");
        await using (var cluster = ClusterTarget.Open(null, bare, galera: false))
        {
            Assert.That(cluster.Nodes.Select(n => n.Name), Is.EqualTo(new[] { "galera1", "galera2" }));
            Assert.That(cluster.Options.Policy, Is.EqualTo(AcquirePolicy.RoundRobin));
        }
    }

    [Test]
    public void Config_Mistakes_FailNamingTheProblemNeverTheSecret()
    {
        var nested = Write("nested.json", """{ "Databases": { "Orders": { "Nodes": { "a": "Server=10.0.0.1" } } } }""");
        Assert.That(() => ClusterTarget.Open(null, nested, galera: false, section: "Databases:Billing"),
            Throws.ArgumentException.With.Message.Contains("no section 'Databases:Billing'"));
        Assert.That(() => ClusterTarget.Open(null, Path.Combine(_directory, "missing.json"), galera: false),
            Throws.ArgumentException.With.Message.Contains("does not exist"));
        Assert.That(() => ClusterTarget.Open(null, null, galera: false, section: "ClusterSql"),
            Throws.ArgumentException.With.Message.Contains("--config"));

        var old = Write("old.json", """{ "nodes": { "a": "Server=10.0.0.1" }, "connectTimeoutMs": 2000 }""");
        Assert.That(() => ClusterTarget.Open(null, old, galera: false), Throws.ArgumentException.With.Message.Contains("\"ConnectTimeout\": \"00:00:02\""));

        var badString = Write("bad.json", """{ "ClusterSql": { "Nodes": { "a": "Server=10.0.0.1;Password=hunter2-secret;Port=notanumber" } } }""");
        var error = Assert.Throws<ArgumentException>(() => ClusterTarget.Open(null, badString, galera: false));
        Assert.That(error!.Message, Does.Contain("'a'").And.Not.Contain("hunter2"));

        var badJson = Write("broken.json", "{ \"ClusterSql\": { \"Nodes\": { \"a\": \"Server=x;Password=hunter2-secret\" ");
        error = Assert.Throws<ArgumentException>(() => ClusterTarget.Open(null, badJson, galera: false));
        Assert.That(error!.Message, Does.Contain("not valid JSON").And.Not.Contain("hunter2"));
    }

    [Test]
    public void Config_InvalidJson_NamesTheLine()
    {
        var badJson = Write("line3.json", "{\n  \"ClusterSql\": {\n    \"Nodes\": { \"a\": \"Server=x;Password=hunter2-secret\" ,, }\n  }\n}\n");
        var error = Assert.Throws<ArgumentException>(() => ClusterTarget.Open(null, badJson, galera: false));
        Assert.That(error!.Message, Does.Contain("not valid JSON (line 3)").And.Not.Contain("hunter2"));
    }

    [TestCase("check", "--bogus")]
    [TestCase("watch", "--duration", "abc")]
    [TestCase("check", "--json", "--no-galera", "extra-argument")]
    public void ParseErrors_ExitWithUsage64(params string[] args)
    {
        var (exitCode, _, error) = RunCli(args);
        Assert.That(exitCode, Is.EqualTo(64), error);
        Assert.That(error, Does.StartWith("clustersql: ").And.Not.Contain("   at "));
    }

    [Test]
    public void UnexpectedError_MessageCarriesNoConnectionStringOrPassword()
    {
        const string connectionString = "Server=10.0.0.1;User ID=app;Password=hunter2-secret";
        var error = new InvalidOperationException($"could not use '{connectionString}'\nnor pwd = other-secret; at all");
        var message = CliErrors.Sanitize(error, connectionString);
        Assert.That(message, Does.StartWith("unexpected error (InvalidOperationException): could not use '[connection string]'"));
        Assert.That(message, Does.Not.Contain("hunter2").And.Not.Contain("other-secret").And.Not.Contain("\n"));

        var json = CliJson.Serialize(new ErrorJson(CliJson.Version, "error", message, CliErrors.InternalError));
        using var document = JsonDocument.Parse(json);
        Assert.That(Names(document.RootElement), Is.EqualTo(new[] { "version", "type", "message", "exitCode" }));
        Assert.That(document.RootElement.GetProperty("exitCode").GetInt32(), Is.EqualTo(70));
    }

    // Runs the tool's entry point in process, its output captured (the tests of this class do not run in parallel).
    private static (int ExitCode, string Output, string Error) RunCli(params string[] args)
    {
        var (output, error) = (new StringWriter(), new StringWriter());
        var (oldOut, oldError) = (Console.Out, Console.Error);
        Console.SetOut(output);
        Console.SetError(error);
        try
        {
            var result = typeof(CliErrors).Assembly.EntryPoint!.Invoke(null, [args]);
            var exitCode = result is System.Threading.Tasks.Task<int> task ? task.GetAwaiter().GetResult() : (int)result!;
            return (exitCode, output.ToString(), error.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldError);
        }
    }

    private string Write(string name, string json)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllText(path, json);
        return path;
    }

    private static List<string> Names(JsonElement element) => element.EnumerateObject().Select(p => p.Name).ToList();
}

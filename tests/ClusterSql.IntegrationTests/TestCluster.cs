using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using MySqlConnector;
using NUnit.Framework;

namespace ClusterSql.IntegrationTests;

/// <summary>
/// The three-node Galera cluster that tests/cluster/cluster.sh runs on loopback: client addresses 127.0.0.21-23,
/// port 3306. Every fault goes through that script, and only ever touches those loopback addresses.
/// </summary>
internal static class TestCluster
{
    public const int NodeCount = 3;
    public const string User = "clustersql";

    public static string Password => Environment.GetEnvironmentVariable("CLUSTERSQL_PASSWORD") is { Length: > 0 } p ? p : "Cs-test-pw-7f3a";

    public static string NodeName(int node) => $"galera{node}";

    public static string Host(int node) => $"127.0.0.2{node}";

    /// <summary>
    /// Connection-string options for tests that read their own writes through another node with wsrep_sync_wait:
    /// MariaDB skips the causality wait on a session that MySqlConnector reset for reuse with COM_RESET_CONNECTION
    /// (measured here on 10.11; most likely mariadb-corporation/galera#613, reported for COM_CHANGE_USER), so such reads
    /// need sessions that are not reset. README, "Reading your own writes on Galera", says the same to users.
    /// </summary>
    public const string CausalReads = "ConnectionReset=false";

    public static string ConnectionString(int node, string extra = "") =>
        $"Server={Host(node)};Port=3306;User ID={User};Password={Password};Database=test;Connection Timeout=5;{extra}";

    public static string MultiHostConnectionString(string extra = "") =>
        $"Server={string.Join(",", Enumerable.Range(1, NodeCount).Select(Host))};Port=3306;User ID={User};Password={Password};Database=test;{extra}";

    public static int NodeOfHost(string host) => host switch
    {
        "127.0.0.21" => 1,
        "127.0.0.22" => 2,
        "127.0.0.23" => 3,
        _ => throw new ArgumentException($"Not a test cluster host: {host}", nameof(host)),
    };

    /// <summary>A cluster of the three nodes, named galera1-3, with settings for quick fault detection.</summary>
    public static ClusterDataSource Build(Action<ClusterOptions>? configure = null, bool galera = true, string extra = "", Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory = null, Action<ClusterDataSourceBuilder>? configureBuilder = null)
    {
        var builder = new ClusterDataSourceBuilder();
        if (loggerFactory is not null)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        for (var node = 1; node <= NodeCount; node++)
        {
            ClusterSql.MySql.MySqlCluster.AddMySqlNode(builder, NodeName(node), ConnectionString(node, extra));
        }

        builder.Options.HealthCheckInterval = TimeSpan.FromMilliseconds(500);
        builder.Options.HealthCheckTimeout = TimeSpan.FromSeconds(1);
        builder.Options.BaseEjectionTime = TimeSpan.FromMilliseconds(500);
        builder.Options.MaxEjectionTime = TimeSpan.FromSeconds(2);
        if (galera)
        {
            ClusterSql.MySql.MySqlCluster.UseGaleraHealthProbe(builder);
        }

        configure?.Invoke(builder.Options);
        configureBuilder?.Invoke(builder);
        return builder.Build();
    }

    public static string RepositoryRoot
    {
        get
        {
            var directory = new DirectoryInfo(AppContext.BaseDirectory);
            while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "ClusterSql.sln")))
            {
                directory = directory.Parent;
            }

            return directory?.FullName ?? throw new InvalidOperationException("ClusterSql.sln not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>Runs tests/cluster/cluster.sh with the arguments; throws with its output when it fails.</summary>
    public static async Task<string> Harness(params string[] arguments)
    {
        var start = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(RepositoryRoot, "tests", "cluster", "cluster.sh"));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        var output = await stdout + await stderr;
        TestContext.Progress.WriteLine($"cluster.sh {string.Join(' ', arguments)} -> {process.ExitCode}");
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"cluster.sh {string.Join(' ', arguments)} failed ({process.ExitCode}):\n{output}");
        }

        return output;
    }

    /// <summary>A global status value of one node, read over a short unpooled connection of its own.</summary>
    public static async Task<long> Status(int node, string name)
    {
        await using var connection = new MySqlConnection(ConnectionString(node, "Pooling=false"));
        await connection.OpenAsync();
        await using var command = new MySqlCommand($"SHOW GLOBAL STATUS LIKE '{name}'", connection);
        await using var reader = await command.ExecuteReaderAsync();
        return await reader.ReadAsync() ? long.Parse(reader.GetString(1), System.Globalization.CultureInfo.InvariantCulture) : -1;
    }

    public static async Task<bool> IsReachable(int node)
    {
        try
        {
            await using var connection = new MySqlConnection(ConnectionString(node, "Pooling=false;Connection Timeout=3"));
            await connection.OpenAsync();
            return true;
        }
        catch (MySqlException)
        {
            return false;
        }
    }
}

/// <summary>
/// Checks once that the cluster is up. Where the test script runs the suite (CLUSTERSQL_REQUIRE_CLUSTER=1), a missing
/// cluster fails every test; a developer running only `dotnet test` without it sees them skipped, with the reason.
/// </summary>
[SetUpFixture]
public sealed class ClusterSetUp
{
    public static bool Available { get; private set; }

    [OneTimeSetUp]
    public async Task CheckClusterAsync()
    {
        Available = (await Task.WhenAll(Enumerable.Range(1, TestCluster.NodeCount).Select(TestCluster.IsReachable))).All(x => x);
        if (!Available && Environment.GetEnvironmentVariable("CLUSTERSQL_REQUIRE_CLUSTER") == "1")
        {
            Assert.Fail("The Galera test cluster is not reachable on 127.0.0.21-23:3306: run 'tests/cluster/cluster.sh install && tests/cluster/cluster.sh up' as root.");
        }
    }

    public static void RequireCluster()
    {
        if (!Available)
        {
            Assert.Ignore("The Galera test cluster is not running (tests/cluster/cluster.sh up); integration tests skipped.");
        }
    }
}

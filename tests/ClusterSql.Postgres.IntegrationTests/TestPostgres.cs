using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using ClusterSql.Npgsql;
using Npgsql;
using NUnit.Framework;

namespace ClusterSql.Postgres.IntegrationTests;

/// <summary>
/// The PostgreSQL primary and two streaming standbys that tests/pg/pg.sh runs on loopback: pg1 127.0.0.41:5441 (the
/// primary after up/reset), pg2 127.0.0.42:5442 and pg3 127.0.0.43:5443. Every fault goes through that script.
/// </summary>
internal static class TestPostgres
{
    public const int NodeCount = 3;
    public const string User = "clustersql";

    public static string Password => Environment.GetEnvironmentVariable("CLUSTERSQL_PG_PASSWORD") is { Length: > 0 } p ? p : "Cs-pg-pw-3b9d";

    public static string Host(int node) => $"127.0.0.4{node}";

    public static int Port(int node) => 5440 + node;

    /// <summary>The node a session is on, from the port the server listens on (each node has its own).</summary>
    public static int NodeOfPort(int port) => port - 5440 is var n && n is >= 1 and <= NodeCount ? n : throw new ArgumentException($"Not a test node's port: {port}", nameof(port));

    // Gss Encryption Mode=Disable: the test servers offer no GSSAPI, and Npgsql's default (Prefer) asks the machine's
    // Kerberos library for a ticket on every physical open, which on a host whose DNS server is unreachable stalls
    // now and then for the resolver's 5 s (measured here), on a healthy node. See the README's PostgreSQL section.
    public static string ConnectionString(int node, string extra = "") =>
        $"Host={Host(node)};Port={Port(node)};Username={User};Password={Password};Database=test;Timeout=3;Gss Encryption Mode=Disable;{extra}";

    public static string MultiHostConnectionString(string extra = "") =>
        $"Host={string.Join(",", Enumerable.Range(1, NodeCount).Select(n => $"{Host(n)}:{Port(n)}"))};Username={User};Password={Password};Database=test;Timeout=3;Gss Encryption Mode=Disable;{extra}";

    /// <summary>A cluster of the three nodes from the multi-host string, with quick health checks.</summary>
    public static ClusterDataSource Build(Action<ClusterOptions>? configure = null) =>
        NpgsqlCluster.CreateDataSource(MultiHostConnectionString(), configure: options =>
        {
            options.HealthCheckInterval = TimeSpan.FromMilliseconds(500);
            options.HealthCheckTimeout = TimeSpan.FromSeconds(1);
            options.BaseEjectionTime = TimeSpan.FromMilliseconds(500);
            options.MaxEjectionTime = TimeSpan.FromSeconds(2);
            options.ConnectTimeout = TimeSpan.FromSeconds(2);

            // Every node of a cluster that a test just rebuilt started moments ago: no failback delay to wait out.
            options.WriterFailbackDelay = TimeSpan.Zero;
            configure?.Invoke(options);
        });

    /// <summary>Which node a session is on.</summary>
    public static async Task<int> NodeOf(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand("SELECT inet_server_port()", connection);
        return NodeOfPort(Convert.ToInt32(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Runs one statement on one node over a short unpooled connection of its own.</summary>
    public static async Task<object?> Scalar(int node, string sql)
    {
        await using var connection = new NpgsqlConnection(ConnectionString(node, "Pooling=false"));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    public static async Task WaitUntil(string what, Func<Task<bool>> condition, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > timeout)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds} s waiting for: {what}");
            }

            await Task.Delay(50);
        }
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

    /// <summary>Runs tests/pg/pg.sh with the arguments; throws with its output when it fails.</summary>
    public static async Task<string> Harness(params string[] arguments)
    {
        var start = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(RepositoryRoot, "tests", "pg", "pg.sh"));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        }
        catch (TimeoutException)
        {
            // Not left running behind the failed test (and holding nodes half rebuilt): pg.sh and everything it started.
            process.Kill(entireProcessTree: true);
            throw;
        }

        var output = await stdout + await stderr;
        TestContext.Progress.WriteLine($"pg.sh {string.Join(' ', arguments)} -> {process.ExitCode}");
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"pg.sh {string.Join(' ', arguments)} failed ({process.ExitCode}):\n{output}");
        }

        return output;
    }
}

/// <summary>
/// Brings the PostgreSQL nodes to their normal topology once (pg.sh reset: faults removed, pg1 primary, two standbys).
/// Where the test script runs the suite (CLUSTERSQL_REQUIRE_CLUSTER=1) a failure fails every test; a developer without
/// root or PostgreSQL sees the tests skipped, with the reason.
/// </summary>
[SetUpFixture]
public sealed class PostgresSetUp
{
    private static string? s_unavailable;

    [OneTimeSetUp]
    public async Task ResetAsync()
    {
        try
        {
            await TestPostgres.Harness("reset");
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception or TimeoutException)
        {
            s_unavailable = ex.Message;
            if (Environment.GetEnvironmentVariable("CLUSTERSQL_REQUIRE_CLUSTER") == "1")
            {
                Assert.Fail("The PostgreSQL test nodes could not be started: run 'tests/pg/pg.sh install && tests/pg/pg.sh up' as root.\n" + ex.Message);
            }
        }
    }

    public static void RequirePostgres()
    {
        if (s_unavailable is not null)
        {
            Assert.Ignore("The PostgreSQL test nodes are not running (tests/pg/pg.sh up as root); tests skipped: " + s_unavailable);
        }
    }
}

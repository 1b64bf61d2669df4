using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql.Benchmarks;

/// <summary>
/// The three-node Galera cluster of tests/cluster/cluster.sh: client addresses 127.0.0.21-23, port 3306, user
/// clustersql, database test. Nothing here ever addresses anything outside 127.0.0.0/8.
/// </summary>
internal static class TestCluster
{
    public const int NodeCount = 3;
    public const int Port = 3306;
    public const string User = "clustersql";
    public const string Database = "test";

    public static string Password => Environment.GetEnvironmentVariable("CLUSTERSQL_PASSWORD") is { Length: > 0 } p ? p : "Cs-test-pw-7f3a";

    public static string ClusterDirectory => Environment.GetEnvironmentVariable("CLUSTERSQL_CLUSTER_DIR") is { Length: > 0 } d ? d : "/var/tmp/clustersql-cluster";

    public static string NodeName(int node) => "galera" + node.ToString(CultureInfo.InvariantCulture);

    public static string Host(int node) => "127.0.0.2" + node.ToString(CultureInfo.InvariantCulture);

    public static string Hosts => string.Join(",", Host(1), Host(2), Host(3));

    /// <summary>The node's number from its name (galera1-3), or 0.</summary>
    public static int NodeOfName(string? name) => name switch
    {
        "galera1" => 1,
        "galera2" => 2,
        "galera3" => 3,
        _ => 0,
    };

    /// <summary>One node over TCP.</summary>
    public static string NodeConnectionString(int node, bool pooled, int connectTimeoutSeconds) =>
        Common(Host(node), pooled, connectTimeoutSeconds);

    /// <summary>MySqlConnector's own multi-host balancing over the three nodes.</summary>
    public static string MultiHostConnectionString(string loadBalance, bool pooled, int connectTimeoutSeconds) =>
        Common(Hosts, pooled, connectTimeoutSeconds) + ";Load Balance=" + loadBalance;

    /// <summary>
    /// One node over its unix socket: still reachable while its TCP port is blackholed, for reading status counters.
    /// </summary>
    public static string SocketConnectionString(int node) =>
        $"Server={Path.Combine(ClusterDirectory, NodeName(node) + ".sock")};Protocol=Unix;User ID={User};Password={Password};Database={Database};Pooling=false;Connection Timeout=2;Default Command Timeout=5";

    private static string Common(string server, bool pooled, int connectTimeoutSeconds) =>
        $"Server={server};Port={Port};User ID={User};Password={Password};Database={Database};Pooling={(pooled ? "true" : "false")};Connection Timeout={connectTimeoutSeconds.ToString(CultureInfo.InvariantCulture)}";

    public static string RepositoryRoot
    {
        get
        {
            foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
            {
                for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
                {
                    if (File.Exists(Path.Combine(directory.FullName, "ClusterSql.sln")))
                    {
                        return directory.FullName;
                    }
                }
            }

            throw new InvalidOperationException("ClusterSql.sln not found above the current or the program's directory.");
        }
    }

    /// <summary>Runs tests/cluster/cluster.sh with the arguments, bounded in time; throws with its output when it fails.</summary>
    public static async Task<string> HarnessAsync(TimeSpan timeout, params string[] arguments)
    {
        var start = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(RepositoryRoot, "tests", "cluster", "cluster.sh"));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start bash");
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.WaitForExitAsync(CancellationToken.None).WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"cluster.sh {string.Join(' ', arguments)} did not finish within {timeout.TotalSeconds:0} s");
        }

        var output = (await stdout) + (await stderr);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"cluster.sh {string.Join(' ', arguments)} exited with {process.ExitCode}:\n{output}");
        }

        return output;
    }
}

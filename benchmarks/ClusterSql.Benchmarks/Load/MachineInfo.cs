using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
using MySqlConnector;

namespace ClusterSql.Benchmarks.Load;

/// <summary>The machine and versions a run was measured on, for docs/benchmarks.md.</summary>
internal sealed class MachineInfo
{
    public int Cores { get; set; }

    public string Cpu { get; set; } = string.Empty;

    public string Memory { get; set; } = string.Empty;

    public string Os { get; set; } = string.Empty;

    public string Kernel { get; set; } = string.Empty;

    public string DotNetRuntime { get; set; } = string.Empty;

    public string DotNetSdk { get; set; } = string.Empty;

    public string MariaDb { get; set; } = string.Empty;

    public string Galera { get; set; } = string.Empty;

    public string MySqlConnector { get; set; } = string.Empty;

    public string BenchmarkDotNet { get; set; } = string.Empty;

    public string ClusterSqlCommit { get; set; } = string.Empty;

    public static async Task<MachineInfo> GatherAsync()
    {
        var info = new MachineInfo
        {
            Cores = Environment.ProcessorCount,
            Cpu = ReadField("/proc/cpuinfo", "model name", ':') ?? RuntimeInformation.ProcessArchitecture.ToString(),
            Memory = ReadField("/proc/meminfo", "MemTotal", ':') is { } kb && long.TryParse(kb.Split(' ')[0], out var k) ? $"{k / 1024.0 / 1024.0:0.0} GiB" : "?",
            Os = ReadField("/etc/os-release", "PRETTY_NAME", '=')?.Trim('"') ?? RuntimeInformation.OSDescription,
            Kernel = "Linux " + (ReadAll("/proc/sys/kernel/osrelease") ?? RuntimeInformation.OSDescription),
            DotNetRuntime = RuntimeInformation.FrameworkDescription,
            DotNetSdk = (await RunAsync("dotnet", "--version")).Trim(),
            MySqlConnector = Version(typeof(MySqlConnection).Assembly),
            BenchmarkDotNet = Version(typeof(BenchmarkDotNet.Running.BenchmarkSwitcher).Assembly),
            ClusterSqlCommit = (await RunAsync("git", "-C", TestCluster.RepositoryRoot, "rev-parse", "--short", "HEAD")).Trim(),
        };

        try
        {
            await using var connection = new MySqlConnection(TestCluster.SocketConnectionString(1));
            await connection.OpenAsync();
            await using var command = new MySqlCommand("SELECT VERSION(), (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_PROVIDER_VERSION')", connection);
            await using var reader = await command.ExecuteReaderAsync();
            if (await reader.ReadAsync())
            {
                info.MariaDb = reader.GetString(0);
                info.Galera = reader.GetString(1);
            }
        }
        catch (MySqlException ex)
        {
            info.MariaDb = "unknown (" + ex.Message + ")";
        }

        return info;
    }

    private static string Version(Assembly assembly)
    {
        var version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? assembly.GetName().Version?.ToString() ?? "?";
        var plus = version.IndexOf('+', StringComparison.Ordinal);
        return plus < 0 ? version : version[..plus];
    }

    private static string? ReadAll(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static string? ReadField(string path, string key, char separator)
    {
        try
        {
            return File.ReadLines(path)
                .Where(l => l.StartsWith(key, StringComparison.Ordinal))
                .Select(l => l[(l.IndexOf(separator, StringComparison.Ordinal) + 1)..].Trim())
                .FirstOrDefault();
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static async Task<string> RunAsync(string file, params string[] arguments)
    {
        try
        {
            var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var argument in arguments)
            {
                start.ArgumentList.Add(argument);
            }

            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            return await output;
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or TimeoutException or InvalidOperationException)
        {
            return "?";
        }
    }
}

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql.Benchmarks.Load;

/// <summary>
/// The lock that everybody who injects faults into the shared test cluster holds from injection until the cluster is
/// healthy again (<c>flock /tmp/clustersql-cluster.lock ...</c>). The load tool runs under it: either an ancestor
/// process already holds it (run.sh runs the tool under flock), or the tool takes it itself.
/// </summary>
internal sealed class ClusterLock : IDisposable
{
    public const string LockPath = "/tmp/clustersql-cluster.lock";

    private readonly FileStream? _held;

    private ClusterLock(FileStream? held, string how)
    {
        _held = held;
        How = how;
    }

    public string How { get; }

    public void Dispose() => _held?.Dispose();

    /// <summary>Returns once the lock is held, by an ancestor or by this process; gives up after <paramref name="patience"/>.</summary>
    public static async Task<ClusterLock> AcquireAsync(TimeSpan patience, CancellationToken cancellationToken)
    {
        if (HeldByAncestor() is { } holder)
        {
            return new ClusterLock(null, "held " + holder);
        }

        var deadline = Stopwatch.GetTimestamp() + (long)(patience.TotalSeconds * Stopwatch.Frequency);
        var told = false;
        while (true)
        {
            try
            {
                // On Unix, .NET takes FileShare.None as flock(LOCK_EX | LOCK_NB): the same lock that flock(1) takes.
                var stream = new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                return new ClusterLock(stream, "taken by the load tool");
            }
            catch (IOException) when (Stopwatch.GetTimestamp() < deadline)
            {
                if (!told)
                {
                    Console.Error.WriteLine($"load: waiting for {LockPath} (someone is injecting faults into the cluster)...");
                    told = true;
                }

                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
        }
    }

    /// <summary>
    /// Who holds the flock for this process, or null: an ancestor (<c>flock LOCK command</c>: /proc/locks names the pid
    /// that took it) or a descriptor this process inherited (<c>exec 9>LOCK; flock 9</c>: its /proc/self/fdinfo lists
    /// the lock; the pid in /proc/locks is then the flock(1) that has exited).
    /// </summary>
    private static string? HeldByAncestor()
    {
        try
        {
            if (!File.Exists(LockPath) || Inode(LockPath) is not { } inode)
            {
                return null;
            }

            foreach (var fd in Directory.GetFiles("/proc/self/fd"))
            {
                var info = "/proc/self/fdinfo/" + Path.GetFileName(fd);
                if (new FileInfo(fd).LinkTarget == LockPath && File.Exists(info)
                    && File.ReadLines(info).Any(l => l.StartsWith("lock:", StringComparison.Ordinal) && IsFlockOn(l["lock:".Length..], inode)))
                {
                    return $"on inherited descriptor {Path.GetFileName(fd)}";
                }
            }

            var holders = new HashSet<int>();
            foreach (var line in File.ReadLines("/proc/locks"))
            {
                if (IsFlockOn(line, inode) && int.TryParse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[4], NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid))
                {
                    holders.Add(pid);
                }
            }

            for (var pid = Environment.ProcessId; pid > 1; pid = ParentOf(pid))
            {
                if (holders.Contains(pid))
                {
                    return $"by ancestor process {pid}";
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null;
    }

    /// <summary>"1: FLOCK  ADVISORY  WRITE 4242 08:01:1311 0 EOF" on the inode; a waiting request ("->") holds nothing.</summary>
    private static bool IsFlockOn(string line, string inode)
    {
        var fields = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        return fields.Length >= 6 && fields[1] == "FLOCK" && fields[5].EndsWith(":" + inode, StringComparison.Ordinal);
    }

    private static string? Inode(string path)
    {
        var start = new ProcessStartInfo("stat", ["-c", "%i", path]) { RedirectStandardOutput = true, UseShellExecute = false };
        using var process = Process.Start(start);
        if (process is null)
        {
            return null;
        }

        var output = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit(10_000);
        return output.Length > 0 && output.All(char.IsAsciiDigit) ? output : null;
    }

    private static int ParentOf(int pid)
    {
        // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so split after the last ')'.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(fields[1], CultureInfo.InvariantCulture);
    }
}

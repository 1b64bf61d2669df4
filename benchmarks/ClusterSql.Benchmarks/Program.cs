using System;
using System.Globalization;
using System.Linq;
using System.Threading.Tasks;
using BenchmarkDotNet.Running;
using ClusterSql.Benchmarks.Load;
using ClusterSql.Benchmarks.Report;

namespace ClusterSql.Benchmarks;

/// <summary>
/// <c>dotnet run -c Release -- [BenchmarkDotNet arguments]</c> runs the suites (e.g. <c>--filter *</c>);
/// <c>-- load [--quick] ...</c> runs the fault-scenario load tool; <c>-- writes [--quick]</c> the write-heavy role
/// scenarios (docs/benchmarks-writes.md); <c>-- fleet [--quick]</c> the simulated fleet (docs/benchmarks-fleet.md);
/// <c>-- pg-compare [--quick]</c> ClusterSql.Npgsql against Npgsql multi-host (docs/benchmarks-postgres.md);
/// <c>-- report ...</c> writes docs/benchmarks.md.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        // Numbers in tables, JSON and SVG read the same on every machine.
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

        if (args.Length > 0 && args[0] == "load")
        {
            return await LoadCommand.RunAsync(args[1..]);
        }

        if (args.Length > 0 && args[0] == "writes")
        {
            return await WritesCommand.RunAsync(args[1..]);
        }

        if (args.Length > 0 && args[0] == "fleet")
        {
            // Before any await: the simulation must run on this thread, not on a thread-pool one.
            return Fleet.FleetCommand.Run(args[1..]);
        }

        if (args.Length > 0 && args[0] == "pg-compare")
        {
            return await PostgresCompareCommand.RunAsync(args[1..]);
        }

        if (args.Length > 0 && args[0] == "report")
        {
            return ReportCommand.Run(args[1..]);
        }

        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, BenchmarkConfig.Create(args)).ToArray();

        // A benchmark that threw, or did not build, must fail the run: the quick mode exists so that nothing rots.
        var failed = summaries.Where(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)).ToArray();
        foreach (var summary in failed)
        {
            Console.Error.WriteLine($"benchmarks: {summary.Title} failed (see {summary.LogFilePath})");
        }

        return failed.Length == 0 ? 0 : 1;
    }
}

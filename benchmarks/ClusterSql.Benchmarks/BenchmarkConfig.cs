using System;
using System.Linq;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;

namespace ClusterSql.Benchmarks;

/// <summary>The configuration every suite runs with unless the command line names a job (e.g. <c>--job dry</c>).</summary>
internal static class BenchmarkConfig
{
    /// <summary>
    /// One launch, 3 warm-up and 8 measured iterations of about 250 ms each: between BenchmarkDotNet's ShortRun (3 + 3)
    /// and MediumRun (2 launches, 10 + 10), so that every suite together stays within about ten minutes on two cores.
    /// </summary>
    public static Job DefaultJob { get; } = Job.Default
        .WithLaunchCount(1)
        .WithWarmupCount(3)
        .WithIterationCount(8)
        .WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds(250))
        .WithId("Bench");

    public static string DefaultJobDescription => "1 launch, 3 warm-up + 8 measured iterations of ~250 ms";

    public static IConfig Create(string[] args)
    {
        // The JSON exporter gives the report command the raw numbers (ns, bytes) that the markdown tables round.
        var config = ManualConfig.Create(DefaultConfig.Instance).AddExporter(JsonExporter.Brief);
        var jobOnCommandLine = args.Any(a => a is "--job" or "-j" || a.StartsWith("--job=", StringComparison.Ordinal));
        return jobOnCommandLine ? config : config.AddJob(DefaultJob.AsDefault());
    }
}

using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;

namespace ClusterSql.Benchmarks.Report;

/// <summary>One benchmark case from BenchmarkDotNet's brief JSON export: times in nanoseconds, bytes per operation.</summary>
internal sealed record BenchmarkCase(string Type, string Method, string Title, string Parameters, double MeanNs, double MedianNs, double ErrorNs, double? AllocatedBytes, int Iterations);

internal static class BenchmarkResults
{
    /// <summary>Every case of every suite found under <paramref name="artifacts"/>/results (brief JSON), keyed by suite type.</summary>
    public static Dictionary<string, List<BenchmarkCase>> Load(string artifacts)
    {
        var suites = new Dictionary<string, List<BenchmarkCase>>(StringComparer.Ordinal);
        var results = Path.Combine(artifacts, "results");
        if (!Directory.Exists(results))
        {
            return suites;
        }

        foreach (var file in Directory.GetFiles(results, "*-report-brief.json").Order(StringComparer.Ordinal))
        {
            using var document = JsonDocument.Parse(File.ReadAllText(file));
            foreach (var benchmark in document.RootElement.GetProperty("Benchmarks").EnumerateArray())
            {
                if (!benchmark.TryGetProperty("Statistics", out var statistics) || statistics.ValueKind != JsonValueKind.Object)
                {
                    continue;
                }

                var type = benchmark.GetProperty("Type").GetString() ?? "?";
                double? allocated = benchmark.TryGetProperty("Memory", out var memory) && memory.ValueKind == JsonValueKind.Object
                    ? memory.GetProperty("BytesAllocatedPerOperation").GetDouble()
                    : null;
                var margin = statistics.TryGetProperty("ConfidenceInterval", out var interval) && interval.TryGetProperty("Margin", out var m) && m.ValueKind == JsonValueKind.Number
                    ? m.GetDouble()
                    : double.NaN;
                var item = new BenchmarkCase(
                    type,
                    benchmark.GetProperty("Method").GetString() ?? "?",
                    (benchmark.GetProperty("MethodTitle").GetString() ?? "?").Trim('\''),
                    benchmark.GetProperty("Parameters").GetString() ?? string.Empty,
                    statistics.GetProperty("Mean").GetDouble(),
                    statistics.GetProperty("Median").GetDouble(),
                    margin,
                    allocated,
                    statistics.GetProperty("N").GetInt32());
                if (!suites.TryGetValue(type, out var list))
                {
                    suites[type] = list = [];
                }

                list.Add(item);
            }
        }

        return suites;
    }

    /// <summary>A time in nanoseconds, in the unit that suits it.</summary>
    public static string FormatTime(double ns) => ns switch
    {
        double.NaN => "?",
        < 1_000 => $"{ns:0.0} ns",
        < 1_000_000 => $"{ns / 1_000:0.00} µs",
        _ => $"{ns / 1_000_000:0.000} ms",
    };

    public static string FormatBytes(double? bytes) => bytes switch
    {
        null => "?",
        0 => "0 B",
        < 10_240 => $"{bytes:0} B",
        _ => $"{bytes / 1024:0.0} KB",
    };
}

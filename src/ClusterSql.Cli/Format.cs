using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace ClusterSql.Cli;

internal static class Format
{
    public static string Millis(TimeSpan value) => value.TotalMilliseconds.ToString(value.TotalMilliseconds < 10 ? "0.00" : "0", CultureInfo.InvariantCulture) + " ms";

    public static string Number(double value) => value.ToString("0", CultureInfo.InvariantCulture);

    /// <summary>The nearest-rank percentile of an ascending list.</summary>
    public static TimeSpan Percentile(List<TimeSpan> sorted, double p) =>
        sorted.Count == 0 ? TimeSpan.Zero : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];
}

/// <summary>A plain-text table: columns padded to their widest cell. No library, so nothing for NativeAOT to trim.</summary>
internal static class Table
{
    public static string Render(string[] header, IEnumerable<string[]> rows)
    {
        var all = new List<string[]> { header };
        all.AddRange(rows);
        var widths = Enumerable.Range(0, header.Length).Select(c => all.Max(r => c < r.Length ? r[c].Length : 0)).ToArray();
        var text = new StringBuilder();
        foreach (var row in all)
        {
            for (var c = 0; c < header.Length; c++)
            {
                var cell = c < row.Length ? row[c] : string.Empty;
                text.Append(c == header.Length - 1 ? cell : cell.PadRight(widths[c] + 2));
            }

            text.AppendLine();
        }

        return text.ToString().TrimEnd();
    }
}

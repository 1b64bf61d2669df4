using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;

namespace ClusterSql.Cli;

internal static class Format
{
    public static string Millis(TimeSpan value) => value.TotalMilliseconds.ToString(value.TotalMilliseconds < 10 ? "0.00" : "0", CultureInfo.InvariantCulture) + " ms";

    /// <summary>A time as a person reads it: "45 s", "12 min 5 s", "3 h 5 min", "2 d 4 h".</summary>
    public static string Duration(TimeSpan value) => value switch
    {
        { TotalSeconds: < 1 } => Millis(value),
        { TotalMinutes: < 1 } => string.Create(CultureInfo.InvariantCulture, $"{(int)value.TotalSeconds} s"),
        { TotalHours: < 1, Seconds: 0 } => string.Create(CultureInfo.InvariantCulture, $"{(int)value.TotalMinutes} min"),
        { TotalHours: < 1 } => string.Create(CultureInfo.InvariantCulture, $"{(int)value.TotalMinutes} min {value.Seconds} s"),
        { TotalDays: < 1 } => string.Create(CultureInfo.InvariantCulture, $"{(int)value.TotalHours} h {value.Minutes} min"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{(int)value.TotalDays} d {value.Hours} h"),
    };

    public static string Number(double value) => value.ToString("0", CultureInfo.InvariantCulture);

    public static string Percent(long part, long whole) => (100.0 * part / whole).ToString("0", CultureInfo.InvariantCulture) + "%";

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
        var line = new StringBuilder();
        foreach (var row in all)
        {
            line.Clear();
            for (var c = 0; c < header.Length; c++)
            {
                var cell = c < row.Length ? row[c] : string.Empty;
                line.Append(c == header.Length - 1 ? cell : cell.PadRight(widths[c] + 2));
            }

            // An empty last cell would leave the padding of the one before it at the end of the line.
            text.AppendLine(line.ToString().TrimEnd(' '));
        }

        return text.ToString().TrimEnd();
    }
}

/// <summary>
/// A block of lines redrawn in place on a terminal: the cursor goes back up over the previous block (ANSI "cursor up")
/// and every row is rewritten and cleared to its end, so earlier output (the check) stays on screen. Rows are cut to
/// the terminal's width, since a wrapped row would throw the count of lines to go back up off.
/// </summary>
internal sealed class LiveBlock
{
    private const string Escape = "\u001b[";
    private int _height;

    public void Draw(IReadOnlyList<string> lines)
    {
        var width = TerminalWidth();
        var text = new StringBuilder();
        if (_height > 0)
        {
            text.Append(Escape).Append(_height).Append('A');
        }

        foreach (var line in lines)
        {
            text.Append('\r').Append(width > 1 && line.Length >= width ? line[..(width - 1)] : line).Append(Escape).Append("K\n");
        }

        // A shorter block than the last one leaves rows below it: clear them.
        text.Append(Escape).Append('J');
        Console.Out.Write(text.ToString());
        Console.Out.Flush();
        _height = lines.Count;
    }

    private static int TerminalWidth()
    {
        try
        {
            return Console.WindowWidth;
        }
        catch (IOException)
        {
            return 0;
        }
    }
}

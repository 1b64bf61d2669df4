using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Security;
using System.Text;
using ClusterSql.Benchmarks.Load;

namespace ClusterSql.Benchmarks.Report;

/// <summary>
/// Draws the load tool's latency distributions as one SVG, no library: per scenario, per client and mode, a bar from
/// p50 to p90, a tick at p99 and a dot at the maximum, on a shared logarithmic axis from 0.1 ms to 10 s.
/// </summary>
internal static class LatencyChart
{
    private const double MinMs = 0.1;
    private const double MaxMs = 10_000;
    private const int Width = 980;
    private const int LabelWidth = 250;
    private const int PlotLeft = LabelWidth + 10;
    private const int PlotRight = 800;
    private const int RowHeight = 17;
    private const int HeaderHeight = 26;
    private const int Top = 64;

    public static string Draw(LoadResults results)
    {
        var rows = results.Scenarios.Sum(s => HeaderHeight + (s.Clients.Where(c => c.Error is null).Sum(c => Modes(c).Count()) * RowHeight) + 8);
        var height = Top + rows + 30;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{height}\" viewBox=\"0 0 {Width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n");
        svg.Append(CultureInfo.InvariantCulture, $"<rect width=\"{Width}\" height=\"{height}\" fill=\"white\"/>\n");
        svg.Append("<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">Acquire latency per scenario (log scale; failed acquires included)</text>\n");
        svg.Append("<text x=\"10\" y=\"38\" fill=\"#444\">bar: p50 to p90 · tick: p99 · dot: max · right: p99, failures · seq: sequential · conc: concurrent · paced: 500 ms apart · interleaved: clients take turns</text>\n");

        // Decade grid lines over the whole height.
        for (var ms = MinMs; ms <= MaxMs * 1.0001; ms *= 10)
        {
            var x = X(ms);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{x:0.0}\" y1=\"{Top - 8}\" x2=\"{x:0.0}\" y2=\"{height - 24}\" stroke=\"#ddd\"/>\n");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x:0.0}\" y=\"{Top - 12}\" text-anchor=\"middle\" fill=\"#444\">{AxisLabel(ms)}</text>\n");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x:0.0}\" y=\"{height - 10}\" text-anchor=\"middle\" fill=\"#444\">{AxisLabel(ms)}</text>\n");
        }

        var y = Top;
        foreach (var scenario in results.Scenarios)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"10\" y=\"{y + 17}\" font-weight=\"bold\">{Escape(scenario.Title)}</text>\n");
            y += HeaderHeight;
            foreach (var client in scenario.Clients.Where(c => c.Error is null))
            {
                foreach (var mode in Modes(client))
                {
                    DrawRow(svg, y, client.Client, mode, Color(client.Client));
                    y += RowHeight;
                }
            }

            y += 8;
        }

        svg.Append("</svg>\n");
        return svg.ToString();
    }

    private static void DrawRow(StringBuilder svg, int y, string client, ModeResult mode, string color)
    {
        var mid = y + (RowHeight / 2.0);
        var label = $"{client} ({ShortMode(mode.Mode)})";
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{LabelWidth}\" y=\"{mid + 4:0.0}\" text-anchor=\"end\">{Escape(label)}</text>\n");
        if (mode.Acquires == 0)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{PlotLeft}\" y=\"{mid + 4:0.0}\" fill=\"#888\">no acquires</text>\n");
            return;
        }

        double p50 = X(mode.P50), p90 = X(mode.P90), p99 = X(mode.P99), max = X(mode.Max);
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{p50:0.0}\" y1=\"{mid:0.0}\" x2=\"{max:0.0}\" y2=\"{mid:0.0}\" stroke=\"{color}\" stroke-width=\"1\"/>\n");
        svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{p50:0.0}\" y=\"{y + 3}\" width=\"{Math.Max(2, p90 - p50):0.0}\" height=\"{RowHeight - 6}\" fill=\"{color}\" fill-opacity=\"0.75\"/>\n");
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{p99:0.0}\" y1=\"{y + 1}\" x2=\"{p99:0.0}\" y2=\"{y + RowHeight - 1}\" stroke=\"black\" stroke-width=\"2\"/>\n");
        svg.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{max:0.0}\" cy=\"{mid:0.0}\" r=\"3\" fill=\"none\" stroke=\"black\"/>\n");
        var failed = mode.Failures > 0;
        var note = $"p99 {FormatMs(mode.P99)}" + (failed ? $", {mode.Failures}/{mode.Acquires} failed" : string.Empty);
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{PlotRight + 12}\" y=\"{mid + 4:0.0}\" fill=\"{(failed ? "#c00" : "#222")}\">{Escape(note)}</text>\n");
    }

    internal static IEnumerable<ModeResult> Modes(ClientResult client) =>
        new[] { client.Sequential, client.Concurrent, client.Paced }.Where(m => m.Planned > 0);

    internal static string ShortMode(string mode) => mode switch
    {
        "sequential" => "seq",
        "concurrent" => "conc",
        _ => mode,
    };

    internal static string FormatMs(double ms) => ms switch
    {
        < 1 => ms.ToString("0.00", CultureInfo.InvariantCulture) + " ms",
        < 100 => ms.ToString("0.0", CultureInfo.InvariantCulture) + " ms",
        < 10_000 => ms.ToString("0", CultureInfo.InvariantCulture) + " ms",
        _ => (ms / 1000).ToString("0.0", CultureInfo.InvariantCulture) + " s",
    };

    private static double X(double ms)
    {
        var clamped = Math.Clamp(ms, MinMs, MaxMs);
        return PlotLeft + ((Math.Log10(clamped) - Math.Log10(MinMs)) / (Math.Log10(MaxMs) - Math.Log10(MinMs)) * (PlotRight - PlotLeft));
    }

    private static string AxisLabel(double ms) => ms switch
    {
        < 1 => "0.1 ms",
        < 1000 => ms.ToString("0", CultureInfo.InvariantCulture) + " ms",
        _ => (ms / 1000).ToString("0", CultureInfo.InvariantCulture) + " s",
    };

    private static readonly Dictionary<string, string> s_colors = new(StringComparer.Ordinal)
    {
        ["ClusterSql"] = "#1f6fd1",
        ["ClusterSql Race"] = "#7fb0ea",
        ["MySqlConnector RoundRobin"] = "#e8833a",
        ["MySqlConnector FailOver"] = "#c8423b",
        ["MySqlConnector Random"] = "#8e5bb5",
    };

    private static string Color(string client) => s_colors.TryGetValue(client, out var color) ? color : "#8a8a8a";

    private static string Escape(string text) => SecurityElement.Escape(text) ?? string.Empty;
}

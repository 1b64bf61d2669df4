using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace ClusterSql.Cli;

/// <summary>One node's role now, with what the roles were computed from.</summary>
internal sealed record NodeRoleRow(string Name, string Role, long? Rank, int Priority, TimeSpan? Uptime, long? Lag, bool ReadOnly, bool Settled);

/// <summary>
/// The writer and reader roles of a cluster as this process computes them, which is what every client computes from the
/// same probe data (the writer order needs no coordination): which node takes the writes and why, and the reader order.
/// The orders are the library's own (<see cref="ClusterRoleDataSource.Nodes"/>); this only explains them.
/// </summary>
internal sealed class RoleView
{
    private RoleView(ClusterOptions options, IReadOnlyList<NodeRoleRow> rows, IReadOnlyList<string> writerOrder, IReadOnlyList<string> readerOrder)
    {
        Options = options;
        Rows = rows;
        WriterOrder = writerOrder;
        ReaderOrder = readerOrder;
    }

    public ClusterOptions Options { get; }

    /// <summary>Every node in declared order.</summary>
    public IReadOnlyList<NodeRoleRow> Rows { get; }

    /// <summary>The nodes that can take writes now, in the agreed order; the first <see cref="ClusterOptions.MaxWriters"/> do.</summary>
    public IReadOnlyList<string> WriterOrder { get; }

    /// <summary>The nodes that can serve reads now, preferred first.</summary>
    public IReadOnlyList<string> ReaderOrder { get; }

    public static RoleView Of(ClusterDataSource cluster)
    {
        var options = cluster.Options;
        var writerOrder = cluster.Writer.Nodes.Select(n => n.Name).ToList();
        var readerOrder = cluster.Readers.Nodes.Select(n => n.Name).ToList();
        var writers = writerOrder.Take(options.MaxWriters).ToHashSet(StringComparer.Ordinal);
        var rows = new List<NodeRoleRow>();
        foreach (var node in cluster.Nodes)
        {
            var s = node.GetStatistics();
            var lagging = s.ReplicationLag is { } lag && options.MaxReaderLag is { } max && lag > max;
            var role = !readerOrder.Contains(node.Name) && !writers.Contains(node.Name) ? "-"
                : writers.Contains(node.Name) ? options.WriterIsAlsoReader ? "writer+reader" : "writer"
                : lagging ? "lagging"
                : "reader";

            // As ClusterRoles settles a node: its uptime against the failback delay (a node with no uptime is settled).
            // A client that saw the node down waits the delay from then too; a fresh process like this one saw nothing.
            var settled = options.WriterFailbackDelay <= TimeSpan.Zero || s.Uptime is not { } uptime || uptime >= options.WriterFailbackDelay;
            rows.Add(new NodeRoleRow(node.Name, role, s.WriterRank, node.Priority, s.Uptime, s.ReplicationLag, s.ReadOnly, settled));
        }

        return new RoleView(options, rows, writerOrder, readerOrder);
    }

    /// <summary>Lines that name the writer and why, the writer order and the reader order.</summary>
    public IReadOnlyList<string> Explain()
    {
        var lines = new List<string>();
        var byName = Rows.ToDictionary(r => r.Name, StringComparer.Ordinal);
        var writers = WriterOrder.Take(Options.MaxWriters).ToList();
        if (writers.Count == 0)
        {
            var readOnly = Rows.Where(r => r.ReadOnly).Select(r => r.Name).ToList();
            lines.Add("writer: NONE: no node can take writes now" + (readOnly.Count > 0 ? $" ({string.Join(", ", readOnly)} read-only)" : string.Empty));
        }
        else
        {
            var first = byName[writers[0]];
            var why = new List<string> { Describe(first) };
            // Every node that could write but does not, with the first rule that puts it behind: a node with a lower rank
            // that has not settled yet is what an operator asks about after a restart.
            foreach (var later in WriterOrder.Skip(writers.Count))
            {
                why.Add($"ahead of {later} because {Ahead(byName[writers[^1]], byName[later])}");
            }

            foreach (var skipped in Rows.Where(r => !WriterOrder.Contains(r.Name)))
            {
                why.Add(skipped.ReadOnly ? $"{skipped.Name} is read-only" : $"{skipped.Name} cannot serve now");
            }

            lines.Add($"writer: {string.Join(", ", writers)} ({string.Join("; ", why)})");
        }

        lines.Add(string.Create(CultureInfo.InvariantCulture,
            $"writer order: {Join(WriterOrder)} (settled first, then priority, then rank, then declared order; failback delay {Format.Duration(Options.WriterFailbackDelay)}, max writers {Options.MaxWriters})"));
        var preferred = ReaderOrder.Where(n => byName[n].Role is "reader" or "writer+reader").ToList();
        var fallback = ReaderOrder.Except(preferred).Select(n => $"{n} ({byName[n].Role})").ToList();
        lines.Add($"reader order: {Join(preferred)}" +
            (fallback.Count > 0 ? $"; then, only when none of those can serve: {string.Join(", ", fallback)}" : string.Empty) +
            $" (max reader lag {(Options.MaxReaderLag is { } max ? max.ToString(CultureInfo.InvariantCulture) : "none")})");
        return lines;
    }

    /// <summary>A table row per node: role, and the data the roles come from.</summary>
    public static string[] Header => ["node", "role", "rank", "priority", "uptime", "settled", "lag", "read-only"];

    public IEnumerable<string[]> Table() => Rows.Select(r => new[]
    {
        r.Name,
        r.Role,
        r.Rank?.ToString(CultureInfo.InvariantCulture) ?? "-",
        r.Priority.ToString(CultureInfo.InvariantCulture),
        r.Uptime is { } uptime ? Format.Duration(uptime) : "-",
        r.Settled ? "yes" : "no",
        r.Lag?.ToString(CultureInfo.InvariantCulture) ?? "-",
        r.ReadOnly ? "yes" : "no",
    });

    private static string Join(IReadOnlyList<string> names) => names.Count == 0 ? "(none)" : string.Join(", ", names);

    private string Describe(NodeRoleRow row)
    {
        var settled = row.Uptime is { } uptime
            ? row.Settled ? $"settled: up {Format.Duration(uptime)}" : $"not settled: up {Format.Duration(uptime)} < failback delay {Format.Duration(Options.WriterFailbackDelay)}"
            : "uptime unknown";
        return string.Create(CultureInfo.InvariantCulture, $"{settled}, priority {row.Priority}, rank {row.Rank?.ToString(CultureInfo.InvariantCulture) ?? "none"}");
    }

    /// <summary>The first rule of the writer order that puts <paramref name="a"/> before <paramref name="b"/>.</summary>
    private string Ahead(NodeRoleRow a, NodeRoleRow b)
    {
        if (a.Settled != b.Settled)
        {
            return $"{b.Name} has not settled (up {(b.Uptime is { } up ? Format.Duration(up) : "?")} < failback delay {Format.Duration(Options.WriterFailbackDelay)})";
        }

        if (a.Priority != b.Priority)
        {
            return string.Create(CultureInfo.InvariantCulture, $"priority {a.Priority} < {b.Priority}");
        }

        if (a.Rank != b.Rank)
        {
            return a.Rank is null ? "?" : string.Create(CultureInfo.InvariantCulture, $"rank {a.Rank} < {(b.Rank is { } rank ? rank.ToString(CultureInfo.InvariantCulture) : "none")}");
        }

        return "it is declared first";
    }
}

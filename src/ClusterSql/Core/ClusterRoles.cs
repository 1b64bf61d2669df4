using System;
using System.Collections.Generic;
using System.Threading;

namespace ClusterSql.Core;

/// <summary>
/// The writer and reader orders of one cluster (DESIGN.md, "Roles"): a filter and an order over the same node snapshot,
/// computed from what the health probe reads from the cluster, and rebuilt only when that changes. The acquire path
/// takes the ordered snapshot like any other; <see cref="NodeSelector"/> keeps to the role's preferred group.
/// </summary>
/// <remarks>
/// The writer order is the same in every client without any coordination, because it derives only from what every
/// client reads from the cluster: nodes that have settled first (running, and seen usable, for at least
/// <see cref="ClusterOptions.WriterFailbackDelay"/>), then <see cref="ClusterNodeOptions.Priority"/>, then the cluster's
/// own rank (Galera: <c>wsrep_local_index</c>), then declared order. A failed writer hands over at once to the next in
/// that order; a node that comes back waits out the delay, so writes do not move back mid-burst.
/// </remarks>
internal sealed class ClusterRoles(ClusterContext context)
{
    private View? _view;

    /// <summary>The roles' orders over one node snapshot, valid until <see cref="RebuildAt"/> or the next change.</summary>
    internal sealed class View(int version, ClusterNode[] source, long rebuildAt, ClusterNode[] writers, ClusterNode[] readers, ClusterNode[] writerSet)
    {
        public int Version { get; } = version;

        public ClusterNode[] Source { get; } = source;

        /// <summary>When a node that is waiting out the failback delay settles, and the order may change by time alone.</summary>
        public long RebuildAt { get; } = rebuildAt;

        /// <summary>Nodes that may write (not read-only), in the agreed writer order.</summary>
        public ClusterNode[] Writers { get; } = writers;

        /// <summary>Every node, by reader tier: preferred readers, then the writers (unless they also read), then lagging nodes.</summary>
        public ClusterNode[] Readers { get; } = readers;

        /// <summary>The writers as the health probe sees them (usable per the probe); passive health may still skip one.</summary>
        public ClusterNode[] WriterSet { get; } = writerSet;
    }

    public View Get(ClusterNode[] nodes)
    {
        var view = Volatile.Read(ref _view);
        if (view is not null && view.Version == context.RolesVersion && ReferenceEquals(view.Source, nodes) &&
            (view.RebuildAt == long.MaxValue || context.TimeProvider.GetTimestamp() < view.RebuildAt))
        {
            // The common case reads no clock: only a node waiting out its failback delay makes time matter.
            return view;
        }

        return Rebuild(nodes, context.TimeProvider.GetTimestamp());
    }

    private View Rebuild(ClusterNode[] nodes, long now)
    {
        // Read before building: a change while building bumps it again, and the next acquire rebuilds.
        var version = context.RolesVersion;
        var options = context.Options;
        var rebuildAt = long.MaxValue;

        var writers = new List<(ClusterNode Node, bool Settled)>(nodes.Length);
        foreach (var node in nodes)
        {
            if (node.Report is { ReadOnly: true })
            {
                continue;
            }

            var settledAt = SettledAt(node);
            var settled = now >= settledAt;
            if (!settled)
            {
                rebuildAt = Math.Min(rebuildAt, settledAt);
            }

            writers.Add((node, settled));
        }

        writers.Sort(static (x, y) =>
        {
            if (x.Settled != y.Settled)
            {
                return x.Settled ? -1 : 1;
            }

            if (x.Node.Priority != y.Node.Priority)
            {
                return x.Node.Priority.CompareTo(y.Node.Priority);
            }

            var rankX = x.Node.Report?.WriterRank ?? long.MaxValue;
            var rankY = y.Node.Report?.WriterRank ?? long.MaxValue;
            return rankX != rankY ? rankX.CompareTo(rankY) : x.Node.DeclaredIndex.CompareTo(y.Node.DeclaredIndex);
        });

        var writerOrder = new ClusterNode[writers.Count];
        var writerSet = new List<ClusterNode>(options.MaxWriters);
        for (var i = 0; i < writerOrder.Length; i++)
        {
            var node = writers[i].Node;
            writerOrder[i] = node;
            if (writerSet.Count < options.MaxWriters && node.DownReason is null && !node.IsRemoved)
            {
                writerSet.Add(node);
            }
        }

        // Readers: tier 0 serves reads; tier 1 are the writers (reads move there only when no other node can serve);
        // tier 2 lag beyond MaxReaderLag, least lag first.
        var readers = new List<(ClusterNode Node, int Tier, long Lag)>(nodes.Length);
        foreach (var node in nodes)
        {
            var lag = node.Report?.Lag ?? 0;
            var tier = node.IsLagging(node.Report?.Lag) ? 2 : !options.WriterIsAlsoReader && writerSet.Contains(node) ? 1 : 0;
            readers.Add((node, tier, tier == 2 ? lag : 0));
        }

        readers.Sort(static (x, y) =>
            x.Tier != y.Tier ? x.Tier.CompareTo(y.Tier) :
            x.Lag != y.Lag ? x.Lag.CompareTo(y.Lag) :
            x.Node.DeclaredIndex.CompareTo(y.Node.DeclaredIndex));
        var readerOrder = new ClusterNode[readers.Count];
        for (var i = 0; i < readerOrder.Length; i++)
        {
            readerOrder[i] = readers[i].Node;
            readers[i].Node.ReaderTier = readers[i].Tier;
        }

        var view = new View(version, nodes, rebuildAt, writerOrder, readerOrder, [.. writerSet]);
        Volatile.Write(ref _view, view);
        return view;
    }

    /// <summary>
    /// When a node may take the writer role from a node that has run longer: <see cref="ClusterOptions.WriterFailbackDelay"/>
    /// after its server started (as it reports its uptime) and after this data source last saw it down. The first is the
    /// same for every client; the second differs between clients by at most one health-check interval.
    /// </summary>
    private long SettledAt(ClusterNode node)
    {
        var delay = context.Options.WriterFailbackDelay;
        if (delay <= TimeSpan.Zero)
        {
            return long.MinValue;
        }

        var settledAt = long.MinValue;
        if (node.Report is { StartedStamp: not 0 } report)
        {
            settledAt = context.AddToTimestamp(report.StartedStamp, delay);
        }

        var lastDown = node.LastSeenDownStamp;
        if (lastDown != 0)
        {
            settledAt = Math.Max(settledAt, context.AddToTimestamp(lastDown, delay));
        }

        return settledAt;
    }
}

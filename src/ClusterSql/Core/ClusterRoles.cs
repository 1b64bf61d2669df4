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

        lock (_rebuildLock)
        {
            // One rebuild at a time: two that overlap could leave the older one's reader tiers on the nodes under the newer
            // view. A caller that waited finds the view another one just built.
            view = Volatile.Read(ref _view);
            if (view is not null && view.Version == context.RolesVersion && ReferenceEquals(view.Source, nodes) &&
                (view.RebuildAt == long.MaxValue || context.TimeProvider.GetTimestamp() < view.RebuildAt))
            {
                return view;
            }

            return Rebuild(nodes, context.TimeProvider.GetTimestamp());
        }
    }

    private readonly Lock _rebuildLock = new();

    private View Rebuild(ClusterNode[] nodes, long now)
    {
        // Read before building: a change while building bumps it again, and the next acquire rebuilds.
        var version = context.RolesVersion;
        var options = context.Options;
        var rebuildAt = long.MaxValue;

        // Ranks of one membership version only: while some usable node still reports an older version (its check has not
        // run since the change), the ranks are a mix of two numberings, and the previous order stands for those nodes.
        var previous = Volatile.Read(ref _view);
        long? newest = null;
        var mixed = false;
        foreach (var node in nodes)
        {
            if (node.DownReason is null && node.Report?.Membership is { } membership)
            {
                mixed |= newest is not null && newest != membership;
                newest = newest is null ? membership : Math.Max(newest.Value, membership);
            }
        }

        // Once the probe has reported any node's role, a node it has not yet reported on is no writer: before its first
        // healthy check its role is unknown (a PostgreSQL standby, a primary a promotion left behind), and putting it in
        // the writer order, even last, would make it a failover target. While no node has reported (no probe, or the
        // first checks still running, or none reachable yet) nothing is known about any node, and the declared order
        // stands, as without a probe.
        var rolesKnown = false;
        foreach (var node in nodes)
        {
            rolesKnown |= node.Report is not null;
        }

        var writers = new List<(ClusterNode Node, bool Settled, long Rank)>(nodes.Length);
        foreach (var node in nodes)
        {
            if (node.Report is { ReadOnly: true } || (rolesKnown && node.Report is null))
            {
                continue;
            }

            var settledAt = SettledAt(node);
            var settled = now >= settledAt;
            if (!settled)
            {
                rebuildAt = Math.Min(rebuildAt, settledAt);
            }

            var rank = node.Report?.WriterRank ?? long.MaxValue;
            if (mixed && previous is not null)
            {
                var before = Array.IndexOf(previous.Writers, node);
                rank = before >= 0 ? before : long.MaxValue;
            }

            writers.Add((node, settled, rank));
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

            return x.Rank != y.Rank ? x.Rank.CompareTo(y.Rank) : x.Node.DeclaredIndex.CompareTo(y.Node.DeclaredIndex);
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
    /// after its server started, as the server reports its uptime.
    /// </summary>
    /// <remarks>
    /// Only what every client reads from the cluster counts, never what one client saw: a client that remembered seeing a
    /// node down (a healed partition, a resumed hang) would keep writes off it for the delay while a client started
    /// afterwards, without that memory, would write there, and the two would disagree for the whole delay. So a node
    /// that comes back without restarting takes its place in the order again at once, in every client within one health
    /// check of each other; a restarted node (a crash, an upgrade: the common case) waits out the delay.
    /// </remarks>
    private long SettledAt(ClusterNode node)
    {
        var delay = context.Options.WriterFailbackDelay;
        return delay > TimeSpan.Zero && node.Report is { StartedStamp: not 0 } report
            ? context.AddToTimestamp(report.StartedStamp, delay)
            : long.MinValue;
    }
}

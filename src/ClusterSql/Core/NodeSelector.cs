using System;
using System.Collections.Generic;
using System.Threading;

namespace ClusterSql.Core;

/// <summary>Which nodes of a role's ordered snapshot form its preferred group (<see cref="ClusterRoles"/> orders them).</summary>
internal enum RoleGroup
{
    /// <summary>No role: the cluster's policy over every node.</summary>
    None,

    /// <summary>The first <see cref="ClusterOptions.MaxWriters"/> usable nodes of the writer order; later ones only on failure.</summary>
    Writers,

    /// <summary>The usable nodes of reader tier 0 (<see cref="ClusterNode.ReaderTier"/>); later tiers only when none can serve.</summary>
    Readers,
}

/// <summary>Whether, and how, selection picked a node to explore it (<see cref="ClusterNode.TryClaimExploration"/>).</summary>
internal enum Exploration : byte
{
    /// <summary>Picked for its cost, its room or its turn.</summary>
    None,

    /// <summary>
    /// Explored, and believed about as fast as the node it was compared with (or hedging is off, or the acquire is
    /// synchronous): its caller waits for it as for any pick.
    /// </summary>
    Free,

    /// <summary>
    /// Explored, and believed slower: a hedge token was withdrawn when it was claimed, which the acquire spends on
    /// starting the best candidate beside it (<see cref="Acquirer.HedgeDelayFor"/>) or gives back.
    /// </summary>
    Paid,
}

/// <summary>Orders a node snapshot by the acquire policy.</summary>
internal sealed class NodeSelector
{
    private readonly AcquirePolicy _policy;
    private readonly RoleGroup _group;
    private readonly int _maxWriters;
    private readonly Random _random;
    private readonly long _explorationTicks;
    private int _roundRobin = -1;
    private ClusterNode? _warm;

    /// <summary>
    /// How much cheaper than the warm node (<see cref="NoteWin"/>) another node must look before an idle client leaves it.
    /// Not 1: the warm node's estimate is fresh and the other's decays while nobody samples it, so with a plain
    /// comparison a sequential client would change nodes every few acquires, which is what the warm node is there to avoid.
    /// </summary>
    internal const double WarmAdvantage = 1.5;

    /// <summary>
    /// The least number of a data source's opens between two explorations of one node: explorations of a slow node stay
    /// under 5% of a client's opens at any acquire rate (with only the time interval, a client making five acquires a
    /// second explored a slow node on one in five).
    /// </summary>
    internal const int ExplorationOpens = 20;

    /// <param name="options">The cluster's settings (policy, decay time, writer count).</param>
    /// <param name="timeProvider">The clock.</param>
    /// <param name="random">The source of the random pairs.</param>
    /// <param name="group">
    /// For a role's acquires: the snapshot is already in the role's order, and the pick is latency-aware within the
    /// role's preferred group, then the rest in order (a role is a filter and an order over the same acquire path).
    /// </param>
    public NodeSelector(ClusterOptions options, TimeProvider timeProvider, Random random, RoleGroup group = RoleGroup.None)
    {
        _group = group;
        _policy = group == RoleGroup.None ? options.Policy : AcquirePolicy.LatencyAware;
        _maxWriters = options.MaxWriters;
        _random = random;

        // A tenth of the decay time (1 s by default), and ExplorationOpens of the data source's opens: at most one
        // exploratory open per node per interval (but for a node warming up, ClusterNode.TryClaimExploration), and at
        // most a twentieth of the opens per node.
        _explorationTicks = (long)(options.LatencyDecayTime.TotalSeconds / 10 * timeProvider.TimestampFrequency);
    }

    /// <summary>The policy this selector applies: a role's is always latency-aware within its group, whatever the cluster's.</summary>
    public AcquirePolicy Policy => _policy;

    /// <summary>Whether this selector serves a role (its snapshot in the role's order, a group it prefers).</summary>
    public bool IsRole => _group != RoleGroup.None;

    /// <summary>
    /// The node for the first attempt, without allocating; null when no node can serve, or for
    /// <see cref="AcquirePolicy.Race"/>, which starts every node at once.
    /// </summary>
    /// <param name="nodes">The node snapshot.</param>
    /// <param name="now">The acquire's clock reading.</param>
    /// <param name="payFrom">
    /// The hedge budget that pays for exploring a node believed slower (<see cref="Exploration.Paid"/>); null when an
    /// exploration is free: hedging is off, or the acquire is synchronous and cannot hedge.
    /// </param>
    /// <param name="exploration">
    /// Whether this very call claimed the node's exploration: a paid one's caller does not wait on it, or only the best
    /// candidate's hedge delay while the node's latency is unproven (<see cref="Acquirer.HedgeDelayFor"/>), and the
    /// acquire holds its hedge token. Said by the claim itself, never inferred later from the node's state: another
    /// acquire in the same clock tick that picks the node for its cost is no exploration.
    /// </param>
    public ClusterNode? PickFirst(ClusterNode[] nodes, long now, HedgeBudget? payFrom, out Exploration exploration)
    {
        exploration = Exploration.None;
        return _group != RoleGroup.None ? PickInGroup(nodes, now, payFrom, ref exploration) : _policy switch
        {
            AcquirePolicy.LatencyAware => PickTwoChoices(nodes, now, payFrom, ref exploration),
            AcquirePolicy.FailOver => PickFailOver(nodes, now),
            AcquirePolicy.RoundRobin => PickRoundRobin(nodes, now),
            _ => null,
        };
    }

    /// <summary>
    /// Every node that may be tried, best first, except <paramref name="exclude"/>. In panic (nothing can serve) the
    /// ejected nodes count too.
    /// </summary>
    public List<ClusterNode> Order(ClusterNode[] nodes, long now, ClusterNode? exclude, bool panic)
    {
        if (_group != RoleGroup.None)
        {
            return OrderGroup(nodes, now, exclude, panic);
        }

        // Round robin goes on cyclically after the node it started with, or from the next turn.
        var start = 0;
        if (_policy == AcquirePolicy.RoundRobin && nodes.Length > 0)
        {
            var excluded = exclude is null ? -1 : Array.IndexOf(nodes, exclude);
            start = excluded >= 0 ? excluded + 1 : (int)((uint)Interlocked.Increment(ref _roundRobin) % (uint)nodes.Length);
        }

        var order = new List<ClusterNode>(nodes.Length);
        for (var k = 0; k < nodes.Length; k++)
        {
            var node = nodes[(start + k) % nodes.Length];
            if (node != exclude && (panic ? node.CanServeInPanic : node.CanServe(now)))
            {
                order.Add(node);
            }
        }

        switch (_policy)
        {
            case AcquirePolicy.LatencyAware:
                // Shuffle first so that nodes of equal cost (no samples yet) share the load.
                Shuffle(order);
                order.Sort((a, b) => a.Cost(now).CompareTo(b.Cost(now)));
                break;
            case AcquirePolicy.FailOver:
                order.Sort(static (a, b) => a.Priority != b.Priority ? a.Priority.CompareTo(b.Priority) : a.DeclaredIndex.CompareTo(b.DeclaredIndex));
                break;
        }

        MoveFullPoolsLast(order);
        return order;
    }

    /// <summary>
    /// A node whose pool is lent out in full would make the open wait for the application to return a connection;
    /// any node with room comes first, in the policy's order. Not for FailOver: its order is the user's (often one
    /// writer), and only a failure moves it on.
    /// </summary>
    private void MoveFullPoolsLast(List<ClusterNode> order)
    {
        if (_policy == AcquirePolicy.FailOver)
        {
            return;
        }

        List<ClusterNode>? full = null;
        var kept = 0;
        for (var i = 0; i < order.Count; i++)
        {
            // Read once per node: a node that fills or empties meanwhile is neither dropped nor tried twice.
            var node = order[i];
            if (node.IsAtCapacity)
            {
                (full ??= []).Add(node);
            }
            else
            {
                order[kept++] = node;
            }
        }

        if (full is not null)
        {
            order.RemoveRange(kept, order.Count - kept);
            order.AddRange(full);
        }
    }

    /// <summary>
    /// The node that served this data source's last acquire. While the client holds no connection on it and has no open
    /// in progress there (a sequential client), the next acquire goes back to it unless the other of its pair looks
    /// clearly cheaper (<see cref="WarmAdvantage"/>): its server session, the server thread behind it and its caches are
    /// warm. Spreading a sequential client's opens over equal nodes cost a quarter of each pooled open on the loopback
    /// cluster (docs/benchmarks.md: a client rotating over the nodes without any cluster logic paid the same), and
    /// gained nothing: with one acquire at a time there is no load to spread. A client that holds a connection on its
    /// warm node, or is opening there, is spreading load, and takes two random choices as before.
    /// </summary>
    public void NoteWin(ClusterNode node)
    {
        if (_policy == AcquirePolicy.LatencyAware && !ReferenceEquals(Volatile.Read(ref _warm), node))
        {
            // Written only on a change: many threads winning on the same node do not share a written cache line.
            Volatile.Write(ref _warm, node);
        }
    }

    private ClusterNode? PickTwoChoices(ClusterNode[] nodes, long now, HedgeBudget? payFrom, ref Exploration exploration)
    {
        if (nodes.Length == 1)
        {
            return nodes[0].CanServe(now) ? nodes[0] : null;
        }

        if (nodes.Length > 1 && IdleWarm(now) is { } warm)
        {
            // The warm node against one other, at random; a warm node no longer in this snapshot is not looked at.
            var w = Array.IndexOf(nodes, warm);
            if (w >= 0)
            {
                var o = _random.Next(nodes.Length - 1);
                return ChooseWarmOrOther(nodes, warm, nodes[o >= w ? o + 1 : o], now, payFrom, ref exploration);
            }
        }

        if (nodes.Length > 1)
        {
            var (i, j) = RandomPair(nodes.Length);
            ClusterNode a = nodes[i], b = nodes[j];
            if (a.CanServe(now) && b.CanServe(now) && a.IsAtCapacity == b.IsAtCapacity)
            {
                return ChooseOfPair(nodes, a, b, now, payFrom, ref exploration);
            }
        }

        // One of the pair cannot serve, or its pool is lent out in full: the cheapest node that can, with room in its pool
        // if any has, scanning from a random place.
        ClusterNode? best = null;
        var bestCost = double.MaxValue;
        var bestFull = true;
        var offset = nodes.Length > 1 ? _random.Next(nodes.Length) : 0;
        for (var k = 0; k < nodes.Length; k++)
        {
            var node = nodes[(offset + k) % nodes.Length];
            if (node.CanServe(now))
            {
                var full = node.IsAtCapacity;
                var cost = node.Cost(now);
                if (best is null || (bestFull && !full) || (full == bestFull && cost < bestCost))
                {
                    best = node;
                    bestCost = cost;
                    bestFull = full;
                }
            }
        }

        return best;
    }

    /// <summary>
    /// The warm node (idle, usable, with room) against another: the other only when it is due an exploration, or clearly
    /// cheaper (<see cref="WarmAdvantage"/>).
    /// </summary>
    private ClusterNode ChooseWarmOrOther(ClusterNode[] nodes, ClusterNode warm, ClusterNode other, long now, HedgeBudget? payFrom, ref Exploration exploration)
    {
        if (other == warm || !other.CanServe(now) || other.IsAtCapacity)
        {
            return warm;
        }

        if (TryExplore(nodes, other, warm, now, payFrom, ref exploration))
        {
            return other;
        }

        // The other node's cost is bounded before it is computed: the bounds decide only where the exact comparison
        // decides the same (ClusterNode.CostBounds), so the pick is unchanged, and they spare the decay of a node not
        // sampled for a while, the costly one (the warm node's, sampled moments ago, takes the series' short branch).
        var warmCost = warm.Cost(now);
        var (otherLower, otherUpper) = other.CostBounds(now);
        if (otherLower * WarmAdvantage >= warmCost)
        {
            return warm;
        }

        if (otherUpper * WarmAdvantage < warmCost)
        {
            return other;
        }

        return other.Cost(now) * WarmAdvantage < warmCost ? other : warm;
    }

    /// <summary>The warm node (<see cref="NoteWin"/>) when this client is idle on it and it can serve with room, else null.</summary>
    private ClusterNode? IdleWarm(long now) =>
        Volatile.Read(ref _warm) is { IsIdle: true } warm && warm.CanServe(now) && !warm.IsAtCapacity ? warm : null;

    /// <summary>
    /// Two different indices below <paramref name="count"/> (at least 2), every ordered pair equally likely, from one
    /// random draw: one of count × (count - 1) outcomes (a draw costs about as much as the division that splits it).
    /// </summary>
    private (int First, int Second) RandomPair(int count)
    {
        var others = count - 1;
        var i = Math.DivRem(_random.Next(count * others), others, out var j);
        return (i, j >= i ? j + 1 : j);
    }

    /// <summary>Claims <paramref name="node"/>'s exploration, if due, against <paramref name="partner"/> (the node picked otherwise).</summary>
    private bool TryExplore(ClusterNode[] nodes, ClusterNode node, ClusterNode partner, long now, HedgeBudget? payFrom, ref Exploration exploration)
    {
        if (!node.TryClaimExploration(now, _explorationTicks, nodes, ExplorationOpens, partner, payFrom, out var paid))
        {
            return false;
        }

        exploration = paid ? Exploration.Paid : Exploration.Free;
        return true;
    }

    /// <summary>The better of two usable nodes: an exploration due first, then the cheaper.</summary>
    private ClusterNode ChooseOfPair(ClusterNode[] nodes, ClusterNode a, ClusterNode b, long now, HedgeBudget? payFrom, ref Exploration exploration)
    {
        if (TryExplore(nodes, a, b, now, payFrom, ref exploration))
        {
            return a;
        }

        if (TryExplore(nodes, b, a, now, payFrom, ref exploration))
        {
            return b;
        }

        // No node is sampled before it is judged, not even one still warming up (its estimate only its fastest open so
        // far): 1,000 clients starting together that each sampled every node three times first put a weak node's share
        // of their opens on it regardless of its latency, and reached 52% of the oracle's throughput over 9 nodes of
        // unequal capacity in their first seconds (92% without; docs/benchmarks-fleet.md). A node never sampled costs
        // nothing and is tried at once; one whose first open was cold (JIT, the first login where later opens are
        // pooled) is explored again after ExplorationOpens of the data source's opens (ClusterNode.TryClaimExploration),
        // and its estimate keeps its fastest warm-up open.
        return b.Cost(now) < a.Cost(now) ? b : a;
    }

    /// <summary>
    /// Whether a slow attempt may start a hedge on the candidate at <paramref name="index"/> of <see cref="Order"/>'s list.
    /// The writer role hedges only within its writers: a hedge to the next node of the order would put writes on a second
    /// node while the writer is merely slow, which is what the role exists to prevent. A failed attempt still moves on.
    /// </summary>
    /// <param name="index">The candidate's index in the list <see cref="Order"/> returned.</param>
    /// <param name="firstExcluded">Whether that list left out the first attempt's node.</param>
    public bool MayHedgeTo(int index, bool firstExcluded) =>
        _group != RoleGroup.Writers || index + (firstExcluded ? 1 : 0) < _maxWriters;

    /// <summary>
    /// Whether a slow attempt on <paramref name="relieved"/> may start a hedge on the candidate at <paramref name="index"/>
    /// of <see cref="Order"/>'s list <paramref name="candidates"/>: the writer role as <see cref="MayHedgeTo(int, bool)"/>;
    /// the reader role only to a node of the same or a better reader tier. Reads move to the writers (tier 1) or to
    /// lagging nodes (tier 2) when no better node can serve, as ClusterOptions documents; a reader that is merely slow
    /// must not put its reads on the writer. A failed attempt still moves on.
    /// </summary>
    public bool MayHedgeTo(List<ClusterNode> candidates, int index, bool firstExcluded, ClusterNode relieved) => _group switch
    {
        RoleGroup.Writers => MayHedgeTo(index, firstExcluded),
        RoleGroup.Readers => index < candidates.Count && candidates[index].ReaderTier <= relieved.ReaderTier,
        _ => true,
    };

    /// <summary>Whether a usable node, the <paramref name="usableBefore"/>-th usable one in the role's order, is in its preferred group.</summary>
    private bool InGroup(ClusterNode node, int usableBefore) =>
        _group == RoleGroup.Writers ? usableBefore < _maxWriters : node.ReaderTier == 0;

    /// <summary>
    /// A role's first attempt, without allocating: two choices within the preferred group (one writer: the first usable
    /// node of the agreed order), else the first usable node after it.
    /// </summary>
    private ClusterNode? PickInGroup(ClusterNode[] nodes, long now, HedgeBudget? payFrom, ref Exploration exploration)
    {
        var count = 0;
        ClusterNode? firstOutside = null;
        for (var k = 0; k < nodes.Length; k++)
        {
            var node = nodes[k];
            if (node.CanServe(now))
            {
                if (InGroup(node, count))
                {
                    count++;
                }
                else
                {
                    firstOutside ??= node;
                }
            }
        }

        if (count <= 1)
        {
            return count == 0 ? firstOutside : NthInGroup(nodes, now, 0);
        }

        if (_group == RoleGroup.Readers && IdleWarm(now) is { ReaderTier: 0 } warm)
        {
            // A sequential reader stays on its warm reader, as PickTwoChoices does (the writers' group is usually one
            // node, and its order is the agreed one). The other of the pair is any other node of the group.
            var other = NthInGroup(nodes, now, _random.Next(count));
            return ChooseWarmOrOther(nodes, warm, other == warm ? NthInGroup(nodes, now, _random.Next(count)) ?? warm : other ?? warm, now, payFrom, ref exploration);
        }

        var (i, j) = RandomPair(count);
        var a = NthInGroup(nodes, now, i);
        var b = NthInGroup(nodes, now, j);
        if (a is null || b is null)
        {
            return a ?? b ?? firstOutside;
        }

        if (a.IsAtCapacity != b.IsAtCapacity && _group == RoleGroup.Readers)
        {
            return a.IsAtCapacity ? b : a;
        }

        return ChooseOfPair(nodes, a, b, now, payFrom, ref exploration);
    }

    private ClusterNode? NthInGroup(ClusterNode[] nodes, long now, int n)
    {
        var count = 0;
        foreach (var node in nodes)
        {
            if (node.CanServe(now) && InGroup(node, count))
            {
                if (count == n)
                {
                    return node;
                }

                count++;
            }
        }

        // A node changed state between the two scans: the caller's pair is then one node short, never wrong.
        return null;
    }

    /// <summary>A role's candidates: the preferred group by cost, then the rest in the role's order.</summary>
    private List<ClusterNode> OrderGroup(ClusterNode[] nodes, long now, ClusterNode? exclude, bool panic)
    {
        var group = new List<ClusterNode>(nodes.Length);
        List<ClusterNode>? rest = null;
        var usable = 0;
        foreach (var node in nodes)
        {
            if (node == exclude && !panic && node.IsInService)
            {
                // The first attempt's node still counts towards the group (MaxWriters), or a third node would become a writer.
                // Whatever this client's ejection or trial state says (the acquire may hold the half-open node's trial, so
                // CanServe is false): the writers are agreed from the cluster's reports, not from one client's failures.
                usable++;
                continue;
            }

            if (node == exclude || !(panic ? node.CanServeInPanic : node.CanServe(now)))
            {
                continue;
            }

            if (!panic && InGroup(node, usable))
            {
                group.Add(node);
            }
            else
            {
                (rest ??= []).Add(node);
            }

            usable++;
        }

        Shuffle(group);
        group.Sort((a, b) => a.Cost(now).CompareTo(b.Cost(now)));
        if (rest is not null)
        {
            group.AddRange(rest);
        }

        if (_group == RoleGroup.Readers)
        {
            MoveFullPoolsLast(group);
        }

        return group;
    }

    private static ClusterNode? PickFailOver(ClusterNode[] nodes, long now)
    {
        // The declared order (then Priority) alone: a full pool makes the open wait rather than move the load (often a
        // single writer) to the next node.
        ClusterNode? best = null;
        foreach (var node in nodes)
        {
            if (node.CanServe(now) && (best is null || node.Priority < best.Priority))
            {
                best = node;
            }
        }

        return best;
    }

    private ClusterNode? PickRoundRobin(ClusterNode[] nodes, long now)
    {
        if (nodes.Length == 0)
        {
            return null;
        }

        var start = (int)((uint)Interlocked.Increment(ref _roundRobin) % (uint)nodes.Length);
        ClusterNode? full = null;
        for (var k = 0; k < nodes.Length; k++)
        {
            var node = nodes[(start + k) % nodes.Length];
            if (node.CanServe(now))
            {
                if (!node.IsAtCapacity)
                {
                    return node;
                }

                full ??= node;
            }
        }

        return full;
    }

    private void Shuffle(List<ClusterNode> list)
    {
        for (var i = list.Count - 1; i > 0; i--)
        {
            var j = _random.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }
}

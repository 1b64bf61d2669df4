namespace ClusterSql.Benchmarks.Fleet;

/// <summary>The prose of docs/benchmarks-fleet.md, kept beside the numbers it discusses.</summary>
internal static class FleetDiscussion
{
    public static string Model(double fleetRate) => $"""
        ## What is simulated, and what is not

        - **Clients**: N instances, each its own real `ClusterDataSource` built with `ClusterDataSourceBuilder` (defaults
          unless a row says otherwise): the real acquire path, two-choices selector, peak-EWMA estimator, exploration,
          ejection with backoff and half-open trial, and per-client hedge budget. Each has its own seeded `Random`.
        - **One virtual clock** (`VirtualClock`, a `TimeProvider` whose timers are events) shared by every client and
          server. The driver runs one event at a time; work the acquire path queues to the thread pool (a timer's wake-up)
          is waited for after each event, so nothing runs concurrently and a run depends on its seed only.
        - **Servers** (shared by all clients): an open takes base 2 ms × slowdown × load × U(0.8, 1.2) (+ an optional
          tail); with a capacity c, load = max(1, (opens in progress + 1) / c), fixed when the open starts; a down server
          refuses in 0.5 ms. Opens are unpooled (`Pooling=false`): every acquire is a server login, the worst case for
          latency, capacity and extra connections.
        - **Load**: open loop, Poisson arrivals, {fleetRate:0} acquires/s across the fleet whatever N (so 50/s per client
          at N = 100, 5/s at N = 1,000), each connection held 5 ms; the capacity scenario is a closed loop.
        - **Not modelled**: provider pools (idle connections that make most real acquires synchronous and hide open
          latency), health probes (none configured: only passive ejection), network partitions and hangs to the connect
          timeout, query load on the servers (only handshakes cost), client CPU and GC, clients starting at different
          times, processor sharing inside a server (an open's latency is fixed when it starts).

        """;

    public const string Text = """
        ## Discussion (numbers as measured at this commit; the tables above are regenerated, this text is not)

        **Recovery storm: no storm.** In no run did the recovered node get more than 1× its fair share in the first second,
        nor more than about 1.4× in any 100 ms. The pile-on feared from every client's ejection ending at once does not
        happen: clients see the outage at different instants (a client finds the node down only when it picks it, and
        three failures in a row eject it), the backoff doubles (1, 2, 4, 8 s ±10%), each client sends one trial, and a
        client whose trial succeeds returns gradually (two choices, pending count). The real cost is the other way round:
        after an outage the node stays lightly used for seconds, because each client waits out its own doubled ejection
        before its trial. A longer BaseEjectionTime (5 s) makes that worse without any storm to prevent, so the ejection
        defaults stay. A health probe (every client reads it at its own interval) brings a recovered node back sooner.

        **3× slow node: met everywhere (at most 1.4% now, 3.1% when this paragraph was written).** Before this commit
        1,000 clients × 3 nodes gave the slow node 15.5%: exploration was one exploratory acquire per node per second
        whatever the client's rate, so 1,000 clients making 5 acquires a second each sent one in five to the slow node.
        **Changed:** a node is explored at most once per second *and* once per 20 of the client's opens
        (NodeSelector.ExplorationOpens), so exploration stays under 5% of a client's opens per node at any rate; tested
        at 5, 50 and 1,000 acquires a second. LatencyDecayTime stays 10 s: with the count rule a 30 s decay changes
        nothing measurable here, and would make a recovered node three times slower to win back its share. **Also
        changed:** an exploration of a node believed at least 2× slower than the best candidate starts that candidate at
        once (a sample, not a bet), so a caller no longer waits a hedge delay for a sample.

        **Later, that exploration's hedge is paid when the exploration is claimed.** A client with no token left used to
        explore anyway and make its caller wait for the slow open (one paced acquire of 20 at 255 ms on the real cluster
        with galera1 slowed). Giving such an exploration a free hedge spent past the budget here (tail+slowdown 1,000 ×
        9: 0.13 hedges per acquire) and was reverted. Now the token is withdrawn with the claim, the exploration waits
        for an acquire that has one (up to five exploration intervals, then it goes unpaid), and the token goes back
        when no hedge was started. Every run stayed within the budget (tail+slowdown 1,000 × 9: 0.103 at that commit,
        0.104 now); the capacity figures moved by -1.4 to +1.2 points, within what any change to the random draws moves
        them.

        **Capacity-limited nodes: met at 100 clients; at 1,000, met over 9 nodes (92.5% in the first seconds, 94.4%
        steady) and over 3 steady (92.0%), missed over 3 in the first seconds (87.0%).** Figures in this paragraph are
        as measured when it was written (86.6% and 89.7% over 3 nodes, 92.1% and 94.1% over 9); the next one changed them. Every capacity figure is now the mean of 3
        seeds: one seed's ratio moved by up to 1.5 points with any change to the random draws, as much as the margins
        judged. The table measures two windows of the same scenario: t = 1-3 s, where the earlier pages' only figure came
        from, and t = 10-20 s. **Changed:** selection no longer samples a node before it judges it. A node with fewer than
        three successful opens used to win its pair whatever its latency, so that one cold first open (JIT, the process's
        first connection) would not keep it out; but 1,000 clients starting together then each sampled all nine nodes
        three times, a weak node took a ninth of their opens while it had a twenty-first of the capacity, and the fleet
        reached 52.2% of the oracle over 9 nodes in its first seconds (mean of the same 3 seeds; p99 434 ms with seed 1).
        Instead, a node with between one and two successes, idle and not failing, is due for exploration after 20 of the
        client's opens, without waiting a tenth of the decay time: a cold first open, or a first login where later opens
        are pooled, steers a busy client's load for a few dozen opens, not a second, and a node that hangs after its
        first success is not explored again before its timeout (all three tested). Before and after, 3 seeds each:
        1,000 × 9 first seconds 52.2% → 92.1%, steady 92.2% → 94.1%; 1,000 × 3 first seconds 85.0% → 86.6%, steady
        89.7% → 89.7%. Tried and not kept (one seed): no warm-up rule at all (91.3% and 85.9% in the first seconds, but
        97% at 100 × 3, where a cold open kept its node out for a second); sampling again only a node whose one sample was
        4× (or 10×, 30×) the other of its pair (91.4% over 3 nodes in the first seconds, 70% over 9). What it costs: a
        recovered node takes a little longer to win its share back after an outage (1,000 × 9, down 3 s: 0.40× its fair
        share in the first second, was 0.49×), and healthy fleets hedge a little more (1,000 × 3: 0.010 hedges per
        acquire, was 0.004): a node still warming up has a wide hedge delay (its deviation starts at half its one
        sample), so its early explorations count as explorations of a slower node and start the best node beside them.
        At the start every client has one acquire at a time, so the fleet's load on a server shows only through latency
        samples; over 3 nodes its first seconds stay 3.4 points short. Steady, the gap to the oracle is mostly hedges:
        with HedgeBudget = 0 the same fleets reach 95.9% (3 nodes) and 98.1% (9 nodes), since with every node busy a
        hedge is a second login on a server that has no room either; over 3 nodes that gap was the 0.3 points missed.
        Tried and not kept: deferring a hedge until the slow attempt has run as long as the next candidate's cost
        (91.3% over 3 nodes steady, tail p99 unchanged); unbounded, it sat before the hedge rescue, so a candidate with a
        failure penalty or many pending opens could hold a caller on a hung node far longer. A version bounded by the
        rescue time, with fault tests for those cases, is the next step. HedgeBudget stays 0.1: it is what keeps a hung or blackholed node from costing
        a caller its connect timeout on the real cluster (the fault tests run with it), which this closed loop of
        equally busy nodes does not show. A longer decay (30 s) is worse steady over 3 nodes (78.0%). Closing the last
        start-up gap needs a signal that reflects the fleet from the first acquire (a server-side load figure from the
        health probe, such as Threads_running, folded into the cost), which is left for later and said so in the
        README.

        **Later, a paid exploration of a node whose latency is unproven waits the fastest candidate's delay.** A node
        with no successful open yet has the capped hedge delay, and one with one or two has three times its fastest sample
        (the deviation starts at half of it), so a client's first explorations of every node were nearly always "of a
        slower node" and started the best candidate at once: an open more each. Now, while a node has fewer than three
        successes and has not failed since, the caller waits the lesser of its delay and the fastest usable candidate's
        first (the token is still paid at the claim, so the hedge is certain then): a node that was only cold answers
        within it and the token goes back. A node that fails is hedged at once, as before. Before → after, 3 seeds for
        capacity: healthy hedges per acquire 1,000 × 3 0.0099 → 0.0012 and 1,000 × 9 0.0138 → 0.0013; capacity 1,000 × 3
        steady 89.7% → **92.0%** (met; 95.9% without hedges), first seconds 86.6% → 87.0% (88.3% without hedges: the start
        is learning, not hedging); 1,000 × 9 92.1% → 92.5% and 94.1% → 94.4%. Recovery storms hedge less (1,000 × 3, down
        10 s: 0.0137 → 0.0110). What it costs: the 3× slow node takes 0.3% and 1.4% at 1,000 clients (0.1% and 0.6%
        before), and the fleet's p99 with it rises from 2.40 to 5.10 ms (1,000 × 3) and 5.02 to 5.64 ms (1,000 × 9). At 1,000 clients each client makes about 50 acquires in the whole run, and its two early
        explorations of the slow node (4% of them) now wait about as long as the slow open itself: its pair is warming
        up too, and a warming node's hedge delay is three times its sample. At 100 clients (500 acquires each) the p99 is
        unchanged; a real service makes far more than 50 acquires per instance, so this is a start-up cost only.

        **The warm node (a later commit) costs 2-3 points here, and is kept.** A client with one acquire at a time now goes
        back to the node of its last win while it holds nothing there, unless another node looks 1.5× cheaper
        (NodeSelector.NoteWin). Every client of the capacity scenario is such a client. Before it: 86.9% (1,000 × 3) and
        53.8% (1,000 × 9) with defaults; with it 85.2% and 50.3%; a factor of 1.2 or 1.0 instead of 1.5 changed the 9-node
        figure by less than a point (it is the pairing with the warm node, not the factor), and the 3-node one by 1.5. The
        simulation models no warmth (unpooled 2 ms logins, no server caches), so it shows only the cost; on the real
        cluster, spreading a sequential client over three equal nodes cost about 20 µs of an 80 µs pooled open, as much as
        rotating over them without any cluster logic (docs/benchmarks.md). An exploration's win does not make a node warm,
        so a slower node still gets only its explorations (the 3× slow node: 0.1% and 0.6% at 1,000 clients, since
        selection stopped sampling nodes first; 0.7% and 2.7% before).

        **Hedges fleet-wide: the budget now holds.** Each client's bucket refills at 0.1 per acquire. It used to start full
        with 10 tokens and hold up to 10: at 1,000 clients the fleet hedged 0.13 to 0.20 per acquire over whole runs and
        1.05 per acquire in the second every node turned 5× slower (10,000 saved tokens against 5,000 acquires), and halving
        HedgeBudget changed nothing, which showed the saved tokens were what bound. **Changed:** a client starts with 1
        token and saves at most 3 (HedgeBudget.Initial, HedgeBudget.Burst). Every run is now within 0.1 per acquire plus
        each client's first token; the peak second when every node turns slow is about half what it was. Three saved
        hedges still relieve a burst of concurrent acquires that landed on one hung node before its stall was seen (the
        fault tests of the real cluster run with these defaults).

        **Later, HedgeBudget = 0 sets no timer for a hedge.** With hedging off (its rescue included) a slow acquire
        used to set its timer for the hedge's due time all the same, and the look it woke ordered the candidates for a
        hedge that could not start (a failover after a failure then reused that order; it is now made when a failover
        needs it, from the nodes' state at that moment). The capacity runs have no failures, so what changed there is
        the shuffle of nodes of equal cost that ordering does, a draw from the client's random source: without it the
        later draws fall differently. The HedgeBudget 0 rows moved by -0.3 to +0.3 points (1,000 × 3 steady 95.9% →
        96.2%, first seconds 88.3% → 88.0%; 1,000 × 9 steady 98.1% → 98.2%), within what any change to the draws moves
        them; their first-seconds p99, set by a few opens per seed, by more (1,000 × 3: 152.6 → 156.4 ms; 1,000 × 9:
        174.6 → 164.7 ms). Every other row is byte-identical, and the runs take 922,015 fewer simulated events (the
        wake-ups of those timers). Figures quoted in the paragraphs above are as measured when each was written.

        **Defaults changed in this commit:** exploration also bounded by count (1 per 20 opens per node); an exploration
        of a slower node starts the best candidate with it, paid from the hedge budget when claimed (after the fastest
        candidate's delay while the node is warming up); hedge bucket starts at
        1 and holds at most 3 (was 10 and 10); no warm-up sampling (a node is judged by its first open).
        Unchanged, with the reason above: LatencyDecayTime 10 s, BaseEjectionTime 1 s, HedgeBudget 0.1.
        """;
}

using System;

namespace ClusterSql;

/// <summary>Cluster-wide settings of a <see cref="ClusterDataSource"/>; validated when the data source is built.</summary>
public sealed class ClusterOptions
{
    /// <summary>
    /// The cluster's name in telemetry and logs (the <c>db.client.connection.pool.name</c> attribute). Default "default".
    /// </summary>
    public string Name { get; set; } = "default";

    /// <summary>How nodes are ordered for each acquire. Default <see cref="AcquirePolicy.LatencyAware"/>.</summary>
    public AcquirePolicy Policy { get; set; } = AcquirePolicy.LatencyAware;

    /// <summary>
    /// The lower bound of a node's adaptive hedge delay (smoothed open latency + 4 × its mean deviation, as RFC 6298
    /// computes a retransmission timeout). Default 2 ms.
    /// </summary>
    public TimeSpan MinHedgeDelay { get; set; } = TimeSpan.FromMilliseconds(2);

    /// <summary>The upper bound of the adaptive hedge delay, and the delay used before a node has any sample. Default 250 ms.</summary>
    public TimeSpan MaxHedgeDelay { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// The share of acquires that may start an extra attempt because the current one is slow (0 disables hedging,
    /// 1 allows one hedge per acquire). Failed attempts always move on to the next node; this only throttles hedges,
    /// so that a cluster that is slow everywhere is not hit by a storm of logins. It also pays for exploring a node
    /// believed slower: such an exploration starts the best other node beside it, so that its caller does not wait for
    /// it, and waits (for up to five exploration intervals) while no hedge is left. Default 0.1.
    /// </summary>
    public double HedgeBudget { get; set; } = 0.1;

    /// <summary>How long one open on one node may take before it counts as failed. Default 5 s; per node in <see cref="ClusterNodeOptions.ConnectTimeout"/>.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Consecutive failed opens after which a node is ejected. Default 3.</summary>
    public int EjectionThreshold { get; set; } = 3;

    /// <summary>The first ejection's length; each further ejection in a row doubles it, up to <see cref="MaxEjectionTime"/>. Default 1 s.</summary>
    public TimeSpan BaseEjectionTime { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest ejection. Default 30 s.</summary>
    public TimeSpan MaxEjectionTime { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The time constant with which a node's latency estimate forgets old samples. Default 10 s. A node that nobody
    /// tried for a tenth of it gets one exploratory acquire, so a node that was slow is seen when it recovers (one believed
    /// slower only when a hedge is left for it, see <see cref="HedgeBudget"/>).
    /// </summary>
    public TimeSpan LatencyDecayTime { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How often a configured health probe checks each node. Default 2 s.</summary>
    public TimeSpan HealthCheckInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long one health check may take before it counts as failed. Default 2 s.</summary>
    public TimeSpan HealthCheckTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Consecutive health checks that could not reach a node (timed out or threw) before it is marked down. Default 2:
    /// one slow check (a client-side GC pause, a starved thread pool, one slow status query) does not take a node out.
    /// A verdict (for Galera: not Primary, not Synced, desynced, rejecting queries) marks it down at once. A node down only
    /// because its checks could not reach it is still tried when no other node can serve.
    /// </summary>
    public int HealthCheckFailureThreshold { get; set; } = 2;

    /// <summary>
    /// How many nodes <see cref="ClusterDataSource.Writer"/> spreads writes over: the first usable ones in the writer
    /// order (see <see cref="ClusterDataSource.Writer"/>). Default 1: concurrent writes to the same rows on two Galera
    /// nodes fail at certification, so production runs one writer.
    /// </summary>
    public int MaxWriters { get; set; } = 1;

    /// <summary>
    /// Whether <see cref="ClusterDataSource.Readers"/> also spreads reads over the writers. Default
    /// <see langword="false"/>: reads stay off the writer while another node can serve them (the writer still serves
    /// reads when no other node can).
    /// </summary>
    public bool WriterIsAlsoReader { get; set; }

    /// <summary>
    /// The most replication lag, in the unit the health probe reports, with which a node still serves
    /// <see cref="ClusterDataSource.Readers"/> while a node with less can serve (Galera: write sets waiting in the node's
    /// apply queue, as ProxySQL's <c>max_transactions_behind</c>). <see langword="null"/> for no limit. Default 100.
    /// </summary>
    public long? MaxReaderLag { get; set; } = 100;

    /// <summary>
    /// How long a node's server must have been running (its uptime, as the health probe reads it) before the node can take
    /// the writer role from a node that has been running longer. A writer that fails hands over at once; a restarted node
    /// (a crash, an upgrade) takes writes back only after this delay, so writes do not move twice in a burst. Every client
    /// reads the same uptime, so all of them switch within one health-check interval of each other. A node that comes back
    /// without restarting (a healed partition, a resumed hang) takes its place again at once: only a rule that every
    /// client reads from the cluster keeps clients agreed, and a client's memory of having seen a node down is not one.
    /// Zero fails back at once. Default 60 s.
    /// </summary>
    public TimeSpan WriterFailbackDelay { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Whether every <see cref="ClusterDataSource.Readers"/> acquire waits, on its node, until the last write recorded by
    /// <see cref="ClusterDataSource.RecordWriteAsync"/> is applied there (read-your-writes across nodes). Costs one round
    /// trip per reader acquire once a write was recorded. Needs <see cref="ClusterDataSourceBuilder.UseConsistency"/>.
    /// Default <see langword="false"/>; per acquire, use <see cref="ClusterRoleDataSource.OpenConnectionAsync(string, System.Threading.CancellationToken)"/>.
    /// </summary>
    public bool CausalReads { get; set; }

    /// <summary>The longest a causal read waits for its node to apply a write before the acquire fails. Default 5 s.</summary>
    public TimeSpan CausalReadTimeout { get; set; } = TimeSpan.FromSeconds(5);

    internal ClusterOptions Clone() => (ClusterOptions)MemberwiseClone();

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name))
        {
            throw new ArgumentOutOfRangeException(nameof(Name), Name, "The cluster needs a name for its telemetry.");
        }

        if (!Enum.IsDefined(Policy))
        {
            throw new ArgumentOutOfRangeException(nameof(Policy), Policy, "Unknown acquire policy.");
        }

        RequirePositive(MinHedgeDelay, nameof(MinHedgeDelay));
        RequirePositive(MaxHedgeDelay, nameof(MaxHedgeDelay));
        if (MaxHedgeDelay < MinHedgeDelay)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxHedgeDelay), MaxHedgeDelay, $"{nameof(MaxHedgeDelay)} must not be less than {nameof(MinHedgeDelay)} ({MinHedgeDelay}).");
        }

        if (double.IsNaN(HedgeBudget) || HedgeBudget < 0 || HedgeBudget > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(HedgeBudget), HedgeBudget, "The hedge budget is a share of acquires between 0 and 1.");
        }

        RequirePositive(ConnectTimeout, nameof(ConnectTimeout));
        if (EjectionThreshold < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(EjectionThreshold), EjectionThreshold, "At least one failure must be needed to eject a node.");
        }

        RequirePositive(BaseEjectionTime, nameof(BaseEjectionTime));
        RequirePositive(MaxEjectionTime, nameof(MaxEjectionTime));
        if (MaxEjectionTime < BaseEjectionTime)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxEjectionTime), MaxEjectionTime, $"{nameof(MaxEjectionTime)} must not be less than {nameof(BaseEjectionTime)} ({BaseEjectionTime}).");
        }

        RequirePositive(LatencyDecayTime, nameof(LatencyDecayTime));
        RequirePositive(HealthCheckInterval, nameof(HealthCheckInterval));
        RequirePositive(HealthCheckTimeout, nameof(HealthCheckTimeout));
        RequirePositive(CausalReadTimeout, nameof(CausalReadTimeout));
        if (MaxWriters < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxWriters), MaxWriters, "The writer role needs at least one node.");
        }

        if (MaxReaderLag < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxReaderLag), MaxReaderLag, "A replication lag limit cannot be negative.");
        }

        if (WriterFailbackDelay < TimeSpan.Zero || WriterFailbackDelay > MaxTime)
        {
            throw new ArgumentOutOfRangeException(nameof(WriterFailbackDelay), WriterFailbackDelay, $"{nameof(WriterFailbackDelay)} must be zero or a positive, finite time of at most {MaxTime.TotalDays:0.#} days.");
        }

        if (HealthCheckFailureThreshold < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(HealthCheckFailureThreshold), HealthCheckFailureThreshold, "At least one failed health check must be needed to mark a node down.");
        }
    }

    /// <summary>The longest time any setting may take: what a timer or a cancellation can be armed for (about 24.8 days).</summary>
    internal static readonly TimeSpan MaxTime = TimeSpan.FromMilliseconds(int.MaxValue);

    internal static void RequirePositive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero || value > MaxTime)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a positive, finite time of at most {MaxTime.TotalDays:0.#} days.");
        }
    }
}

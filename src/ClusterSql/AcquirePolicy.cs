namespace ClusterSql;

/// <summary>How a <see cref="ClusterDataSource"/> orders the nodes it tries for each acquire.</summary>
public enum AcquirePolicy
{
    /// <summary>
    /// The default. Power of two choices over each node's peak-EWMA open latency times its pending opens + 1:
    /// one attempt per acquire when nodes are healthy, the load moving away from slow or busy nodes.
    /// </summary>
    LatencyAware = 0,

    /// <summary>Every usable node at once; the first connection that opens wins and the others are disposed.</summary>
    Race = 1,

    /// <summary>Nodes in declared order (then <see cref="ClusterNodeOptions.Priority"/>); later nodes only when earlier ones fail or are slow.</summary>
    FailOver = 2,

    /// <summary>Each acquire starts at the next node in turn.</summary>
    RoundRobin = 3,
}

namespace ClusterSql;

/// <summary>What a <see cref="ClusterRoleDataSource"/> hands out connections for.</summary>
public enum ClusterRole
{
    /// <summary>Writes: the first usable node of an order every client agrees on (<see cref="ClusterDataSource.Writer"/>).</summary>
    Writer = 0,

    /// <summary>Reads: spread latency-aware over the other nodes, skipping lagging ones (<see cref="ClusterDataSource.Readers"/>).</summary>
    Reader = 1,
}

namespace ClusterSql;

/// <summary>Whether a node is taking part in acquires.</summary>
public enum ClusterNodeState
{
    /// <summary>The node is used for acquires.</summary>
    Healthy = 0,

    /// <summary>Consecutive failed opens set the node aside until its ejection time passes.</summary>
    Ejected = 1,

    /// <summary>
    /// The ejection time has passed: one trial open at a time decides whether the node is healthy again (as does any
    /// other open of the node that succeeds meanwhile).
    /// </summary>
    HalfOpen = 2,

    /// <summary>
    /// A health probe (or <see cref="ClusterNode.MarkDown(string)"/>) marked the node down. A node down by a verdict is
    /// never handed out; one down only because its health checks could not reach it is tried when no other node can serve.
    /// </summary>
    Down = 3,

    /// <summary>The node was removed from its data source.</summary>
    Removed = 4,

    /// <summary>The node's data source was disposed.</summary>
    Disposed = 5,

    /// <summary>
    /// <see cref="ClusterNode.Drain(string)"/> took the node out of service: no new acquires, connections already handed
    /// out finish, and its idle pooled sessions are dropped, until <see cref="ClusterNode.Undrain"/>.
    /// </summary>
    Draining = 6,
}

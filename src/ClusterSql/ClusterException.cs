using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Text;

namespace ClusterSql;

/// <summary>
/// Thrown when no node of a cluster could open a connection. It carries every node's error by node name, so that
/// a blackholed node and a wrong password on another are both visible, not only the last failure.
/// </summary>
public sealed class ClusterException : DbException
{
    internal ClusterException(string message, IReadOnlyList<ClusterNodeError> nodeErrors)
        : base(message, nodeErrors.Count > 0 ? nodeErrors[0].Exception : null)
    {
        NodeErrors = nodeErrors;
    }

    /// <summary>Each node that was tried, or that could not be tried, with the reason, in the order the errors happened.</summary>
    public IReadOnlyList<ClusterNodeError> NodeErrors { get; }

    /// <summary>
    /// <see langword="true"/> when every error is one a retry may fix (a timeout or a node that was down or ejected).
    /// </summary>
    public override bool IsTransient
    {
        get
        {
            foreach (var error in NodeErrors)
            {
                var transient = error.Exception switch
                {
                    DbException db => db.IsTransient,
                    TimeoutException => true,
                    ClusterNodeUnavailableException => true,
                    System.Net.Sockets.SocketException => true,
                    _ => false,
                };
                if (!transient)
                {
                    return false;
                }
            }

            return NodeErrors.Count > 0;
        }
    }

    internal static ClusterException Create(IReadOnlyList<ClusterNodeError> nodeErrors, int nodeCount)
    {
        var message = new StringBuilder();
        message.Append("No cluster node could open a connection (")
            .Append(nodeErrors.Count).Append(" of ").Append(nodeCount).Append(nodeCount == 1 ? " node failed)" : " nodes failed)");
        foreach (var error in nodeErrors)
        {
            message.Append("; ").Append(error.NodeName).Append(": ")
                .Append(error.Exception.GetType().Name).Append(": ").Append(error.Exception.Message);
        }

        return new ClusterException(message.ToString(), nodeErrors);
    }
}

/// <summary>One node's reason for not giving a connection.</summary>
public sealed class ClusterNodeError
{
    internal ClusterNodeError(string nodeName, Exception exception)
    {
        NodeName = nodeName;
        Exception = exception;
    }

    /// <summary>The node's name.</summary>
    public string NodeName { get; }

    /// <summary>What the node's provider threw, or why the node was not tried.</summary>
    public Exception Exception { get; }

    /// <inheritdoc/>
    public override string ToString() => $"{NodeName}: {Exception.GetType().Name}: {Exception.Message}";
}

/// <summary>Why a node was not tried: it was marked down by a health probe, ejected, or removed.</summary>
public sealed class ClusterNodeUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="state">The node's state that kept it from being tried.</param>
    /// <param name="message">Why the node is unavailable.</param>
    public ClusterNodeUnavailableException(ClusterNodeState state, string message)
        : base(message)
    {
        State = state;
    }

    /// <summary>
    /// The node's state when it was passed over: <see cref="ClusterNodeState.Down"/> (a health probe or
    /// <see cref="ClusterNode.MarkDown(string)"/>), <see cref="ClusterNodeState.Ejected"/>,
    /// <see cref="ClusterNodeState.HalfOpen"/> (another caller held its trial) or <see cref="ClusterNodeState.Removed"/>.
    /// </summary>
    public ClusterNodeState State { get; }
}

using System;
using System.Data.Common;

namespace ClusterSql;

/// <summary>
/// Thrown by a retry API when the connection failed after COMMIT was sent and before the server answered: the
/// transaction may or may not have committed, so it is not run again (that could apply it twice). The caller decides,
/// for example by reading back what the unit of work wrote. <see cref="Exception.InnerException"/> is the provider's error.
/// </summary>
public sealed class ClusterCommitOutcomeUnknownException : DbException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="nodeName">The node the transaction ran on, or <see langword="null"/> when unknown.</param>
    /// <param name="attempts">How many times the unit of work ran, this one included.</param>
    /// <param name="innerException">The provider's error.</param>
    public ClusterCommitOutcomeUnknownException(string? nodeName, int attempts, Exception innerException)
        : base(
            $"The connection{(nodeName is null ? string.Empty : $" to node '{nodeName}'")} failed after COMMIT was sent (run {attempts} of the unit of work): " +
            $"the transaction may or may not have committed, so it was not run again. {innerException?.GetType().Name}: {innerException?.Message}",
            innerException)
    {
        NodeName = nodeName;
        Attempts = attempts;
    }

    /// <summary>The node the transaction ran on, when known.</summary>
    public string? NodeName { get; }

    /// <summary>How many times the unit of work ran, the last one included.</summary>
    public int Attempts { get; }

    /// <summary>Never transient: retrying could apply the transaction twice.</summary>
    public override bool IsTransient => false;
}

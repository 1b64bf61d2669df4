using System;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql;

/// <summary>
/// A provider's way to make a read on one node see a write committed on another: a position in the cluster's
/// replication stream that a session reads after a commit, and a wait on another node until it has applied that
/// position. ClusterSql.MySql supplies Galera's (GTIDs: <c>WSREP_LAST_WRITTEN_GTID()</c> and
/// <c>WSREP_SYNC_WAIT_UPTO_GTID()</c>). Give it to <see cref="ClusterDataSourceBuilder.UseConsistency"/>.
/// </summary>
public interface IClusterConsistency
{
    /// <summary>The position of the last write this session committed, or <see langword="null"/> when it wrote nothing.</summary>
    /// <param name="connection">An open connection, right after its COMMIT.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The position, in the provider's text form.</returns>
    ValueTask<string?> ReadLastWriteAsync(DbConnection connection, CancellationToken cancellationToken);

    /// <summary>Orders two positions of the same cluster.</summary>
    /// <param name="x">A position.</param>
    /// <param name="y">Another position.</param>
    /// <returns>Less than zero when <paramref name="x"/> comes before <paramref name="y"/>, zero when equal, more than zero after.</returns>
    /// <exception cref="ArgumentException">A position is not in the provider's form.</exception>
    int Compare(string x, string y);

    /// <summary>Waits, on the connection's node, until it has applied <paramref name="position"/>.</summary>
    /// <param name="connection">An open connection on the node that will serve the read.</param>
    /// <param name="position">A position read by <see cref="ReadLastWriteAsync"/>.</param>
    /// <param name="timeout">The longest wait; then the method throws.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>A task that completes when the node has applied the position.</returns>
    ValueTask WaitForAsync(DbConnection connection, string position, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>The synchronous <see cref="WaitForAsync"/>, for synchronous opens.</summary>
    /// <param name="connection">An open connection on the node that will serve the read.</param>
    /// <param name="position">A position read by <see cref="ReadLastWriteAsync"/>.</param>
    /// <param name="timeout">The longest wait; then the method throws.</param>
    void WaitFor(DbConnection connection, string position, TimeSpan timeout);
}

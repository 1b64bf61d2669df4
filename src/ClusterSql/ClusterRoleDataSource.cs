using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.Core;

namespace ClusterSql;

/// <summary>
/// One role of a <see cref="ClusterDataSource"/> (<see cref="ClusterDataSource.Writer"/> or
/// <see cref="ClusterDataSource.Readers"/>) as a <see cref="DbDataSource"/> of its own, so that code which takes a data
/// source (dependency injection, Dapper, a repository) can be handed the writer or the readers. It shares the cluster's
/// nodes, health, hedging and statistics; only which nodes it prefers, and in what order, differ.
/// </summary>
/// <remarks>
/// It belongs to its cluster: disposing it does nothing, and it stops working when the cluster is disposed. Failover
/// happens only while acquiring, as for the cluster: a statement is never re-executed on another node.
/// </remarks>
public sealed class ClusterRoleDataSource : DbDataSource
{
    private readonly ClusterDataSource _cluster;
    private readonly Acquirer _acquirer;

    internal ClusterRoleDataSource(ClusterDataSource cluster, ClusterRole role, Acquirer acquirer)
    {
        _cluster = cluster;
        Role = role;
        _acquirer = acquirer;
    }

    /// <summary>The role's acquire path, disposed with its cluster.</summary>
    internal Acquirer Acquirer => _acquirer;

    /// <summary>The cluster this role belongs to.</summary>
    public ClusterDataSource Cluster => _cluster;

    /// <summary>The role.</summary>
    public ClusterRole Role { get; }

    /// <summary>A description of the role and its cluster (node names only, never a connection string or password).</summary>
    public override string ConnectionString => $"{_cluster.ConnectionString} ({(Role == ClusterRole.Writer ? "writer" : "readers")})";

    /// <summary>
    /// The nodes this role would try now, best first: for the writer, the agreed writer order, whose first usable
    /// <see cref="ClusterOptions.MaxWriters"/> nodes take the writes; for the readers, the nodes that serve reads, then
    /// the writers and lagging nodes they fall back to. Nodes that cannot serve now (down, ejected) are left out. A
    /// snapshot: it does not change afterwards.
    /// </summary>
    public IReadOnlyList<ClusterNode> Nodes
    {
        get
        {
            var order = RoleOrder();
            var now = _acquirer.Context.TimeProvider.GetTimestamp();
            var usable = new List<ClusterNode>(order.Length);
            foreach (var node in order)
            {
                if (node.CanServe(now))
                {
                    usable.Add(node);
                }
            }

            return usable;
        }
    }

    /// <inheritdoc/>
    protected override DbConnection CreateDbConnection()
    {
        _cluster.ThrowIfDisposed();
        return new ClusterConnection(_cluster, this);
    }

    /// <inheritdoc/>
    /// <exception cref="ClusterException">No node could open a connection; it lists every node's error.</exception>
    protected override DbConnection OpenDbConnection()
    {
        _cluster.ThrowIfDisposed();
        var connection = _acquirer.Acquire(RoleOrder());
        return CausalPosition() is { } position ? WaitFor(connection, position) : connection;
    }

    /// <summary>
    /// Opens a connection on which every read sees the write at <paramref name="afterWrite"/> (and everything before it):
    /// after the acquire, the node is made to wait until it has applied that position, at most
    /// <see cref="ClusterOptions.CausalReadTimeout"/>. The position is a token from
    /// <see cref="ClusterDataSource.RecordWriteAsync"/> or <see cref="ClusterDataSource.LastWrite"/>, possibly of another
    /// process: read-your-writes across services. Costs a round trip or two (Galera: the GTID wait, then a causal read).
    /// </summary>
    /// <param name="afterWrite">The write position to wait for.</param>
    /// <param name="cancellationToken">Cancels the acquire and the wait.</param>
    /// <returns>The provider's open connection.</returns>
    /// <exception cref="InvalidOperationException">The cluster has no <see cref="IClusterConsistency"/>.</exception>
    /// <exception cref="ClusterException">No node could open a connection.</exception>
    /// <exception cref="TimeoutException">The node did not apply the position in time (the provider may throw its own error instead).</exception>
    public async ValueTask<DbConnection> OpenConnectionAsync(string afterWrite, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(afterWrite);
        _cluster.RequireConsistency();
        _cluster.ThrowIfDisposed();
        var connection = await _acquirer.AcquireAsync(RoleOrder(), cancellationToken).ConfigureAwait(false);
        return await WaitForAsync(connection, afterWrite, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>With <see cref="ClusterOptions.CausalReads"/>, what a reader acquire waits for: the cluster's last recorded write.</summary>
    private string? CausalPosition() => Role == ClusterRole.Reader && _cluster.Context.Options.CausalReads ? _cluster.LastWrite : null;

    private DbConnection WaitFor(DbConnection connection, string position)
    {
        try
        {
            _cluster.RequireConsistency().WaitFor(connection, position, _cluster.Context.Options.CausalReadTimeout);
            return connection;
        }
        catch
        {
            // The caller never sees this connection: it goes back to its pool rather than leak.
            connection.Dispose();
            throw;
        }
    }

    private async ValueTask<DbConnection> WaitForAsync(DbConnection connection, string position, CancellationToken cancellationToken)
    {
        try
        {
            await _cluster.RequireConsistency().WaitForAsync(connection, position, _cluster.Context.Options.CausalReadTimeout, cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async ValueTask<DbConnection> AcquireCausallyAsync(string position, CancellationToken cancellationToken)
    {
        var connection = await _acquirer.AcquireAsync(RoleOrder(), cancellationToken).ConfigureAwait(false);
        return await WaitForAsync(connection, position, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    /// <exception cref="ClusterException">No node could open a connection; it lists every node's error.</exception>
    /// <exception cref="OperationCanceledException">The caller cancelled.</exception>
    protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default)
    {
        if (_cluster.IsDisposed)
        {
            return ValueTask.FromException<DbConnection>(_cluster.Disposed());
        }

        if (CausalPosition() is { } position)
        {
            return AcquireCausallyAsync(position, cancellationToken);
        }

        return _acquirer.AcquireAsync(RoleOrder(), cancellationToken);
    }

    /// <inheritdoc/>
    /// <remarks>Each execution acquires a connection through this role and releases it afterwards.</remarks>
    protected override DbBatch CreateDbBatch()
    {
        _cluster.ThrowIfDisposed();
        return _cluster.CreateBatchFor(this);
    }

    /// <summary>Does nothing: the role belongs to its <see cref="ClusterDataSource"/>, which disposes what it holds.</summary>
    /// <param name="disposing">Unused.</param>
    protected override void Dispose(bool disposing) => base.Dispose(disposing);

    /// <summary>Does nothing: the role belongs to its <see cref="ClusterDataSource"/>.</summary>
    /// <returns>A completed task.</returns>
    protected override ValueTask DisposeAsyncCore() => default;

    /// <inheritdoc/>
    public override string ToString() => ConnectionString;

    private ClusterNode[] RoleOrder()
    {
        var view = _cluster.Roles.Get(_cluster.NodeSnapshot);
        return Role == ClusterRole.Writer ? view.Writers : view.Readers;
    }
}

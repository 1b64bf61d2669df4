using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.Core;
using ClusterSql.Telemetry;

namespace ClusterSql;

/// <summary>
/// A <see cref="DbDataSource"/> over the named nodes of a replicated cluster. Every open comes from a usable node
/// chosen by the <see cref="AcquirePolicy"/>; a failed node is skipped at once and a slow one is hedged, so one dead,
/// hung or slow node does not stall the caller. Opens return the provider's own connection (a MySqlConnection stays
/// a MySqlConnection). Failover happens only while acquiring: a statement is never re-executed on another node.
/// </summary>
/// <remarks>
/// Create one with <see cref="ClusterDataSourceBuilder"/>. The data source owns the nodes' provider data sources and
/// disposes them. It is thread-safe; nodes may be added and removed while connections are acquired.
/// </remarks>
public sealed class ClusterDataSource : DbDataSource
{
    private readonly Acquirer _acquirer;
    private readonly ClusterContext _context;
    private readonly HealthProbeRunner? _probes;
    private readonly Lock _writeLock = new();
    private readonly List<ClusterNode> _retired = [];
    private ClusterNode[] _nodes;
    private int _nextDeclaredIndex;
    private int _disposed;

    internal ClusterDataSource(ClusterContext context, IReadOnlyList<(string Name, DbDataSource DataSource, ClusterNodeOptions? Options)> nodes, IClusterNodeHealthProbe? probe)
    {
        _context = context;
        _acquirer = new Acquirer(context);
        var array = new ClusterNode[nodes.Count];
        for (var i = 0; i < array.Length; i++)
        {
            array[i] = new ClusterNode(nodes[i].Name, nodes[i].DataSource, nodes[i].Options, _nextDeclaredIndex++, context);
        }

        _nodes = array;
        ClusterTelemetry.Register(this);
        if (probe is not null)
        {
            _probes = new HealthProbeRunner(probe, context);
            foreach (var node in array)
            {
                _probes.Start(node);
            }
        }
    }

    /// <summary>A description of the cluster (its node names); it never contains a node's connection string or password.</summary>
    public override string ConnectionString => "ClusterSql: " + string.Join(",", Array.ConvertAll(Volatile.Read(ref _nodes), n => n.Name));

    /// <summary>The cluster's settings. They are a copy taken when the data source was built; changing them has no effect.</summary>
    public ClusterOptions Options => _context.Options;

    /// <summary>The current nodes, in declared order: an immutable snapshot.</summary>
    public IReadOnlyList<ClusterNode> Nodes => Volatile.Read(ref _nodes);

    /// <summary>Finds a node by name.</summary>
    /// <param name="name">The node's name (ordinal, case-insensitive).</param>
    /// <returns>The node, or <see langword="null"/>.</returns>
    public ClusterNode? GetNode(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        foreach (var node in Volatile.Read(ref _nodes))
        {
            if (string.Equals(node.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                return node;
            }
        }

        return null;
    }

    /// <summary>Adds a node while the data source is in use. The data source takes ownership of <paramref name="dataSource"/>.</summary>
    /// <param name="name">A unique name: letters, digits, '_', '-' or '.', at most 64 characters.</param>
    /// <param name="dataSource">The provider's data source for the node.</param>
    /// <param name="options">The node's settings, or <see langword="null"/> for the cluster's.</param>
    /// <returns>The new node.</returns>
    /// <exception cref="ArgumentException">The name is invalid or already used.</exception>
    /// <exception cref="ObjectDisposedException">The data source is disposed.</exception>
    public ClusterNode AddNode(string name, DbDataSource dataSource, ClusterNodeOptions? options = null)
    {
        ClusterDataSourceBuilder.ValidateNode(name, dataSource, options);
        ClusterNode node;
        lock (_writeLock)
        {
            ThrowIfDisposed();
            var current = _nodes;
            foreach (var existing in current)
            {
                if (string.Equals(existing.Name, name, StringComparison.OrdinalIgnoreCase))
                {
                    throw new ArgumentException($"The cluster already has a node named '{existing.Name}'.", nameof(name));
                }
            }

            node = new ClusterNode(name, dataSource, options, _nextDeclaredIndex++, _context);
            var next = new ClusterNode[current.Length + 1];
            current.CopyTo(next, 0);
            next[^1] = node;
            Volatile.Write(ref _nodes, next);
        }

        _probes?.Start(node);
        return node;
    }

    /// <summary>
    /// Removes a node. Acquires that start afterwards never use it, and a connection it opens from now on is disposed
    /// rather than handed out. Connections already handed out keep working; once the last of them is closed (at once if
    /// none is open), the node's provider data source is disposed, which closes its pool, and the health probe lets go
    /// of the node.
    /// </summary>
    /// <param name="name">The node's name.</param>
    /// <returns>Whether a node was removed.</returns>
    public bool RemoveNode(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        ClusterNode? removed = null;
        lock (_writeLock)
        {
            ThrowIfDisposed();
            var current = _nodes;
            var index = Array.FindIndex(current, n => string.Equals(n.Name, name, StringComparison.OrdinalIgnoreCase));
            if (index < 0)
            {
                return false;
            }

            removed = current[index];
            removed.MarkRemoved();
            var next = new ClusterNode[current.Length - 1];
            Array.Copy(current, 0, next, 0, index);
            Array.Copy(current, index + 1, next, index, current.Length - index - 1);
            Volatile.Write(ref _nodes, next);
            _retired.RemoveAll(static n => n.IsReleaseDone);
            _retired.Add(removed);
        }

        _probes?.Stop(removed);
        removed.TryRelease();
        return true;
    }

    /// <inheritdoc/>
    protected override DbConnection CreateDbConnection()
    {
        ThrowIfDisposed();
        return new ClusterConnection(this);
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Each execution of the batch acquires a connection through the cluster and releases it afterwards (a reader's
    /// connection when the reader is disposed). Unlike DbDataSource's own batch, its CreateBatchCommand works.
    /// </remarks>
    /// <exception cref="NotSupportedException">The nodes' provider cannot make batches.</exception>
    protected override DbBatch CreateDbBatch()
    {
        ThrowIfDisposed();
        var connection = new ClusterConnection(this);
        try
        {
            return new ClusterDataSourceBatch(connection, (ClusterBatch)connection.CreateBatch());
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    /// <exception cref="ClusterException">No node could open a connection; it lists every node's error.</exception>
    protected override DbConnection OpenDbConnection()
    {
        ThrowIfDisposed();
        return _acquirer.Acquire(Volatile.Read(ref _nodes));
    }

    /// <inheritdoc/>
    /// <exception cref="ClusterException">No node could open a connection; it lists every node's error.</exception>
    /// <exception cref="OperationCanceledException">The caller cancelled.</exception>
    protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return ValueTask.FromException<DbConnection>(Disposed());
        }

        return _acquirer.AcquireAsync(Volatile.Read(ref _nodes), cancellationToken);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            DisposeAsyncCore().AsTask().GetAwaiter().GetResult();
        }

        base.Dispose(disposing);
    }

    /// <inheritdoc/>
    protected override async ValueTask DisposeAsyncCore()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        ClusterTelemetry.Unregister(this);
        if (_probes is not null)
        {
            await _probes.DisposeAsync().ConfigureAwait(false);
        }

        ClusterNode[] owned;
        lock (_writeLock)
        {
            owned = [.. _nodes, .. _retired];
            _retired.Clear();
        }

        foreach (var node in owned)
        {
            node.MarkDisposed();
            if (!node.TryClaimRelease())
            {
                // Released already, when its last connection closed: that disposal may still be running.
                await node.ReleaseCompletion.ConfigureAwait(false);
            }
            else
            {
                try
                {
                    await node.DataSource.DisposeAsync().ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // One provider that fails to close its pool must not keep the others' open.
                }
            }
        }
    }

    /// <summary>A command of the first node's provider, not bound to any connection (for <see cref="ClusterConnection"/>).</summary>
    internal DbCommand CreateProviderCommand()
    {
        var nodes = Volatile.Read(ref _nodes);
        if (nodes.Length == 0)
        {
            throw new InvalidOperationException("The cluster has no nodes.");
        }

        using var connection = nodes[0].DataSource.CreateConnection();
        var command = connection.CreateCommand();
        command.Connection = null;
        return command;
    }

    /// <summary>Whether the first node's provider can make batches (for <see cref="ClusterConnection.CanCreateBatch"/>).</summary>
    internal bool ProviderCanCreateBatch()
    {
        var nodes = Volatile.Read(ref _nodes);
        if (nodes.Length == 0)
        {
            return false;
        }

        using var connection = nodes[0].DataSource.CreateConnection();
        return connection.CanCreateBatch;
    }

    /// <summary>A batch of the first node's provider, not bound to any connection (for <see cref="ClusterConnection"/>).</summary>
    /// <exception cref="NotSupportedException">The provider cannot make batches.</exception>
    internal DbBatch CreateProviderBatch()
    {
        var nodes = Volatile.Read(ref _nodes);
        if (nodes.Length == 0)
        {
            throw new InvalidOperationException("The cluster has no nodes.");
        }

        using var connection = nodes[0].DataSource.CreateConnection();
        if (!connection.CanCreateBatch)
        {
            throw new NotSupportedException(
                $"The cluster's provider ({connection.GetType().Name}, node '{nodes[0].Name}') cannot create batches (its CanCreateBatch is false): use commands instead.");
        }

        var batch = connection.CreateBatch();
        batch.Connection = null;
        return batch;
    }


    private void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw Disposed();
        }
    }

    /// <summary>One wording wherever a disposed data source is used.</summary>
    private ObjectDisposedException Disposed() =>
        new(nameof(ClusterDataSource), $"The ClusterDataSource of cluster '{_context.Options.Name}' was disposed.");
}

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

    internal ClusterDataSource(ClusterContext context, IReadOnlyList<(string Name, DbDataSource DataSource, ClusterNodeOptions? Options)> nodes, IClusterNodeHealthProbe? probe, IClusterConsistency? consistency = null)
    {
        _context = context;
        Consistency = consistency;
        _acquirer = new Acquirer(context);
        Roles = new ClusterRoles(context);
        var writerContext = context.ForRole("writer");
        Writer = new ClusterRoleDataSource(this, ClusterRole.Writer, new Acquirer(writerContext, new NodeSelector(context.Options, context.TimeProvider, context.Random, RoleGroup.Writers)));
        var readerContext = context.ForRole("reader");
        Readers = new ClusterRoleDataSource(this, ClusterRole.Reader, new Acquirer(readerContext, new NodeSelector(context.Options, context.TimeProvider, context.Random, RoleGroup.Readers)));
        var array = new ClusterNode[nodes.Count];
        for (var i = 0; i < array.Length; i++)
        {
            array[i] = new ClusterNode(nodes[i].Name, nodes[i].DataSource, nodes[i].Options, _nextDeclaredIndex++, context);
        }

        _nodes = array;

        // Before anything is registered or started: a probe that refuses a second cluster throws here and leaks nothing.
        (probe as IClusterAttachedProbe)?.Attach(this);
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

    /// <summary>
    /// A copy of the settings the data source was built with, new on each call: changing the copy changes nothing (a
    /// data source's settings are fixed at <see cref="ClusterDataSourceBuilder.Build"/>).
    /// </summary>
    public ClusterOptions Options => _context.Options.Clone();

    /// <summary>The shared state of this data source's acquires (tests reach the hedge budget through it).</summary>
    internal ClusterContext Context => _context;

    /// <summary>
    /// Writes: connections from one node that every client of the cluster picks without talking to the others (or the
    /// first <see cref="ClusterOptions.MaxWriters"/>), so that concurrent writes do not collide at certification. The
    /// order is: nodes that have settled (see <see cref="ClusterOptions.WriterFailbackDelay"/>), then
    /// <see cref="ClusterNodeOptions.Priority"/>, then the rank the health probe reads from the cluster (Galera:
    /// <c>wsrep_local_index</c>, as MaxScale's galeramon), then declared order; read-only nodes never write. When the
    /// writer fails, acquires move to the next node of that order at once; the health probe makes it official within
    /// one check.
    /// </summary>
    public ClusterRoleDataSource Writer { get; }

    /// <summary>
    /// Reads: connections spread latency-aware over the nodes other than the writer (all of them with
    /// <see cref="ClusterOptions.WriterIsAlsoReader"/>), skipping a node whose replication lag is above
    /// <see cref="ClusterOptions.MaxReaderLag"/>; the writer, then lagging nodes, serve only when no other node can.
    /// </summary>
    public ClusterRoleDataSource Readers { get; }

    internal ClusterRoles Roles { get; }

    internal HealthProbeRunner? Probes => _probes;

    /// <summary>The provider's write positions and wait (<see cref="ClusterDataSourceBuilder.UseConsistency"/>), or <see langword="null"/>.</summary>
    public IClusterConsistency? Consistency { get; }

    private string? _lastWrite;

    /// <summary>
    /// The latest write position recorded for this data source (<see cref="RecordWriteAsync"/>), or <see langword="null"/>:
    /// what a causal read waits for. A token: pass it to another process, which can wait for it with
    /// <see cref="ClusterRoleDataSource.OpenConnectionAsync(string, CancellationToken)"/>.
    /// </summary>
    public string? LastWrite => Volatile.Read(ref _lastWrite);

    /// <summary>
    /// Reads the position of the last write committed on <paramref name="connection"/> and remembers it, so that causal
    /// reads (<see cref="ClusterOptions.CausalReads"/>) see it. Call it after COMMIT on a writer connection; ClusterSql.MySql's
    /// <c>ExecuteTransactionAsync</c> does it for you.
    /// </summary>
    /// <param name="connection">The open connection that committed the write.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The position (a token for <see cref="ClusterRoleDataSource.OpenConnectionAsync(string, CancellationToken)"/>), or <see langword="null"/> when the session wrote nothing.</returns>
    /// <exception cref="InvalidOperationException">No <see cref="IClusterConsistency"/> was configured.</exception>
    public async ValueTask<string?> RecordWriteAsync(DbConnection connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var consistency = RequireConsistency();
        var position = await consistency.ReadLastWriteAsync(connection, cancellationToken).ConfigureAwait(false);
        if (position is not null)
        {
            RecordWrite(consistency, position);
        }

        return position;
    }

    /// <summary>Remembers a write position (a token from another process, say) if it is later than the one held.</summary>
    /// <param name="position">A position in the provider's form.</param>
    /// <exception cref="InvalidOperationException">No <see cref="IClusterConsistency"/> was configured.</exception>
    /// <exception cref="ArgumentException">The position is not in the provider's form.</exception>
    public void RecordWrite(string position)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(position);
        RecordWrite(RequireConsistency(), position);
    }

    private void RecordWrite(IClusterConsistency consistency, string position)
    {
        // Validated first: a position that does not parse must fail here, not every causal read after it.
        consistency.Compare(position, position);

        // The latest wins; concurrent writers race here, so compare-and-swap until ours is in or a later one is.
        var current = Volatile.Read(ref _lastWrite);
        while (current is null || consistency.Compare(position, current) > 0)
        {
            var seen = Interlocked.CompareExchange(ref _lastWrite, position, current);
            if (ReferenceEquals(seen, current))
            {
                return;
            }

            current = seen;
        }
    }

    internal IClusterConsistency RequireConsistency() => Consistency ?? throw new InvalidOperationException(
        $"Cluster '{_context.Options.Name}' has no write positions: configure them with ClusterDataSourceBuilder.UseConsistency (ClusterSql.MySql: UseGaleraConsistency).");

    internal ClusterNode[] NodeSnapshot => Volatile.Read(ref _nodes);

    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

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

        _context.RolesChanged();
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
        return Remove(n => string.Equals(n.Name, name, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>
    /// Removes this very node, never another the application added meanwhile under the same name (discovery removes
    /// the nodes it added, checked under the same lock as <see cref="AddNode"/>).
    /// </summary>
    internal bool RemoveNode(ClusterNode node) => Remove(n => ReferenceEquals(n, node));

    private bool Remove(Predicate<ClusterNode> match)
    {
        ClusterNode? removed = null;
        lock (_writeLock)
        {
            ThrowIfDisposed();
            var current = _nodes;
            var index = Array.FindIndex(current, match);
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

        _context.RolesChanged();
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
        return CreateBatchFor(this);
    }

    /// <summary>A batch that acquires through <paramref name="opener"/> (the cluster or one of its roles) on each execution.</summary>
    internal DbBatch CreateBatchFor(DbDataSource opener)
    {
        var connection = new ClusterConnection(this, opener);
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
        _acquirer.Dispose();
        Writer.Acquirer.Dispose();
        Readers.Acquirer.Dispose();
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
                    await node.DisposeDataSourceAsync().ConfigureAwait(false);
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


    internal void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw Disposed();
        }
    }

    /// <summary>One wording wherever a disposed data source is used.</summary>
    internal ObjectDisposedException Disposed() =>
        new(nameof(ClusterDataSource), $"The ClusterDataSource of cluster '{_context.Options.Name}' was disposed.");
}

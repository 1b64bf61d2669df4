using System;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql;

/// <summary>
/// The connection that <c>ClusterDataSource.CreateConnection()</c> gives: it chooses its node when it is opened
/// and then passes everything to the provider's connection. Closing it returns that connection to its node's pool;
/// opening it again acquires afresh, also when the provider's connection closed itself (a reader executed with
/// <see cref="CommandBehavior.CloseConnection"/> was disposed, as Dapper's synchronous queries do).
/// </summary>
/// <remarks>
/// <see cref="DbConnection.StateChange"/> reports Closed to Open on every open and Open to Closed on every close,
/// including the provider connection's own close. Once disposed, it cannot be opened again.
/// </remarks>
internal sealed class ClusterConnection : DbConnection
{
    private readonly ClusterDataSource _dataSource;

    // Where opens come from: the cluster itself, or one of its roles (ClusterDataSource.Writer, .Readers).
    private readonly DbDataSource _opener;
    private readonly StateChangeEventHandler _innerStateChanged;
    private DbConnection? _inner;
    private string? _configuredDatabase;
    private int _disposed;

    public ClusterConnection(ClusterDataSource dataSource, DbDataSource? opener = null)
    {
        _dataSource = dataSource;
        _opener = opener ?? dataSource;
        _innerStateChanged = OnInnerStateChange;
    }

    /// <summary>The provider's connection from the last open, until this connection is closed (it may have closed itself).</summary>
    public DbConnection? InnerConnection => Volatile.Read(ref _inner);

    /// <summary>
    /// Gets the cluster's description (<see cref="ClusterDataSource.ConnectionString"/>: its node names, never a password).
    /// Setting it to that same value does nothing, because some frameworks assign the connection string they read back;
    /// any other value throws <see cref="NotSupportedException"/>, because the nodes' settings belong to their data sources.
    /// </summary>
    /// <exception cref="NotSupportedException">The value set is not the cluster's description.</exception>
    [AllowNull]
    public override string ConnectionString
    {
        get => _opener.ConnectionString;
        set
        {
            if (!string.Equals(value, _opener.ConnectionString, StringComparison.Ordinal))
            {
                throw new NotSupportedException(
                    "A cluster connection takes its settings from its ClusterDataSource, whose nodes each have their own data source: "
                    + "its ConnectionString describes the cluster and cannot be changed.");
            }
        }
    }

    /// <summary>
    /// The database of the provider's connection when open; when closed, the database its nodes open in (the first
    /// node's), as a closed <c>SqlConnection</c> or <c>MySqlConnection</c> reports its configured database: Entity
    /// Framework Core's migrations build their SQL from it before they open.
    /// </summary>
    public override string Database => InnerConnection?.Database ?? ConfiguredDatabase();

    /// <summary>
    /// Refused with its reason: an ambient or distributed transaction (TransactionScope) would tie the unit of work to
    /// the node a single acquire chose, across opens that may each land on another node.
    /// </summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public override void EnlistTransaction(System.Transactions.Transaction? transaction) =>
        throw new NotSupportedException(
            "A ClusterSql connection does not take part in TransactionScope or other System.Transactions transactions: each open is an acquire "
            + "that may choose another node. Begin the transaction on the connection (BeginTransaction), or use the retry API.");

    public override string DataSource => InnerConnection?.DataSource ?? _opener.ConnectionString;

    public override string ServerVersion => OpenInner().ServerVersion;

    public override ConnectionState State => InnerConnection?.State ?? ConnectionState.Closed;

    public override int ConnectionTimeout => (int)Math.Ceiling(_dataSource.Context.Options.ConnectTimeout.TotalSeconds);

    public override bool CanCreateBatch => _dataSource.ProviderCanCreateBatch();

    /// <exception cref="ObjectDisposedException">The connection is disposed.</exception>
    /// <exception cref="InvalidOperationException">The connection is already open.</exception>
    public override void Open()
    {
        ReleaseSelfClosedInner();
        Attach(_opener.OpenConnection());
    }

    /// <exception cref="ObjectDisposedException">The connection is disposed.</exception>
    /// <exception cref="InvalidOperationException">The connection is already open.</exception>
    public override async Task OpenAsync(CancellationToken cancellationToken)
    {
        ReleaseSelfClosedInner();
        Attach(await _opener.OpenConnectionAsync(cancellationToken).ConfigureAwait(false));
    }

    public override void Close()
    {
        var inner = Detach();
        if (inner is not null)
        {
            var previous = inner.State;
            inner.Dispose();
            RaiseClosed(previous);
        }
    }

    public override async Task CloseAsync()
    {
        var inner = Detach();
        if (inner is not null)
        {
            var previous = inner.State;
            await inner.DisposeAsync().ConfigureAwait(false);
            RaiseClosed(previous);
        }
    }

    public override void ChangeDatabase(string databaseName) => OpenInner().ChangeDatabase(databaseName);

    public override async ValueTask DisposeAsync()
    {
        Interlocked.Exchange(ref _disposed, 1);
        await CloseAsync().ConfigureAwait(false);

        // The rest of Component's disposal (its Disposed event, no finalizer); Close finds nothing left to close.
        Dispose();
    }

    // Cached: EF Core reads Database of its closed connection often, and each read would create a provider connection.
    private string ConfiguredDatabase() => _configuredDatabase ??= ReadConfiguredDatabase();

    private string ReadConfiguredDatabase()
    {
        var nodes = _dataSource.Nodes;
        if (nodes.Count == 0)
        {
            return string.Empty;
        }

        // A provider connection that is never opened does no I/O (MySqlConnector, Npgsql, SqlClient, Sqlite).
        using var unopened = nodes[0].DataSource.CreateConnection();
        return unopened.Database;
    }

    /// <summary>The provider's connection, open: commands and batches of this connection bind to it when they execute.</summary>
    /// <exception cref="InvalidOperationException">The connection is not open (or its provider connection closed itself).</exception>
    internal DbConnection OpenInner() =>
        InnerConnection is { State: not ConnectionState.Closed } inner
            ? inner
            : throw new InvalidOperationException("The cluster connection is not open: call Open or OpenAsync first.");

    protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) =>
        new ClusterTransaction(this, OpenInner().BeginTransaction(isolationLevel));

    protected override async ValueTask<DbTransaction> BeginDbTransactionAsync(IsolationLevel isolationLevel, CancellationToken cancellationToken) =>
        new ClusterTransaction(this, await OpenInner().BeginTransactionAsync(isolationLevel, cancellationToken).ConfigureAwait(false));

    protected override DbCommand CreateDbCommand() => new ClusterCommand(_dataSource.CreateProviderCommand(), this);

    /// <exception cref="NotSupportedException">The provider cannot make batches (<see cref="CanCreateBatch"/> is false).</exception>
    protected override DbBatch CreateDbBatch() => new ClusterBatch(_dataSource.CreateProviderBatch(), this);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Interlocked.Exchange(ref _disposed, 1);
            Close();
        }

        base.Dispose(disposing);
    }

    /// <summary>
    /// Checks that the connection may be opened. A provider connection that closed itself is still held (so that State
    /// could read it); it is disposed now, which returns it to its pool if its close did not, and the open acquires afresh.
    /// </summary>
    private void ReleaseSelfClosedInner()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (InnerConnection is { } inner)
        {
            if (inner.State != ConnectionState.Closed)
            {
                throw new InvalidOperationException("The cluster connection is already open.");
            }

            // A closed provider connection has no session left to send anything on: disposing it does no I/O.
            Detach()?.Dispose();
        }
    }

    private void Attach(DbConnection inner)
    {
        inner.StateChange += _innerStateChanged;
        if (Interlocked.CompareExchange(ref _inner, inner, null) is not null)
        {
            // Two opens raced (one connection, two threads): the second one's connection goes back at once.
            inner.StateChange -= _innerStateChanged;
            inner.Dispose();
            throw new InvalidOperationException("The cluster connection is already open.");
        }

        // Disposed while the open was under way (from another thread): the connection must not outlive its owner.
        if (Volatile.Read(ref _disposed) != 0)
        {
            Detach()?.Dispose();
            throw new ObjectDisposedException(GetType().FullName);
        }

        OnStateChange(new StateChangeEventArgs(ConnectionState.Closed, ConnectionState.Open));
    }

    /// <summary>Takes the provider connection away (once, even if two threads close) and stops listening to it.</summary>
    private DbConnection? Detach()
    {
        var inner = Interlocked.Exchange(ref _inner, null);
        if (inner is not null)
        {
            inner.StateChange -= _innerStateChanged;
        }

        return inner;
    }

    private void RaiseClosed(ConnectionState previous)
    {
        // After the provider closed itself, its own Open->Closed was already passed on; closing the wrapper adds none.
        if (previous != ConnectionState.Closed)
        {
            OnStateChange(new StateChangeEventArgs(previous, ConnectionState.Closed));
        }
    }

    private void OnInnerStateChange(object sender, StateChangeEventArgs e)
    {
        // Only the current provider connection speaks for this one; the handler is removed before one is let go.
        if (ReferenceEquals(sender, InnerConnection))
        {
            OnStateChange(e);
        }
    }
}

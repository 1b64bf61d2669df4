using System;
using System.Data;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql;

/// <summary>
/// A batch made by a <see cref="ClusterConnection"/>, possibly before it was opened. Like <see cref="ClusterCommand"/>,
/// it wraps a batch of the node provider and binds it to the connection's provider connection when it executes.
/// </summary>
internal sealed class ClusterBatch : DbBatch
{
    private readonly DbBatch _inner;
    private ClusterConnection? _connection;
    private DbTransaction? _transaction;

    public ClusterBatch(DbBatch inner, ClusterConnection? connection)
    {
        _inner = inner;
        _connection = connection;
    }

    public override int Timeout
    {
        get => _inner.Timeout;
        set => _inner.Timeout = value;
    }

    protected override DbBatchCommandCollection DbBatchCommands => _inner.BatchCommands;

    protected override DbConnection? DbConnection
    {
        get => _connection;
        set => _connection = value switch
        {
            null => null,
            ClusterConnection cluster => cluster,
            _ => throw new ArgumentException("A batch from a cluster connection runs on a cluster connection.", nameof(value)),
        };
    }

    // The transaction as given (a cluster connection's own, whose Connection is the cluster connection); the provider's
    // command gets the provider's transaction inside it.
    protected override DbTransaction? DbTransaction
    {
        get => _transaction;
        set
        {
            _inner.Transaction = ClusterTransaction.Unwrap(value);
            _transaction = value;
        }
    }

    public override void Cancel() => _inner.Cancel();

    public override int ExecuteNonQuery() => Bind().ExecuteNonQuery();

    public override object? ExecuteScalar() => Bind().ExecuteScalar();

    public override void Prepare() => Bind().Prepare();

    public override Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken = default) => Bind().ExecuteNonQueryAsync(cancellationToken);

    public override Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken = default) => Bind().ExecuteScalarAsync(cancellationToken);

    public override Task PrepareAsync(CancellationToken cancellationToken = default) => Bind().PrepareAsync(cancellationToken);

    // DbBatch's own Dispose does nothing, and its DisposeAsync calls Dispose: neither is called, so the inner batch is
    // disposed once.
    public override void Dispose() => _inner.Dispose();

    public override ValueTask DisposeAsync() => _inner.DisposeAsync();

    protected override DbBatchCommand CreateDbBatchCommand() => _inner.CreateBatchCommand();

    protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior) => Bind().ExecuteReader(behavior);

    protected override Task<DbDataReader> ExecuteDbDataReaderAsync(CommandBehavior behavior, CancellationToken cancellationToken) =>
        Bind().ExecuteReaderAsync(behavior, cancellationToken);

    /// <summary>Points the provider's batch at the provider connection of the current open (see ClusterCommand.Bind).</summary>
    private DbBatch Bind()
    {
        var connection = _connection ?? throw new InvalidOperationException("The batch has no connection.");
        var inner = connection.OpenInner();
        if (!ReferenceEquals(_inner.Connection, inner))
        {
            _inner.Connection = inner;
        }

        return _inner;
    }
}

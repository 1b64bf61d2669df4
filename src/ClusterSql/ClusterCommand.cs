using System;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql;

/// <summary>
/// A command made by a <see cref="ClusterConnection"/>, possibly before it was opened (as Dapper does). It wraps a
/// command of the node provider and binds it to the connection's provider connection when it executes.
/// </summary>
internal sealed class ClusterCommand : DbCommand
{
    private readonly DbCommand _inner;
    private ClusterConnection? _connection;
    private DbTransaction? _transaction;

    public ClusterCommand(DbCommand inner, ClusterConnection? connection)
    {
        _inner = inner;
        _connection = connection;
    }

    [AllowNull]
    public override string CommandText
    {
        get => _inner.CommandText;
        set => _inner.CommandText = value;
    }

    public override int CommandTimeout
    {
        get => _inner.CommandTimeout;
        set => _inner.CommandTimeout = value;
    }

    public override CommandType CommandType
    {
        get => _inner.CommandType;
        set => _inner.CommandType = value;
    }

    public override bool DesignTimeVisible
    {
        get => _inner.DesignTimeVisible;
        set => _inner.DesignTimeVisible = value;
    }

    public override UpdateRowSource UpdatedRowSource
    {
        get => _inner.UpdatedRowSource;
        set => _inner.UpdatedRowSource = value;
    }

    protected override DbConnection? DbConnection
    {
        get => _connection;
        set => _connection = value switch
        {
            null => null,
            ClusterConnection cluster => cluster,
            _ => throw new ArgumentException("A command from a cluster connection runs on a cluster connection.", nameof(value)),
        };
    }

    protected override DbParameterCollection DbParameterCollection => _inner.Parameters;

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

    public override Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken) => Bind().ExecuteNonQueryAsync(cancellationToken);

    public override Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken) => Bind().ExecuteScalarAsync(cancellationToken);

    public override Task PrepareAsync(CancellationToken cancellationToken = default) => Bind().PrepareAsync(cancellationToken);

    protected override DbParameter CreateDbParameter() => _inner.CreateParameter();

    protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior) => Bind().ExecuteReader(behavior);

    protected override Task<DbDataReader> ExecuteDbDataReaderAsync(CommandBehavior behavior, CancellationToken cancellationToken) =>
        Bind().ExecuteReaderAsync(behavior, cancellationToken);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>
    /// Points the provider's command at the provider connection of the current open, which changes when the cluster
    /// connection is reopened (it acquires afresh, perhaps on another node).
    /// </summary>
    private DbCommand Bind()
    {
        var connection = _connection ?? throw new InvalidOperationException("The command has no connection.");
        var inner = connection.OpenInner();

        // Only when it changed: providers refuse any assignment while a reader of the command is open.
        if (!ReferenceEquals(_inner.Connection, inner))
        {
            _inner.Connection = inner;
        }

        return _inner;
    }
}

using System;
using System.Data;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql;

/// <summary>
/// The batch of <c>ClusterDataSource.CreateBatch()</c>: it owns a <see cref="ClusterConnection"/> and opens it (one
/// acquire) around each execution, as DbDataSource's own batch does. That one is not used because its
/// CreateBatchCommand throws NotImplementedException (.NET 8 to 10), which leaves provider-agnostic code no way to
/// add a command.
/// </summary>
internal sealed class ClusterDataSourceBatch : DbBatch
{
    private readonly ClusterConnection _connection;
    private readonly ClusterBatch _batch;

    public ClusterDataSourceBatch(ClusterConnection connection, ClusterBatch batch)
    {
        _connection = connection;
        _batch = batch;
    }

    public override int Timeout
    {
        get => _batch.Timeout;
        set => _batch.Timeout = value;
    }

    protected override DbBatchCommandCollection DbBatchCommands => _batch.BatchCommands;

    // The batch owns its connection, opened only while it executes: there is none to give out or to share a transaction on.
    protected override DbConnection? DbConnection
    {
        get => throw NotOnDataSourceBatch();
        set => throw NotOnDataSourceBatch();
    }

    protected override DbTransaction? DbTransaction
    {
        get => throw NotOnDataSourceBatch();
        set => throw NotOnDataSourceBatch();
    }

    public override void Cancel() => _batch.Cancel();

    // Prepared statements belong to one provider connection, and each execution acquires another.
    public override void Prepare() => throw NotOnDataSourceBatch();

    public override Task PrepareAsync(CancellationToken cancellationToken = default) => Task.FromException(NotOnDataSourceBatch());

    public override int ExecuteNonQuery()
    {
        _connection.Open();
        try
        {
            return _batch.ExecuteNonQuery();
        }
        finally
        {
            _connection.Close();
        }
    }

    public override object? ExecuteScalar()
    {
        _connection.Open();
        try
        {
            return _batch.ExecuteScalar();
        }
        finally
        {
            _connection.Close();
        }
    }

    public override async Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken = default)
    {
        await _connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await _batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await _connection.CloseAsync().ConfigureAwait(false);
        }
    }

    public override async Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken = default)
    {
        await _connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await _batch.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await _connection.CloseAsync().ConfigureAwait(false);
        }
    }

    public override void Dispose()
    {
        _batch.Dispose();
        _connection.Dispose();
    }

    public override async ValueTask DisposeAsync()
    {
        await _batch.DisposeAsync().ConfigureAwait(false);
        await _connection.DisposeAsync().ConfigureAwait(false);
    }

    protected override DbBatchCommand CreateDbBatchCommand() => _batch.CreateBatchCommand();

    // The reader closes the provider connection when it is disposed; the next execution reopens afresh.
    protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior)
    {
        _connection.Open();
        try
        {
            return _batch.ExecuteReader(behavior | CommandBehavior.CloseConnection);
        }
        catch
        {
            _connection.Close();
            throw;
        }
    }

    protected override async Task<DbDataReader> ExecuteDbDataReaderAsync(CommandBehavior behavior, CancellationToken cancellationToken)
    {
        await _connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await _batch.ExecuteReaderAsync(behavior | CommandBehavior.CloseConnection, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await _connection.CloseAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static NotSupportedException NotOnDataSourceBatch() => new(
        "A batch from ClusterDataSource.CreateBatch() opens its own connection for each execution: for a connection, a transaction "
        + "or Prepare, use a batch from an opened cluster connection.");
}

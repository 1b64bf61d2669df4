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
/// opening it again acquires afresh.
/// </summary>
internal sealed class ClusterConnection : DbConnection
{
    private readonly ClusterDataSource _dataSource;
    private DbConnection? _inner;

    public ClusterConnection(ClusterDataSource dataSource) => _dataSource = dataSource;

    /// <summary>The provider's connection while open.</summary>
    public DbConnection? InnerConnection => _inner;

    [AllowNull]
    public override string ConnectionString
    {
        get => _dataSource.ConnectionString;
        set => throw new NotSupportedException("A cluster connection takes its settings from its ClusterDataSource.");
    }

    public override string Database => _inner?.Database ?? string.Empty;

    public override string DataSource => _inner?.DataSource ?? _dataSource.ConnectionString;

    public override string ServerVersion => OpenInner().ServerVersion;

    public override ConnectionState State => _inner?.State ?? ConnectionState.Closed;

    public override int ConnectionTimeout => (int)Math.Ceiling(_dataSource.Options.ConnectTimeout.TotalSeconds);

    public override void Open()
    {
        ThrowIfOpen();
        _inner = _dataSource.OpenConnection();
    }

    public override async Task OpenAsync(CancellationToken cancellationToken)
    {
        ThrowIfOpen();
        _inner = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
    }

    public override void Close()
    {
        var inner = Interlocked.Exchange(ref _inner, null);
        inner?.Dispose();
    }

    public override async Task CloseAsync()
    {
        var inner = Interlocked.Exchange(ref _inner, null);
        if (inner is not null)
        {
            await inner.DisposeAsync().ConfigureAwait(false);
        }
    }

    public override void ChangeDatabase(string databaseName) => OpenInner().ChangeDatabase(databaseName);

    public override ValueTask DisposeAsync() => new(CloseAsync());

    protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) => OpenInner().BeginTransaction(isolationLevel);

    protected override ValueTask<DbTransaction> BeginDbTransactionAsync(IsolationLevel isolationLevel, CancellationToken cancellationToken) =>
        OpenInner().BeginTransactionAsync(isolationLevel, cancellationToken);

    protected override DbCommand CreateDbCommand() => new ClusterCommand(_dataSource.CreateProviderCommand(), this);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Close();
        }

        base.Dispose(disposing);
    }

    private DbConnection OpenInner() =>
        _inner ?? throw new InvalidOperationException("The cluster connection is not open: call Open or OpenAsync first.");

    private void ThrowIfOpen()
    {
        if (_inner is not null)
        {
            throw new InvalidOperationException("The cluster connection is already open.");
        }
    }
}

using System;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;
using System.Threading.Tasks.Sources;

namespace ClusterSql.Benchmarks.Fakes;

/// <summary>
/// An in-process backend that hands out one reused connection, opened on each open and closed by its user as a pooled
/// provider's is; the subclasses decide only how an asynchronous open completes.
/// </summary>
public abstract class FakeDataSource : DbDataSource
{
    private protected FakeDataSource(string name) => Connection = new ReusedConnection(name);

    public override string ConnectionString => "Data Source=" + Connection.DataSource;

    private protected ReusedConnection Connection { get; }

    /// <summary>A cluster of <paramref name="nodes"/> such backends named node1, node2... under one policy.</summary>
    public static ClusterDataSource Cluster(AcquirePolicy policy, int nodes, Func<string, FakeDataSource> createNode)
    {
        var builder = new ClusterDataSourceBuilder().UsePolicy(policy);
        for (var i = 1; i <= nodes; i++)
        {
            builder.AddNode("node" + i, createNode("node" + i));
        }

        return builder.Build();
    }

    protected override DbConnection CreateDbConnection() => Connection;

    protected override DbConnection OpenDbConnection() => Connection.Opened();
}

/// <summary>
/// Opens complete synchronously: acquire + release through it allocates nothing, so whatever a benchmark allocates
/// around it belongs to the caller (the cluster).
/// </summary>
public sealed class SyncDataSource(string name) : FakeDataSource(name)
{
    protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default) => new(Connection.Opened());
}

/// <summary>
/// A connection handed out again after each close. Its state changes as a pooled provider's connection's do, with
/// <see cref="DbConnection.StateChange"/> raised on each change, so that a cluster's lease of it ends when its user
/// closes it (ClusterSql listens for that: a connection that never closed would keep its node busy and the cluster
/// on its two-choices pick where a sequential client's acquires go back to their warm node). The event arguments are
/// cached: a real provider allocates them, and the benchmarks count only the cluster's allocations.
/// </summary>
internal sealed class ReusedConnection : DbConnection
{
    private static readonly StateChangeEventArgs s_opened = new(ConnectionState.Closed, ConnectionState.Open);
    private static readonly StateChangeEventArgs s_closed = new(ConnectionState.Open, ConnectionState.Closed);
    private readonly string _name;
    private ConnectionState _state;

    public ReusedConnection(string name) => _name = name;

    [AllowNull]
    public override string ConnectionString
    {
        get => "Data Source=" + _name;
        set => throw new NotSupportedException();
    }

    public override string Database => string.Empty;

    public override string DataSource => _name;

    public override string ServerVersion => "0";

    public override ConnectionState State => _state;

    public override void ChangeDatabase(string databaseName) => throw new NotSupportedException();

    public override void Open() => Opened();

    /// <summary>Opens the connection (a no-op when it is open) and returns it.</summary>
    public ReusedConnection Opened()
    {
        if (_state != ConnectionState.Open)
        {
            _state = ConnectionState.Open;
            OnStateChange(s_opened);
        }

        return this;
    }

    public override void Close()
    {
        if (_state == ConnectionState.Open)
        {
            _state = ConnectionState.Closed;
            OnStateChange(s_closed);
        }
    }

    public override ValueTask DisposeAsync()
    {
        Close();
        return default;
    }

    protected override void Dispose(bool disposing) => Close();

    protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) => throw new NotSupportedException();

    protected override DbCommand CreateDbCommand() => throw new NotSupportedException();
}

/// <summary>
/// The same backend, but every open completes asynchronously on the thread pool (as a real network open does), so the
/// cluster takes its slow path: what every unpooled open, and every pooled MySqlConnector open that resets its
/// session, pays.
/// </summary>
public sealed class AsyncDataSource(string name) : FakeDataSource(name)
{
    protected override async ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        return Connection.Opened();
    }
}

/// <summary>
/// The same backend, but an open stays pending until <see cref="CompletePending"/> completes it, on the caller's own
/// thread: asynchronous to whoever awaits it, as a network open is, yet with no thread hop. The thread pool's hand-offs
/// vary by microseconds from one run to the next on a shared machine, far more than the slow path's own work, which
/// this measures alone. Nothing is allocated.
/// </summary>
public sealed class PendingDataSource(string name) : FakeDataSource(name), IValueTaskSource<DbConnection>
{
    private ManualResetValueTaskSourceCore<DbConnection> _core;
    private bool _pending;

    /// <summary>Completes the open in progress, if any: its awaiter's continuation runs here, before this returns.</summary>
    public void CompletePending()
    {
        if (_pending)
        {
            _pending = false;
            _core.SetResult(Connection.Opened());
        }
    }

    public DbConnection GetResult(short token) => _core.GetResult(token);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default)
    {
        _core.Reset();
        _pending = true;
        return new ValueTask<DbConnection>(this, _core.Version);
    }
}

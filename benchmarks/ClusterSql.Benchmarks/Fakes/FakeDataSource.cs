using System;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql.Benchmarks.Fakes;

/// <summary>
/// An in-process backend that hands out one reused connection, whose close does nothing; the subclasses decide only
/// how an asynchronous open completes.
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

    protected override DbConnection OpenDbConnection() => Connection;
}

/// <summary>
/// Opens complete synchronously: acquire + release through it allocates nothing, so whatever a benchmark allocates
/// around it belongs to the caller (the cluster).
/// </summary>
public sealed class SyncDataSource(string name) : FakeDataSource(name)
{
    protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default) => new(Connection);
}

/// <summary>A connection that is always open and whose close and dispose are no-ops, so it can be handed out forever.</summary>
internal sealed class ReusedConnection : DbConnection
{
    private readonly string _name;

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

    public override ConnectionState State => ConnectionState.Open;

    public override void ChangeDatabase(string databaseName) => throw new NotSupportedException();

    public override void Open()
    {
    }

    public override void Close()
    {
    }

    public override ValueTask DisposeAsync() => default;

    protected override void Dispose(bool disposing)
    {
    }

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
        return Connection;
    }
}

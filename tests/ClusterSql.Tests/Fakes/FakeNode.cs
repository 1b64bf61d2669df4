using System;
using System.Collections.Concurrent;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Time.Testing;

namespace ClusterSql.Tests.Fakes;

/// <summary>How one scripted open behaves.</summary>
internal readonly record struct OpenScript(OpenKind Kind, TimeSpan Duration = default)
{
    public static OpenScript Succeed => new(OpenKind.Succeed);

    public static OpenScript Fail => new(OpenKind.Fail);

    public static OpenScript Hang => new(OpenKind.Hang);

    /// <summary>Succeeds synchronously after moving the fake clock on by <paramref name="latency"/>.</summary>
    public static OpenScript Takes(TimeSpan latency) => new(OpenKind.Takes, latency);

    public static OpenScript SucceedAfter(TimeSpan delay) => new(OpenKind.SucceedAfter, delay);

    public static OpenScript FailAfter(TimeSpan delay) => new(OpenKind.FailAfter, delay);

    /// <summary>Succeeds after the delay even when cancelled, as a provider that ignores its token would.</summary>
    public static OpenScript SucceedAfterIgnoringCancellation(TimeSpan delay) => new(OpenKind.SucceedAfterIgnoringCancellation, delay);
}

internal enum OpenKind
{
    Succeed,
    Fail,
    Hang,
    Takes,
    SucceedAfter,
    FailAfter,
    SucceedAfterIgnoringCancellation,
}

internal sealed class FakeDbException(string message) : DbException(message);

/// <summary>
/// A provider data source whose opens succeed, fail, hang or take a scripted time on a <see cref="FakeTimeProvider"/>,
/// counting every connection it makes and every one disposed.
/// </summary>
internal sealed class FakeNode : DbDataSource
{
    public const string Secret = "pa55-Secret-Xy9";

    private readonly FakeTimeProvider _time;
    private readonly ConcurrentQueue<OpenScript> _queued = new();
    private int _opensStarted;
    private int _connectionsMade;
    private int _disposed;
    private int _cancelled;

    public FakeNode(string name, FakeTimeProvider time, OpenScript script = default)
    {
        Name = name;
        _time = time;
        Script = script;
    }

    public string Name { get; }

    /// <summary>The behaviour of every open with no queued script.</summary>
    public OpenScript Script { get; set; }

    /// <summary>Set by tests once the node is removed from the cluster: any connection made later is marked.</summary>
    public volatile bool RemovedFromCluster;

    public override string ConnectionString => $"Data Source={Name};User ID=app;Password={Secret}";

    public int OpensStarted => Volatile.Read(ref _opensStarted);

    public int ConnectionsMade => Volatile.Read(ref _connectionsMade);

    public int Disposed => Volatile.Read(ref _disposed);

    public int Cancelled => Volatile.Read(ref _cancelled);

    public int Alive => ConnectionsMade - Disposed;

    public bool DataSourceDisposed { get; private set; }

    public void Enqueue(params OpenScript[] scripts)
    {
        foreach (var script in scripts)
        {
            _queued.Enqueue(script);
        }
    }

    internal void OnConnectionDisposed() => Interlocked.Increment(ref _disposed);

    protected override DbConnection CreateDbConnection() => new FakeConnection(this, open: false);

    /// <summary>Synchronous opens made (the cluster's synchronous path on a thread-pool thread).</summary>
    public int SyncOpens => Volatile.Read(ref _syncOpens);

    private int _syncOpens;

    protected override DbConnection OpenDbConnection()
    {
        Interlocked.Increment(ref _syncOpens);
        var open = OpenDbConnectionAsync(CancellationToken.None);
        return open.IsCompleted ? open.Result : throw new NotSupportedException("A scripted delay cannot be waited for synchronously on a fake clock.");
    }

    protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _opensStarted);
        var script = _queued.TryDequeue(out var queued) ? queued : Script;
        switch (script.Kind)
        {
            case OpenKind.Succeed:
                return new ValueTask<DbConnection>(Make());
            case OpenKind.Fail:
                return ValueTask.FromException<DbConnection>(new FakeDbException($"{Name} refused the connection"));
            case OpenKind.Takes:
                _time.Advance(script.Duration);
                return new ValueTask<DbConnection>(Make());
            default:
                return OpenLaterAsync(script, cancellationToken);
        }
    }

    protected override void Dispose(bool disposing)
    {
        DataSourceDisposed = true;
        base.Dispose(disposing);
    }

    protected override ValueTask DisposeAsyncCore()
    {
        DataSourceDisposed = true;
        return ValueTask.CompletedTask;
    }

    private async ValueTask<DbConnection> OpenLaterAsync(OpenScript script, CancellationToken cancellationToken)
    {
        try
        {
            var delay = script.Kind == OpenKind.Hang ? Timeout.InfiniteTimeSpan : script.Duration;
            var token = script.Kind == OpenKind.SucceedAfterIgnoringCancellation ? CancellationToken.None : cancellationToken;
            await Task.Delay(delay, _time, token);
        }
        catch (OperationCanceledException)
        {
            Interlocked.Increment(ref _cancelled);
            throw;
        }

        if (script.Kind == OpenKind.FailAfter)
        {
            throw new FakeDbException($"{Name} failed after {script.Duration.TotalMilliseconds} ms");
        }

        return Make();
    }

    private FakeConnection Make()
    {
        Interlocked.Increment(ref _connectionsMade);
        return new FakeConnection(this, open: true) { MadeAfterRemoval = RemovedFromCluster };
    }
}

internal sealed class FakeConnection : DbConnection
{
    private static readonly StateChangeEventArgs s_closed = new(ConnectionState.Open, ConnectionState.Closed);
    private readonly FakeNode _node;
    private ConnectionState _state;
    private int _disposed;

    public FakeConnection(FakeNode node, bool open)
    {
        _node = node;
        _state = open ? ConnectionState.Open : ConnectionState.Closed;
    }

    public FakeNode Node => _node;

    public bool MadeAfterRemoval { get; init; }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    [AllowNull]
    public override string ConnectionString { get => _node.ConnectionString; set => throw new NotSupportedException(); }

    public override string Database => "test";

    public override string DataSource => _node.Name;

    public override string ServerVersion => "fake";

    public override ConnectionState State => _state;

    public override void ChangeDatabase(string databaseName) => throw new NotSupportedException();

    public override void Close() => Dispose();

    public override void Open() => _state = ConnectionState.Open;

    protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) => throw new NotSupportedException();

    protected override DbCommand CreateDbCommand() => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0 && _state == ConnectionState.Open)
        {
            _state = ConnectionState.Closed;
            _node.OnConnectionDisposed();
            OnStateChange(s_closed);
        }

        base.Dispose(disposing);
    }
}

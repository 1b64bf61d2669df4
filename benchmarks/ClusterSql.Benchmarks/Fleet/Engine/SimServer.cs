using System;
using System.Collections.Generic;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql.Benchmarks.Fleet;

/// <summary>How one simulated database server answers opens.</summary>
internal sealed record ServerModel
{
    /// <summary>The open (handshake) latency of an idle server, in seconds.</summary>
    public double BaseSeconds { get; init; } = 0.002;

    /// <summary>A multiplier on every open's latency (3 for "three times slower").</summary>
    public double Slowdown { get; init; } = 1;

    /// <summary>
    /// Opens the server handles at once without slowing down; beyond it each open's latency grows in proportion to the
    /// opens in progress (latency = base × max(1, (in progress + 1) / capacity)); null for no limit.
    /// </summary>
    public double? Capacity { get; init; }

    /// <summary>The share of opens that take <see cref="TailSeconds"/> more (a lost SYN, a stalled thread).</summary>
    public double TailShare { get; init; }

    public double TailSeconds { get; init; } = 0.1;

    /// <summary>When the server is down (opens refused after <see cref="RefuseSeconds"/>): [from, to) in virtual seconds.</summary>
    public (double From, double To)? Down { get; init; }

    public double RefuseSeconds { get; init; } = 0.0005;

    /// <summary>A change of <see cref="Slowdown"/> at a virtual time (a slowdown that starts mid-run).</summary>
    public (double At, double Slowdown)? SlowdownFrom { get; init; }
}

internal sealed class SimDbException(string message) : DbException(message);

/// <summary>
/// One simulated server, shared by every client of the fleet: its latency model, its opens in progress, and what it
/// saw (attempts per 100 ms of virtual time, connections made, refusals).
/// </summary>
internal sealed class SimServer
{
    public const double BucketSeconds = 0.1;

    private readonly VirtualClock _clock;
    private readonly Random _random;
    private readonly long[] _attemptBuckets;
    private readonly long[] _winBuckets;

    public SimServer(string name, int index, ServerModel model, VirtualClock clock, Random random, double durationSeconds)
    {
        Name = name;
        Index = index;
        Model = model;
        _clock = clock;
        _random = random;
        _attemptBuckets = new long[(int)Math.Ceiling(durationSeconds / BucketSeconds) + 2];
        _winBuckets = new long[_attemptBuckets.Length];
    }

    public string Name { get; }

    public int Index { get; }

    public ServerModel Model { get; }

    public int InProgress { get; private set; }

    public long Attempts { get; private set; }

    public long Connections { get; private set; }

    public long Refused { get; private set; }

    /// <summary>Connections handed to an application (an acquire's winner), counted by the fleet.</summary>
    public long Wins { get; private set; }

    public int Open { get; private set; }

    public bool IsDown(double now) => Model.Down is { } down && now >= down.From && now < down.To;

    /// <summary>Attempts that started in [from, to) virtual seconds.</summary>
    public long AttemptsBetween(double from, double to) => Sum(_attemptBuckets, from, to);

    public long WinsBetween(double from, double to) => Sum(_winBuckets, from, to);

    public void RecordWin()
    {
        Wins++;
        Record(_winBuckets);
    }

    private void Record(long[] buckets)
    {
        var i = (int)(_clock.Seconds / BucketSeconds);
        if (i < buckets.Length)
        {
            buckets[i]++;
        }
    }

    private static long Sum(long[] buckets, double from, double to)
    {
        long sum = 0;
        for (var i = (int)Math.Round(from / BucketSeconds); i < (int)Math.Round(to / BucketSeconds) && i < buckets.Length; i++)
        {
            sum += buckets[i];
        }

        return sum;
    }

    /// <summary>Starts an open; it completes when the virtual clock reaches its end (on the clock's thread).</summary>
    public ValueTask<DbConnection> BeginOpen(CancellationToken cancellationToken)
    {
        Attempts++;
        Record(_attemptBuckets);
        var now = _clock.Seconds;
        var completion = new TaskCompletionSource<DbConnection>();
        if (IsDown(now))
        {
            Refused++;
            _clock.After(Model.RefuseSeconds, () => completion.TrySetException(new SimDbException($"{Name} refused the connection")));
            return new ValueTask<DbConnection>(completion.Task);
        }

        var slowdown = Model.SlowdownFrom is { } change && now >= change.At ? change.Slowdown : Model.Slowdown;
        var load = Model.Capacity is { } capacity ? Math.Max(1, (InProgress + 1) / capacity) : 1;

        // A little spread (±20%) so that estimates and hedge delays see variance, plus the optional tail.
        var seconds = Model.BaseSeconds * slowdown * load * (0.8 + (0.4 * _random.NextDouble()));
        if (Model.TailShare > 0 && _random.NextDouble() < Model.TailShare)
        {
            seconds += Model.TailSeconds;
        }

        InProgress++;
        CancellationTokenRegistration registration = default;
        if (cancellationToken.CanBeCanceled)
        {
            registration = cancellationToken.Register(static s => ((TaskCompletionSource<DbConnection>)s!).TrySetCanceled(), completion);
        }

        _clock.After(seconds, () =>
        {
            InProgress--;
            registration.Dispose();

            // A handshake the client gave up on still finished on the server; what it made is closed at once.
            var connection = new SimConnection(this);
            Connections++;
            Open++;
            if (!completion.TrySetResult(connection))
            {
                connection.Dispose();
            }
        });
        return new ValueTask<DbConnection>(completion.Task);
    }

    internal void OnClosed() => Open--;
}

/// <summary>One client's view of a shared server: the provider data source that the client's ClusterSql node wraps.</summary>
internal sealed class SimDataSource(SimServer server) : DbDataSource
{
    public SimServer Server { get; } = server;

    // Unpooled: every acquire is a server open, so open latency and capacity matter on every acquire.
    public override string ConnectionString => $"Server={Server.Name};Pooling=false";

    protected override DbConnection CreateDbConnection() => throw new NotSupportedException("The simulation opens through the data source.");

    protected override DbConnection OpenDbConnection() => throw new NotSupportedException("A simulated open completes on the virtual clock only.");

    protected override ValueTask<DbConnection> OpenDbConnectionAsync(CancellationToken cancellationToken = default) => Server.BeginOpen(cancellationToken);
}

internal sealed class SimConnection(SimServer server) : DbConnection
{
    private static readonly StateChangeEventArgs s_closed = new(ConnectionState.Open, ConnectionState.Closed);
    private ConnectionState _state = ConnectionState.Open;

    public SimServer Server { get; } = server;

    [AllowNull]
    public override string ConnectionString { get => string.Empty; set => throw new NotSupportedException(); }

    public override string Database => "sim";

    public override string DataSource => Server.Name;

    public override string ServerVersion => "sim";

    public override ConnectionState State => _state;

    public override void ChangeDatabase(string databaseName) => throw new NotSupportedException();

    public override void Close()
    {
        if (_state == ConnectionState.Open)
        {
            _state = ConnectionState.Closed;
            Server.OnClosed();
            OnStateChange(s_closed);
        }
    }

    public override void Open() => throw new NotSupportedException();

    protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) => throw new NotSupportedException();

    protected override DbCommand CreateDbCommand() => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Close();
        }

        base.Dispose(disposing);
    }
}

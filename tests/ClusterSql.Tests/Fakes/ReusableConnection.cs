using System;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;

namespace ClusterSql.Tests.Fakes;

/// <summary>A connection that opens and closes without allocating, raising StateChange as providers do (shared by the fast- and slow-path tests).</summary>
internal sealed class ReusableConnection : DbConnection
{
    private static readonly StateChangeEventArgs s_opened = new(ConnectionState.Closed, ConnectionState.Open);
    private static readonly StateChangeEventArgs s_closed = new(ConnectionState.Open, ConnectionState.Closed);
    private ConnectionState _state;

    [System.Diagnostics.CodeAnalysis.AllowNull]
    public override string ConnectionString { get => "reuse"; set => throw new NotSupportedException(); }

    public override string Database => "test";

    public override string DataSource => "reuse";

    public override string ServerVersion => "fake";

    public override ConnectionState State => _state;

    public override void ChangeDatabase(string databaseName) => throw new NotSupportedException();

    public override void Open()
    {
        _state = ConnectionState.Open;
        OnStateChange(s_opened);
    }

    public override void Close()
    {
        if (_state == ConnectionState.Open)
        {
            _state = ConnectionState.Closed;
            OnStateChange(s_closed);
        }
    }

    protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) => throw new NotSupportedException();

    protected override DbCommand CreateDbCommand() => throw new NotSupportedException();
}

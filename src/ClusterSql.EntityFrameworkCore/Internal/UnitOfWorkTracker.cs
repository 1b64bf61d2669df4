using System.Data.Common;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace ClusterSql.EntityFrameworkCore.Internal;

/// <summary>What one run of a unit of work has sent that may have committed: the facts the retry decision rests on.</summary>
internal sealed class AttemptState
{
    private int _commitSent;
    private int _committed;
    private DbConnection? _commitConnection;

    /// <summary>A COMMIT, or a statement that may write outside a transaction (autocommit), was sent in this run.</summary>
    public bool CommitSent => Volatile.Read(ref _commitSent) != 0;

    /// <summary>Something committed in this run: running it again could apply that twice.</summary>
    public bool Committed => Volatile.Read(ref _committed) != 0;

    /// <summary>The connection the last COMMIT (or autocommit statement) went out on, to name its node.</summary>
    public DbConnection? CommitConnection => Volatile.Read(ref _commitConnection);

    public void Reset()
    {
        Volatile.Write(ref _commitSent, 0);
        Volatile.Write(ref _committed, 0);
        Volatile.Write(ref _commitConnection, null);
    }

    public void MarkCommitSent(DbConnection? connection)
    {
        Volatile.Write(ref _commitConnection, connection);
        Volatile.Write(ref _commitSent, 1);
    }

    public void MarkCommitted() => Volatile.Write(ref _committed, 1);
}

/// <summary>
/// Watches every COMMIT and every statement that may write outside a transaction, per context, so that the
/// execution strategy can tell "nothing was sent that could have committed" from "COMMIT may have reached the server".
/// EF Core's own retrying strategies cannot tell them apart; this is what lets ClusterSql's strategy refuse to retry
/// after a COMMIT, as the retry API does.
/// </summary>
internal sealed class UnitOfWorkTracker : IDbTransactionInterceptor, IDbCommandInterceptor
{
    public static readonly UnitOfWorkTracker Instance = new();

    private static readonly ConditionalWeakTable<DbContext, AttemptState> s_states = new();

    private UnitOfWorkTracker()
    {
    }

    public static AttemptState For(DbContext context) => s_states.GetValue(context, static _ => new AttemptState());

    public InterceptionResult TransactionCommitting(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result)
    {
        Sent(eventData.Context, transaction.Connection);
        return result;
    }

    public ValueTask<InterceptionResult> TransactionCommittingAsync(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result, CancellationToken cancellationToken = default)
    {
        Sent(eventData.Context, transaction.Connection);
        return new ValueTask<InterceptionResult>(result);
    }

    public void TransactionCommitted(DbTransaction transaction, TransactionEndEventData eventData) => Done(eventData.Context);

    public Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Done(eventData.Context);
        return Task.CompletedTask;
    }

    public InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result)
    {
        Executing(command, eventData);
        return result;
    }

    public ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
    {
        Executing(command, eventData);
        return new ValueTask<InterceptionResult<DbDataReader>>(result);
    }

    public DbDataReader ReaderExecuted(DbCommand command, CommandExecutedEventData eventData, DbDataReader result)
    {
        Executed(command, eventData);
        return result;
    }

    public ValueTask<DbDataReader> ReaderExecutedAsync(DbCommand command, CommandExecutedEventData eventData, DbDataReader result, CancellationToken cancellationToken = default)
    {
        Executed(command, eventData);
        return new ValueTask<DbDataReader>(result);
    }

    public InterceptionResult<int> NonQueryExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<int> result)
    {
        Executing(command, eventData);
        return result;
    }

    public ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        Executing(command, eventData);
        return new ValueTask<InterceptionResult<int>>(result);
    }

    public int NonQueryExecuted(DbCommand command, CommandExecutedEventData eventData, int result)
    {
        Executed(command, eventData);
        return result;
    }

    public ValueTask<int> NonQueryExecutedAsync(DbCommand command, CommandExecutedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        Executed(command, eventData);
        return new ValueTask<int>(result);
    }

    public InterceptionResult<object> ScalarExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<object> result)
    {
        Executing(command, eventData);
        return result;
    }

    public ValueTask<InterceptionResult<object>> ScalarExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<object> result, CancellationToken cancellationToken = default)
    {
        Executing(command, eventData);
        return new ValueTask<InterceptionResult<object>>(result);
    }

    public object? ScalarExecuted(DbCommand command, CommandExecutedEventData eventData, object? result)
    {
        Executed(command, eventData);
        return result;
    }

    public ValueTask<object?> ScalarExecutedAsync(DbCommand command, CommandExecutedEventData eventData, object? result, CancellationToken cancellationToken = default)
    {
        Executed(command, eventData);
        return new ValueTask<object?>(result);
    }

    /// <summary>
    /// A statement commits by itself when it runs outside a transaction (autocommit: EF Core saves a single change
    /// without one, and ExecuteUpdate, ExecuteDelete and ExecuteSql run without one unless the caller began one), and
    /// a migration's DDL commits implicitly on MySQL even inside one. Only LINQ and FromSql queries are taken to read.
    /// </summary>
    private static bool MayCommit(DbCommand command, CommandEventData eventData) =>
        eventData.CommandSource == CommandSource.Migrations
        || (command.Transaction is null && eventData.CommandSource is not (CommandSource.LinqQuery or CommandSource.FromSqlQuery));

    private static void Executing(DbCommand command, CommandEventData eventData)
    {
        if (eventData.Context is { } context && MayCommit(command, eventData))
        {
            For(context).MarkCommitSent(NodeConnection(command.Connection));
        }
    }

    private static void Executed(DbCommand command, CommandEventData eventData)
    {
        if (eventData.Context is { } context && MayCommit(command, eventData))
        {
            For(context).MarkCommitted();
        }
    }

    private static void Sent(DbContext? context, DbConnection? connection)
    {
        if (context is not null)
        {
            For(context).MarkCommitSent(NodeConnection(connection));
        }
    }

    // The node's own connection (a cluster connection lets go of it when it closes), to name the node later.
    private static DbConnection? NodeConnection(DbConnection? connection) =>
        connection is ClusterConnection cluster ? cluster.InnerConnection : connection;

    private static void Done(DbContext? context)
    {
        if (context is not null)
        {
            For(context).MarkCommitted();
        }
    }
}

/// <summary>Refuses SaveChanges on a context whose connections come from the readers: writes belong to the writer.</summary>
internal sealed class ReadersOnlyInterceptor : SaveChangesInterceptor
{
    public static readonly ReadersOnlyInterceptor Instance = new();

    private const string Message =
        "This DbContext takes its connections from ClusterDataSource.Readers (UseClusterSql with cluster.Readers): it only reads. "
        + "Save changes through a context configured with the cluster or cluster.Writer.";

    private ReadersOnlyInterceptor()
    {
    }

    public override InterceptionResult<int> SavingChanges(DbContextEventData eventData, InterceptionResult<int> result) =>
        throw new System.InvalidOperationException(Message);

    public override ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default) =>
        throw new System.InvalidOperationException(Message);
}

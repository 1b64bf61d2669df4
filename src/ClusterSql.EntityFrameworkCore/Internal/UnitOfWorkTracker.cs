using System;
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
    private int _rawSent;
    private DbConnection? _commitConnection;

    /// <summary>A COMMIT, or a statement that may write outside a transaction (autocommit), was sent in this run.</summary>
    public bool CommitSent => Volatile.Read(ref _commitSent) != 0;

    /// <summary>Something committed in this run: running it again could apply that twice.</summary>
    public bool Committed => Volatile.Read(ref _committed) != 0;

    /// <summary>
    /// Text EF Core did not write (ExecuteSql, FromSql that does not start with SELECT/WITH, migration DDL, a command of
    /// unknown source) that may commit was sent: it may hold several statements, or commit implicitly, so even a
    /// certification conflict (1213) does not prove that none of it committed.
    /// </summary>
    public bool RawSent => Volatile.Read(ref _rawSent) != 0;

    /// <summary>The connection the last COMMIT (or autocommit statement) went out on, to name its node.</summary>
    public DbConnection? CommitConnection => Volatile.Read(ref _commitConnection);

    public void Reset()
    {
        Volatile.Write(ref _commitSent, 0);
        Volatile.Write(ref _committed, 0);
        Volatile.Write(ref _rawSent, 0);
        Volatile.Write(ref _commitConnection, null);
    }

    /// <summary>A COMMIT or one statement EF Core generated (SaveChanges, ExecuteUpdate, ExecuteDelete) went out.</summary>
    public void MarkCommitSent(DbConnection? connection)
    {
        Volatile.Write(ref _commitConnection, connection);
        Volatile.Write(ref _commitSent, 1);
    }

    /// <summary>Text EF Core did not write, which may commit, went out (see <see cref="RawSent"/>).</summary>
    public void MarkRawSent(DbConnection? connection)
    {
        Volatile.Write(ref _rawSent, 1);
        MarkCommitSent(connection);
    }

    public void MarkCommitted() => Volatile.Write(ref _committed, 1);
}

/// <summary>
/// Watches every COMMIT and every statement that may commit, so that the execution strategy can tell "nothing was sent
/// that could have committed" from "COMMIT may have reached the server". While a <see cref="ClusterExecutionStrategy"/>
/// runs a unit of work, what any context does in it (the context the strategy came from, or another one the unit of
/// work creates, as in EF Core's documented <c>CreateExecutionStrategy().Execute(() => { using var ctx = new ...; })</c>)
/// is recorded into the run's <see cref="AttemptState"/>, which flows with the run as an AsyncLocal.
/// EF Core's own retrying strategies cannot tell them apart; this is what lets ClusterSql's strategy refuse to retry
/// after a COMMIT, as the retry API does.
/// </summary>
internal sealed class UnitOfWorkTracker : IDbTransactionInterceptor, IDbCommandInterceptor
{
    public static readonly UnitOfWorkTracker Instance = new();

    private static readonly ConditionalWeakTable<DbContext, AttemptState> s_states = new();
    private static readonly AsyncLocal<AttemptState?> s_current = new();

    private UnitOfWorkTracker()
    {
    }

    /// <summary>The state of the strategy run in progress on this flow, if any.</summary>
    public static AttemptState? Current
    {
        get => s_current.Value;
        set => s_current.Value = value;
    }

    /// <summary>Where a command or COMMIT of <paramref name="context"/> is recorded: the run in progress, whatever the context, or the context's own state outside one.</summary>
    public static AttemptState For(DbContext context) => s_current.Value ?? s_states.GetValue(context, static _ => new AttemptState());

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
    /// What a command may commit. A LINQ query reads. SaveChanges, ExecuteUpdate and ExecuteDelete send statements EF
    /// Core wrote, one per command, that commit by themselves only outside a transaction (autocommit: EF Core saves a
    /// single change without one). Text EF Core did not write may commit even inside a transaction (ALTER TABLE,
    /// TRUNCATE, LOCK TABLES, a literal COMMIT or START TRANSACTION commit implicitly on MySQL) and may hold several
    /// statements: ExecuteSql and commands of unknown source always count, migrations too (DDL), and FromSql/SqlQuery
    /// count unless the text starts, after whitespace and comments, with SELECT or WITH (so <c>CALL p()</c> counts).
    /// </summary>
    internal static CommitKind MayCommit(DbCommand command, CommandEventData eventData) => eventData.CommandSource switch
    {
        CommandSource.LinqQuery => CommitKind.None,
        CommandSource.FromSqlQuery => IsQueryText(command.CommandText) ? CommitKind.None : CommitKind.Raw,
        CommandSource.SaveChanges or CommandSource.ExecuteUpdate or CommandSource.ExecuteDelete or CommandSource.ValueGenerator =>
            command.Transaction is null ? CommitKind.Statement : CommitKind.None,
        _ => CommitKind.Raw,
    };

    /// <summary>Whether SQL text starts, after whitespace and comments, with SELECT or WITH (a read).</summary>
    internal static bool IsQueryText(string? text)
    {
        var span = (text ?? string.Empty).AsSpan();
        while (true)
        {
            span = span.TrimStart();
            if (span.StartsWith("/*", StringComparison.Ordinal))
            {
                // MySQL runs an executable comment's text (/*! ... */, /*M! ... */): it is not a comment.
                if (span.Length > 2 && (span[2] == '!' || span[2] == 'M'))
                {
                    return false;
                }

                var end = span.IndexOf("*/", StringComparison.Ordinal);
                if (end < 0)
                {
                    return false;
                }

                span = span[(end + 2)..];
            }
            else if (span.StartsWith("-- ", StringComparison.Ordinal) || span.StartsWith("--\t", StringComparison.Ordinal)
                || span is "--" || span.StartsWith("--\n", StringComparison.Ordinal) || span.StartsWith("--\r", StringComparison.Ordinal)
                || span.StartsWith("#", StringComparison.Ordinal))
            {
                var end = span.IndexOfAny('\n', '\r');
                if (end < 0)
                {
                    return false;
                }

                span = span[end..];
            }
            else
            {
                return StartsWithWord(span, "SELECT") || StartsWithWord(span, "WITH");
            }
        }
    }

    private static bool StartsWithWord(ReadOnlySpan<char> text, string word) =>
        text.StartsWith(word, StringComparison.OrdinalIgnoreCase)
        && (text.Length == word.Length || !(char.IsLetterOrDigit(text[word.Length]) || text[word.Length] == '_'));

    private static void Executing(DbCommand command, CommandEventData eventData)
    {
        if (eventData.Context is not { } context)
        {
            return;
        }

        switch (MayCommit(command, eventData))
        {
            case CommitKind.Statement:
                For(context).MarkCommitSent(NodeConnection(command.Connection));
                break;
            case CommitKind.Raw:
                For(context).MarkRawSent(NodeConnection(command.Connection));
                break;
        }
    }

    private static void Executed(DbCommand command, CommandExecutedEventData eventData)
    {
        if (eventData.Context is { } context && MayCommit(command, eventData) != CommitKind.None)
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

/// <summary>What a command may commit.</summary>
internal enum CommitKind
{
    /// <summary>Nothing: a read, or a statement EF Core wrote inside a transaction (the COMMIT is seen on its own).</summary>
    None,

    /// <summary>One statement EF Core wrote, outside a transaction: a 1213 proves it did nothing.</summary>
    Statement,

    /// <summary>Text EF Core did not write: may be several statements, or commit implicitly.</summary>
    Raw,
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

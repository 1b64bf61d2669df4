using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Storage;

namespace ClusterSql.EntityFrameworkCore.Internal;

/// <summary>
/// With <see cref="ClusterExecutionStrategy"/>, SaveChanges always runs in a transaction (as
/// <see cref="AutoTransactionBehavior.Always"/>), for the duration of the call: EF Core saves a single change without
/// one (autocommit), and a lost connection during an autocommit statement leaves its outcome unknown, where inside a
/// transaction it is "before COMMIT" and may be retried. The cost is a BEGIN and a COMMIT round trip on the most common
/// write; the gain is that the retry strategy covers it. A context set to <see cref="AutoTransactionBehavior.Never"/>
/// (or already <see cref="AutoTransactionBehavior.Always"/>) is left as it is.
/// </summary>
internal sealed class SaveInTransactionInterceptor : SaveChangesInterceptor
{
    public static readonly SaveInTransactionInterceptor Instance = new();

    private static readonly ConditionalWeakTable<DbContext, object> s_switched = new();

    private SaveInTransactionInterceptor()
    {
    }

    public override InterceptionResult<int> SavingChanges(DbContextEventData eventData, InterceptionResult<int> result)
    {
        Switch(eventData.Context);
        return result;
    }

    public override ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        Switch(eventData.Context);
        return new ValueTask<InterceptionResult<int>>(result);
    }

    public override int SavedChanges(SaveChangesCompletedEventData eventData, int result)
    {
        Restore(eventData.Context);
        return result;
    }

    public override ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        Restore(eventData.Context);
        return new ValueTask<int>(result);
    }

    public override void SaveChangesFailed(DbContextErrorEventData eventData) => Restore(eventData.Context);

    public override Task SaveChangesFailedAsync(DbContextErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        Restore(eventData.Context);
        return Task.CompletedTask;
    }

    public override void SaveChangesCanceled(DbContextEventData eventData) => Restore(eventData.Context);

    public override Task SaveChangesCanceledAsync(DbContextEventData eventData, CancellationToken cancellationToken = default)
    {
        Restore(eventData.Context);
        return Task.CompletedTask;
    }

    private static void Switch(DbContext? context)
    {
        if (context is { Database: { AutoTransactionBehavior: AutoTransactionBehavior.WhenNeeded, CurrentTransaction: null } database }
            && database.CreateExecutionStrategy() is ClusterExecutionStrategy)
        {
            database.AutoTransactionBehavior = AutoTransactionBehavior.Always;
            s_switched.AddOrUpdate(context, s_marker);
        }
    }

    private static void Restore(DbContext? context)
    {
        if (context is not null && s_switched.Remove(context))
        {
            context.Database.AutoTransactionBehavior = AutoTransactionBehavior.WhenNeeded;
        }
    }

    private static readonly object s_marker = new();
}

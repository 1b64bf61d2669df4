using System;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql.EntityFrameworkCore.Internal;
using ClusterSql.MySql;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using MySqlConnector;

namespace ClusterSql.EntityFrameworkCore;

/// <summary>
/// An EF Core execution strategy that runs a whole unit of work again, on a fresh acquire, when it failed in a way
/// that left nothing committed: the same classification as <see cref="MySqlCluster.ExecuteTransactionAsync{T}"/>
/// (a Galera certification conflict 1213, also at COMMIT; a node not ready 1047 or a failed replication 1180 before
/// COMMIT; a lock wait timeout 1205; a lost or timed-out connection before COMMIT; an acquire that found no node).
/// Once COMMIT (or a statement that commits by itself) may have reached the server, a lost connection is never
/// retried: it throws <see cref="ClusterCommitOutcomeUnknownException"/>, unless the caller's <c>verifySucceeded</c>
/// finds that the commit happened.
/// </summary>
/// <remarks>
/// <para>
/// Otherwise it behaves as EF Core's retrying strategies: <c>SaveChanges</c> and queries are retried by themselves;
/// a unit of work with its own transaction (or several SaveChanges) goes through
/// <c>context.Database.CreateExecutionStrategy().ExecuteAsync(...)</c>, and a transaction begun outside it is refused;
/// the retry limit ends with <see cref="RetryLimitExceededException"/>. A run that committed something (one of two
/// SaveChanges outside a transaction) is never run again: wrap such a unit of work in one transaction.
/// </para>
/// <para>Enable it with <see cref="ClusterSqlDbContextOptionsExtensions.EnableClusterRetry"/>.</para>
/// </remarks>
public sealed class ClusterExecutionStrategy : ExecutionStrategy
{
    private readonly ClusterRetryOptions _retry;
    private readonly ClusterDataSource? _cluster;
    private MySqlCluster.RetryReason _lastReason;
    private bool _outcomeUnknown;

    /// <summary>Creates the strategy for one execution.</summary>
    /// <param name="dependencies">EF Core's dependencies of an execution strategy.</param>
    /// <param name="retry">The retry settings (<see cref="ClusterRetryOptions"/>), or <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException">A setting in <paramref name="retry"/> is out of range.</exception>
    public ClusterExecutionStrategy(ExecutionStrategyDependencies dependencies, ClusterRetryOptions? retry = null)
        : base(dependencies, Validated(retry).MaxAttempts - 1, Validated(retry).MaxDelay)
    {
        _retry = Validated(retry);
        _cluster = dependencies.Options.FindExtension<ClusterSqlOptionsExtension>()?.Cluster;
    }

    private AttemptState State => UnitOfWorkTracker.For(Dependencies.CurrentContext.Context);

    /// <inheritdoc/>
    /// <exception cref="ClusterCommitOutcomeUnknownException">The connection failed after COMMIT may have reached the server.</exception>
    public override TResult Execute<TState, TResult>(
        TState state,
        Func<DbContext, TState, TResult> operation,
        Func<DbContext, TState, ExecutionResult<TResult>>? verifySucceeded)
    {
        try
        {
            return base.Execute(state, operation, verifySucceeded);
        }
        catch (Exception ex) when (_outcomeUnknown)
        {
            throw OutcomeUnknown(ex);
        }
    }

    /// <inheritdoc/>
    /// <exception cref="ClusterCommitOutcomeUnknownException">The connection failed after COMMIT may have reached the server.</exception>
    public override async Task<TResult> ExecuteAsync<TState, TResult>(
        TState state,
        Func<DbContext, TState, CancellationToken, Task<TResult>> operation,
        Func<DbContext, TState, CancellationToken, Task<ExecutionResult<TResult>>>? verifySucceeded,
        CancellationToken cancellationToken = default)
    {
        try
        {
            return await base.ExecuteAsync(state, operation, verifySucceeded, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (_outcomeUnknown)
        {
            throw OutcomeUnknown(ex);
        }
    }

    /// <inheritdoc/>
    protected override void OnFirstExecution()
    {
        base.OnFirstExecution();
        _outcomeUnknown = false;
        State.Reset();
    }

    /// <inheritdoc/>
    protected override void OnRetry()
    {
        base.OnRetry();
        MySqlCluster.CountRetry(_cluster, _lastReason);
        State.Reset();
    }

    /// <inheritdoc/>
    protected override bool ShouldRetryOn(Exception exception)
    {
        var reason = Classify(exception);
        _outcomeUnknown = reason == MySqlCluster.RetryReason.OutcomeUnknown;
        _lastReason = reason;
        return reason is not (MySqlCluster.RetryReason.None or MySqlCluster.RetryReason.OutcomeUnknown);
    }

    /// <summary>The caller's <c>verifySucceeded</c> is asked before every retry, and when the outcome of a COMMIT is unknown.</summary>
    /// <param name="exception">The error of the run.</param>
    /// <returns>Whether to run <c>verifySucceeded</c>.</returns>
    protected override bool ShouldVerifySuccessOn(Exception exception) =>
        Classify(exception) is not MySqlCluster.RetryReason.None;

    /// <inheritdoc/>
    protected override TimeSpan? GetNextDelay(Exception lastException)
    {
        // ExceptionsEncountered holds the failed runs so far, this one included: the same backoff as the retry API's.
        var failedRuns = ExceptionsEncountered.Count;
        return failedRuns < _retry.MaxAttempts ? _retry.DelayBefore(failedRuns, Random.Shared) : null;
    }

    private MySqlCluster.RetryReason Classify(Exception exception)
    {
        var state = State;
        if (state.Committed)
        {
            // Part of this run is committed: running it again would apply that part twice.
            return MySqlCluster.RetryReason.None;
        }

        return MySqlCluster.Classify(exception, state.CommitSent);
    }

    private ClusterCommitOutcomeUnknownException OutcomeUnknown(Exception error)
    {
        _outcomeUnknown = false;
        MySqlCluster.CountOutcomeUnknown(_cluster);
        var connection = State.CommitConnection as MySqlConnection;
        return new ClusterCommitOutcomeUnknownException(MySqlCluster.NodeNameOf(_cluster, connection), ExceptionsEncountered.Count + 1, error);
    }

    private static ClusterRetryOptions Validated(ClusterRetryOptions? retry)
    {
        retry ??= s_defaultRetry;
        retry.Validate();
        return retry;
    }

    private static readonly ClusterRetryOptions s_defaultRetry = new();
}

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
/// <para>
/// What every context does during a run is recorded into the run (an AsyncLocal set around it), so a COMMIT through
/// another context the unit of work creates counts as the run's own. SQL text EF Core did not write (ExecuteSql,
/// FromSql/SqlQuery not starting with SELECT or WITH, migrations) is taken to commit, in a transaction too, and after it
/// even a conflict (1213) is not retried. The caller's cancellation is never retried.
/// </para>
/// <para>Enable it with <see cref="ClusterSqlDbContextOptionsExtensions.EnableClusterRetry"/>.</para>
/// </remarks>
public sealed class ClusterExecutionStrategy : ExecutionStrategy
{
    private readonly ClusterRetryOptions _retry;
    private readonly ClusterDataSource? _cluster;
    private readonly AttemptState _attempt = new();
    private MySqlCluster.RetryReason _lastReason;
    private bool _outcomeUnknown;

    // Between ShouldVerifySuccessOn and verifySucceeded's answer: verifySucceeded's own failed runs are retried by the
    // same loop (ShouldRetryOn, OnRetry), which must neither wipe nor read the failed main run's state.
    private bool _verifying;

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

    // The run's state, shared (as an AsyncLocal) with every context the unit of work uses, not only this strategy's own.
    private AttemptState State => _attempt;

    /// <inheritdoc/>
    /// <exception cref="ClusterCommitOutcomeUnknownException">The connection failed after COMMIT may have reached the server.</exception>
    public override TResult Execute<TState, TResult>(
        TState state,
        Func<DbContext, TState, TResult> operation,
        Func<DbContext, TState, ExecutionResult<TResult>>? verifySucceeded)
    {
        // Nested (SaveChanges inside a unit of work, another context's strategy) runs record into the outer run's state.
        var outer = UnitOfWorkTracker.Current;
        if (outer is null)
        {
            UnitOfWorkTracker.Current = _attempt;
        }

        try
        {
            return base.Execute(state, operation, verifySucceeded is null ? null : (context, s) =>
            {
                var result = verifySucceeded(context, s);
                _verifying = false;
                return result;
            });
        }
        catch (Exception ex) when (_outcomeUnknown)
        {
            throw OutcomeUnknown(ex);
        }
        finally
        {
            _verifying = false;
            if (outer is null)
            {
                UnitOfWorkTracker.Current = null;
            }
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
        // Set in this async method, the AsyncLocal flows into the runs and is undone for the caller when it returns.
        if (UnitOfWorkTracker.Current is null)
        {
            UnitOfWorkTracker.Current = _attempt;
        }

        try
        {
            return await base.ExecuteAsync(
                state,
                operation,
                verifySucceeded is null ? null : async (context, s, token) =>
                {
                    var result = await verifySucceeded(context, s, token).ConfigureAwait(false);
                    _verifying = false;
                    return result;
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (_outcomeUnknown)
        {
            throw OutcomeUnknown(ex);
        }
        finally
        {
            _verifying = false;
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
        if (!_verifying)
        {
            State.Reset();
        }
    }

    /// <inheritdoc/>
    /// <remarks>
    /// The caller's own cancellation (an <see cref="OperationCanceledException"/>, which MySqlConnector raises around a
    /// QueryInterrupted when the token cancels a command) is never retried and reaches the caller as it is, also when it
    /// interrupted a COMMIT: then the caller cancelled without waiting for the outcome, which stays unknown.
    /// </remarks>
    protected override bool ShouldRetryOn(Exception exception)
    {
        if (exception is OperationCanceledException)
        {
            _outcomeUnknown = false;
            return false;
        }

        if (_verifying)
        {
            // verifySucceeded's own run failed: it only reads, so it is classified by itself, as a run that sent no
            // COMMIT; the main run's state and outcome stay as they were.
            _lastReason = MySqlCluster.Classify(exception, commitSent: false);
            return _lastReason is not (MySqlCluster.RetryReason.None or MySqlCluster.RetryReason.OutcomeUnknown);
        }

        var reason = Classify(exception);
        _outcomeUnknown = reason == MySqlCluster.RetryReason.OutcomeUnknown;
        _lastReason = reason;
        return reason is not (MySqlCluster.RetryReason.None or MySqlCluster.RetryReason.OutcomeUnknown);
    }

    /// <summary>The caller's <c>verifySucceeded</c> is asked before every retry, and when the outcome of a COMMIT is unknown.</summary>
    /// <param name="exception">The error of the run.</param>
    /// <returns>Whether to run <c>verifySucceeded</c>.</returns>
    protected override bool ShouldVerifySuccessOn(Exception exception)
    {
        if (exception is OperationCanceledException)
        {
            return false;
        }

        var reason = Classify(exception);
        _outcomeUnknown = reason == MySqlCluster.RetryReason.OutcomeUnknown;
        _verifying = reason is not MySqlCluster.RetryReason.None;
        return _verifying;
    }

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

        var reason = MySqlCluster.Classify(exception, state.CommitSent);
        if (reason == MySqlCluster.RetryReason.Conflict && state.RawSent)
        {
            // A 1213 proves that the statement it answered did nothing, not that the rest of a raw command did:
            // "UPDATE a ...; UPDATE b ..." or CALL p() outside a transaction may have committed UPDATE a already.
            return MySqlCluster.RetryReason.None;
        }

        return reason;
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

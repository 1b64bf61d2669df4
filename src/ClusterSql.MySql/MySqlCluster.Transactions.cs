using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Diagnostics.Metrics;
using System.IO;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using MySqlConnector;

namespace ClusterSql.MySql;

public static partial class MySqlCluster
{
    private static readonly Meter s_meter = new("ClusterSql");

    private static readonly Counter<long> s_retries = s_meter.CreateCounter<long>(
        "clustersql.transaction.retries", "{retry}", "Units of work run again by ExecuteTransactionAsync, by reason (conflict, not_ready, lock_wait, connection, acquire).");

    private static readonly Counter<long> s_unknownOutcomes = s_meter.CreateCounter<long>(
        "clustersql.transaction.outcome_unknown", "{transaction}", "Units of work whose connection failed after COMMIT was sent: not retried.");

    /// <summary>
    /// Runs <paramref name="work"/> in a transaction on a connection from <paramref name="dataSource"/> (usually
    /// <c>cluster.Writer</c>) and commits it. When the unit of work fails in a way that leaves nothing committed, it is
    /// run again, whole, on a fresh acquire, after a capped, jittered backoff (<see cref="ClusterRetryOptions"/>):
    /// a Galera certification conflict (error 1213, "WSREP detected deadlock/conflict", also when COMMIT returns it), a
    /// node not ready (1047), a commit the server reports failed (1180, as Galera does on a node that just lost the
    /// primary component), a lock wait timeout (1205), a connection lost or timed out before COMMIT was sent, or an
    /// acquire that found no node. A connection lost after COMMIT was sent is never retried: that throws
    /// <see cref="ClusterCommitOutcomeUnknownException"/>. Any other error ends the unit of work at once.
    /// </summary>
    /// <remarks>
    /// <para>
    /// This is the only place where ClusterSql runs a caller's statements again, and only because the caller chose it:
    /// <paramref name="work"/> must be safe to run again from the start (no side effects outside the transaction that
    /// must not repeat), and must not commit or roll back the transaction itself (a unit of work that ended its own
    /// transaction is not retried). When the cluster reads causally (<see cref="ClusterOptions.CausalReads"/>, with
    /// <see cref="UseGaleraConsistency"/>), the committed write is recorded for those reads, at one more round trip; for
    /// a token per acquire, call <see cref="ClusterDataSource.RecordWriteAsync"/> yourself.
    /// </para>
    /// </remarks>
    /// <typeparam name="T">What the unit of work returns.</typeparam>
    /// <param name="dataSource">A cluster, one of its roles, or any MySqlConnector data source.</param>
    /// <param name="work">The unit of work; it gets the open connection, its transaction and the cancellation token.</param>
    /// <param name="retry">The retry settings, or <see langword="null"/> for the defaults.</param>
    /// <param name="cancellationToken">Cancels the unit of work, its backoff and its acquires.</param>
    /// <returns>What the last, committed run of <paramref name="work"/> returned.</returns>
    /// <exception cref="ClusterCommitOutcomeUnknownException">The connection failed after COMMIT was sent.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A setting in <paramref name="retry"/> is out of range.</exception>
    [SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The two overloads differ in the delegate's return type only, as Task.Run's do.")]
    public static async Task<T> ExecuteTransactionAsync<T>(
        this DbDataSource dataSource,
        Func<MySqlConnection, MySqlTransaction, CancellationToken, Task<T>> work,
        ClusterRetryOptions? retry = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(work);
        retry ??= s_defaultRetry;
        retry.Validate();
        var cluster = dataSource switch
        {
            ClusterDataSource c => c,
            ClusterRoleDataSource r => r.Cluster,
            _ => null,
        };
        var poolName = cluster?.Options.Name ?? "default";
        for (var attempt = 1; ; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            MySqlConnection? connection = null;
            MySqlTransaction? transaction = null;
            var commitSent = false;
            RetryReason reason;
            try
            {
                connection = AsMySql(await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false));
                transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                var result = await work(connection, transaction, cancellationToken).ConfigureAwait(false);
                if (transaction.Connection is null)
                {
                    throw new InvalidOperationException("The unit of work committed or rolled back its transaction itself; ExecuteTransactionAsync commits it.");
                }

                commitSent = true;
                // Not the caller's token: cancelling a COMMIT in flight would leave its outcome unknown behind an "operation cancelled".
                await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
                if (cluster is { Consistency: not null, Options.CausalReads: true })
                {
                    await RecordCommittedWriteAsync(cluster, connection).ConfigureAwait(false);
                }

                return result;
            }
            catch (Exception ex) when (!IsCallerCancellation(ex, cancellationToken))
            {
                reason = Classify(ex, commitSent, transactionEndedByWork: !commitSent && transaction is not null && transaction.Connection is null);
                if (reason == RetryReason.OutcomeUnknown)
                {
                    Count(s_unknownOutcomes, poolName, tag: null);
                    throw new ClusterCommitOutcomeUnknownException(NodeNameOf(cluster, connection), attempt, ex);
                }

                if (reason == RetryReason.None || attempt >= retry.MaxAttempts)
                {
                    throw;
                }
            }
            finally
            {
                await DisposeQuietlyAsync(transaction, connection).ConfigureAwait(false);
            }

            Count(s_retries, poolName, ReasonTag(reason));
            await Task.Delay(retry.DelayBefore(attempt, Random.Shared), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The same as <see cref="ExecuteTransactionAsync{T}"/>, for a unit of work that returns nothing.</summary>
    /// <param name="dataSource">A cluster, one of its roles, or any MySqlConnector data source.</param>
    /// <param name="work">The unit of work; it gets the open connection, its transaction and the cancellation token.</param>
    /// <param name="retry">The retry settings, or <see langword="null"/> for the defaults.</param>
    /// <param name="cancellationToken">Cancels the unit of work, its backoff and its acquires.</param>
    /// <returns>A task that completes when a run of the unit of work has committed.</returns>
    /// <exception cref="ClusterCommitOutcomeUnknownException">The connection failed after COMMIT was sent.</exception>
    [SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "The two overloads differ in the delegate's return type only, as Task.Run's do.")]
    public static Task ExecuteTransactionAsync(
        this DbDataSource dataSource,
        Func<MySqlConnection, MySqlTransaction, CancellationToken, Task> work,
        ClusterRetryOptions? retry = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        return dataSource.ExecuteTransactionAsync<bool>(
            async (connection, transaction, token) =>
            {
                await work(connection, transaction, token).ConfigureAwait(false);
                return true;
            },
            retry,
            cancellationToken);
    }

    /// <summary>
    /// Makes reads able to see writes on Galera: write positions are MariaDB GTIDs (see <see cref="ClusterDataSource.RecordWriteAsync"/>,
    /// <see cref="ClusterOptions.CausalReads"/>). The nodes need <c>wsrep_gtid_mode=ON</c> with one
    /// <c>wsrep_gtid_domain_id</c>, so that every node names a write by the same GTID.
    /// </summary>
    /// <param name="builder">The cluster builder.</param>
    /// <returns>The builder.</returns>
    public static ClusterDataSourceBuilder UseGaleraConsistency(this ClusterDataSourceBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.UseConsistency(GaleraConsistency.Instance);
    }

    private static readonly ClusterRetryOptions s_defaultRetry = new();

    internal enum RetryReason
    {
        None,
        Conflict,
        NotReady,
        LockWait,
        Connection,
        Acquire,
        CommitFailed,
        OutcomeUnknown,
    }

    /// <summary>
    /// Whether a unit of work that failed with <paramref name="error"/> may run again. Before COMMIT was sent nothing is
    /// committed (the server rolls back a transaction whose connection is gone), so a conflict, a node not ready, a lock
    /// wait timeout or a lost connection may be retried. Once COMMIT was sent, only a server's own answer that it did
    /// not commit (a conflict or not ready) may; a lost or timed-out connection leaves the outcome unknown.
    /// </summary>
    internal static RetryReason Classify(Exception error, bool commitSent, bool transactionEndedByWork = false)
    {
        if (transactionEndedByWork)
        {
            // The work committed (or rolled back) by itself: running it again could apply it twice.
            return RetryReason.None;
        }

        if (error is ClusterException)
        {
            // Every node failed the acquire: nothing was sent.
            return commitSent ? RetryReason.OutcomeUnknown : RetryReason.Acquire;
        }

        if (error is MySqlException mySql && IsServerAnswer(mySql))
        {
            switch (mySql.ErrorCode)
            {
                case MySqlErrorCode.LockDeadlock:
                    return RetryReason.Conflict;
                case MySqlErrorCode.UnknownCommand when !commitSent:
                    return RetryReason.NotReady;
                case MySqlErrorCode.UnknownCommand or MySqlErrorCode.ErrorDuringCommit when commitSent:
                    // Measured in CI: a node that lost the primary component while committing answered COMMIT with an error
                    // although its write set had reached the group and committed there (the retry hit a duplicate key).
                    // Only a certification conflict (1213) proves a COMMIT did nothing.
                    return RetryReason.OutcomeUnknown;
                case MySqlErrorCode.ErrorDuringCommit:
                    // ER_ERROR_DURING_COMMIT: the server says the commit failed and rolled back; on Galera, the write set
                    // could not be replicated ("Not connected to Primary Component" on a node that just lost the group).
                    return RetryReason.CommitFailed;
                case MySqlErrorCode.LockWaitTimeout when !commitSent:
                    return RetryReason.LockWait;
                case MySqlErrorCode.ServerShutdown or (MySqlErrorCode)1927: // ER_CONNECTION_KILLED
                    return commitSent ? RetryReason.OutcomeUnknown : RetryReason.Connection;
                default:
                    // The server answered with an error of the caller's making (a constraint, a syntax error): final.
                    return RetryReason.None;
            }
        }

        if (IsConnectionFailure(error))
        {
            return commitSent ? RetryReason.OutcomeUnknown : RetryReason.Connection;
        }

        return RetryReason.None;
    }

    /// <summary>An error the server sent (it has an SQLSTATE and a server error number), not one MySqlConnector raised itself.</summary>
    private static bool IsServerAnswer(MySqlException error) =>
        error.SqlState is { Length: > 0 } && error.Number is > 0 and < 2000 && error.ErrorCode != MySqlErrorCode.UnableToConnectToHost;

    private static bool IsConnectionFailure(Exception error)
    {
        for (var current = error; current is not null; current = current.InnerException)
        {
            switch (current)
            {
                case IOException or SocketException or TimeoutException or EndOfStreamException:
                    return true;
                case MySqlException { ErrorCode: MySqlErrorCode.CommandTimeoutExpired or MySqlErrorCode.UnableToConnectToHost or MySqlErrorCode.QueryInterrupted }:
                    return true;
                case MySqlException mySql when !IsServerAnswer(mySql) && mySql.InnerException is null && mySql.Number == 0:
                    // MySqlConnector's own "connection closed/broken" errors carry no server number.
                    return true;
                case ObjectDisposedException or InvalidOperationException when error is MySqlException:
                    return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Ends a run: disposing an uncommitted transaction rolls it back, and on a node that failed (not Primary, gone) the
    /// ROLLBACK fails too. That failure must neither replace the run's own error nor skip the retry: the server rolls
    /// back a transaction whose session ends anyway, and a connection that broke is not reused by MySqlConnector's pool.
    /// </summary>
    private static async ValueTask DisposeQuietlyAsync(MySqlTransaction? transaction, MySqlConnection? connection)
    {
        if (transaction is not null)
        {
            try
            {
                await transaction.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Cleanup never replaces the run's own outcome (a committed result, or the error that decides a retry).
            }
        }

        if (connection is not null)
        {
            try
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Cleanup never replaces the run's own outcome (a committed result, or the error that decides a retry).
            }
        }
    }

    private static bool IsCallerCancellation(Exception error, CancellationToken cancellationToken) =>
        error is OperationCanceledException && cancellationToken.IsCancellationRequested;

    private static async Task RecordCommittedWriteAsync(ClusterDataSource cluster, MySqlConnection connection)
    {
        try
        {
            await cluster.RecordWriteAsync(connection, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The write is committed; only its position could not be read (the connection failed right after COMMIT, or
            // the server returned a position that is not a GTID: GTID mode off).
            // The unit of work succeeded and must say so: a causal read made before the next recorded write may not see
            // this one, which is the cost of never reporting a committed write as failed.
        }
    }

    /// <summary>The node of <paramref name="cluster"/> that <paramref name="connection"/> is connected to, by its host; null when none matches.</summary>
    internal static string? NodeNameOf(ClusterDataSource? cluster, MySqlConnection? connection)
    {
        if (cluster is null || connection is null)
        {
            return null;
        }

        var host = connection.DataSource;
        foreach (var node in cluster.Nodes)
        {
            if (node.DataSource is MySqlDataSource mySql &&
                string.Equals(new MySqlConnectionStringBuilder(mySql.ConnectionString).Server, host, StringComparison.OrdinalIgnoreCase))
            {
                return node.Name;
            }
        }

        return null;
    }

    /// <summary>Counts a retry of a unit of work (this API's, or the EF Core execution strategy's) by its reason.</summary>
    internal static void CountRetry(ClusterDataSource? cluster, RetryReason reason) =>
        Count(s_retries, cluster?.Options.Name ?? "default", ReasonTag(reason));

    /// <summary>Counts a unit of work whose COMMIT may have reached the server when its connection failed.</summary>
    internal static void CountOutcomeUnknown(ClusterDataSource? cluster) =>
        Count(s_unknownOutcomes, cluster?.Options.Name ?? "default", tag: null);

    private static string ReasonTag(RetryReason reason) => reason switch
    {
        RetryReason.Conflict => "conflict",
        RetryReason.NotReady => "not_ready",
        RetryReason.LockWait => "lock_wait",
        RetryReason.Connection => "connection",
        RetryReason.CommitFailed => "commit_failed",
        _ => "acquire",
    };

    private static void Count(Counter<long> counter, string poolName, string? tag)
    {
        if (!counter.Enabled)
        {
            return;
        }

        try
        {
            var tags = new TagList { { "db.client.connection.pool.name", poolName } };
            if (tag is not null)
            {
                tags.Add("clustersql.reason", tag);
            }

            counter.Add(1, tags);
        }
        catch (Exception)
        {
            // Telemetry is best-effort: a listener that throws must not fail a committed unit of work.
        }
    }
}

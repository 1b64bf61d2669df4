using System;
using System.Data;
using System.Data.Common;
using System.IO;
using System.Threading.Tasks;
using ClusterSql.EntityFrameworkCore;
using ClusterSql.EntityFrameworkCore.Internal;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Storage;
using NUnit.Framework;

namespace ClusterSql.IntegrationTests.EntityFrameworkCore;

/// <summary>
/// The strategy's decisions, deterministically: the unit of work throws what a failing run would see, after the
/// tracker recorded what EF's interceptors record on a real run (a COMMIT sent, a commit done). Nothing is opened.
/// </summary>
[TestFixture]
public sealed class ExecutionStrategyTests
{
    private ClusterDataSource _cluster = null!;

    [SetUp]
    public void BuildCluster() => _cluster = TestCluster.Build(galera: false, extra: Ef.PomeloOptions);

    [TearDown]
    public async Task DisposeCluster() => await _cluster.DisposeAsync();

    private ItemsContext Context(int maxAttempts = 10) =>
        Ef.Items(_cluster, new ClusterRetryOptions { MaxAttempts = maxAttempts, BaseDelay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromMilliseconds(2) });

    [Test]
    public async Task ConnectionLost_BeforeCommit_IsRetried()
    {
        await using var context = Context();
        var strategy = context.Database.CreateExecutionStrategy();
        Assert.That(strategy, Is.InstanceOf<ClusterExecutionStrategy>());
        var runs = 0;
        var result = await strategy.ExecuteAsync(() =>
        {
            runs++;
            return runs == 1 ? throw new IOException("connection lost") : Task.FromResult(42);
        });
        Assert.That((result, runs), Is.EqualTo((42, 2)));
    }

    [Test]
    public void ConnectionLost_AfterCommitWasSent_ThrowsOutcomeUnknownWithoutRetry()
    {
        using var context = Context();
        var strategy = context.Database.CreateExecutionStrategy();
        var runs = 0;
        var error = Assert.Throws<ClusterCommitOutcomeUnknownException>(() => strategy.Execute(() =>
        {
            runs++;
            UnitOfWorkTracker.For(context).MarkCommitSent(null);
            throw new IOException("connection lost");
        }));
        Assert.That(runs, Is.EqualTo(1));
        Assert.That(error!.InnerException, Is.InstanceOf<IOException>());
        Assert.That(error.Attempts, Is.EqualTo(1));
    }

    [Test]
    public async Task OutcomeUnknown_VerifySucceededSaysCommitted_ReturnsTheResult()
    {
        await using var context = Context();
        var strategy = context.Database.CreateExecutionStrategy();
        var runs = 0;
        var result = await strategy.ExecuteAsync(
            0,
            (ctx, _, _) =>
            {
                runs++;
                UnitOfWorkTracker.For(ctx).MarkCommitSent(null);
                throw new IOException("connection lost");
            },
            (_, _, _) => Task.FromResult(new ExecutionResult<int>(true, 7)));
        Assert.That((result, runs), Is.EqualTo((7, 1)));
    }

    [Test]
    public async Task Conflict_AfterCommitWasSent_IsRetriedButNotOnceSomethingCommitted()
    {
        await using var context = Context();
        var strategy = context.Database.CreateExecutionStrategy();

        // A certification conflict proves the COMMIT did nothing: retried.
        var runs = 0;
        await strategy.ExecuteAsync(() =>
        {
            runs++;
            UnitOfWorkTracker.For(context).MarkCommitSent(null);
            return runs == 1 ? throw Deadlock() : Task.CompletedTask;
        });
        Assert.That(runs, Is.EqualTo(2));

        // But once part of the run committed (a first SaveChanges outside a transaction), the run is never repeated.
        runs = 0;
        Assert.ThrowsAsync<MySqlConnector.MySqlException>(() => strategy.ExecuteAsync(() =>
        {
            runs++;
            UnitOfWorkTracker.For(context).MarkCommitted();
            throw Deadlock();
        }));
        Assert.That(runs, Is.EqualTo(1));
    }

    [Test]
    public void RetryLimit_EndsWithRetryLimitExceeded()
    {
        using var context = Context(maxAttempts: 3);
        var strategy = context.Database.CreateExecutionStrategy();
        var runs = 0;
        Assert.Throws<RetryLimitExceededException>(() => strategy.Execute(() =>
        {
            runs++;
            throw new IOException("connection lost");
        }));
        Assert.That(runs, Is.EqualTo(3));
    }

    [Test]
    public void OtherErrors_AreNotRetried()
    {
        using var context = Context();
        var strategy = context.Database.CreateExecutionStrategy();
        var runs = 0;
        Assert.Throws<FormatException>(() => strategy.Execute(() =>
        {
            runs++;
            throw new FormatException("a bug in the unit of work");
        }));
        Assert.That(runs, Is.EqualTo(1));
    }

    [Test]
    public void CommitThroughAnotherContext_InsideTheStrategy_IsSeen()
    {
        // EF's documented pattern: the unit of work makes its own context and commits through it.
        using var context = Context();
        var strategy = context.Database.CreateExecutionStrategy();
        var runs = 0;
        Assert.Throws<ClusterCommitOutcomeUnknownException>(() => strategy.Execute(() =>
        {
            runs++;
            using var other = Context();
            UnitOfWorkTracker.Instance.TransactionCommitting(new FakeTransaction(), TransactionEvent(other), default);
            throw new IOException("connection lost during the other context's COMMIT");
        }));
        Assert.That(runs, Is.EqualTo(1));
    }

    [Test]
    public async Task CommitThroughAnotherContext_InsideTheStrategyAsync_IsSeen()
    {
        await using var context = Context();
        var strategy = context.Database.CreateExecutionStrategy();
        var runs = 0;
        Assert.ThrowsAsync<ClusterCommitOutcomeUnknownException>(() => strategy.ExecuteAsync(async () =>
        {
            runs++;
            await Task.Yield();
            await using var other = Context();
            await UnitOfWorkTracker.Instance.TransactionCommittingAsync(new FakeTransaction(), TransactionEvent(other), default);
            throw new IOException("connection lost during the other context's COMMIT");
        }));
        Assert.That(runs, Is.EqualTo(1));
    }

    [TestCase("UPDATE a SET n = n + 1; UPDATE b SET n = n + 1", CommandSource.ExecuteSqlRaw, false)]
    [TestCase("CALL p()", CommandSource.FromSqlQuery, false)]
    [TestCase("UPDATE a SET n = n + 1", CommandSource.Unknown, false)]
    [TestCase("UPDATE items SET n = 1 WHERE id = 2", CommandSource.SaveChanges, false)]
    [TestCase("ALTER TABLE items ADD c INT", CommandSource.ExecuteSqlRaw, true)]
    [TestCase("TRUNCATE items", CommandSource.Unknown, true)]
    public void Conflict_AfterAStatementThatMayCommit(string sql, CommandSource source, bool inTransaction)
    {
        // 1213 proves that one statement EF wrote did nothing; not that the rest of raw text (or an implicit commit) did.
        using var context = Context();
        var strategy = context.Database.CreateExecutionStrategy();
        var runs = 0;
        var action = () => strategy.Execute(() =>
        {
            runs++;
            var command = new FakeCommand(sql, inTransaction ? new FakeTransaction() : null);
            UnitOfWorkTracker.Instance.NonQueryExecuting(command, CommandEvent(context, command, source), default);
            if (runs == 1)
            {
                throw Deadlock();
            }
        });
        if (source == CommandSource.SaveChanges)
        {
            action();
            Assert.That(runs, Is.EqualTo(2), "one statement EF generated: the conflict proves it did nothing");
        }
        else
        {
            Assert.Throws<MySqlConnector.MySqlException>(() => action());
            Assert.That(runs, Is.EqualTo(1), "raw SQL: part of it may have committed");
        }
    }

    [Test]
    public void RawSqlInsideATransaction_ThatRan_IsNeverRunAgain()
    {
        // ALTER TABLE / TRUNCATE / LOCK TABLES commit the transaction implicitly: a later lost connection is not "before COMMIT".
        using var context = Context();
        var strategy = context.Database.CreateExecutionStrategy();
        var runs = 0;
        Assert.Throws<IOException>(() => strategy.Execute(() =>
        {
            runs++;
            var command = new FakeCommand("ALTER TABLE items ADD c INT", new FakeTransaction());
            var data = CommandEvent(context, command, CommandSource.ExecuteSqlRaw);
            UnitOfWorkTracker.Instance.NonQueryExecuting(command, data, default);
            UnitOfWorkTracker.Instance.NonQueryExecuted(command, ExecutedEvent(context, command, CommandSource.ExecuteSqlRaw), 0);
            throw new IOException("connection lost");
        }));
        Assert.That(runs, Is.EqualTo(1));
    }

    [TestCase("SELECT 1", true)]
    [TestCase("  /* hint */ -- note\n select * from t", true)]
    [TestCase("WITH x AS (SELECT 1) SELECT * FROM x", true)]
    [TestCase("# c\nSELECT 1", true)]
    [TestCase("CALL p()", false)]
    [TestCase("SELECTED()", false)]
    [TestCase("/*!50000 DELETE FROM t */ SELECT 1", false)]
    [TestCase("/* unterminated SELECT", false)]
    [TestCase("", false)]
    public void FromSqlText_IsARead_OnlyWhenItStartsWithSelectOrWith(string sql, bool read) =>
        Assert.That(UnitOfWorkTracker.IsQueryText(sql), Is.EqualTo(read));

    [Test]
    public void VerifySucceeded_OwnRetries_KeepTheMainRunsCommitSent()
    {
        using var context = Context();
        var strategy = context.Database.CreateExecutionStrategy();
        var (runs, verifies) = (0, 0);
        Assert.Throws<ClusterCommitOutcomeUnknownException>(() => strategy.Execute(
            0,
            (ctx, _) =>
            {
                runs++;
                UnitOfWorkTracker.For(ctx).MarkCommitSent(null);
                throw new IOException("connection lost at COMMIT");
            },
            (_, _) =>
            {
                verifies++;
                return verifies == 1 ? throw new IOException("connection lost while verifying") : new ExecutionResult<int>(false, 0);
            }));
        Assert.That((runs, verifies), Is.EqualTo((1, 2)));
    }

    [Test]
    public void CallerCancellation_IsNotRetried()
    {
        using var context = Context();
        var strategy = context.Database.CreateExecutionStrategy();
        var runs = 0;
        Assert.Throws<OperationCanceledException>(() => strategy.Execute(() =>
        {
            runs++;
            throw new OperationCanceledException("Query execution was interrupted", MySqlError(MySqlConnector.MySqlErrorCode.QueryInterrupted, "70100", "Query execution was interrupted"));
        }));
        Assert.That(runs, Is.EqualTo(1));
    }

    private static TransactionEventData TransactionEvent(DbContext context) =>
        new(null!, null!, new FakeTransaction(), context, Guid.NewGuid(), Guid.NewGuid(), false, DateTimeOffset.UtcNow);

    private static CommandEventData CommandEvent(DbContext context, DbCommand command, CommandSource source) =>
        new(null!, null!, command.Connection!, command, context, DbCommandMethod.ExecuteNonQuery, Guid.NewGuid(), Guid.NewGuid(), false, false, DateTimeOffset.UtcNow, source);

    private static CommandExecutedEventData ExecutedEvent(DbContext context, DbCommand command, CommandSource source) =>
        new(null!, null!, command.Connection!, command, context, DbCommandMethod.ExecuteNonQuery, Guid.NewGuid(), Guid.NewGuid(), 0, false, false, DateTimeOffset.UtcNow, TimeSpan.Zero, source);

    // A command and transaction as EF hands them to its interceptors; nothing runs.
    private sealed class FakeTransaction : DbTransaction
    {
        public override IsolationLevel IsolationLevel => IsolationLevel.RepeatableRead;

        protected override DbConnection? DbConnection => null;

        public override void Commit()
        {
        }

        public override void Rollback()
        {
        }
    }

    private sealed class FakeCommand(string text, DbTransaction? transaction) : DbCommand
    {
        [System.Diagnostics.CodeAnalysis.AllowNull]
        public override string CommandText { get; set; } = text;

        public override int CommandTimeout { get; set; }

        public override CommandType CommandType { get; set; }

        public override bool DesignTimeVisible { get; set; }

        public override UpdateRowSource UpdatedRowSource { get; set; }

        protected override DbConnection? DbConnection { get; set; } = new MySqlConnector.MySqlConnection();

        protected override DbParameterCollection DbParameterCollection => throw new NotSupportedException();

        protected override DbTransaction? DbTransaction { get; set; } = transaction;

        public override void Cancel()
        {
        }

        public override int ExecuteNonQuery() => throw new NotSupportedException();

        public override object? ExecuteScalar() => throw new NotSupportedException();

        public override void Prepare()
        {
        }

        protected override DbParameter CreateDbParameter() => throw new NotSupportedException();

        protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior) => throw new NotSupportedException();
    }

    // MySqlConnector makes its exceptions itself (its constructor is internal): the 1213 a Galera node answers.
    private static MySqlConnector.MySqlException Deadlock() =>
        MySqlError(MySqlConnector.MySqlErrorCode.LockDeadlock, "40001", "WSREP detected deadlock/conflict and aborted the transaction");

    private static MySqlConnector.MySqlException MySqlError(MySqlConnector.MySqlErrorCode code, string sqlState, string message)
    {
        var constructor = typeof(MySqlConnector.MySqlException).GetConstructor(
            System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic,
            [typeof(MySqlConnector.MySqlErrorCode), typeof(string), typeof(string)])
            ?? throw new MissingMethodException("MySqlException's internal constructor changed: update the test.");
        return (MySqlConnector.MySqlException)constructor.Invoke([code, sqlState, message]);
    }
}

using System;
using System.IO;
using System.Threading.Tasks;
using ClusterSql.EntityFrameworkCore;
using ClusterSql.EntityFrameworkCore.Internal;
using Microsoft.EntityFrameworkCore;
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

    // MySqlConnector makes its exceptions itself (its constructor is internal): the 1213 a Galera node answers.
    private static MySqlConnector.MySqlException Deadlock()
    {
        var constructor = typeof(MySqlConnector.MySqlException).GetConstructor(
            System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic,
            [typeof(MySqlConnector.MySqlErrorCode), typeof(string), typeof(string)])
            ?? throw new MissingMethodException("MySqlException's internal constructor changed: update the test.");
        return (MySqlConnector.MySqlException)constructor.Invoke([MySqlConnector.MySqlErrorCode.LockDeadlock, "40001", "WSREP detected deadlock/conflict and aborted the transaction"]);
    }
}

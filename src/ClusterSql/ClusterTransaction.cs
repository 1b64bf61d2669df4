using System.Data;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;

namespace ClusterSql;

/// <summary>
/// A transaction begun on a <see cref="ClusterConnection"/>: the provider's transaction, whose
/// <see cref="DbTransaction.Connection"/> is the cluster connection it was begun on, as ADO.NET promises. Frameworks
/// check that (Entity Framework Core refuses a transaction "not associated with the current connection"); commands
/// and batches of the cluster connection hand the provider's transaction to the provider's command.
/// </summary>
internal sealed class ClusterTransaction : DbTransaction
{
    private readonly ClusterConnection _connection;

    public ClusterTransaction(ClusterConnection connection, DbTransaction inner)
    {
        _connection = connection;
        Inner = inner;
    }

    /// <summary>The provider's transaction.</summary>
    public DbTransaction Inner { get; }

    public override IsolationLevel IsolationLevel => Inner.IsolationLevel;

    public override bool SupportsSavepoints => Inner.SupportsSavepoints;

    // Null once the transaction is over, as the provider's own says.
    protected override DbConnection? DbConnection => Inner.Connection is null ? null : _connection;

    /// <summary>The provider's transaction of a transaction assigned to a cluster command or batch.</summary>
    public static DbTransaction? Unwrap(DbTransaction? transaction) => transaction is ClusterTransaction cluster ? cluster.Inner : transaction;

    public override void Commit() => Inner.Commit();

    public override Task CommitAsync(CancellationToken cancellationToken = default) => Inner.CommitAsync(cancellationToken);

    public override void Rollback() => Inner.Rollback();

    public override Task RollbackAsync(CancellationToken cancellationToken = default) => Inner.RollbackAsync(cancellationToken);

    public override void Save(string savepointName) => Inner.Save(savepointName);

    public override Task SaveAsync(string savepointName, CancellationToken cancellationToken = default) => Inner.SaveAsync(savepointName, cancellationToken);

    public override void Rollback(string savepointName) => Inner.Rollback(savepointName);

    public override Task RollbackAsync(string savepointName, CancellationToken cancellationToken = default) => Inner.RollbackAsync(savepointName, cancellationToken);

    public override void Release(string savepointName) => Inner.Release(savepointName);

    public override Task ReleaseAsync(string savepointName, CancellationToken cancellationToken = default) => Inner.ReleaseAsync(savepointName, cancellationToken);

    public override ValueTask DisposeAsync() => Inner.DisposeAsync();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Inner.Dispose();
        }

        base.Dispose(disposing);
    }
}

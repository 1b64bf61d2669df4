using System;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.EntityFrameworkCore.Storage;
using Pomelo.EntityFrameworkCore.MySql.Storage.Internal;

namespace ClusterSql.EntityFrameworkCore.Internal;

/// <summary>
/// Pomelo's relational connection whose <see cref="DbConnection"/> is a cluster connection: EF Core keeps one
/// connection object per context and opens and closes it around each query and SaveChanges, and every open of a
/// cluster connection is an acquire (failover, hedging, health) through the role it was made for, while every close
/// returns the node's MySqlConnection to its pool. Commands, readers and transactions are MySqlConnector's own.
/// </summary>
/// <remarks>
/// Pomelo reads a MySqlConnection out of its connection in three places; each is answered here: its typed
/// <c>DbConnection</c> property (used to set the SQL mode on open), the master connection (database existence
/// checks) and the connection string (a cluster has one per node).
/// </remarks>
internal sealed class ClusterRelationalConnection : MySqlRelationalConnection
{
    private readonly IMySqlConnectionStringOptionsValidator _validator;
    private readonly DbDataSource _source;

    public ClusterRelationalConnection(RelationalConnectionDependencies dependencies, IMySqlConnectionStringOptionsValidator mySqlConnectionStringOptionsValidator)
        : base(dependencies, mySqlConnectionStringOptionsValidator, (DbDataSource)null!)
    {
        _validator = mySqlConnectionStringOptionsValidator;
        _source = dependencies.ContextOptions.FindExtension<ClusterSqlOptionsExtension>()?.Source
            ?? throw new InvalidOperationException("The ClusterSql relational connection is used without UseClusterSql: configure the context with UseClusterSql(cluster, serverVersion).");
    }

    /// <summary>The cluster's description (node names and role, never a password). It cannot be set: each node's settings belong to its data source.</summary>
    [AllowNull]
    public override string ConnectionString
    {
        get => _source.ConnectionString;
        set => throw new NotSupportedException(
            "A DbContext on ClusterSql takes its connections from the cluster, whose nodes each have their own connection string: it has no connection string to set.");
    }

    protected override DbConnection CreateDbConnection() => _source.CreateConnection();

    /// <summary>
    /// Pomelo's master connection serves EnsureCreated/EnsureDeleted/Migrate's existence check: on a cluster it is one
    /// more context connection through the same role (the database must exist: the nodes' connection strings name it).
    /// </summary>
    public override IMySqlRelationalConnection CreateMasterConnection() => new ClusterRelationalConnection(Dependencies, _validator);

    // Pomelo runs these (SET sql_mode on open with DisableBackslashEscaping) on its typed MySqlConnection property,
    // which a cluster connection is not; the untyped connection runs them the same way.
    protected override void ExecuteNonQuery(string sql)
    {
        using var command = ((RelationalConnection)this).DbConnection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    protected override async Task ExecuteNonQueryAsync(string sql, CancellationToken cancellationToken = default)
    {
        var command = ((RelationalConnection)this).DbConnection.CreateCommand();
        await using (command.ConfigureAwait(false))
        {
            command.CommandText = sql;
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}

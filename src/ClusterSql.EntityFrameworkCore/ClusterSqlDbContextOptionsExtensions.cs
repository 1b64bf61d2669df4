using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using ClusterSql.EntityFrameworkCore.Internal;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using MySqlConnector;
using Pomelo.EntityFrameworkCore.MySql.Infrastructure;
using Pomelo.EntityFrameworkCore.MySql.Infrastructure.Internal;
using Pomelo.EntityFrameworkCore.MySql.Storage.Internal;

namespace ClusterSql.EntityFrameworkCore;

/// <summary>Configures a <see cref="DbContext"/> to take its connections from a ClusterSql cluster through Pomelo.EntityFrameworkCore.MySql.</summary>
public static class ClusterSqlDbContextOptionsExtensions
{
    /// <summary>
    /// Uses Pomelo.EntityFrameworkCore.MySql with connections from a cluster: each time EF Core opens the context's
    /// connection (around each query and SaveChanges, or once for a transaction) it is a cluster acquire, with
    /// failover, hedging and health. <paramref name="dataSource"/> is the cluster itself or <c>cluster.Writer</c> (writes
    /// and reads go to the writer role), or <c>cluster.Readers</c> (a context that only reads: its SaveChanges throws).
    /// </summary>
    /// <remarks>
    /// Every node must be a MySqlConnector node whose connection string has <c>AllowUserVariables=True</c> and
    /// <c>UseAffectedRows=False</c> (Pomelo relies on both), and the nodes must agree on <c>GuidFormat</c>,
    /// <c>OldGuids</c> and <c>TreatTinyAsBoolean</c>, from which Pomelo derives its type mappings, and name the same
    /// database. Retries are off
    /// until <see cref="EnableClusterRetry"/>.
    /// </remarks>
    /// <param name="optionsBuilder">The context's options.</param>
    /// <param name="dataSource">A <see cref="ClusterDataSource"/>, or one of its roles (<see cref="ClusterDataSource.Writer"/>, <see cref="ClusterDataSource.Readers"/>).</param>
    /// <param name="serverVersion">The server version, as for <c>UseMySql</c> (for example <c>new MariaDbServerVersion(new Version(10, 11))</c>).</param>
    /// <param name="mySqlOptionsAction">Pomelo's own options (<see cref="MySqlDbContextOptionsBuilder"/>), such as <see cref="EnableClusterRetry"/>.</param>
    /// <returns>The options builder.</returns>
    /// <exception cref="ArgumentException"><paramref name="dataSource"/> is neither a cluster nor one of its roles; or a node is not a MySqlConnector node, lacks the options Pomelo needs, names no database or another database than the others, or disagrees with the others on type-mapping options; or <paramref name="mySqlOptionsAction"/> enables Pomelo's EnableRetryOnFailure.</exception>
    [SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "Typed and untyped options builders, as UseMySql has.")]
    public static DbContextOptionsBuilder UseClusterSql(
        this DbContextOptionsBuilder optionsBuilder,
        DbDataSource dataSource,
        ServerVersion serverVersion,
        Action<MySqlDbContextOptionsBuilder>? mySqlOptionsAction = null)
    {
        ArgumentNullException.ThrowIfNull(optionsBuilder);
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(serverVersion);
        var (cluster, source, role) = dataSource switch
        {
            ClusterDataSource c => (c, (DbDataSource)c.Writer, ClusterRole.Writer),
            ClusterRoleDataSource r => (r.Cluster, r, r.Role),
            _ => throw new ArgumentException(
                "UseClusterSql takes a ClusterDataSource or one of its roles (cluster.Writer, cluster.Readers); for a single server use UseMySql.",
                nameof(dataSource)),
        };

        // Pomelo derives its type mappings (Guid format, tinyint(1) as bool) from the connection string's settings; a
        // cluster has one string per node, so it gets a string of those settings alone, the same for every node.
        optionsBuilder.UseMySql(SettingsOf(cluster), serverVersion, mySqlOptionsAction);
        if (optionsBuilder.Options.FindExtension<MySqlOptionsExtension>()?.ExecutionStrategyFactory is { } factory
            && factory.Method.DeclaringType?.Assembly == typeof(MySqlDbContextOptionsBuilder).Assembly)
        {
            // Pomelo's EnableRetryOnFailure (its only execution strategy) retries whatever failed, COMMIT included.
            throw new ArgumentException(
                "UseClusterSql does not take Pomelo's EnableRetryOnFailure: it re-runs a unit of work even when its COMMIT may have reached "
                + "the server. Use EnableClusterRetry, which retries only what cannot have committed.",
                nameof(mySqlOptionsAction));
        }

        if (optionsBuilder.Options.FindExtension<MySqlOptionsExtension>() is { NoBackslashEscapes: true })
        {
            RequireNoBackslashEscapes(cluster);
        }

        ((IDbContextOptionsBuilderInfrastructure)optionsBuilder).AddOrUpdateExtension(new ClusterSqlOptionsExtension(cluster, source, role));
        optionsBuilder.ReplaceService<IMySqlRelationalConnection, ClusterRelationalConnection>();
        optionsBuilder.AddInterceptors(UnitOfWorkTracker.Instance, SaveInTransactionInterceptor.Instance);
        if (role == ClusterRole.Reader)
        {
            optionsBuilder.AddInterceptors(ReadersOnlyInterceptor.Instance);
        }

        return optionsBuilder;
    }

    /// <summary>The same as <see cref="UseClusterSql(DbContextOptionsBuilder, DbDataSource, ServerVersion, Action{MySqlDbContextOptionsBuilder}?)"/>, for a typed options builder.</summary>
    /// <typeparam name="TContext">The context type.</typeparam>
    /// <param name="optionsBuilder">The context's options.</param>
    /// <param name="dataSource">A <see cref="ClusterDataSource"/>, or one of its roles.</param>
    /// <param name="serverVersion">The server version.</param>
    /// <param name="mySqlOptionsAction">Pomelo's own options.</param>
    /// <returns>The options builder.</returns>
    /// <exception cref="ArgumentException">See the untyped overload.</exception>
    [SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "Typed and untyped options builders, as UseMySql has.")]
    public static DbContextOptionsBuilder<TContext> UseClusterSql<TContext>(
        this DbContextOptionsBuilder<TContext> optionsBuilder,
        DbDataSource dataSource,
        ServerVersion serverVersion,
        Action<MySqlDbContextOptionsBuilder>? mySqlOptionsAction = null)
        where TContext : DbContext =>
        (DbContextOptionsBuilder<TContext>)UseClusterSql((DbContextOptionsBuilder)optionsBuilder, dataSource, serverVersion, mySqlOptionsAction);

    /// <summary>
    /// Retries a unit of work on a Galera conflict or a node that is not ready, never after COMMIT may have reached
    /// the server (<see cref="ClusterExecutionStrategy"/>), with the retry API's settings and backoff.
    /// </summary>
    /// <remarks>
    /// With it, <c>SaveChanges</c> always runs in a transaction (as <c>AutoTransactionBehavior.Always</c>, unless the
    /// context is set to <c>Never</c>): EF Core would save a single change without one, and a connection lost during
    /// that autocommit statement leaves its outcome unknown; inside a transaction it is lost before COMMIT, and retried.
    /// </remarks>
    /// <param name="builder">Pomelo's options.</param>
    /// <param name="retry">The retry settings, or <see langword="null"/> for the defaults (10 attempts, 5 ms doubling to 1 s).</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A setting in <paramref name="retry"/> is out of range.</exception>
    public static MySqlDbContextOptionsBuilder EnableClusterRetry(this MySqlDbContextOptionsBuilder builder, ClusterRetryOptions? retry = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        retry?.Validate();
        return builder.ExecutionStrategy(dependencies => new ClusterExecutionStrategy(dependencies, retry));
    }

    /// <summary>
    /// With DisableBackslashEscaping the session treats a backslash as a character, so MySqlConnector must not escape
    /// one in a parameter value: it decides that by its connection string's NoBackslashEscapes, which Pomelo sets only
    /// on connection strings it builds itself. Measured: without it (on a cluster, and on Pomelo's own MySqlDataSource
    /// mode alike) a value "a\b" is stored as "a\\b".
    /// </summary>
    private static void RequireNoBackslashEscapes(ClusterDataSource cluster)
    {
        foreach (var node in cluster.Nodes)
        {
            if (node.DataSource is MySqlDataSource mySql && !new MySqlConnectionStringBuilder(mySql.ConnectionString).NoBackslashEscapes)
            {
                throw new ArgumentException(
                    $"Node '{node.Name}': DisableBackslashEscaping needs 'NoBackslashEscapes=True' in every node's connection string, "
                    + "or MySqlConnector escapes backslashes in parameter values that the server then stores doubled.",
                    "dataSource");
            }
        }
    }

    private static string SettingsOf(ClusterDataSource cluster)
    {
        string? settings = null;
        string? first = null;
        string? database = null;
        foreach (var node in cluster.Nodes)
        {
            if (node.DataSource is not MySqlDataSource mySql)
            {
                throw new ArgumentException($"Node '{node.Name}' is not a MySqlConnector node: Pomelo.EntityFrameworkCore.MySql runs on MySqlConnector.", "dataSource");
            }

            var builder = new MySqlConnectionStringBuilder(mySql.ConnectionString);
            if (!builder.AllowUserVariables || builder.UseAffectedRows)
            {
                throw new ArgumentException(
                    $"Node '{node.Name}': Pomelo.EntityFrameworkCore.MySql needs 'AllowUserVariables=True;UseAffectedRows=False' in every node's connection string "
                    + "(its SQL uses user variables, and its concurrency checks count matched rows).",
                    "dataSource");
            }

            // A closed cluster connection reports the first node's database (EF and Pomelo read it before opening, for
            // the history table and existence checks): that is only right when every node names the same one.
            if (string.IsNullOrEmpty(builder.Database))
            {
                throw new ArgumentException(
                    $"Node '{node.Name}' names no database ('Database=...' in its connection string): a DbContext on a cluster needs every node to name the same database.",
                    "dataSource");
            }

            if (database is null)
            {
                database = builder.Database;
            }
            else if (!string.Equals(database, builder.Database, StringComparison.Ordinal))
            {
                throw new ArgumentException(
                    $"Nodes '{first}' and '{node.Name}' name different databases: a DbContext on a cluster needs every node to name the same database.",
                    "dataSource");
            }

            var nodeSettings = new MySqlConnectionStringBuilder
            {
                AllowUserVariables = true,
                UseAffectedRows = false,
                GuidFormat = builder.GuidFormat,
                OldGuids = builder.OldGuids,
            };
            foreach (var key in (IEnumerable<string>)["Treat Tiny As Boolean", "TreatTinyAsBoolean"])
            {
                if (builder.ContainsKey(key))
                {
                    nodeSettings.TreatTinyAsBoolean = builder.TreatTinyAsBoolean;
                }
            }

            var text = nodeSettings.ConnectionString;
            if (settings is null)
            {
                (settings, first) = (text, node.Name);
            }
            else if (!string.Equals(settings, text, StringComparison.Ordinal))
            {
                throw new ArgumentException(
                    $"Nodes '{first}' and '{node.Name}' differ in GuidFormat, OldGuids or TreatTinyAsBoolean: Pomelo.EntityFrameworkCore.MySql maps types by them, so every node must read them alike.",
                    "dataSource");
            }
        }

        return settings ?? throw new ArgumentException("The cluster has no nodes.", "dataSource");
    }
}

using System.Collections.Generic;
using System.Data.Common;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ClusterSql.EntityFrameworkCore.Internal;

/// <summary>
/// Carries the data source a context's connections come from. It lives in the context's options, which are read per
/// context instance, so one EF service provider serves any number of clusters: the data source is never a singleton
/// option that EF would cache with its internal service provider.
/// </summary>
internal sealed class ClusterSqlOptionsExtension : IDbContextOptionsExtension
{
    private ExtensionInfo? _info;

    public ClusterSqlOptionsExtension(ClusterDataSource cluster, DbDataSource source, ClusterRole? role)
    {
        Cluster = cluster;
        Source = source;
        Role = role;
    }

    public ClusterDataSource Cluster { get; }

    /// <summary>Where each open acquires: the cluster's writer role or its readers.</summary>
    public DbDataSource Source { get; }

    public ClusterRole? Role { get; }

    public DbContextOptionsExtensionInfo Info => _info ??= new ExtensionInfo(this);

    public void ApplyServices(IServiceCollection services)
    {
        // The relational connection is replaced through ReplaceService in UseClusterSql; nothing else to add.
    }

    public void Validate(IDbContextOptions options)
    {
    }

    private sealed class ExtensionInfo(IDbContextOptionsExtension extension) : DbContextOptionsExtensionInfo(extension)
    {
        public override bool IsDatabaseProvider => false;

        public override string LogFragment => "using ClusterSql ";

        public override int GetServiceProviderHashCode() => 0;

        public override bool ShouldUseSameServiceProvider(DbContextOptionsExtensionInfo other) => other is ExtensionInfo;

        public override void PopulateDebugInfo(IDictionary<string, string> debugInfo) => debugInfo["ClusterSql"] = "1";
    }
}

namespace ClusterSql.Generators.Tests;

/// <summary>Representative inputs, shared by the baseline, compile, run and incremental tests.</summary>
internal static class Sources
{
    /// <summary>Typed opens, every option but CausalReads (it needs write positions), all three connection string sources, in a file-scoped namespace.</summary>
    public const string TypedCluster = """
        using ClusterSql;
        using Microsoft.Data.Sqlite;

        namespace Demo;

        [Cluster(typeof(SqliteFactory), ConnectionType = typeof(SqliteConnection), Policy = AcquirePolicy.FailOver,
            MinHedgeDelayMilliseconds = 5, MaxHedgeDelayMilliseconds = 500, ConnectTimeoutMilliseconds = 2000, HedgeBudget = 0.25,
            MaxWriters = 2, WriterIsAlsoReader = true, MaxReaderLag = -1, WriterFailbackDelayMilliseconds = 0)]
        [ClusterNode("galera1", ConnectionString = "Data Source=:memory:")]
        [ClusterNode("db-east.1", ConnectionStringEnvironmentVariable = "CLUSTERSQL_TEST_EAST")]
        [ClusterNode("db_west", ConnectionStringConfigurationKey = "ConnectionStrings:West", Priority = 1, ConnectTimeoutMilliseconds = 300)]
        public sealed partial class DemoCluster
        {
            public static int Answer() => 42;
        }
        """;

    /// <summary>The smallest cluster: untyped, global namespace, one node from the environment.</summary>
    public const string MinimalCluster = """
        [ClusterSql.Cluster(typeof(Microsoft.Data.Sqlite.SqliteFactory))]
        [ClusterSql.ClusterNode("primary", ConnectionStringEnvironmentVariable = "PRIMARY")]
        internal partial class MinimalCluster
        {
        }
        """;

    /// <summary>Nested in partial types (one generic), a record, a provider declared in source.</summary>
    public const string NestedCluster = """
        using System.Data.Common;
        using ClusterSql;

        namespace Demo.Nested
        {
            public sealed class FakeFactory : DbProviderFactory
            {
                public static FakeFactory Instance { get; } = new();
            }

            public static partial class Clusters<T>
            {
                internal partial struct Holder
                {
                    [Cluster(typeof(FakeFactory), Policy = AcquirePolicy.RoundRobin)]
                    [ClusterNode("reports.a", ConnectionStringConfigurationKey = "reports:a")]
                    [ClusterNode("reports.b", ConnectionStringConfigurationKey = "reports:b", Priority = -1)]
                    public sealed partial record Reporting;
                }
            }
        }
        """;
}

using System;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.Loader;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using NUnit.Framework;

namespace ClusterSql.Generators.Tests;

/// <summary>Compiles the generated cluster, loads it and runs it over in-memory SQLite nodes.</summary>
[NonParallelizable]
public sealed class GeneratedClusterRuntimeTests
{
    private const string EastVariable = "CLUSTERSQL_TEST_EAST";

    // Exercises the generated API as a user would: typed opens (sync and async), node handles, Create's arguments.
    private const string Probe = """
        using System.Linq;
        using System.Threading.Tasks;
        using Microsoft.Data.Sqlite;

        namespace Demo;

        public static class Probe
        {
            public static async Task<string> RunAsync()
            {
                await using var cluster = DemoCluster.Create(
                    key => key == "ConnectionStrings:West" ? "Data Source=:memory:" : null,
                    builder => builder.Options.HedgeBudget = 0);
                long answer;
                await using (SqliteConnection connection = await cluster.OpenGalera1Async())
                {
                    using var command = connection.CreateCommand();
                    command.CommandText = "select 41 + 1";
                    answer = (long)(await command.ExecuteScalarAsync())!;
                }

                using (SqliteConnection connection = cluster.OpenDbWest())
                {
                }

                await using (SqliteConnection connection = await cluster.OpenConnectionAsync())
                {
                }

                using (SqliteConnection connection = cluster.OpenConnection())
                {
                }

                var galera1 = cluster.Galera1.GetStatistics();
                var names = string.Join(",", cluster.DataSource.Nodes.Select(n => n.Name));
                return $"{answer} {names} {cluster.DataSource.Options.Policy} galera1={galera1.Successes} west={cluster.DbWest.GetStatistics().Successes} east={cluster.DbEast1.GetStatistics().Opens} {cluster.DbWest.ConnectTimeout.TotalMilliseconds}";
            }

            // The declared role options reach the options, and the typed role opens go through the roles.
            public static async Task<string> RolesAsync()
            {
                await using var cluster = DemoCluster.Create(key => "Data Source=:memory:", builder => builder.Options.HedgeBudget = 0);
                await using (SqliteConnection connection = await cluster.OpenWriterAsync())
                {
                }

                using (SqliteConnection connection = cluster.OpenWriter())
                {
                }

                await using (SqliteConnection connection = await cluster.OpenReaderAsync())
                {
                }

                using (SqliteConnection connection = cluster.OpenReader())
                {
                }

                var options = cluster.DataSource.Options;
                var opens = string.Join(",", cluster.DataSource.Nodes.Select(n => n.GetStatistics().Successes));
                return $"{options.MaxWriters} {options.WriterIsAlsoReader} {options.MaxReaderLag?.ToString() ?? "none"} {options.WriterFailbackDelay.TotalSeconds} " +
                    $"{cluster.Writer.Role} {cluster.Readers.Role} {ReferenceEquals(cluster.Writer, cluster.DataSource.Writer)} opens={opens}";
            }

            public static void Create(bool withConfiguration)
            {
                using var cluster = DemoCluster.Create(withConfiguration ? static (string key) => (string?)null : null);
            }

            public static void CreateWithWest(string west)
            {
                using var cluster = DemoCluster.Create(key => west);
            }
        }
        """;

    [SetUp]
    public void SetUp() => Environment.SetEnvironmentVariable(EastVariable, "Data Source=:memory:");

    [TearDown]
    public void TearDown() => Environment.SetEnvironmentVariable(EastVariable, null);

    [Test]
    public async Task Create_SqliteNodes_OpensConnectionsAndCountsThemPerNode()
    {
        var assembly = CompileAndLoad(out var context);
        try
        {
            var run = (Task<string>)assembly.GetType("Demo.Probe")!.GetMethod("RunAsync")!.Invoke(null, null)!;

            // FailOver with hedging off: cluster opens go to the first node, so galera1 counts its own open and both cluster opens.
            Assert.That(await run, Is.EqualTo("42 galera1,db-east.1,db_west FailOver galera1=3 west=1 east=0 300"));
        }
        finally
        {
            context.Unload();
        }
    }

    [Test]
    public async Task Create_RoleOptions_ReachTheOptionsAndTypedRoleOpensGoThroughTheRoles()
    {
        var assembly = CompileAndLoad(out var context);
        try
        {
            var run = (Task<string>)assembly.GetType("Demo.Probe")!.GetMethod("RolesAsync")!.Invoke(null, null)!;

            // Four opens through the roles, each counted on some node: no probe, so every node may serve both roles.
            var result = await run;
            Assert.That(result, Does.StartWith("2 True none 0 Writer Reader True opens="));
            Assert.That(result["2 True none 0 Writer Reader True opens=".Length..].Split(',').Sum(int.Parse), Is.EqualTo(4));
        }
        finally
        {
            context.Unload();
        }
    }

    [Test]
    public void Create_EnvironmentVariableMissing_ThrowsNamingNodeAndVariable()
    {
        Environment.SetEnvironmentVariable(EastVariable, null);
        var error = InvokeCreate(withConfiguration: true);

        Assert.That(error, Is.TypeOf<InvalidOperationException>());
        Assert.That(error.Message, Does.Contain("'db-east.1'").And.Contain($"'{EastVariable}'"));
    }

    [Test]
    public void Create_ConfigurationKeyMissing_ThrowsNamingNodeAndKeyButNoValue()
    {
        var error = InvokeCreate(withConfiguration: true);

        Assert.That(error, Is.TypeOf<InvalidOperationException>());
        Assert.That(error.Message, Does.Contain("'db_west'").And.Contain("'ConnectionStrings:West'").And.Contain("not set"));
        Assert.That(error.Message, Does.Not.Contain(":memory:"));
    }

    [Test]
    public void Create_NoConfigurationGiven_ThrowsNamingNodeAndKey()
    {
        var error = InvokeCreate(withConfiguration: false);

        Assert.That(error, Is.TypeOf<InvalidOperationException>());
        Assert.That(error.Message, Does.Contain("'db_west'").And.Contain("no configuration"));
    }

    // Each string breaks SQLite's parser differently; each carries the token (or pieces of it) where a password would be.
    [TestCase("Data Source=:memory:;Password='Zq7X'w9V\"k3Jp'")]
    [TestCase("Data Source=:memory:;Password=Zq7Xw9Vk3Jp;Bogus Key=1")]
    [TestCase("Data Source=:memory:;Password=Zq7Xw;9Vk3Jp=1")]
    [TestCase("Data Source=:memory:;Password=Zq7Xw9Vk3Jp;Pooling=Zq7Xw9Vk3Jp")]
    [TestCase("Data Source=:memory:;Password=Zq7Xw9Vk3Jp;Mode=Zq7Xw9Vk3Jp")]
    [TestCase("Data Source=:memory:;Password=\"Zq7Xw9Vk3Jp")]
    public void Create_MalformedConnectionString_NamesTheNodeAndEchoesNoPieceOfIt(string connectionString)
    {
        const string Token = "Zq7Xw9Vk3Jp";
        var assembly = CompileAndLoad(out var context);
        Exception error;
        try
        {
            var create = assembly.GetType("Demo.Probe")!.GetMethod("CreateWithWest")!;
            error = Assert.Throws<TargetInvocationException>(() => create.Invoke(null, [connectionString]))!.InnerException!;
        }
        finally
        {
            context.Unload();
        }

        Assert.That(error, Is.TypeOf<ArgumentException>());
        Assert.That(error.Message, Does.StartWith("The connection string of node 'db_west' does not parse as a Sqlite connection string"));
        Assert.That(error.InnerException, Is.Null);
        var text = error.ToString();
        for (var i = 0; i + 4 <= Token.Length; i++)
        {
            Assert.That(text, Does.Not.Contain(Token.Substring(i, 4)));
        }
    }

    private static Exception InvokeCreate(bool withConfiguration)
    {
        var assembly = CompileAndLoad(out var context);
        try
        {
            var create = assembly.GetType("Demo.Probe")!.GetMethod("Create")!;
            var error = Assert.Throws<TargetInvocationException>(() => create.Invoke(null, [withConfiguration]));
            return error!.InnerException!;
        }
        finally
        {
            context.Unload();
        }
    }

    private static Assembly CompileAndLoad(out AssemblyLoadContext context)
    {
        var run = GeneratorHarness.Run(Sources.TypedCluster, Probe);
        Assert.That(run.GeneratorDiagnostics, Is.Empty);
        using var image = new MemoryStream();
        var emit = run.Output.Emit(image);
        Assert.That(emit.Diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()), Is.Empty);
        Assert.That(emit.Success, Is.True);
        image.Position = 0;

        // A collectible context per test: each test loads an assembly of the same name. ClusterSql and
        // Microsoft.Data.Sqlite resolve from the default context, which the tests already loaded them into.
        context = new AssemblyLoadContext("GeneratedCluster", isCollectible: true);
        return context.LoadFromStream(image);
    }
}

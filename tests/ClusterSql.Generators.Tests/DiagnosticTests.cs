using System.Linq;
using Microsoft.CodeAnalysis;
using NUnit.Framework;

namespace ClusterSql.Generators.Tests;

/// <summary>Each diagnostic: its ID, its line, and that the input is otherwise valid C#.</summary>
public sealed class DiagnosticTests
{
    private const string Usings = """
        using System.Data.Common;
        using ClusterSql;
        using Microsoft.Data.Sqlite;

        """;

    [Test]
    public void Generate_ClassNotPartial_ReportsCsql0001()
    {
        AssertSingle(
            """
            [Cluster(typeof(SqliteFactory))]
            [ClusterNode("a", ConnectionStringEnvironmentVariable = "A")]
            public class NotPartial { }
            """,
            "CSQL0001",
            "public class NotPartial");
    }

    [Test]
    public void Generate_NestedInNonPartialType_ReportsCsql0002()
    {
        AssertSingle(
            """
            public class Outer
            {
                [Cluster(typeof(SqliteFactory))]
                [ClusterNode("a", ConnectionStringEnvironmentVariable = "A")]
                public partial class Inner { }
            }
            """,
            "CSQL0002",
            "public class Outer");
    }

    [Test]
    public void Generate_NodesWithoutClusterAttribute_ReportsCsql0003()
    {
        AssertSingle(
            """
            [ClusterNode("a", ConnectionStringEnvironmentVariable = "A")]
            [ClusterNode("b", ConnectionStringEnvironmentVariable = "B")]
            public partial class NoProvider { }
            """,
            "CSQL0003",
            "public partial class NoProvider");
    }

    [Test]
    public void Generate_NodesWithoutClusterOnTwoPartialDeclarations_ReportsCsql0003Once()
    {
        AssertSingle(
            """
            [ClusterNode("a", ConnectionStringEnvironmentVariable = "A")]
            public partial class NoProvider { }

            [ClusterNode("b", ConnectionStringEnvironmentVariable = "B")]
            public partial class NoProvider { }
            """,
            "CSQL0003",
            "public partial class NoProvider");
    }

    [Test]
    public void Generate_ClusterWithoutNodes_ReportsCsql0004()
    {
        AssertSingle(
            """
            [Cluster(typeof(SqliteFactory))]
            public partial class Empty { }
            """,
            "CSQL0004",
            "public partial class Empty");
    }

    [TestCase("")]
    [TestCase("has space")]
    [TestCase("1st")]
    [TestCase("-.-")]
    [TestCase("n0123456789012345678901234567890123456789012345678901234567890123")]
    public void Generate_InvalidNodeName_ReportsCsql0005(string name)
    {
        AssertSingle(
            $$"""
            [Cluster(typeof(SqliteFactory))]
            [ClusterNode("ok", ConnectionStringEnvironmentVariable = "OK")]
            [ClusterNode("{{name}}", ConnectionStringEnvironmentVariable = "BAD")]
            public partial class BadName { }
            """,
            "CSQL0005",
            "\"BAD\"");
    }

    [Test]
    public void Generate_NodeNameDiffersOnlyInCase_ReportsCsql0006()
    {
        AssertSingle(
            """
            [Cluster(typeof(SqliteFactory))]
            [ClusterNode("galera1", ConnectionStringEnvironmentVariable = "G1")]
            [ClusterNode("GALERA1", ConnectionStringEnvironmentVariable = "G2")]
            public partial class Duplicate { }
            """,
            "CSQL0006",
            "\"GALERA1\"");
    }

    [TestCase("db-east", "db.east")]
    [TestCase("a", "data-source")]
    [TestCase("a", "clash")]
    [TestCase("a", "create")]
    public void Generate_NodeNamesMapToSameMember_ReportsCsql0007(string first, string second)
    {
        AssertSingle(
            $$"""
            [Cluster(typeof(SqliteFactory))]
            [ClusterNode("{{first}}", ConnectionStringEnvironmentVariable = "FIRST")]
            [ClusterNode("{{second}}", ConnectionStringEnvironmentVariable = "SECOND")]
            public partial class Clash { }
            """,
            "CSQL0007",
            "\"SECOND\"");
    }

    [Test]
    public void Generate_TypedOpenOfOneNodeIsAnotherNodesName_ReportsCsql0007()
    {
        AssertSingle(
            """
            [Cluster(typeof(SqliteFactory), ConnectionType = typeof(SqliteConnection))]
            [ClusterNode("a", ConnectionStringEnvironmentVariable = "FIRST")]
            [ClusterNode("open-a-async", ConnectionStringEnvironmentVariable = "SECOND")]
            public partial class Clash { }
            """,
            "CSQL0007",
            "\"SECOND\"");
    }

    [TestCase("writer", "Writer")]
    [TestCase("readers", "Readers")]
    [TestCase("open-reader-async", "OpenReaderAsync")]
    public void Generate_NodeNamedAfterARoleMember_ReportsCsql0007(string node, string member)
    {
        var diagnostic = AssertSingle(
            $$"""
            [Cluster(typeof(SqliteFactory))]
            [ClusterNode("{{node}}", ConnectionStringEnvironmentVariable = "ROLE")]
            public partial class Clash { }
            """,
            "CSQL0007",
            $"\"{node}\"");

        Assert.That(diagnostic.GetMessage(), Does.Contain($"'{member}'"));
    }

    [TestCase("")]
    [TestCase("ConnectionString = \"Data Source=a\", ConnectionStringEnvironmentVariable = \"A\"")]
    [TestCase("ConnectionStringEnvironmentVariable = \"A\", ConnectionStringConfigurationKey = \"a\"")]
    [TestCase("ConnectionStringEnvironmentVariable = \"\"")]
    public void Generate_NotExactlyOneConnectionStringSource_ReportsCsql0008(string arguments)
    {
        var separator = arguments.Length == 0 ? string.Empty : ", ";
        AssertSingle(
            $$"""
            [Cluster(typeof(SqliteFactory))]
            [ClusterNode("a"{{separator}}{{arguments}})] // node
            public partial class Sources { }
            """,
            "CSQL0008",
            "// node");
    }

    [TestCase("Data Source")]
    [TestCase("Data Source='a")]
    public void Generate_ConnectionStringDoesNotParse_ReportsCsql0009(string connectionString)
    {
        AssertSingle(
            $$"""
            [Cluster(typeof(SqliteFactory))]
            [ClusterNode("a",
                ConnectionString = "{{connectionString}}")]
            public partial class Unparsable { }
            """,
            "CSQL0009",
            "ConnectionString =");
    }

    [TestCase("Password='hunter2")]
    [TestCase("Password=\\\"hunter2")]
    [TestCase("Password=hunter2;x")]
    public void Generate_UnparsableStringWithPassword_Csql0009QuotesNoPieceOfIt(string connectionString)
    {
        var diagnostic = AssertSingle(
            $$"""
            [Cluster(typeof(SqliteFactory))]
            [ClusterNode("a",
                ConnectionString = "Data Source=a.db;{{connectionString}}")]
            public partial class Unparsable { }
            """,
            "CSQL0009",
            "ConnectionString =");

        Assert.That(diagnostic.GetMessage(), Does.Contain("node 'a'").And.Not.Contain("hunt").And.Not.Contain("ter2"));
    }

    [TestCase("Password=hunter2")]
    [TestCase("pwd=hunter2")]
    public void Generate_LiteralPassword_ReportsCsql0010Warning(string password)
    {
        var diagnostic = AssertSingle(
            $$"""
            [Cluster(typeof(SqliteFactory))]
            [ClusterNode("a",
                ConnectionString = "Data Source=a.db;{{password}}")]
            public partial class Secret { }
            """,
            "CSQL0010",
            "ConnectionString =");

        Assert.That(diagnostic.Severity, Is.EqualTo(DiagnosticSeverity.Warning));
        Assert.That(diagnostic.GetMessage(), Does.Not.Contain("hunter2"));
    }

    [TestCase("public sealed class NoInstance : DbProviderFactory { }")]
    [TestCase("public sealed class NoInstance : DbProviderFactory { public static readonly object Instance = new(); }")]
    [TestCase("public sealed class NoInstance : DbProviderFactory { internal static readonly NoInstance Instance = new(); }")]
    [TestCase("public sealed class NoInstance : DbProviderFactory { public NoInstance Instance => this; }")]
    public void Generate_ProviderWithoutUsableInstance_ReportsCsql0011(string provider)
    {
        AssertSingle(
            $$"""
            {{provider}}

            [Cluster(typeof(NoInstance))]
            [ClusterNode("a", ConnectionStringEnvironmentVariable = "A")]
            public partial class BadProvider { }
            """,
            "CSQL0011",
            "[Cluster(");
    }

    [Test]
    public void Generate_ProviderInstanceInheritedAndTyped_Generates()
    {
        var run = GeneratorHarness.Run(Usings + """
            public class BaseFactory : DbProviderFactory { public static BaseFactory Instance { get; } = new(); }
            public sealed class DerivedFactory : BaseFactory { }

            [Cluster(typeof(DerivedFactory))]
            [ClusterNode("a", ConnectionStringEnvironmentVariable = "A")]
            public partial class Inherited { }
            """);

        Assert.That(run.GeneratorDiagnostics, Is.Empty);
        Assert.That(run.SingleSource, Does.Contain("var factory = global::DerivedFactory.Instance;"));
    }

    [Test]
    public void Generate_GenericClass_ReportsCsql0012()
    {
        AssertSingle(
            """
            [Cluster(typeof(SqliteFactory))]
            [ClusterNode("a", ConnectionStringEnvironmentVariable = "A")]
            public partial class Generic<T> { }
            """,
            "CSQL0012",
            "public partial class Generic<T>");
    }

    [Test]
    public void Generate_ConnectionTypeNotDbConnection_ReportsCsql0013()
    {
        AssertSingle(
            """
            [Cluster(typeof(SqliteFactory),
                ConnectionType = typeof(string))]
            [ClusterNode("a", ConnectionStringEnvironmentVariable = "A")]
            public partial class BadConnection { }
            """,
            "CSQL0013",
            "ConnectionType =");
    }

    [TestCase("HedgeBudget = 1.5", "HedgeBudget")]
    [TestCase("HedgeBudget = -0.1", "HedgeBudget")]
    [TestCase("ConnectTimeoutMilliseconds = -1", "ConnectTimeoutMilliseconds")]
    [TestCase("MinHedgeDelayMilliseconds = -5", "MinHedgeDelayMilliseconds")]
    [TestCase("MaxHedgeDelayMilliseconds = 10, MinHedgeDelayMilliseconds = 20", "MaxHedgeDelayMilliseconds")]
    [TestCase("Policy = (AcquirePolicy)9", "Policy")]
    [TestCase("MaxWriters = 0", "MaxWriters")]
    [TestCase("MaxReaderLag = -2", "MaxReaderLag")]
    [TestCase("WriterFailbackDelayMilliseconds = -1", "WriterFailbackDelayMilliseconds")]
    public void Generate_InvalidClusterOption_ReportsCsql0014(string option, string named)
    {
        var diagnostic = AssertSingle(
            $$"""
            [Cluster(typeof(SqliteFactory),
                {{option}})]
            [ClusterNode("a", ConnectionStringEnvironmentVariable = "A")]
            public partial class BadOption { }
            """,
            "CSQL0014",
            option);

        Assert.That(diagnostic.GetMessage(), Does.Contain(named));
    }

    [Test]
    public void Generate_NegativeNodeConnectTimeout_ReportsCsql0014()
    {
        AssertSingle(
            """
            [Cluster(typeof(SqliteFactory))]
            [ClusterNode("a", ConnectionStringEnvironmentVariable = "A",
                ConnectTimeoutMilliseconds = -1)]
            public partial class BadOption { }
            """,
            "CSQL0014",
            "ConnectTimeoutMilliseconds = -1");
    }

    [TestCase("static")]
    [TestCase("abstract")]
    public void Generate_StaticOrAbstractClass_ReportsCsql0015(string modifier)
    {
        AssertSingle(
            $$"""
            [Cluster(typeof(SqliteFactory))]
            [ClusterNode("a", ConnectionStringEnvironmentVariable = "A")]
            public {{modifier}} partial class Shape { }
            """,
            "CSQL0015",
            "partial class Shape");
    }

    [Test]
    public void Descriptors_All_HaveUniqueSequentialIdsAndDocumentation()
    {
        var ids = Diagnostics.DiagnosticDescriptors.All.Select(d => d.Id).ToArray();

        Assert.That(ids, Is.EqualTo(Enumerable.Range(1, ids.Length).Select(i => $"CSQL{i:0000}")));
        foreach (var id in ids)
        {
            Assert.That(DocumentationPage(id), Does.Exist, $"{id} has no page under docs/diagnostics.");
        }
    }

    private static System.IO.FileInfo DocumentationPage(string id)
    {
        for (var directory = new System.IO.DirectoryInfo(System.AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var docs = System.IO.Path.Combine(directory.FullName, "docs", "diagnostics");
            if (System.IO.Directory.Exists(docs))
            {
                return new System.IO.FileInfo(System.IO.Path.Combine(docs, id + ".md"));
            }
        }

        return new System.IO.FileInfo(id + ".md");
    }

    /// <summary>Asserts the generator reports exactly <paramref name="id"/>, on the line of <paramref name="lineSnippet"/>, and emits nothing for an error.</summary>
    private static Diagnostic AssertSingle(string body, string id, string lineSnippet)
    {
        var source = Usings + body;
        var run = GeneratorHarness.Run(source);

        Assert.That(run.InputErrors.Select(d => d.ToString()), Is.Empty, "The test input must be valid C# apart from what the generator diagnoses.");
        Assert.That(run.GeneratorDiagnostics.Select(d => d.Id), Is.EqualTo(new[] { id }), string.Join("\n", run.GeneratorDiagnostics));
        var diagnostic = run.GeneratorDiagnostics[0];
        Assert.That(diagnostic.Location.GetLineSpan().StartLinePosition.Line + 1, Is.EqualTo(GeneratorHarness.LineOf(source, lineSnippet)));
        Assert.That(diagnostic.Location.GetLineSpan().Path, Is.EqualTo("Cluster.cs"));
        if (diagnostic.Severity == DiagnosticSeverity.Error)
        {
            Assert.That(run.Result.Results.Single().GeneratedSources, Is.Empty);
        }

        return diagnostic;
    }
}

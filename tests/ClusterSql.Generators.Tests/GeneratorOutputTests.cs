using System.Linq;
using Microsoft.CodeAnalysis;
using NUnit.Framework;

namespace ClusterSql.Generators.Tests;

public sealed class GeneratorOutputTests
{
    [TestCase(nameof(Sources.TypedCluster), Sources.TypedCluster, "Demo.DemoCluster.g.cs")]
    [TestCase(nameof(Sources.MinimalCluster), Sources.MinimalCluster, "MinimalCluster.g.cs")]
    [TestCase(nameof(Sources.NestedCluster), Sources.NestedCluster, "Demo.Nested.Clusters_1.Holder.Reporting.g.cs")]
    public void Generate_RepresentativeInput_MatchesBaseline(string name, string source, string hintName)
    {
        var run = GeneratorHarness.Run(source);

        Assert.That(run.GeneratorDiagnostics, Is.Empty);
        Assert.That(run.Sources.Select(s => s.HintName), Is.EqualTo(new[] { hintName }));
        Baseline.AssertMatches(name + ".g.cs", run.SingleSource);
    }

    [TestCase(Sources.TypedCluster)]
    [TestCase(Sources.MinimalCluster)]
    [TestCase(Sources.NestedCluster)]
    public void Generate_RepresentativeInput_CompilesWithoutDiagnostics(string source)
    {
        var run = GeneratorHarness.Run(source);

        Assert.That(run.Output.SyntaxTrees.Count(), Is.EqualTo(2));
        Assert.That(run.Output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()), Is.Empty);
    }

    [Test]
    public void Generate_SameInputTwice_IdenticalOutput()
    {
        var first = GeneratorHarness.Run(Sources.TypedCluster).SingleSource;
        var second = GeneratorHarness.Run(Sources.TypedCluster).SingleSource;

        Assert.That(second, Is.EqualTo(first));
    }

    [Test]
    public void Generate_RoleOptions_SetsExactlyThoseOnTheBuilder()
    {
        const string source = """
            [ClusterSql.Cluster(typeof(Microsoft.Data.Sqlite.SqliteFactory), MaxReaderLag = 5, CausalReads = true, WriterFailbackDelayMilliseconds = 1500)]
            [ClusterSql.ClusterNode("a", ConnectionStringEnvironmentVariable = "A")]
            partial class Roles;
            """;

        var run = GeneratorHarness.Run(source);

        Assert.That(run.GeneratorDiagnostics, Is.Empty);
        Assert.That(run.SingleSource, Does.Contain("builder.Options.MaxReaderLag = 5L;"));
        Assert.That(run.SingleSource, Does.Contain("builder.Options.CausalReads = true;"));
        Assert.That(run.SingleSource, Does.Contain("builder.Options.WriterFailbackDelay = global::System.TimeSpan.FromMilliseconds(1500);"));
        Assert.That(run.SingleSource, Does.Not.Contain("MaxWriters").And.Not.Contain("WriterIsAlsoReader"), "unset options keep ClusterOptions' defaults");
        Assert.That(run.SingleSource, Does.Contain("public global::System.Threading.Tasks.ValueTask<global::System.Data.Common.DbConnection> OpenWriterAsync("));
        Assert.That(run.Output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()), Is.Empty);
    }

    [Test]
    public void ClusterAttribute_RoleOptionDefaults_AreClusterOptionsDefaults()
    {
        // The role options' initial values stand for "unset" when the attribute is read by reflection; they must not drift.
        var attribute = new ClusterAttribute(typeof(object));
        var options = new ClusterOptions();

        Assert.That(attribute.MaxWriters, Is.EqualTo(options.MaxWriters));
        Assert.That(attribute.WriterIsAlsoReader, Is.EqualTo(options.WriterIsAlsoReader));
        Assert.That((long?)attribute.MaxReaderLag, Is.EqualTo(options.MaxReaderLag));
        Assert.That(System.TimeSpan.FromMilliseconds(attribute.WriterFailbackDelayMilliseconds), Is.EqualTo(options.WriterFailbackDelay));
        Assert.That(attribute.CausalReads, Is.EqualTo(options.CausalReads));
    }

    [Test]
    public void Generate_LiteralPassword_WarnsAndStillGenerates()
    {
        const string source = """
            [ClusterSql.Cluster(typeof(Microsoft.Data.Sqlite.SqliteFactory))]
            [ClusterSql.ClusterNode("a", ConnectionString = "Data Source=a.db;Password=hunter2")]
            partial class WithPassword;
            """;

        var run = GeneratorHarness.Run(source);

        Assert.That(run.GeneratorDiagnostics.Select(d => (d.Id, d.Severity)), Is.EqualTo(new[] { ("CSQL0010", DiagnosticSeverity.Warning) }));
        Assert.That(run.SingleSource, Does.Contain("public global::ClusterSql.ClusterNode A => _a;"));
        Assert.That(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error), Is.Empty);
    }
}

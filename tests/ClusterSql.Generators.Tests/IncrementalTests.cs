using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using NUnit.Framework;

namespace ClusterSql.Generators.Tests;

/// <summary>The pipeline caches: unrelated edits reuse every step; a real change flows through to the output.</summary>
public sealed class IncrementalTests
{
    private static readonly string[] s_trackedSteps =
    [
        TrackingNames.Clusters,
        TrackingNames.Models,
        TrackingNames.ClusterDiagnostics,
        TrackingNames.NodesWithoutCluster,
    ];

    private const string CrossCheck = """
        [ClusterSql.ClusterNode("lonely", ConnectionStringEnvironmentVariable = "LONELY")]
        public partial class WithoutCluster { }
        """;

    [Test]
    public void RunGenerators_UnrelatedFileAdded_EveryStepCachedOrUnchanged()
    {
        var compilation = GeneratorHarness.CreateCompilation(Sources.TypedCluster, CrossCheck);
        var driver = GeneratorHarness.CreateDriver().RunGenerators(compilation);

        var edited = compilation.AddSyntaxTrees(CSharpSyntaxTree.ParseText("public static class Unrelated { public static int Value => 1; }", GeneratorHarness.ParseOptions, path: "Unrelated.cs"));
        var result = driver.RunGenerators(edited).GetRunResult().Results.Single();

        AssertEveryStepReused(result);
    }

    [Test]
    public void RunGenerators_MethodBodyInClusterFileChanged_EveryStepCachedOrUnchanged()
    {
        var compilation = GeneratorHarness.CreateCompilation(Sources.TypedCluster, CrossCheck);
        var driver = GeneratorHarness.CreateDriver().RunGenerators(compilation);

        var edited = ReplaceClusterFile(compilation, Sources.TypedCluster.Replace("=> 42;", "=> 43;", StringComparison.Ordinal));
        var result = driver.RunGenerators(edited).GetRunResult().Results.Single();

        AssertEveryStepReused(result);
    }

    [Test]
    public void RunGenerators_NodeAdded_ModelModifiedAndOutputChanged()
    {
        var compilation = GeneratorHarness.CreateCompilation(Sources.TypedCluster, CrossCheck);
        var driver = GeneratorHarness.CreateDriver().RunGenerators(compilation);
        var before = driver.GetRunResult().Results.Single().GeneratedSources.Single().SourceText.ToString();

        var edited = ReplaceClusterFile(compilation, Sources.TypedCluster.Replace(
            "public sealed partial class",
            "[ClusterNode(\"galera4\", ConnectionStringEnvironmentVariable = \"G4\")]\npublic sealed partial class",
            StringComparison.Ordinal));
        var result = driver.RunGenerators(edited).GetRunResult().Results.Single();
        var after = result.GeneratedSources.Single().SourceText.ToString();

        Assert.That(Reasons(result, TrackingNames.Models), Is.EqualTo(new[] { IncrementalStepRunReason.Modified }));
        Assert.That(before, Does.Not.Contain("Galera4"));
        Assert.That(after, Does.Contain("public global::ClusterSql.ClusterNode Galera4 => _galera4;"));
    }

    [Test]
    public void RunGenerators_TrackedStepOutputs_HoldNoSymbolsOrSyntax()
    {
        var compilation = GeneratorHarness.CreateCompilation(Sources.TypedCluster, CrossCheck, Sources.NestedCluster);
        var result = GeneratorHarness.CreateDriver().RunGenerators(compilation).GetRunResult().Results.Single();

        var outputs = s_trackedSteps.SelectMany(name => result.TrackedSteps[name]).SelectMany(step => step.Outputs).Select(o => o.Value).ToList();
        Assert.That(outputs, Is.Not.Empty);
        foreach (var output in outputs)
        {
            AssertPlainData(output, "output", new HashSet<object>(ReferenceEqualityComparer.Instance));
        }
    }

    private static void AssertEveryStepReused(GeneratorRunResult result)
    {
        foreach (var name in s_trackedSteps)
        {
            Assert.That(result.TrackedSteps.ContainsKey(name), Is.True, $"The step {name} was not tracked.");
            Assert.That(
                Reasons(result, name),
                Is.Not.Empty.And.All.AnyOf(IncrementalStepRunReason.Cached, IncrementalStepRunReason.Unchanged),
                $"Step {name} was recomputed into a different value.");
        }

        Assert.That(
            result.TrackedOutputSteps.SelectMany(kv => kv.Value).SelectMany(step => step.Outputs).Select(o => o.Reason),
            Is.All.EqualTo(IncrementalStepRunReason.Cached));
    }

    private static IncrementalStepRunReason[] Reasons(GeneratorRunResult result, string step) =>
        result.TrackedSteps[step].SelectMany(s => s.Outputs).Select(o => o.Reason).ToArray();

    private static Compilation ReplaceClusterFile(Compilation compilation, string source)
    {
        var old = compilation.SyntaxTrees.Single(t => t.FilePath == "Cluster.cs");
        return compilation.ReplaceSyntaxTree(old, CSharpSyntaxTree.ParseText(source, GeneratorHarness.ParseOptions, path: "Cluster.cs"));
    }

    // A model that held a symbol, syntax node or compilation would keep old compilations alive and never compare equal.
    private static void AssertPlainData(object? value, string path, HashSet<object> seen)
    {
        if (value is null || value is string || value.GetType().IsPrimitive || value.GetType().IsEnum || !seen.Add(value))
        {
            return;
        }

        Assert.That(value, Is.Not.InstanceOf<ISymbol>().And.Not.InstanceOf<SyntaxNode>().And.Not.InstanceOf<Compilation>().And.Not.InstanceOf<SemanticModel>().And.Not.InstanceOf<Location>(), path);
        if (value is IEnumerable items)
        {
            var i = 0;
            foreach (var item in items)
            {
                AssertPlainData(item, $"{path}[{i++}]", seen);
            }

            return;
        }

        foreach (var field in value.GetType().GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            AssertPlainData(field.GetValue(value), $"{path}.{field.Name}", seen);
        }
    }
}

using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using ClusterSql;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.Data.Sqlite;

namespace ClusterSql.Generators.Tests;

/// <summary>Compiles test sources offline (the SDK's reference pack) and runs the generator over them.</summary>
internal static class GeneratorHarness
{
    public static readonly CSharpParseOptions ParseOptions = CSharpParseOptions.Default.WithLanguageVersion(LanguageVersion.Latest);

    // The SDK passes /nowarn:1701,1702 to every build: Microsoft.Data.Sqlite is compiled against System.Data.Common 8.0.
    private static readonly Dictionary<string, ReportDiagnostic> s_sdkNoWarn = new()
    {
        ["CS1701"] = ReportDiagnostic.Suppress,
        ["CS1702"] = ReportDiagnostic.Suppress,
    };

    private static readonly Lazy<ImmutableArray<MetadataReference>> s_references = new(LoadReferences);

    public static CSharpCompilation CreateCompilation(params string[] sources) =>
        CSharpCompilation.Create(
            "ClusterSql.GeneratedTests",
            sources.Select((source, i) => CSharpSyntaxTree.ParseText(source, ParseOptions, path: i == 0 ? "Cluster.cs" : $"Other{i}.cs")),
            s_references.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable)
                .WithSpecificDiagnosticOptions(s_sdkNoWarn));

    public static GeneratorDriver CreateDriver() =>
        CSharpGeneratorDriver.Create(
            [new ClusterGenerator().AsSourceGenerator()],
            parseOptions: ParseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    public static GeneratorRun Run(params string[] sources)
    {
        var compilation = CreateCompilation(sources);
        var inputErrors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToArray();
        var driver = CreateDriver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out _);
        return new GeneratorRun(inputErrors, driver.GetRunResult(), output);
    }

    /// <summary>The 1-based line of the first occurrence of <paramref name="snippet"/>.</summary>
    public static int LineOf(string source, string snippet)
    {
        var index = source.IndexOf(snippet, StringComparison.Ordinal);
        if (index < 0)
        {
            throw new ArgumentException($"'{snippet}' is not in the source.", nameof(snippet));
        }

        return source.AsSpan(0, index).Count('\n') + 1;
    }

    private static ImmutableArray<MetadataReference> LoadReferences()
    {
        var references = Directory.GetFiles(FindReferencePack(), "*.dll")
            .Select(path => (MetadataReference)MetadataReference.CreateFromFile(path))
            .ToList();
        references.Add(MetadataReference.CreateFromFile(typeof(ClusterDataSource).Assembly.Location));
        references.Add(MetadataReference.CreateFromFile(typeof(SqliteFactory).Assembly.Location));
        return [.. references];
    }

    /// <summary>
    /// packs/Microsoft.NETCore.App.Ref/&lt;version&gt;/ref/net10.0 of the running dotnet: reference assemblies that need no
    /// download (the ReferenceAssemblies NuGet helpers fetch packages at test time).
    /// </summary>
    private static string FindReferencePack()
    {
        var roots = new List<string>();
        var runtimeDirectory = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        roots.Add(Path.GetFullPath(Path.Combine(runtimeDirectory, "..", "..", "..")));
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } dotnetRoot)
        {
            roots.Add(dotnetRoot);
        }

        var tfm = $"net{Environment.Version.Major}.{Environment.Version.Minor}";
        foreach (var root in roots)
        {
            var packs = Path.Combine(root, "packs", "Microsoft.NETCore.App.Ref");
            if (!Directory.Exists(packs))
            {
                continue;
            }

            var exact = Path.Combine(packs, Environment.Version.ToString(), "ref", tfm);
            if (Directory.Exists(exact))
            {
                return exact;
            }

            var newest = Directory.GetDirectories(packs)
                .Select(d => Path.Combine(d, "ref", tfm))
                .Where(Directory.Exists)
                .OrderByDescending(d => Version.TryParse(Path.GetFileName(Path.GetDirectoryName(Path.GetDirectoryName(d))), out var v) ? v : new Version())
                .FirstOrDefault();
            if (newest is not null)
            {
                return newest;
            }
        }

        throw new InvalidOperationException($"No Microsoft.NETCore.App.Ref pack for {tfm} under: {string.Join(", ", roots)}.");
    }
}

internal sealed record GeneratorRun(Diagnostic[] InputErrors, GeneratorDriverRunResult Result, Compilation Output)
{
    public ImmutableArray<Diagnostic> GeneratorDiagnostics => Result.Diagnostics;

    public IReadOnlyList<GeneratedSourceResult> Sources => Result.Results.Single().GeneratedSources;

    public string SingleSource => Sources.Single().SourceText.ToString();
}

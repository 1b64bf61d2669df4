using ClusterSql.Generators.Model;
using Microsoft.CodeAnalysis;

namespace ClusterSql.Generators;

/// <summary>
/// Turns a partial class with [Cluster] and [ClusterNode] attributes into a strongly typed cluster. The pipeline only:
/// <see cref="Parser"/> reads symbols into equatable models, <see cref="Emitter"/> writes them.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class ClusterGenerator : IIncrementalGenerator
{
    /// <inheritdoc/>
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var clusters = context.SyntaxProvider
            .ForAttributeWithMetadataName(Parser.ClusterAttributeName, Parser.IsCandidate, Parser.ParseCluster)
            .WithTrackingName(TrackingNames.Clusters);

        var models = clusters
            .Select(static (result, _) => result.Model)
            .WithTrackingName(TrackingNames.Models);

        var clusterDiagnostics = clusters
            .Select(static (result, _) => result.Diagnostics)
            .WithTrackingName(TrackingNames.ClusterDiagnostics);

        var nodesWithoutCluster = context.SyntaxProvider
            .ForAttributeWithMetadataName(Parser.ClusterNodeAttributeName, Parser.IsCandidate, Parser.ParseNodesWithoutCluster)
            .WithTrackingName(TrackingNames.NodesWithoutCluster);

        context.RegisterSourceOutput(models, static (output, model) =>
        {
            if (model is not null)
            {
                output.AddSource(model.HintName, Emitter.Emit(model));
            }
        });
        context.RegisterSourceOutput(clusterDiagnostics, Report);
        context.RegisterSourceOutput(nodesWithoutCluster, Report);
    }

    private static void Report(SourceProductionContext output, EquatableArray<DiagnosticInfo> diagnostics)
    {
        foreach (var diagnostic in diagnostics)
        {
            output.ReportDiagnostic(diagnostic.ToDiagnostic());
        }
    }
}

/// <summary>The names of the pipeline's tracked steps, for the incremental tests.</summary>
public static class TrackingNames
{
    /// <summary>Classes with [Cluster], parsed.</summary>
    public const string Clusters = nameof(Clusters);

    /// <summary>The models to emit.</summary>
    public const string Models = nameof(Models);

    /// <summary>The diagnostics of classes with [Cluster].</summary>
    public const string ClusterDiagnostics = nameof(ClusterDiagnostics);

    /// <summary>Classes with [ClusterNode] but no [Cluster].</summary>
    public const string NodesWithoutCluster = nameof(NodesWithoutCluster);
}

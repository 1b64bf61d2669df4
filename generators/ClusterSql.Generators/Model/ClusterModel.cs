namespace ClusterSql.Generators.Model;

/// <summary>Everything the emitter needs for one cluster class: only strings, numbers and equatable arrays.</summary>
/// <param name="Namespace">The class's namespace, or null for the global namespace.</param>
/// <param name="ContainingTypes">The types the class is nested in, outermost first.</param>
/// <param name="Keyword">The class's declaration keyword: <c>class</c> or <c>record</c>.</param>
/// <param name="Name">The class's name.</param>
/// <param name="HintName">The generated file's name.</param>
/// <param name="ProviderFactory">The provider factory type, <c>global::</c>-qualified.</param>
/// <param name="ConnectionType">The typed connection, <c>global::</c>-qualified, or null for DbConnection.</param>
/// <param name="PolicyMember">The AcquirePolicy member to set, or null for the default.</param>
/// <param name="MinHedgeDelayMilliseconds">0 for the default.</param>
/// <param name="MaxHedgeDelayMilliseconds">0 for the default.</param>
/// <param name="ConnectTimeoutMilliseconds">0 for the default.</param>
/// <param name="HedgeBudget">The hedge budget as a round-trip C# literal, or null for the default.</param>
/// <param name="Roles">The role options that differ from the defaults.</param>
/// <param name="Nodes">The nodes in declared order.</param>
internal sealed record ClusterModel(
    string? Namespace,
    EquatableArray<ContainingTypeModel> ContainingTypes,
    string Keyword,
    string Name,
    string HintName,
    string ProviderFactory,
    string? ConnectionType,
    string? PolicyMember,
    int MinHedgeDelayMilliseconds,
    int MaxHedgeDelayMilliseconds,
    int ConnectTimeoutMilliseconds,
    string? HedgeBudget,
    RoleSettingsModel Roles,
    EquatableArray<NodeModel> Nodes);

/// <summary>The [Cluster] role options that were set; a null member keeps the ClusterOptions default.</summary>
/// <param name="MaxWriters">ClusterOptions.MaxWriters.</param>
/// <param name="WriterIsAlsoReader">ClusterOptions.WriterIsAlsoReader.</param>
/// <param name="MaxReaderLag">ClusterOptions.MaxReaderLag; -1 for no limit.</param>
/// <param name="WriterFailbackDelayMilliseconds">ClusterOptions.WriterFailbackDelay.</param>
/// <param name="CausalReads">ClusterOptions.CausalReads.</param>
internal sealed record RoleSettingsModel(
    int? MaxWriters,
    bool? WriterIsAlsoReader,
    long? MaxReaderLag,
    int? WriterFailbackDelayMilliseconds,
    bool? CausalReads)
{
    public static RoleSettingsModel Unset { get; } = new(null, null, null, null, null);
}

/// <summary>A type that the cluster class is nested in.</summary>
/// <param name="Keyword">Its declaration keyword (<c>class</c>, <c>struct</c>, <c>record</c>, <c>record struct</c>, <c>interface</c>).</param>
/// <param name="NameWithTypeParameters">Its name with its type parameter list, as declared.</param>
internal sealed record ContainingTypeModel(string Keyword, string NameWithTypeParameters);

/// <summary>One node.</summary>
/// <param name="Name">The node's name as declared.</param>
/// <param name="PropertyName">Its PascalCase identifier.</param>
/// <param name="Source">Where its connection string comes from.</param>
/// <param name="Value">The literal connection string, environment variable or configuration key.</param>
/// <param name="Priority">ClusterNodeOptions.Priority.</param>
/// <param name="ConnectTimeoutMilliseconds">0 for the cluster's.</param>
internal sealed record NodeModel(
    string Name,
    string PropertyName,
    ConnectionStringSource Source,
    string Value,
    int Priority,
    int ConnectTimeoutMilliseconds);

/// <summary>Where a node's connection string comes from.</summary>
internal enum ConnectionStringSource
{
    Literal,
    EnvironmentVariable,
    ConfigurationKey,
}

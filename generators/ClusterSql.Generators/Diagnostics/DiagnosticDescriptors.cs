using System.Collections.Generic;
using Microsoft.CodeAnalysis;

namespace ClusterSql.Generators.Diagnostics;

/// <summary>
/// Every diagnostic of the generator. IDs are stable and never reused; each has a page under docs/diagnostics and
/// a line in AnalyzerReleases.*.md. (No help link yet: the project has no public address to point it at.)
/// </summary>
internal static class DiagnosticDescriptors
{
    private const string Category = "ClusterSql.Generators";

    public static readonly DiagnosticDescriptor ClassNotPartial = Error(
        "CSQL0001",
        "A cluster class must be partial",
        "The cluster class '{0}' must be declared partial so that the generator can add its nodes");

    public static readonly DiagnosticDescriptor ContainingTypeNotPartial = Error(
        "CSQL0002",
        "A cluster class must be nested only in partial types",
        "The cluster class '{0}' is nested in '{1}', which must be declared partial too");

    public static readonly DiagnosticDescriptor MissingClusterAttribute = Error(
        "CSQL0003",
        "A class with [ClusterNode] needs [Cluster]",
        "The class '{0}' declares nodes but no provider: add [Cluster(typeof(TheProviderFactory))]");

    public static readonly DiagnosticDescriptor NoNodes = Error(
        "CSQL0004",
        "A cluster needs at least one node",
        "The cluster class '{0}' declares no node: add at least one [ClusterNode(\"name\", ...)]");

    public static readonly DiagnosticDescriptor InvalidNodeName = Error(
        "CSQL0005",
        "Invalid node name",
        "The node name '{0}' is invalid: {1}");

    public static readonly DiagnosticDescriptor DuplicateNodeName = Error(
        "CSQL0006",
        "Duplicate node name",
        "The node name '{0}' is already used by '{1}' (node names are compared case-insensitively)");

    public static readonly DiagnosticDescriptor NodeMemberNameClash = Error(
        "CSQL0007",
        "Node name gives a clashing member name",
        "The node '{0}' would generate the member '{1}', which {2}");

    public static readonly DiagnosticDescriptor ConnectionStringSourceCount = Error(
        "CSQL0008",
        "A node needs exactly one connection string source",
        "The node '{0}' sets {1}: set exactly one of ConnectionString, ConnectionStringEnvironmentVariable and ConnectionStringConfigurationKey");

    public static readonly DiagnosticDescriptor UnparsableConnectionString = Error(
        "CSQL0009",
        "Connection string does not parse",
        "The connection string of node '{0}' is not a valid key=value list: check quoting and ';' (the string is not quoted here, since it may hold a password)");

    public static readonly DiagnosticDescriptor LiteralPassword = Warning(
        "CSQL0010",
        "Password in a literal connection string",
        "The connection string of node '{0}' contains a password in source: read it from an environment variable or configuration instead");

    public static readonly DiagnosticDescriptor InvalidProviderFactory = Error(
        "CSQL0011",
        "Provider factory has no usable Instance",
        "The provider type '{0}' needs a public static 'Instance' field or property whose type is a DbProviderFactory");

    public static readonly DiagnosticDescriptor GenericClass = Error(
        "CSQL0012",
        "A cluster class cannot be generic",
        "The cluster class '{0}' must not have type parameters");

    public static readonly DiagnosticDescriptor InvalidConnectionType = Error(
        "CSQL0013",
        "ConnectionType is not a DbConnection",
        "The ConnectionType '{0}' of cluster '{1}' must derive from System.Data.Common.DbConnection");

    public static readonly DiagnosticDescriptor InvalidOption = Error(
        "CSQL0014",
        "Invalid cluster or node option",
        "{0}");

    public static readonly DiagnosticDescriptor UnsupportedClassShape = Error(
        "CSQL0015",
        "A cluster class cannot be static or abstract",
        "The cluster class '{0}' must not be {1}: the generated Create makes an instance of it");

    private static readonly Dictionary<string, DiagnosticDescriptor> s_byId = Index(
        ClassNotPartial,
        ContainingTypeNotPartial,
        MissingClusterAttribute,
        NoNodes,
        InvalidNodeName,
        DuplicateNodeName,
        NodeMemberNameClash,
        ConnectionStringSourceCount,
        UnparsableConnectionString,
        LiteralPassword,
        InvalidProviderFactory,
        GenericClass,
        InvalidConnectionType,
        InvalidOption,
        UnsupportedClassShape);

    public static IEnumerable<DiagnosticDescriptor> All => s_byId.Values;

    public static DiagnosticDescriptor Get(string id) => s_byId[id];

    private static DiagnosticDescriptor Error(string id, string title, string message) =>
        new(id, title, message, Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

    private static DiagnosticDescriptor Warning(string id, string title, string message) =>
        new(id, title, message, Category, DiagnosticSeverity.Warning, isEnabledByDefault: true);

    private static Dictionary<string, DiagnosticDescriptor> Index(params DiagnosticDescriptor[] descriptors)
    {
        var byId = new Dictionary<string, DiagnosticDescriptor>();
        foreach (var descriptor in descriptors)
        {
            byId.Add(descriptor.Id, descriptor);
        }

        return byId;
    }
}

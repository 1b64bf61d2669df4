using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Threading;
using ClusterSql.Generators.Diagnostics;
using ClusterSql.Generators.Model;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace ClusterSql.Generators;

/// <summary>The result of parsing one class: a model to emit (null when an error stops generation) and diagnostics.</summary>
internal sealed record ParseResult(ClusterModel? Model, EquatableArray<DiagnosticInfo> Diagnostics);

/// <summary>Turns attributed classes into <see cref="ClusterModel"/>s; the only place that looks at symbols and syntax.</summary>
internal static class Parser
{
    public const string ClusterAttributeName = "ClusterSql.ClusterAttribute";
    public const string ClusterNodeAttributeName = "ClusterSql.ClusterNodeAttribute";

    private const int MaxNodeNameLength = 64;

    private static readonly SymbolDisplayFormat s_fullyQualified = SymbolDisplayFormat.FullyQualifiedFormat
        .WithMiscellaneousOptions(SymbolDisplayMiscellaneousOptions.EscapeKeywordIdentifiers);

    private static readonly ParseResult s_nothing = new(null, EquatableArray<DiagnosticInfo>.Empty);

    public static bool IsCandidate(SyntaxNode node, CancellationToken cancellationToken) =>
        node is ClassDeclarationSyntax or RecordDeclarationSyntax;

    /// <summary>Parses a class that carries [Cluster], with all its [ClusterNode]s (from every partial declaration).</summary>
    public static ParseResult ParseCluster(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
    {
        if (context.TargetSymbol is not INamedTypeSymbol type || context.TargetNode is not TypeDeclarationSyntax declaration)
        {
            return s_nothing;
        }

        // [Cluster] on two partial declarations is already CS0579; parse the class once so that its file is added once.
        if (!IsFirstDeclarationWith(type, ClusterAttributeName, declaration, cancellationToken))
        {
            return s_nothing;
        }

        var diagnostics = new List<DiagnosticInfo>();
        var identifier = declaration.Identifier.GetLocation();
        var name = type.Name;

        if (!declaration.Modifiers.Any(SyntaxKind.PartialKeyword))
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ClassNotPartial, identifier, name));
        }

        if (type.IsStatic || type.IsAbstract)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedClassShape, identifier, name, type.IsStatic ? "static" : "abstract"));
        }

        if (type.TypeParameters.Length > 0)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.GenericClass, identifier, name));
        }

        var containingTypes = ParseContainingTypes(declaration, name, diagnostics);
        var clusterAttribute = context.Attributes[0];
        var cluster = ParseClusterAttribute(clusterAttribute, name, context.SemanticModel.Compilation, diagnostics, cancellationToken);

        var nodes = new List<NodeModel>();
        var nodeAttributes = type.GetAttributes().Where(a => Is(a, ClusterNodeAttributeName)).ToList();
        if (nodeAttributes.Count == 0)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NoNodes, identifier, name));
        }

        var memberNames = ReservedMemberNames(name, cluster.ConnectionType is not null);
        var nodeNames = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var attribute in nodeAttributes)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (ParseNode(attribute, cluster.ConnectionType is not null, nodeNames, memberNames, diagnostics, cancellationToken) is { } node)
            {
                nodes.Add(node);
            }
        }

        var model = diagnostics.Any(d => DiagnosticDescriptors.Get(d.Id).DefaultSeverity == DiagnosticSeverity.Error) || cluster.ProviderFactory is null
            ? null
            : new ClusterModel(
                type.ContainingNamespace.IsGlobalNamespace ? null : type.ContainingNamespace.ToDisplayString(),
                new EquatableArray<ContainingTypeModel>(containingTypes.ToArray()),
                declaration is RecordDeclarationSyntax ? "record" : "class",
                name,
                HintName(type),
                cluster.ProviderFactory,
                cluster.ConnectionType,
                cluster.PolicyMember,
                cluster.MinHedgeDelayMilliseconds,
                cluster.MaxHedgeDelayMilliseconds,
                cluster.ConnectTimeoutMilliseconds,
                cluster.HedgeBudget,
                new RoleSettingsModel(cluster.MaxWriters, cluster.WriterIsAlsoReader, cluster.MaxReaderLag, cluster.WriterFailbackDelayMilliseconds, cluster.CausalReads),
                new EquatableArray<NodeModel>(nodes.ToArray()));
        return new ParseResult(model, new EquatableArray<DiagnosticInfo>(diagnostics.ToArray()));
    }

    /// <summary>Reports a class that declares nodes but has no [Cluster] (the [Cluster] pipeline never sees it).</summary>
    public static EquatableArray<DiagnosticInfo> ParseNodesWithoutCluster(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
    {
        if (context.TargetSymbol is not INamedTypeSymbol type
            || context.TargetNode is not TypeDeclarationSyntax declaration
            || type.GetAttributes().Any(a => Is(a, ClusterAttributeName))
            || !IsFirstDeclarationWith(type, ClusterNodeAttributeName, declaration, cancellationToken))
        {
            return EquatableArray<DiagnosticInfo>.Empty;
        }

        return new EquatableArray<DiagnosticInfo>(
            [DiagnosticInfo.Create(DiagnosticDescriptors.MissingClusterAttribute, declaration.Identifier.GetLocation(), type.Name)]);
    }

    /// <summary>PascalCase of a node name: separators ('-', '_', '.') dropped, the letter after each one upper-cased.</summary>
    internal static string ToPascalCase(string name)
    {
        var builder = new StringBuilder(name.Length);
        var upper = true;
        foreach (var c in name)
        {
            if (c is '-' or '_' or '.')
            {
                upper = true;
                continue;
            }

            builder.Append(upper ? char.ToUpperInvariant(c) : c);
            upper = false;
        }

        return builder.ToString();
    }

    private static ClusterSettings ParseClusterAttribute(AttributeData attribute, string className, Compilation compilation, List<DiagnosticInfo> diagnostics, CancellationToken cancellationToken)
    {
        var settings = new ClusterSettings();
        var syntax = attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken) as AttributeSyntax;
        var providerFactory = compilation.GetTypeByMetadataName("System.Data.Common.DbProviderFactory");
        var dbConnection = compilation.GetTypeByMetadataName("System.Data.Common.DbConnection");

        if (attribute.ConstructorArguments.Length == 1 && attribute.ConstructorArguments[0].Value is INamedTypeSymbol provider && provider.TypeKind != TypeKind.Error)
        {
            if (HasProviderInstance(provider, providerFactory))
            {
                settings.ProviderFactory = provider.ToDisplayString(s_fullyQualified);
            }
            else
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidProviderFactory, ArgumentLocation(syntax, null), provider.ToDisplayString()));
            }
        }

        foreach (var argument in attribute.NamedArguments)
        {
            var value = argument.Value;
            if (value.Kind == TypedConstantKind.Error)
            {
                continue;
            }

            var location = ArgumentLocation(syntax, argument.Key);
            switch (argument.Key)
            {
                case "ConnectionType" when value.Value is ITypeSymbol connectionType:
                    if (DerivesFrom(connectionType, dbConnection))
                    {
                        settings.ConnectionType = connectionType.ToDisplayString(s_fullyQualified);
                    }
                    else
                    {
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidConnectionType, location, connectionType.ToDisplayString(), className));
                    }

                    break;
                case "Policy" when value.Value is int policy:
                    settings.PolicyMember = EnumMemberName(value.Type, policy);
                    if (settings.PolicyMember is null)
                    {
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidOption, location, $"The Policy {policy} of cluster '{className}' is not an AcquirePolicy member"));
                    }

                    break;
                case "MinHedgeDelayMilliseconds" when value.Value is int milliseconds:
                    settings.MinHedgeDelayMilliseconds = NonNegative(milliseconds, argument.Key, className, location, diagnostics);
                    break;
                case "MaxHedgeDelayMilliseconds" when value.Value is int milliseconds:
                    settings.MaxHedgeDelayMilliseconds = NonNegative(milliseconds, argument.Key, className, location, diagnostics);
                    break;
                case "ConnectTimeoutMilliseconds" when value.Value is int milliseconds:
                    settings.ConnectTimeoutMilliseconds = NonNegative(milliseconds, argument.Key, className, location, diagnostics);
                    break;
                case "MaxWriters" when value.Value is int maxWriters:
                    if (maxWriters >= 1)
                    {
                        settings.MaxWriters = maxWriters;
                    }
                    else
                    {
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidOption, location, $"The MaxWriters of cluster '{className}' must be at least 1 (the writer role needs a node); got {maxWriters}"));
                    }

                    break;
                case "WriterIsAlsoReader" when value.Value is bool writerIsAlsoReader:
                    settings.WriterIsAlsoReader = writerIsAlsoReader;
                    break;
                case "CausalReads" when value.Value is bool causalReads:
                    settings.CausalReads = causalReads;
                    break;
                case "MaxReaderLag" when value.Value is long maxReaderLag:
                    if (maxReaderLag >= -1)
                    {
                        settings.MaxReaderLag = maxReaderLag;
                    }
                    else
                    {
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidOption, location, $"The MaxReaderLag of cluster '{className}' must be 0 or more, or -1 for no limit; got {maxReaderLag.ToString(CultureInfo.InvariantCulture)}"));
                    }

                    break;
                case "WriterFailbackDelayMilliseconds" when value.Value is int failback:
                    if (failback >= 0)
                    {
                        settings.WriterFailbackDelayMilliseconds = failback;
                    }
                    else
                    {
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidOption, location, $"The WriterFailbackDelayMilliseconds of cluster '{className}' must not be negative (0 fails back at once); got {failback}"));
                    }

                    break;
                case "HedgeBudget" when value.Value is double budget && !double.IsNaN(budget):
                    if (budget is >= 0 and <= 1)
                    {
                        settings.HedgeBudget = budget.ToString("R", CultureInfo.InvariantCulture);
                    }
                    else
                    {
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidOption, location, $"The HedgeBudget of cluster '{className}' must be between 0 and 1; got {budget.ToString(CultureInfo.InvariantCulture)}"));
                    }

                    break;
            }
        }

        if (settings.MinHedgeDelayMilliseconds > 0 && settings.MaxHedgeDelayMilliseconds > 0 && settings.MaxHedgeDelayMilliseconds < settings.MinHedgeDelayMilliseconds)
        {
            diagnostics.Add(DiagnosticInfo.Create(
                DiagnosticDescriptors.InvalidOption,
                ArgumentLocation(syntax, "MaxHedgeDelayMilliseconds"),
                $"The MaxHedgeDelayMilliseconds of cluster '{className}' must not be less than its MinHedgeDelayMilliseconds ({settings.MinHedgeDelayMilliseconds})"));
        }

        return settings;
    }

    private static NodeModel? ParseNode(
        AttributeData attribute,
        bool typedOpens,
        Dictionary<string, string> nodeNames,
        Dictionary<string, string> memberNames,
        List<DiagnosticInfo> diagnostics,
        CancellationToken cancellationToken)
    {
        var syntax = attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken) as AttributeSyntax;
        var nameLocation = ArgumentLocation(syntax, null);
        if (attribute.ConstructorArguments.Length != 1 || attribute.ConstructorArguments[0].Kind == TypedConstantKind.Error)
        {
            return null;
        }

        var name = attribute.ConstructorArguments[0].Value as string;
        if (InvalidNameReason(name) is { } reason)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidNodeName, nameLocation, name ?? "null", reason));
            return null;
        }

        if (nodeNames.TryGetValue(name!, out var first))
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateNodeName, nameLocation, name!, first));
            return null;
        }

        nodeNames.Add(name!, name!);
        var property = ToPascalCase(name!);
        var clash = false;
        foreach (var member in typedOpens ? new[] { property, "Open" + property, "Open" + property + "Async" } : [property])
        {
            if (memberNames.TryGetValue(member, out var owner))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NodeMemberNameClash, nameLocation, name!, member, owner));
                clash = true;
            }
        }

        if (clash)
        {
            return null;
        }

        memberNames[property] = $"is also generated for node '{name}'";
        if (typedOpens)
        {
            memberNames["Open" + property] = $"is also generated for node '{name}'";
            memberNames["Open" + property + "Async"] = $"is also generated for node '{name}'";
        }

        string? connectionString = null, environmentVariable = null, configurationKey = null;
        int priority = 0, connectTimeout = 0;
        var valid = true;
        foreach (var argument in attribute.NamedArguments)
        {
            switch (argument.Key)
            {
                case "ConnectionString":
                    connectionString = argument.Value.Value as string;
                    break;
                case "ConnectionStringEnvironmentVariable":
                    environmentVariable = argument.Value.Value as string;
                    break;
                case "ConnectionStringConfigurationKey":
                    configurationKey = argument.Value.Value as string;
                    break;
                case "Priority" when argument.Value.Value is int value:
                    priority = value;
                    break;
                case "ConnectTimeoutMilliseconds" when argument.Value.Value is int value:
                    connectTimeout = NonNegative(value, argument.Key, $"node '{name}'", ArgumentLocation(syntax, argument.Key), diagnostics, isNode: true);
                    valid &= value >= 0;
                    break;
            }
        }

        var sources = new List<string>(3);
        if (!string.IsNullOrEmpty(connectionString))
        {
            sources.Add("ConnectionString");
        }

        if (!string.IsNullOrEmpty(environmentVariable))
        {
            sources.Add("ConnectionStringEnvironmentVariable");
        }

        if (!string.IsNullOrEmpty(configurationKey))
        {
            sources.Add("ConnectionStringConfigurationKey");
        }

        if (sources.Count != 1)
        {
            var what = sources.Count == 0 ? "no connection string source" : string.Join(" and ", sources);
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ConnectionStringSourceCount, syntax?.GetLocation(), name!, what));
            return null;
        }

        if (connectionString is not null && connectionString.Length > 0)
        {
            var location = ArgumentLocation(syntax, "ConnectionString");
            if (!TryParseConnectionString(connectionString, out var hasPassword))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnparsableConnectionString, location, name!));
                return null;
            }

            if (hasPassword)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.LiteralPassword, location, name!));
            }

            return valid ? new NodeModel(name!, property, ConnectionStringSource.Literal, connectionString, priority, connectTimeout) : null;
        }

        if (!valid)
        {
            return null;
        }

        return string.IsNullOrEmpty(environmentVariable)
            ? new NodeModel(name!, property, ConnectionStringSource.ConfigurationKey, configurationKey!, priority, connectTimeout)
            : new NodeModel(name!, property, ConnectionStringSource.EnvironmentVariable, environmentVariable!, priority, connectTimeout);
    }

    /// <summary>The core's rules for node names (see ClusterDataSourceBuilder), plus: the PascalCase form must be a C# identifier.</summary>
    private static string? InvalidNameReason(string? name)
    {
        if (name is null || name.Length == 0)
        {
            return "a node name must have 1 to 64 characters";
        }

        if (name.Length > MaxNodeNameLength)
        {
            return $"a node name must have at most {MaxNodeNameLength} characters; it has {name.Length}";
        }

        foreach (var c in name)
        {
            if (!IsAsciiLetterOrDigit(c) && c is not ('_' or '-' or '.'))
            {
                return $"it has the character '{c}'; use letters, digits, '_', '-' or '.'";
            }
        }

        var property = ToPascalCase(name);
        if (property.Length == 0 || !IsAsciiLetter(property[0]))
        {
            return $"its property name '{property}' must start with a letter";
        }

        return null;
    }

    /// <summary>
    /// Parses key=value pairs as the providers' builders do. The provider itself cannot be loaded in the compiler, so
    /// its own keywords are checked only when the cluster is created. The parser's message is dropped: a diagnostic
    /// is shown and logged by every build, and a message that quoted the string could quote a password.
    /// </summary>
    private static bool TryParseConnectionString(string connectionString, out bool hasPassword)
    {
        hasPassword = false;
        try
        {
            var builder = new DbConnectionStringBuilder { ConnectionString = connectionString };
            foreach (var key in new[] { "password", "pwd" })
            {
                if (builder.TryGetValue(key, out var value) && value is string text && text.Length > 0)
                {
                    hasPassword = true;
                }
            }

            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static List<ContainingTypeModel> ParseContainingTypes(TypeDeclarationSyntax declaration, string className, List<DiagnosticInfo> diagnostics)
    {
        var types = new List<ContainingTypeModel>();
        for (var parent = declaration.Parent as TypeDeclarationSyntax; parent is not null; parent = parent.Parent as TypeDeclarationSyntax)
        {
            if (!parent.Modifiers.Any(SyntaxKind.PartialKeyword))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ContainingTypeNotPartial, parent.Identifier.GetLocation(), className, parent.Identifier.ValueText));
            }

            var keyword = parent is RecordDeclarationSyntax record
                ? record.ClassOrStructKeyword.IsKind(SyntaxKind.StructKeyword) ? "record struct" : "record"
                : parent.Keyword.ValueText;
            var typeParameters = parent.TypeParameterList is { } list
                ? "<" + string.Join(", ", list.Parameters.Select(p => (p.VarianceKeyword.IsKind(SyntaxKind.None) ? string.Empty : p.VarianceKeyword.ValueText + " ") + p.Identifier.ValueText)) + ">"
                : string.Empty;
            types.Insert(0, new ContainingTypeModel(keyword, parent.Identifier.ValueText + typeParameters));
        }

        return types;
    }

    /// <summary>Members the generated code declares, mapped to why a node may not take their name.</summary>
    private static Dictionary<string, string> ReservedMemberNames(string className, bool typedOpens)
    {
        var names = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [className] = "is the name of the cluster class",
        };
        var generated = new List<string>
        {
            "NodeNames", "DataSource", "Create", "OpenConnection", "OpenConnectionAsync", "Dispose", "DisposeAsync", "ReadEnvironmentVariable", "ReadConfiguration", "CreateDataSource",
            "Writer", "Readers", "OpenWriter", "OpenWriterAsync", "OpenReader", "OpenReaderAsync",
        };
        if (typedOpens)
        {
            generated.Add("AsConnectionType");
        }

        foreach (var member in generated)
        {
            names[member] = "is a generated member of the cluster class";
        }

        return names;
    }

    private static int NonNegative(int value, string option, string owner, Location? location, List<DiagnosticInfo> diagnostics, bool isNode = false)
    {
        if (value >= 0)
        {
            return value;
        }

        var subject = isNode ? owner : $"cluster '{owner}'";
        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidOption, location, $"The {option} of {subject} must not be negative (0 means the default); got {value}"));
        return 0;
    }

    private static bool HasProviderInstance(INamedTypeSymbol provider, INamedTypeSymbol? providerFactory)
    {
        for (var type = provider; type is not null; type = type.BaseType)
        {
            foreach (var member in type.GetMembers("Instance"))
            {
                if (!member.IsStatic || member.DeclaredAccessibility != Accessibility.Public)
                {
                    continue;
                }

                var memberType = member switch
                {
                    IFieldSymbol field => field.Type,
                    IPropertySymbol { GetMethod.DeclaredAccessibility: Accessibility.Public } property => property.Type,
                    _ => null,
                };
                if (memberType is not null && DerivesFrom(memberType, providerFactory))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static bool DerivesFrom(ITypeSymbol type, INamedTypeSymbol? baseType)
    {
        if (baseType is null)
        {
            return false;
        }

        for (var current = type; current is not null; current = current.BaseType)
        {
            if (SymbolEqualityComparer.Default.Equals(current, baseType))
            {
                return true;
            }
        }

        return false;
    }

    private static string? EnumMemberName(ITypeSymbol? enumType, int value)
    {
        foreach (var member in enumType?.GetMembers() ?? [])
        {
            if (member is IFieldSymbol { HasConstantValue: true, ConstantValue: int constant } field && constant == value)
            {
                return enumType!.ToDisplayString(s_fullyQualified) + "." + field.Name;
            }
        }

        return null;
    }

    /// <summary>The location of a named argument, or of the first positional one when <paramref name="name"/> is null.</summary>
    private static Location? ArgumentLocation(AttributeSyntax? syntax, string? name)
    {
        if (syntax is null)
        {
            return null;
        }

        foreach (var argument in syntax.ArgumentList?.Arguments ?? default)
        {
            var argumentName = argument.NameEquals?.Name.Identifier.ValueText;
            if (name is null ? argumentName is null && argument.NameColon is null : argumentName == name)
            {
                return argument.GetLocation();
            }
        }

        return syntax.GetLocation();
    }

    private static bool IsFirstDeclarationWith(INamedTypeSymbol type, string attributeName, TypeDeclarationSyntax target, CancellationToken cancellationToken)
    {
        foreach (var attribute in type.GetAttributes())
        {
            if (Is(attribute, attributeName))
            {
                var owner = attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken).FirstAncestorOrSelf<TypeDeclarationSyntax>();
                return owner is null || (owner.SyntaxTree == target.SyntaxTree && owner.Span == target.Span);
            }
        }

        return true;
    }

    private static bool Is(AttributeData attribute, string metadataName) =>
        attribute.AttributeClass is { } type && type.ToDisplayString() == metadataName;

    private static string HintName(INamedTypeSymbol type)
    {
        var parts = new List<string>();
        for (ISymbol? symbol = type; symbol is INamedTypeSymbol named; symbol = named.ContainingType)
        {
            parts.Insert(0, named.MetadataName.Replace('`', '_'));
        }

        if (!type.ContainingNamespace.IsGlobalNamespace)
        {
            parts.Insert(0, type.ContainingNamespace.ToDisplayString());
        }

        return string.Join(".", parts) + ".g.cs";
    }

    private static bool IsAsciiLetter(char c) => c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z');

    private static bool IsAsciiLetterOrDigit(char c) => IsAsciiLetter(c) || c is >= '0' and <= '9';

    private sealed class ClusterSettings
    {
        public string? ProviderFactory { get; set; }

        public string? ConnectionType { get; set; }

        public string? PolicyMember { get; set; }

        public int MinHedgeDelayMilliseconds { get; set; }

        public int MaxHedgeDelayMilliseconds { get; set; }

        public int ConnectTimeoutMilliseconds { get; set; }

        public string? HedgeBudget { get; set; }

        public int? MaxWriters { get; set; }

        public bool? WriterIsAlsoReader { get; set; }

        public long? MaxReaderLag { get; set; }

        public int? WriterFailbackDelayMilliseconds { get; set; }

        public bool? CausalReads { get; set; }
    }
}

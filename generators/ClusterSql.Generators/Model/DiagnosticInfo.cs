using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace ClusterSql.Generators.Model;

/// <summary>
/// A diagnostic as plain data: a <see cref="Location"/> holds its syntax tree (and so the whole compilation) alive
/// and never compares equal across runs, which would defeat caching.
/// </summary>
internal sealed record DiagnosticInfo(string Id, LocationInfo? Location, EquatableArray<string> MessageArgs)
{
    public Diagnostic ToDiagnostic() =>
        Diagnostic.Create(Diagnostics.DiagnosticDescriptors.Get(Id), Location?.ToLocation(), MessageArgs.ToObjectArray());

    public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, Location? location, params string[] messageArgs) =>
        new(descriptor.Id, LocationInfo.From(location), new EquatableArray<string>(messageArgs));
}

/// <summary>A source location as plain data.</summary>
internal sealed record LocationInfo(string FilePath, TextSpan TextSpan, LinePositionSpan LineSpan)
{
    public Location ToLocation() => Location.Create(FilePath, TextSpan, LineSpan);

    public static LocationInfo? From(Location? location) =>
        location is null || !location.IsInSource ? null : new LocationInfo(location.SourceTree!.FilePath, location.SourceSpan, location.GetLineSpan().Span);
}

internal static class EquatableArrayExtensions
{
    public static object?[] ToObjectArray(this EquatableArray<string> array)
    {
        var result = new object?[array.Count];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = array[i];
        }

        return result;
    }
}

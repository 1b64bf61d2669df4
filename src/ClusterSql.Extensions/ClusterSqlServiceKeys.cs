using System;
using System.Globalization;
using ClusterSql;

namespace ClusterSql.Extensions;

/// <summary>
/// The service keys under which the registration methods put a cluster's roles (<see cref="ClusterDataSource.Writer"/>,
/// <see cref="ClusterDataSource.Readers"/>), each as a keyed <see cref="ClusterRoleDataSource"/> and a keyed
/// <see cref="System.Data.Common.DbDataSource"/>: <c>"writer"</c> and <c>"readers"</c> for the cluster registered without
/// a key, <c>"&lt;key&gt;:writer"</c> and <c>"&lt;key&gt;:readers"</c> for one registered with a key
/// (<c>[FromKeyedServices("orders:writer")] DbDataSource orders</c>).
/// </summary>
public static class ClusterSqlServiceKeys
{
    /// <summary>The key of the writer role of the cluster registered without a key.</summary>
    public const string Writer = "writer";

    /// <summary>The key of the readers role of the cluster registered without a key.</summary>
    public const string Readers = "readers";

    /// <summary>The key of one role of a cluster.</summary>
    /// <param name="clusterKey">The cluster's own service key, or <see langword="null"/> for the cluster registered without one.</param>
    /// <param name="role">The role.</param>
    /// <returns><c>"writer"</c> or <c>"readers"</c>, after <c>"&lt;clusterKey&gt;:"</c> when there is a key (formatted with the invariant culture).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="role"/> is not a <see cref="ClusterRole"/>.</exception>
    public static string For(object? clusterKey, ClusterRole role)
    {
        var suffix = role switch
        {
            ClusterRole.Writer => Writer,
            ClusterRole.Reader => Readers,
            _ => throw new ArgumentOutOfRangeException(nameof(role), role, "Unknown cluster role."),
        };
        return clusterKey is null ? suffix : string.Create(CultureInfo.InvariantCulture, $"{clusterKey}:{suffix}");
    }
}

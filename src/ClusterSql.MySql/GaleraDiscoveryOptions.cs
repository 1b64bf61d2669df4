using System;
using System.Collections.Generic;

namespace ClusterSql.MySql;

/// <summary>
/// Settings of Galera member discovery (<see cref="MySqlCluster.UseGaleraDiscovery"/>). A member is named in
/// <see cref="Exclude"/>, <see cref="Pin"/> and <see cref="Names"/> by any of: its address as the cluster reports it
/// (<c>10.0.0.5:3306</c>, <c>[fd00::5]:3306</c>), its host alone (any port), its <c>wsrep_node_name</c> or its wsrep node
/// UUID (both only when the cluster's member table is readable), compared case-insensitively. The properties bind from
/// configuration (<c>section.Bind(options)</c>).
/// </summary>
public sealed class GaleraDiscoveryOptions
{
    /// <summary>
    /// How long a discovered member must be missing from every trusted view of the cluster before its node is removed;
    /// meanwhile it is drained, and it is put back in service at once if it reappears. 30 s: longer than a node's clean
    /// restart, so a rolling restart does not remove and re-add nodes. It does not weaken the trust rule: a stale
    /// configuration or another cluster's state uuid is refused for max(30 s, 5 health check intervals) whatever it is.
    /// </summary>
    public TimeSpan GracePeriod { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Members that are never added as nodes (a node kept for backups, an arbitrator's data node).</summary>
    public IList<string> Exclude { get; } = new List<string>();

    /// <summary>Discovered members that are never drained or removed by discovery when they leave the cluster's view: only their health decides.</summary>
    public IList<string> Pin { get; } = new List<string>();

    /// <summary>
    /// Names for discovered members (member to node name). Without one, a member's node is named after its host by the
    /// rule of <see cref="MySqlCluster.AddMySqlNodes"/> (<c>10.0.0.5</c>, <c>db-2.db-headless</c>, <c>--1</c> for <c>::1</c>,
    /// <c>-port</c> when not 3306), made unique with <c>-2</c>, <c>-3</c>, … The same on every run and in every client.
    /// </summary>
    public IDictionary<string, string> Names { get; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);

    internal GaleraDiscoveryOptions Copy()
    {
        var copy = new GaleraDiscoveryOptions { GracePeriod = GracePeriod };
        foreach (var item in Exclude)
        {
            copy.Exclude.Add(item);
        }

        foreach (var item in Pin)
        {
            copy.Pin.Add(item);
        }

        foreach (var (member, name) in Names)
        {
            copy.Names[member] = name;
        }

        return copy;
    }

    /// <summary>Rejects settings that cannot work, naming the setting (never a connection string: there is none here).</summary>
    internal void Validate()
    {
        if (GracePeriod < TimeSpan.Zero || GracePeriod > TimeSpan.FromDays(24))
        {
            throw new ArgumentOutOfRangeException(nameof(GracePeriod), GracePeriod, $"{nameof(GaleraDiscoveryOptions)}.{nameof(GracePeriod)} must be between zero and 24 days.");
        }

        ValidateEntries(Exclude, nameof(Exclude));
        ValidateEntries(Pin, nameof(Pin));
        var named = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (member, name) in Names)
        {
            if (string.IsNullOrWhiteSpace(member))
            {
                throw new ArgumentException($"{nameof(GaleraDiscoveryOptions)}.{nameof(Names)} has an empty member.", nameof(Names));
            }

            if (string.IsNullOrEmpty(name) || name.Length > 64 || !IsValidName(name))
            {
                throw new ArgumentException(
                    $"{nameof(GaleraDiscoveryOptions)}.{nameof(Names)} maps '{member}' to '{name}', which is not a valid node name (1-64 letters, digits, '_', '-' or '.').",
                    nameof(Names));
            }

            if (named.TryGetValue(name, out var other))
            {
                throw new ArgumentException(
                    $"{nameof(GaleraDiscoveryOptions)}.{nameof(Names)} maps both '{other}' and '{member}' to the node name '{name}': each node needs its own name.",
                    nameof(Names));
            }

            named[name] = member;
        }

        static void ValidateEntries(IList<string> entries, string setting)
        {
            for (var i = 0; i < entries.Count; i++)
            {
                // The entry itself is not quoted: configuration may have put something else there (a connection string).
                var entry = entries[i]?.Trim();
                if (string.IsNullOrEmpty(entry))
                {
                    throw new ArgumentException($"{nameof(GaleraDiscoveryOptions)}.{setting}[{i}] is empty.", setting);
                }

                if (!IsMemberKey(entry))
                {
                    throw new ArgumentException(
                        $"{nameof(GaleraDiscoveryOptions)}.{setting}[{i}] is not a member: give an address (host, host:port, [IPv6]:port), a wsrep node name or a wsrep node UUID.",
                        setting);
                }
            }
        }

        // An address as the cluster reports one, or a single token (a node name, a UUID: letters, digits, '-', '_', '.').
        static bool IsMemberKey(string entry) =>
            entry.Contains(':', StringComparison.Ordinal) || entry.Contains('[', StringComparison.Ordinal)
                ? MemberAddress.Parse(entry) is not null
                : IsValidName(entry) && entry.Length <= 255;

        static bool IsValidName(string name)
        {
            foreach (var c in name)
            {
                if (!char.IsAsciiLetterOrDigit(c) && c is not ('_' or '-' or '.'))
                {
                    return false;
                }
            }

            return true;
        }
    }
}

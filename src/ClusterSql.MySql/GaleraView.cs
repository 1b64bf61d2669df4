using System;
using System.Collections.Generic;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace ClusterSql.MySql;

/// <summary>
/// A member's client address as the cluster reports it: host (lower case, an IP literal in its canonical form, IPv6
/// without brackets) and port, or no port when the cluster gave none (the reporter's port is then assumed).
/// </summary>
internal readonly record struct MemberAddress(string Host, int? Port)
{
    /// <summary>
    /// Parses one entry of <c>wsrep_incoming_addresses</c> or <c>node_incoming_address</c>: <c>host:port</c>,
    /// <c>[IPv6]:port</c>, <c>[IPv6]</c>, a bare IPv6 literal, a bare host. <see langword="null"/> for what no client can
    /// connect to: empty, <c>AUTO</c> (garbd, or a node that does not know its own address), an unspecified address
    /// (<c>0.0.0.0</c>, <c>::</c>), or anything that does not parse.
    /// </summary>
    public static MemberAddress? Parse(string? text)
    {
        var entry = text?.Trim();
        if (string.IsNullOrEmpty(entry) || string.Equals(entry, "AUTO", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        string host;
        int? port = null;
        if (entry[0] == '[')
        {
            var close = entry.IndexOf(']', StringComparison.Ordinal);
            if (close < 2)
            {
                return null;
            }

            host = entry[1..close];
            var rest = entry[(close + 1)..];
            if (rest.Length > 0)
            {
                if (rest[0] != ':' || !TryParsePort(rest[1..], out var p))
                {
                    return null;
                }

                port = p;
            }

            if (!IPAddress.TryParse(host, out var bracketed) || bracketed.AddressFamily != AddressFamily.InterNetworkV6)
            {
                return null;
            }
        }
        else
        {
            var colons = entry.AsSpan().Count(':');
            if (colons > 1)
            {
                // An IPv6 literal without brackets can carry no port.
                host = entry;
                if (!IPAddress.TryParse(host, out _))
                {
                    return null;
                }
            }
            else if (colons == 1)
            {
                var colon = entry.IndexOf(':', StringComparison.Ordinal);
                host = entry[..colon];
                if (!TryParsePort(entry[(colon + 1)..], out var p))
                {
                    return null;
                }

                port = p;
            }
            else
            {
                host = entry;
            }
        }

        return Normalize(host) is { } normalized ? new MemberAddress(normalized, port) : null;
    }

    /// <summary>A host as a connection string or the cluster spells it, compared as this type compares: null when unusable.</summary>
    public static string? Normalize(string host)
    {
        host = host.Trim();
        if (host.Length > 2 && host[0] == '[' && host[^1] == ']')
        {
            host = host[1..^1];
        }

        if (host.Length == 0)
        {
            return null;
        }

        if (IPAddress.TryParse(host, out var ip))
        {
            if (ip.IsIPv4MappedToIPv6)
            {
                ip = ip.MapToIPv4();
            }

            if (ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any))
            {
                return null;
            }

            return ip.ToString().ToLowerInvariant();
        }

        foreach (var c in host)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '.' or '_'))
            {
                return null;
            }
        }

        return host.ToLowerInvariant();
    }

    /// <summary>The address with the port filled in from the reporter's when the cluster gave none.</summary>
    public MemberAddress WithDefaultPort(int port) => Port is null ? this with { Port = port } : this;

    /// <summary>Whether the host is an IPv6 literal (it needs brackets before a port).</summary>
    public bool IsIPv6 => Host.Contains(':', StringComparison.Ordinal);

    /// <inheritdoc/>
    public override string ToString()
    {
        var host = IsIPv6 ? "[" + Host + "]" : Host;
        return Port is { } port ? host + ":" + port.ToString(CultureInfo.InvariantCulture) : host;
    }

    private static bool TryParsePort(string text, out int port) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is > 0 and <= 65535;
}

/// <summary>One member of a view: its wsrep node UUID and name (from the member table, when readable) and its address.</summary>
internal sealed record GaleraMember(string? Uuid, string? Name, MemberAddress Address);

/// <summary>
/// The membership one node reported in one health check, with what the trust rule needs: whether the node was fit to
/// serve (Primary, Synced, not stale), the cluster's state UUID and configuration id, and where the node itself is in it.
/// </summary>
internal sealed class GaleraView
{
    public required bool Healthy { get; init; }

    public required string? StateUuid { get; init; }

    public required long? ConfId { get; init; }

    /// <summary>The reporter's own wsrep node UUID (<c>wsrep_gcomm_uuid</c>).</summary>
    public required string? ReporterUuid { get; init; }

    /// <summary>
    /// The members, in the cluster's order; <see langword="null"/> for a member no client can reach (garbd's <c>AUTO</c> or
    /// empty address), kept so that <see cref="ReporterIndex"/> still points at the reporter.
    /// </summary>
    public required IReadOnlyList<GaleraMember?> Members { get; init; }

    /// <summary>The reporter's position in <see cref="Members"/> (<c>wsrep_local_index</c>), or -1 when unknown.</summary>
    public required int ReporterIndex { get; init; }

    /// <summary>Whether the members came from <c>mysql.wsrep_cluster_members</c> (with UUIDs and names).</summary>
    public bool FromMemberTable { get; init; }

    /// <summary>The reporter's own address as the cluster knows it, when the view says.</summary>
    public MemberAddress? ReporterAddress
    {
        get
        {
            if (FromMemberTable)
            {
                foreach (var member in Members)
                {
                    if (member is not null && ReporterUuid is not null && string.Equals(member.Uuid, ReporterUuid, StringComparison.OrdinalIgnoreCase))
                    {
                        return member.Address;
                    }
                }

                return null;
            }

            return ReporterIndex >= 0 && ReporterIndex < Members.Count ? Members[ReporterIndex]?.Address : null;
        }
    }

    /// <summary>Whether the view lists its own reporter: a view that does not is no view of the reporter's cluster.</summary>
    public bool IncludesReporter
    {
        get
        {
            if (FromMemberTable)
            {
                return ReporterUuid is not null && Members.Count > 0 && ReporterAddress is not null;
            }

            return ReporterIndex >= 0 && ReporterIndex < Members.Count;
        }
    }

    /// <summary>
    /// Builds a view from the probe's status values and, when it could read it, <c>mysql.wsrep_cluster_members</c>
    /// (<paramref name="memberRows"/>: UUID, name, address). Null when the node reported no membership at all.
    /// </summary>
    public static GaleraView? From(IReadOnlyDictionary<string, string> values, bool healthy, IReadOnlyList<(string Uuid, string Name, string Address)>? memberRows)
    {
        values.TryGetValue("wsrep_cluster_state_uuid", out var stateUuid);
        values.TryGetValue("wsrep_gcomm_uuid", out var reporterUuid);
        var confId = values.TryGetValue("wsrep_cluster_conf_id", out var conf) && long.TryParse(conf, NumberStyles.Integer, CultureInfo.InvariantCulture, out var c) ? c : (long?)null;
        var index = values.TryGetValue("wsrep_local_index", out var idx) && int.TryParse(idx, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) ? i : -1;
        List<GaleraMember?> members;
        var fromTable = memberRows is { Count: > 0 };
        if (fromTable)
        {
            members = new List<GaleraMember?>(memberRows!.Count);
            foreach (var (uuid, name, address) in memberRows)
            {
                members.Add(MemberAddress.Parse(address) is { } parsed
                    ? new GaleraMember(string.IsNullOrWhiteSpace(uuid) ? null : uuid.Trim(), string.IsNullOrWhiteSpace(name) ? null : name.Trim(), parsed)
                    : null);
            }
        }
        else if (values.TryGetValue("wsrep_incoming_addresses", out var incoming))
        {
            // Comma-separated, in the view's order (wsrep_local_index counts in it); IPv6 entries are bracketed and
            // hold no comma. An empty entry (garbd) still takes its place.
            var entries = incoming.Split(',');
            members = new List<GaleraMember?>(entries.Length);
            foreach (var entry in entries)
            {
                members.Add(MemberAddress.Parse(entry) is { } parsed ? new GaleraMember(null, null, parsed) : null);
            }

            // A list that does not match the cluster's size cannot be indexed by wsrep_local_index.
            if (values.TryGetValue("wsrep_cluster_size", out var sizeText) &&
                int.TryParse(sizeText, NumberStyles.Integer, CultureInfo.InvariantCulture, out var size) && size != entries.Length)
            {
                index = -1;
            }
        }
        else
        {
            return null;
        }

        return new GaleraView
        {
            Healthy = healthy,
            StateUuid = string.IsNullOrWhiteSpace(stateUuid) ? null : stateUuid.Trim(),
            ConfId = confId,
            ReporterUuid = string.IsNullOrWhiteSpace(reporterUuid) ? null : reporterUuid.Trim(),
            Members = members,
            ReporterIndex = index,
            FromMemberTable = fromTable,
        };
    }
}

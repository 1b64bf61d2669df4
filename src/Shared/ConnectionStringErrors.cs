using System;
using System.Data.Common;

namespace ClusterSql;

/// <summary>
/// Says why a connection string did not parse without echoing any of it. Providers' own messages quote the offending
/// key or value ("Option 'x' not supported", "Invalid value 'x'"), and a badly quoted password turns into exactly such
/// a key or value, so neither their message nor their exception may travel on. Compiled into each library that parses
/// connection strings (ClusterSql.MySql, ClusterSql.Npgsql, ClusterSql.Extensions).
/// </summary>
internal static class ConnectionStringErrors
{
    private const string GeneralReason = "a key is unknown, or a value is malformed: check quoting";

    /// <summary>The message for a connection string that <paramref name="createBuilder"/>'s builder rejected.</summary>
    /// <param name="nodeName">The node, or <see langword="null"/> for a connection string of several nodes.</param>
    /// <param name="provider">The provider's name, e.g. "MySqlConnector".</param>
    /// <param name="connectionString">The rejected string; only known key names are taken from it, never a value.</param>
    /// <param name="createBuilder">Makes an empty builder of the provider, to tell known keys from unknown ones.</param>
    public static string Describe(string? nodeName, string provider, string connectionString, Func<DbConnectionStringBuilder?> createBuilder)
    {
        var subject = nodeName is null ? "The connection string" : $"The connection string of node '{nodeName}'";
        return $"{subject} does not parse as a {provider} connection string ({Reason(connectionString, createBuilder)}).";
    }

    /// <summary>
    /// Whether an exception is one that providers throw for a string they cannot parse or a value they cannot convert;
    /// every one of them may quote the string. (Npgsql throws KeyNotFoundException for an unknown key.)
    /// </summary>
    public static bool IsParseFailure(Exception exception) =>
        exception is ArgumentException or FormatException or InvalidCastException or OverflowException or NotSupportedException or IndexOutOfRangeException
            or System.Collections.Generic.KeyNotFoundException;

    private static string Reason(string connectionString, Func<DbConnectionStringBuilder?> createBuilder)
    {
        var generic = new DbConnectionStringBuilder();
        try
        {
            generic.ConnectionString = connectionString;
        }
        catch (ArgumentException)
        {
            return "it is not a list of key=value pairs: check quoting and ';'";
        }

        // Each pair is tried alone on an empty builder. A key is named only when the provider knows it (so it comes
        // from a fixed list, not from the string) and it is not a secret's key; a value is never named.
        foreach (string key in generic.Keys)
        {
            DbConnectionStringBuilder? probe;
            try
            {
                probe = createBuilder();
                if (probe is null)
                {
                    break;
                }

                probe[key] = null;
            }
            catch (Exception ex) when (IsParseFailure(ex))
            {
                continue;
            }

            try
            {
                probe[key] = generic[key];
            }
            catch (Exception ex) when (IsParseFailure(ex))
            {
                return IsSecretKey(key) ? GeneralReason : $"the value of '{key.Trim()}' is malformed";
            }
        }

        return GeneralReason;
    }

    private static bool IsSecretKey(string key)
    {
        foreach (var word in (ReadOnlySpan<string>)["pass", "pwd", "secret", "token", "key", "credential"])
        {
            if (key.Contains(word, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}

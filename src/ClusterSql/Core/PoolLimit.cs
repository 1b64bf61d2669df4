using System;
using System.Data.Common;
using System.Globalization;

namespace ClusterSql.Core;

/// <summary>
/// Finds how many connections a node's provider pool lends at once, when <see cref="ClusterNodeOptions.MaxConnections"/>
/// does not say: from the connection string's pool keys, which the common providers share, else from the default of a
/// provider known to have one. Unknown stays unknown (no capacity-aware selection for that node).
/// </summary>
internal static class PoolLimit
{
    // The default Maximum Pool Size of providers whose pools block at a limit (their documentation; all 100).
    private static readonly string[] s_providersWithDefault100 = ["MySqlConnector.", "Npgsql.", "Microsoft.Data.SqlClient.", "MySql.Data."];

    public static int? Detect(DbDataSource dataSource)
    {
        DbConnectionStringBuilder builder;
        try
        {
            builder = new DbConnectionStringBuilder { ConnectionString = dataSource.ConnectionString };
        }
        catch (Exception)
        {
            // Not in the common key=value form; nothing of the string is kept or reported.
            return null;
        }

        if (TryGet(builder, "Pooling", out var pooling) && bool.TryParse(pooling, out var pooled) && !pooled)
        {
            return null;
        }

        foreach (var key in (ReadOnlySpan<string>)["Maximum Pool Size", "Max Pool Size", "MaximumPoolSize", "MaxPoolSize"])
        {
            if (TryGet(builder, key, out var text))
            {
                return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var max) && max > 0 ? max : null;
            }
        }

        var type = dataSource.GetType().FullName ?? string.Empty;
        foreach (var prefix in s_providersWithDefault100)
        {
            if (type.StartsWith(prefix, StringComparison.Ordinal))
            {
                return 100;
            }
        }

        return null;
    }

    private static bool TryGet(DbConnectionStringBuilder builder, string key, out string? value)
    {
        value = null;
        if (builder.TryGetValue(key, out var raw) && raw is not null)
        {
            value = Convert.ToString(raw, CultureInfo.InvariantCulture);
            return true;
        }

        return false;
    }
}

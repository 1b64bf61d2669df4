using System.Collections.Generic;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ClusterSql.Cli;

// The --json output: one object for check, one object per line for watch. Field names and meanings are a contract
// (README, "clustersql --json"): add fields, never rename or drop one without raising Version. Every field is always
// present (null when unknown), so a script can tell "unknown" from "missing". Times are milliseconds or seconds as named.

/// <summary><c>clustersql check --json</c>.</summary>
internal sealed record CheckJson(
    int Version,
    string Type,
    string Verdict,
    int ExitCode,
    IReadOnlyList<CheckNodeJson> Nodes,
    RolesJson? Roles,
    ReplicationJson Replication);

internal sealed record CheckNodeJson(
    string Name,
    bool Reachable,
    bool Serving,
    double? OpenP50Ms,
    double? OpenMaxMs,
    GaleraJson? Galera,
    string? Problem,
    PostgresJson? Postgres = null);

/// <summary>A node's Galera status as read by the check; null for a server that is not Galera or was not reached.</summary>
internal sealed record GaleraJson(string? State, string? ClusterStatus, string? Ready, long? ClusterSize);

/// <summary>
/// A PostgreSQL node's state as read by the check (added in version 1: additive): its role ("primary" or "standby"),
/// timeline, WAL receiver status and replay lag in bytes behind the primary; null for another server or one not reached.
/// </summary>
internal sealed record PostgresJson(string Role, long? Timeline, string? ReceiverStatus, long? LagBytes);

internal sealed record RolesJson(
    IReadOnlyList<string> Writers,
    IReadOnlyList<string> WriterOrder,
    IReadOnlyList<string> ReaderOrder,
    IReadOnlyList<RoleNodeJson> Nodes);

internal sealed record RoleNodeJson(string Name, string Role, long? Rank, int Priority, double? UptimeSeconds, bool Settled, long? ReplicationLag, bool ReadOnly);

internal sealed record ReplicationJson(bool Checked, bool Ok, string? WrittenOn, IReadOnlyList<string> ReadBackOn, string? Error);

/// <summary>One line of <c>clustersql watch --json</c> per interval.</summary>
internal sealed record WatchIntervalJson(
    int Version,
    string Type,
    double ElapsedSeconds,
    double AcquiresPerSecond,
    double P50Ms,
    double P99Ms,
    long AcquireFailures,
    long StatementErrors,
    string? LastError,
    IReadOnlyList<WatchNodeJson> Nodes);

internal sealed record WatchNodeJson(
    string Name,
    string State,
    string Role,
    double WinsPerSecond,
    double? Share,
    long Wins,
    long Failures,
    long Hedges,
    double LatencyMs,
    double PeakMs,
    double HedgeDelayMs,
    string? LastError,
    string? DownReason);

/// <summary>The last line of <c>clustersql watch --json</c>.</summary>
internal sealed record WatchSummaryJson(
    int Version,
    string Type,
    long Acquires,
    long AcquireFailures,
    long StatementErrors,
    double SlowestMs,
    double ElapsedSeconds,
    int ExitCode);

/// <summary>What <c>--json</c> prints instead when the tool itself fails (exit code 70).</summary>
internal sealed record ErrorJson(int Version, string Type, string Message, int ExitCode);

/// <summary>Source-generated serialization: no reflection, nothing for NativeAOT to warn about.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(CheckJson))]
[JsonSerializable(typeof(WatchIntervalJson))]
[JsonSerializable(typeof(WatchSummaryJson))]
[JsonSerializable(typeof(ErrorJson))]
internal sealed partial class CliJsonContext : JsonSerializerContext;

internal static class CliJson
{
    /// <summary>The version of the output's shape: raised only when a field is renamed, dropped or changes meaning.</summary>
    public const int Version = 1;

    public static string Serialize(CheckJson value) => JsonSerializer.Serialize(value, CliJsonContext.Default.CheckJson);

    public static string Serialize(WatchIntervalJson value) => JsonSerializer.Serialize(value, CliJsonContext.Default.WatchIntervalJson);

    public static string Serialize(WatchSummaryJson value) => JsonSerializer.Serialize(value, CliJsonContext.Default.WatchSummaryJson);

    public static string Serialize(ErrorJson value) => JsonSerializer.Serialize(value, CliJsonContext.Default.ErrorJson);

    public static double Millis(System.TimeSpan value) => System.Math.Round(value.TotalMilliseconds, 3);
}

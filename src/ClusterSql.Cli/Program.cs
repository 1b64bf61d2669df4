using System;
using System.CommandLine;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ClusterSql;
using ClusterSql.Cli;

var connectionString = new Option<string?>("--connection-string", "-c")
{
    Description = "A connection string of the --provider (MySqlConnector: Server=a,b,c; Npgsql: Host=a:5432,b:5432); each host is a node. Default: $CLUSTERSQL_CONNECTION_STRING, else (mysql only) the local test cluster.",
};
var config = new Option<string?>("--config")
{
    Description = "A JSON file (appsettings.json) with the cluster section that AddClusterSql binds: { \"ClusterSql\": { \"Nodes\": { \"name\": \"connection string\" }, \"Policy\": \"FailOver\" } }.",
};
var section = new Option<string?>("--section")
{
    Description = "The section of the --config file to read (default: ClusterSql when the file has it, else the whole file); nested sections with ':', e.g. Databases:Orders.",
};
var json = new Option<bool>("--json") { Description = "Print JSON for programs: check prints one object; watch prints one object per line (see README, \"clustersql --json\")." };
var provider = new Option<string>("--provider")
{
    Description = "The nodes' ADO.NET provider: mysql (MySqlConnector: MariaDB, MySQL, Galera) or postgres (Npgsql: a PostgreSQL primary and its standbys).",
    DefaultValueFactory = _ => "mysql",
};
provider.AcceptOnlyFromAmong(ClusterTarget.ProviderNames);

// --no-galera is the name this option had before PostgreSQL: kept as an alias so that scripts keep working.
var noGalera = new Option<bool>("--no-probe", "--no-galera")
{
    Description = "Run no health probe (mysql: no Galera state, for a server that is not Galera; postgres: no primary/standby check, so no roles by role).",
};
var discover = new Option<bool>("--discover")
{
    Description = "Treat the given nodes as seeds and learn the other Galera members from the cluster itself (mysql.wsrep_cluster_members or wsrep_incoming_addresses).",
};
var duration = new Option<int>("--duration") { Description = "Seconds the load runs; it always stops by itself.", DefaultValueFactory = _ => 30 };
var workers = new Option<int>("--workers") { Description = "Concurrent workers of the load.", DefaultValueFactory = _ => 4 };
var interval = new Option<int>("--interval-ms") { Description = "Milliseconds between refreshes.", DefaultValueFactory = _ => 1000 };
var maxDuration = new Option<int>("--max-duration") { Description = "With --until-node-wins: the most seconds the load runs; it stops then even if the node has not come back.", DefaultValueFactory = _ => 120 };
var untilNodeWins = new Option<string?>("--until-node-wins")
{
    Description = "Run the load until this node has gone out of service and come back (Healthy, winning acquires), then a few seconds more; exit 1 if it does not within --max-duration. Replaces --duration.",
};
var query = new Option<string>("--query") { Description = "The statement each worker runs on every connection.", DefaultValueFactory = _ => "SELECT 1" };

var check = new Command("check", "Check every node (reachable, open latency, Galera state or PostgreSQL role), name the writer every client would choose and why, and check that a write replicates; exit 0 healthy, 1 degraded, 2 failed.")
{
    provider, connectionString, config, section, noGalera, discover, json,
};
check.SetAction(async (parse, cancellationToken) =>
{
    var galera = !parse.GetValue(noGalera);
    await using var cluster = ClusterTarget.Open(parse.GetValue(connectionString), parse.GetValue(config), galera, section: parse.GetValue(section), discover: parse.GetValue(discover), provider: ClusterTarget.ParseProvider(parse.GetValue(provider)));
    return await CheckCommand.RunAsync(cluster, probed: galera, showRoles: true, cancellationToken, json: parse.GetValue(json));
});

var watch = new Command("watch", "Run a bounded acquire load and show live per-node statistics; failover shows when a node is faulted.")
{
    provider, connectionString, config, section, noGalera, discover, duration, workers, interval, query, json,
};
watch.SetAction(async (parse, cancellationToken) =>
{
    var (seconds, count, every) = Validate(parse.GetValue(duration), parse.GetValue(workers), parse.GetValue(interval));
    var asJson = parse.GetValue(json);
    await using var cluster = ClusterTarget.Open(parse.GetValue(connectionString), parse.GetValue(config), !parse.GetValue(noGalera), section: parse.GetValue(section), discover: parse.GetValue(discover), provider: ClusterTarget.ParseProvider(parse.GetValue(provider)));
    await CheckCommand.WaitForDiscoveryAsync(cluster, cancellationToken);
    var summary = await WatchCommand.RunAsync(cluster, count, seconds, every, parse.GetValue(query)!, stopWhen: null, cancellationToken, asJson);
    var exitCode = summary.AcquireFailures == 0 ? 0 : 1;
    Console.WriteLine(asJson
        ? CliJson.Serialize(new WatchSummaryJson(CliJson.Version, "summary", summary.Acquires, summary.AcquireFailures, summary.StatementErrors, CliJson.Millis(summary.Slowest), Math.Round(summary.Elapsed.TotalSeconds, 3), exitCode))
        : $"watch: {summary.Acquires} acquires, {summary.AcquireFailures} failed, slowest {Format.Millis(summary.Slowest)}");
    return exitCode;
});

var demo = new Command("demo", "The main job against the local cluster: check it, then watch a steady load (run tests/cluster faults meanwhile to see failover).")
{
    duration, untilNodeWins, maxDuration, workers,
};
demo.SetAction(async (parse, cancellationToken) =>
{
    var node = parse.GetValue(untilNodeWins);
    var (seconds, count, _) = Validate(node is null ? parse.GetValue(duration) : parse.GetValue(maxDuration), parse.GetValue(workers), 1000);
    return await DemoCommand.RunAsync(seconds, node, count, cancellationToken);
});

var root = new RootCommand("clustersql: check, watch and demo a replicated database cluster through ClusterSql.") { check, watch, demo };
var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    // An unknown option or a value of the wrong type (check --bogus, watch --duration abc) is a usage error: 64
    // (EX_USAGE), as README promises, not System.CommandLine's 1, which would read as a degraded cluster.
    foreach (var error in parsed.Errors)
    {
        await Console.Error.WriteLineAsync($"clustersql: {error.Message}");
    }

    return 64;
}

try
{
    // Without System.CommandLine's own handler, which would print a stack trace and exit 1 (a degraded cluster's code):
    // a mistake in the options or the configuration file exits 64 (EX_USAGE) with its message alone.
    return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (ArgumentException ex)
{
    await Console.Error.WriteLineAsync($"clustersql: {ex.Message}");
    return 64;
}
catch (Exception ex)
{
    // Anything else is the tool's failure, not the cluster's verdict: 70 (EX_SOFTWARE), with a one-line message that
    // names the exception but carries no connection string or password, never a stack trace.
    var message = CliErrors.Sanitize(ex, parsed.GetValue(connectionString), Environment.GetEnvironmentVariable("CLUSTERSQL_CONNECTION_STRING"));
    if (parsed.CommandResult.Command.Options.Contains(json) && parsed.GetValue(json))
    {
        Console.WriteLine(CliJson.Serialize(new ErrorJson(CliJson.Version, "error", message, CliErrors.InternalError)));
    }

    await Console.Error.WriteLineAsync($"clustersql: {message}");
    return CliErrors.InternalError;
}

static (TimeSpan Duration, int Workers, TimeSpan Interval) Validate(int seconds, int workers, int intervalMs)
{
    if (seconds is < 1 or > 3600)
    {
        throw new ArgumentException($"--duration and --max-duration must be 1 to 3600 seconds; got {seconds}.");
    }

    if (workers is < 1 or > 256)
    {
        throw new ArgumentException($"--workers must be 1 to 256; got {workers}.");
    }

    if (intervalMs is < 100 or > 60_000)
    {
        throw new ArgumentException($"--interval-ms must be 100 to 60000; got {intervalMs}.");
    }

    return (TimeSpan.FromSeconds(seconds), workers, TimeSpan.FromMilliseconds(intervalMs));
}

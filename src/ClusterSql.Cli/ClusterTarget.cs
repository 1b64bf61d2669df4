using System;
using System.IO;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using System.Data.Common;
using ClusterSql.MySql;
using ClusterSql.Npgsql;
using Microsoft.Extensions.Configuration;
using MySqlConnector;
using Npgsql;

namespace ClusterSql.Cli;

/// <summary>Which ADO.NET provider a cluster's nodes are: MySqlConnector (MariaDB, MySQL, Galera) or Npgsql (PostgreSQL).</summary>
internal enum ClusterProvider
{
    MySql,
    Postgres,
}

/// <summary>Which cluster a command works on: the local one (generated), a multi-host connection string, or a configuration file.</summary>
internal static class ClusterTarget
{
    /// <summary>The section a service's <c>AddClusterSql(configuration.GetSection("ClusterSql"), ...)</c> usually binds.</summary>
    public const string DefaultSection = "ClusterSql";

    /// <summary>The values <c>--provider</c> accepts.</summary>
    public static readonly string[] ProviderNames = ["mysql", "postgres"];

    /// <summary>The provider a <c>--provider</c> value names (System.CommandLine has already refused any other value).</summary>
    public static ClusterProvider ParseProvider(string? name) => name switch
    {
        null or "mysql" => ClusterProvider.MySql,
        "postgres" => ClusterProvider.Postgres,
        _ => throw new ArgumentException($"--provider must be one of {string.Join(", ", ProviderNames)}."),
    };

    /// <param name="connectionString">A connection string of <paramref name="provider"/>, or null.</param>
    /// <param name="configFile">A JSON file, or null.</param>
    /// <param name="galera">Whether to run the provider's health probe (Galera's for MySQL, PostgreSQL's for PostgreSQL).</param>
    /// <param name="configure">Changes the options.</param>
    /// <param name="section">The section of <paramref name="configFile"/> to read, or null for the usual one.</param>
    /// <param name="discover">With Galera: the nodes are seeds, and the other members are learned from the cluster.</param>
    /// <param name="provider">The nodes' provider.</param>
    public static ClusterDataSource Open(string? connectionString, string? configFile, bool galera, Action<ClusterOptions>? configure = null, string? section = null, bool discover = false, ClusterProvider provider = ClusterProvider.MySql)
    {
        if (discover && provider == ClusterProvider.Postgres)
        {
            throw new ArgumentException("--discover reads the Galera members: it cannot go with --provider postgres.");
        }

        if (discover && !galera)
        {
            throw new ArgumentException("--discover reads the Galera members: it cannot go with --no-probe (--no-galera).");
        }

        if (connectionString is not null && configFile is not null)
        {
            throw new ArgumentException("Give either --connection-string or --config, not both.");
        }

        if (section is not null && configFile is null)
        {
            throw new ArgumentException("--section names a section of the --config file: give --config too.");
        }

        connectionString ??= Environment.GetEnvironmentVariable("CLUSTERSQL_CONNECTION_STRING");
        if (provider == ClusterProvider.Postgres)
        {
            return OpenPostgres(connectionString, configFile, section, galera, configure);
        }

        if (configFile is not null)
        {
            return FromFile(configFile, section, galera, configure, discover);
        }

        if (!string.IsNullOrWhiteSpace(connectionString))
        {
            return MySqlCluster.CreateDataSource(connectionString, galera, configure, discovery: discover ? new GaleraDiscoveryOptions() : null);
        }

        return LocalCluster.Create(LocalCluster.Configuration, builder =>
        {
            if (discover)
            {
                builder.UseGaleraDiscovery();
            }
            else if (galera)
            {
                builder.UseGaleraHealthProbe();
            }

            configure?.Invoke(builder.Options);
        }).DataSource;
    }

    /// <summary>
    /// Reads the cluster from a JSON configuration file, the section that <c>AddClusterSql</c> binds (ClusterSql.Extensions'
    /// own reading and checks, so one appsettings.json serves the service and this tool): <paramref name="section"/>, or
    /// "ClusterSql" when the file has it, or else the whole file (<c>{ "Nodes": { "name": "connection string" } }</c>).
    /// </summary>
    public static ClusterDataSourceBuilder ReadFile(string path, string? section, ClusterProvider provider = ClusterProvider.MySql) =>
        ReadFile(path, section, provider, out _);

    private static ClusterDataSourceBuilder ReadFile(string path, string? section, ClusterProvider provider, out IConfiguration target)
    {
        if (!File.Exists(path))
        {
            throw new ArgumentException($"--config: the file '{path}' does not exist.");
        }

        IConfigurationRoot root;
        try
        {
            root = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(path), optional: false, reloadOnChange: false).Build();
        }
        catch (Exception ex) when (ex is FormatException or InvalidDataException or JsonException or IOException or UnauthorizedAccessException)
        {
            // The configuration reader wraps the parser's JsonException (InvalidDataException > FormatException >
            // JsonException): its position is found anywhere in the chain. The parser's message quotes the offending
            // line, which may hold a password: only the position travels.
            JsonException? json = null;
            Exception? io = null;
            for (var current = ex; current is not null; current = current.InnerException)
            {
                json ??= current as JsonException;
                io ??= current is IOException or UnauthorizedAccessException ? current : null;
            }

            if (json is null && io is not null)
            {
                throw new ArgumentException($"--config: '{path}' could not be read: {io.Message}");
            }

            var line = json?.LineNumber is { } number ? $" (line {number + 1})" : string.Empty;
            throw new ArgumentException($"--config: '{path}' is not valid JSON{line}.");
        }

        if (section is not null)
        {
            var named = root.GetSection(section);
            target = named.Exists() ? named : throw new ArgumentException($"--config: '{path}' has no section '{section}'.");
        }
        else
        {
            var usual = root.GetSection(DefaultSection);
            target = usual.Exists() ? usual : root;
        }

        if (target["connectTimeoutMs"] is not null)
        {
            // The tool's own format before it read AddClusterSql's: say so rather than ignore the setting.
            throw new ArgumentException($"--config: 'connectTimeoutMs' is not read any more; write \"ConnectTimeout\": \"00:00:02\" (the format of AddClusterSql).");
        }

        try
        {
            // Npgsql's factory makes the same NpgsqlDataSource as AddNpgsqlNode (NpgsqlDataSource.Create); the pool
            // clearing AddNpgsqlNode adds matters only to a long-lived process, not to a check or a bounded watch.
            return ClusterSqlServiceCollectionExtensions.CreateBuilder(target, provider == ClusterProvider.Postgres ? NpgsqlFactory.Instance : MySqlConnectorFactory.Instance);
        }
        catch (InvalidOperationException ex)
        {
            // Its messages name settings and nodes, never a connection string.
            throw new ArgumentException($"--config '{path}': {ex.Message}");
        }
    }

    private static ClusterDataSource FromFile(string path, string? section, bool galera, Action<ClusterOptions>? configure, bool discover)
    {
        var builder = ReadFile(path, section);
        if (discover)
        {
            builder.UseGaleraDiscovery();
        }
        else if (galera)
        {
            builder.UseGaleraHealthProbe();
        }

        configure?.Invoke(builder.Options);
        return builder.Build();
    }

    private static ClusterDataSource OpenPostgres(string? connectionString, string? configFile, string? section, bool probe, Action<ClusterOptions>? configure)
    {
        if (configFile is not null)
        {
            var builder = ReadFile(configFile, section, ClusterProvider.Postgres, out var target);
            if (probe)
            {
                builder.UsePostgresHealthProbe();

                // The probe's lag is bytes of WAL: the default of 100 (Galera's write sets) would call every standby with
                // a write in flight lagging. NpgsqlCluster.CreateDataSource's 1 MiB unless the file sets its own.
                if (target["MaxReaderLag"] is null)
                {
                    builder.Options.MaxReaderLag = NpgsqlCluster.DefaultMaxReaderLagBytes;
                }
            }

            configure?.Invoke(builder.Options);
            return builder.Build();
        }

        if (string.IsNullOrWhiteSpace(connectionString))
        {
            // The generated local cluster is the Galera one: PostgreSQL nodes must be named.
            throw new ArgumentException("--provider postgres needs --connection-string (Host=a:5432,b:5432,...), $CLUSTERSQL_CONNECTION_STRING or --config.");
        }

        return NpgsqlCluster.CreateDataSource(connectionString, healthProbe: probe, configure);
    }
}

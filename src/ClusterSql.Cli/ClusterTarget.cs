using System;
using System.IO;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ClusterSql.MySql;
using Microsoft.Extensions.Configuration;
using MySqlConnector;

namespace ClusterSql.Cli;

/// <summary>Which cluster a command works on: the local one (generated), a multi-host connection string, or a configuration file.</summary>
internal static class ClusterTarget
{
    /// <summary>The section a service's <c>AddClusterSql(configuration.GetSection("ClusterSql"), ...)</c> usually binds.</summary>
    public const string DefaultSection = "ClusterSql";

    /// <param name="connectionString">A MySqlConnector connection string, or null.</param>
    /// <param name="configFile">A JSON file, or null.</param>
    /// <param name="galera">Whether to check Galera state.</param>
    /// <param name="configure">Changes the options.</param>
    /// <param name="section">The section of <paramref name="configFile"/> to read, or null for the usual one.</param>
    /// <param name="discover">With Galera: the nodes are seeds, and the other members are learned from the cluster.</param>
    public static ClusterDataSource Open(string? connectionString, string? configFile, bool galera, Action<ClusterOptions>? configure = null, string? section = null, bool discover = false)
    {
        if (discover && !galera)
        {
            throw new ArgumentException("--discover reads the Galera members: it cannot go with --no-galera.");
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
    public static ClusterDataSourceBuilder ReadFile(string path, string? section)
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

        IConfiguration target;
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
            return ClusterSqlServiceCollectionExtensions.CreateBuilder(target, MySqlConnectorFactory.Instance);
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
}

using System;
using System.Collections.Generic;
using System.IO;
using System.Text.Json;
using ClusterSql.MySql;

namespace ClusterSql.Cli;

/// <summary>Which cluster a command works on: the local one (generated), a multi-host connection string, or a JSON file.</summary>
internal static class ClusterTarget
{
    /// <param name="connectionString">A MySqlConnector connection string, or null.</param>
    /// <param name="configFile">A JSON file, or null.</param>
    /// <param name="galera">Whether to check Galera state.</param>
    /// <param name="configure">Changes the options.</param>
    /// <param name="discover">With Galera: the nodes are seeds, and the other members are learned from the cluster.</param>
    public static ClusterDataSource Open(string? connectionString, string? configFile, bool galera, Action<ClusterOptions>? configure = null, bool discover = false)
    {
        if (discover && !galera)
        {
            throw new ArgumentException("--discover reads the Galera members: it cannot go with --no-galera.");
        }

        if (connectionString is not null && configFile is not null)
        {
            throw new ArgumentException("Give either --connection-string or --config, not both.");
        }

        connectionString ??= Environment.GetEnvironmentVariable("CLUSTERSQL_CONNECTION_STRING");
        if (configFile is not null)
        {
            return FromFile(configFile, galera, configure, discover);
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
    /// Reads <c>{ "nodes": { "name": "connection string", ... }, "policy": "LatencyAware", "connectTimeoutMs": 2000 }</c>.
    /// JsonDocument keeps it reflection-free for NativeAOT.
    /// </summary>
    private static ClusterDataSource FromFile(string path, bool galera, Action<ClusterOptions>? configure, bool discover)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var root = document.RootElement;
        if (!root.TryGetProperty("nodes", out var nodes) || nodes.ValueKind != JsonValueKind.Object)
        {
            throw new ArgumentException($"{path}: expected an object \"nodes\" mapping node names to connection strings.");
        }

        var builder = new ClusterDataSourceBuilder();
        var names = new List<string>();
        foreach (var node in nodes.EnumerateObject())
        {
            if (node.Value.ValueKind != JsonValueKind.String)
            {
                throw new ArgumentException($"{path}: node \"{node.Name}\" needs a connection string.");
            }

            builder.AddMySqlNode(node.Name, node.Value.GetString()!);
            names.Add(node.Name);
        }

        if (root.TryGetProperty("policy", out var policy))
        {
            builder.Options.Policy = Enum.Parse<AcquirePolicy>(policy.GetString()!, ignoreCase: true);
        }

        if (root.TryGetProperty("connectTimeoutMs", out var timeout))
        {
            builder.Options.ConnectTimeout = TimeSpan.FromMilliseconds(timeout.GetInt32());
        }

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

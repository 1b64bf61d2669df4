using System;
using System.Collections.Generic;
using System.IO;
using System.Text.Json;
using ClusterSql.MySql;

namespace ClusterSql.Cli;

/// <summary>Which cluster a command works on: the local one (generated), a multi-host connection string, or a JSON file.</summary>
internal static class ClusterTarget
{
    public static ClusterDataSource Open(string? connectionString, string? configFile, bool galera, Action<ClusterOptions>? configure = null)
    {
        if (connectionString is not null && configFile is not null)
        {
            throw new ArgumentException("Give either --connection-string or --config, not both.");
        }

        connectionString ??= Environment.GetEnvironmentVariable("CLUSTERSQL_CONNECTION_STRING");
        if (configFile is not null)
        {
            return FromFile(configFile, galera, configure);
        }

        if (!string.IsNullOrWhiteSpace(connectionString))
        {
            return MySqlCluster.CreateDataSource(connectionString, galera, configure);
        }

        return LocalCluster.Create(LocalCluster.Configuration, builder =>
        {
            if (galera)
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
    private static ClusterDataSource FromFile(string path, bool galera, Action<ClusterOptions>? configure)
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

        if (galera)
        {
            builder.UseGaleraHealthProbe();
        }

        configure?.Invoke(builder.Options);
        return builder.Build();
    }
}

using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Globalization;
using ClusterSql;
using ClusterSql.Extensions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers ClusterSql clusters with dependency injection.</summary>
public static class ClusterSqlServiceCollectionExtensions
{
    /// <summary>
    /// Registers a <see cref="ClusterDataSource"/> singleton, also as <see cref="DbDataSource"/>, and its roles as keyed
    /// <see cref="ClusterRoleDataSource"/> and <see cref="DbDataSource"/> under <see cref="ClusterSqlServiceKeys.Writer"/> and
    /// <see cref="ClusterSqlServiceKeys.Readers"/>. The container disposes the cluster, and with it every node's data
    /// source. An <see cref="ILoggerFactory"/> and a <see cref="TimeProvider"/> registered in the container are used
    /// unless <paramref name="configure"/> sets others.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Adds the nodes and sets the options.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddClusterSql(this IServiceCollection services, Action<IServiceProvider, ClusterDataSourceBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddSingleton(sp => Build(sp, configure));
        services.AddSingleton<DbDataSource>(sp => sp.GetRequiredService<ClusterDataSource>());
        AddRoles(services, clusterKey: null);
        return services;
    }

    /// <summary>
    /// Registers a keyed <see cref="ClusterDataSource"/> singleton, also as a keyed <see cref="DbDataSource"/>, for several
    /// clusters in one container; its roles are keyed <see cref="ClusterRoleDataSource"/> and <see cref="DbDataSource"/>
    /// under <c>"&lt;serviceKey&gt;:writer"</c> and <c>"&lt;serviceKey&gt;:readers"</c> (<see cref="ClusterSqlServiceKeys.For"/>).
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="serviceKey">The key.</param>
    /// <param name="configure">Adds the nodes and sets the options.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddKeyedClusterSql(this IServiceCollection services, object? serviceKey, Action<IServiceProvider, ClusterDataSourceBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddKeyedSingleton(serviceKey, (sp, _) => Build(sp, configure));
        services.AddKeyedSingleton<DbDataSource>(serviceKey, (sp, key) => sp.GetRequiredKeyedService<ClusterDataSource>(key));
        AddRoles(services, serviceKey);
        return services;
    }

    /// <summary>
    /// Registers a cluster described by configuration (see <see cref="ClusterSqlSettings"/>), each node's data source made
    /// by <paramref name="providerFactory"/> (for instance <c>MySqlConnectorFactory.Instance</c>). The section is read and
    /// validated now, connection strings included, so that a mistake fails at startup with a message naming the
    /// setting, never quoting a connection string.
    /// <para>
    /// <c>Nodes</c> is either an array, which keeps the declared order
    /// (<c>"Nodes": [ { "Name": "primary", "ConnectionString": "..." }, { "Name": "dr", "ConnectionString": "...", "Priority": 1 } ]</c>),
    /// or an object keyed by node name whose values are connection strings or objects
    /// (<c>"Nodes": { "primary": "...", "dr": { "ConnectionString": "...", "Priority": 1 } }</c>). Configuration sorts an
    /// object's keys, so the object form's nodes come in name order: give them a <c>Priority</c> (lower first) when
    /// order matters, as it does for <see cref="AcquirePolicy.FailOver"/> and the writer role. A node may also set <c>ConnectTimeout</c>.
    /// </para>
    /// <para>The roles are registered as by <see cref="AddClusterSql(IServiceCollection, Action{IServiceProvider, ClusterDataSourceBuilder})"/>.</para>
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configuration">The cluster's section.</param>
    /// <param name="providerFactory">The provider that makes each node's data source.</param>
    /// <param name="configure">Further changes to the builder (a health probe, for instance).</param>
    /// <returns>The services.</returns>
    /// <exception cref="InvalidOperationException">The section describes no valid cluster; the message says what is wrong.</exception>
    public static IServiceCollection AddClusterSql(this IServiceCollection services, IConfiguration configuration, DbProviderFactory providerFactory, Action<IServiceProvider, ClusterDataSourceBuilder>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(providerFactory);
        var (settings, nodes) = Read(configuration, providerFactory);
        return services.AddClusterSql((sp, builder) =>
        {
            Apply(builder, settings, nodes, providerFactory);
            configure?.Invoke(sp, builder);
        });
    }

    /// <summary>
    /// A builder with the cluster a configuration section describes, read and checked exactly as
    /// <see cref="AddClusterSql(IServiceCollection, IConfiguration, DbProviderFactory, Action{IServiceProvider, ClusterDataSourceBuilder}?)"/>
    /// reads it, so that one JSON file serves a service and the <c>clustersql</c> tool alike.
    /// </summary>
    /// <exception cref="InvalidOperationException">The section describes no valid cluster; the message says what is wrong.</exception>
    internal static ClusterDataSourceBuilder CreateBuilder(IConfiguration configuration, DbProviderFactory providerFactory)
    {
        var (settings, nodes) = Read(configuration, providerFactory);
        var builder = new ClusterDataSourceBuilder();
        Apply(builder, settings, nodes, providerFactory);
        return builder;
    }

    private static void Apply(ClusterDataSourceBuilder builder, ClusterSqlSettings settings, List<ConfiguredNode> nodes, DbProviderFactory providerFactory)
    {
        settings.ApplyTo(builder.Options);
        foreach (var node in nodes)
        {
            builder.AddNode(node.Name, CreateDataSource(providerFactory, node), node.Options);
        }
    }

    /// <summary>
    /// Registers a cluster class made by the <c>[ClusterNode]</c> generator as a singleton, its data source as
    /// <see cref="ClusterDataSource"/> and <see cref="DbDataSource"/>, and its roles as keyed <see cref="ClusterRoleDataSource"/>
    /// and <see cref="DbDataSource"/> under <see cref="ClusterSqlServiceKeys.Writer"/> and <see cref="ClusterSqlServiceKeys.Readers"/>;
    /// the container disposes the cluster.
    /// </summary>
    /// <typeparam name="TCluster">The generated cluster class.</typeparam>
    /// <param name="services">The services.</param>
    /// <param name="create">Creates the cluster, for instance <c>sp =&gt; Galera.Create(key =&gt; config[key])</c>.</param>
    /// <param name="dataSource">Its data source, <c>cluster =&gt; cluster.DataSource</c>.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddClusterSql<TCluster>(this IServiceCollection services, Func<IServiceProvider, TCluster> create, Func<TCluster, ClusterDataSource> dataSource)
        where TCluster : class, IAsyncDisposable
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(create);
        ArgumentNullException.ThrowIfNull(dataSource);
        services.AddSingleton(create);
        services.AddSingleton(sp => dataSource(sp.GetRequiredService<TCluster>()));
        services.AddSingleton<DbDataSource>(sp => sp.GetRequiredService<ClusterDataSource>());
        AddRoles(services, clusterKey: null);
        return services;
    }

    /// <summary>
    /// The roles belong to their cluster (disposing one does nothing), so the container may hold them as singletons of
    /// their own: code that needs only the writer or the readers asks for a data source by key and never sees the cluster.
    /// </summary>
    private static void AddRoles(IServiceCollection services, object? clusterKey)
    {
        foreach (var role in (ReadOnlySpan<ClusterRole>)[ClusterRole.Writer, ClusterRole.Reader])
        {
            var key = ClusterSqlServiceKeys.For(clusterKey, role);
            services.AddKeyedSingleton(key, (sp, _) =>
            {
                var cluster = clusterKey is null ? sp.GetRequiredService<ClusterDataSource>() : sp.GetRequiredKeyedService<ClusterDataSource>(clusterKey);
                return role == ClusterRole.Writer ? cluster.Writer : cluster.Readers;
            });
            services.AddKeyedSingleton<DbDataSource>(key, (sp, roleKey) => sp.GetRequiredKeyedService<ClusterRoleDataSource>(roleKey));
        }
    }

    private static ClusterDataSource Build(IServiceProvider services, Action<IServiceProvider, ClusterDataSourceBuilder> configure)
    {
        var builder = new ClusterDataSourceBuilder();
        if (services.GetService<ILoggerFactory>() is { } loggerFactory)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        if (services.GetService<TimeProvider>() is { } timeProvider)
        {
            builder.UseTimeProvider(timeProvider);
        }

        configure(services, builder);
        return builder.Build();
    }

    private static DbDataSource CreateDataSource(DbProviderFactory providerFactory, ConfiguredNode node)
    {
        try
        {
            return providerFactory.CreateDataSource(node.ConnectionString);
        }
        catch (Exception ex) when (ConnectionStringErrors.IsParseFailure(ex))
        {
            // Read checked the string already; this is for a provider whose data source is stricter than its builder.
            throw new InvalidOperationException(Describe(providerFactory, node.Name, node.ConnectionString));
        }
    }

    private static (ClusterSqlSettings Settings, List<ConfiguredNode> Nodes) Read(IConfiguration configuration, DbProviderFactory providerFactory)
    {
        var path = configuration is IConfigurationSection section ? section.Path : "(root)";
        ClusterSqlSettings settings;
        try
        {
            settings = configuration.Get<ClusterSqlSettings>() ?? new ClusterSqlSettings();
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidOperationException($"Configuration '{path}' does not describe a cluster: {ex.Message}", ex);
        }

        // Everything is checked now by the same rules as Build, so that a mistake fails at startup.
        var options = new ClusterOptions();
        List<ConfiguredNode> nodes;
        try
        {
            nodes = ReadNodes(configuration.GetSection("Nodes"), path);
            var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (var node in nodes)
            {
                ClusterDataSourceBuilder.ValidateName(node.Name);
                if (!names.Add(node.Name))
                {
                    throw new ArgumentException($"Node '{node.Name}' is declared twice; node names must be unique (case-insensitive).");
                }

                if (string.IsNullOrWhiteSpace(node.ConnectionString))
                {
                    throw new ArgumentException($"Node '{node.Name}' has no connection string.");
                }

                CheckConnectionString(providerFactory, node);
                if (node.Options?.ConnectTimeout is { } timeout)
                {
                    ClusterOptions.RequirePositive(timeout, $"ConnectTimeout of node '{node.Name}'");
                }
            }

            settings.ApplyTo(options);
            options.Validate();
        }
        catch (ArgumentException ex)
        {
            // Only the message travels: the exceptions above say nothing a connection string could have put there,
            // and an inner exception would be one more place to look for a leak.
            throw new InvalidOperationException($"Configuration '{path}': {ex.Message}");
        }

        if (nodes.Count == 0)
        {
            throw new InvalidOperationException(
                $"Configuration '{path}' has no nodes: add '{path}:Nodes:<name>' = <connection string>, or an array '{path}:Nodes' of {{ \"Name\", \"ConnectionString\" }}.");
        }

        return (settings, nodes);
    }

    /// <summary>
    /// Reads both forms of <c>Nodes</c>. Configuration providers hand children over sorted by key (array indices
    /// numerically), so an array keeps its declared order and an object comes in name order.
    /// </summary>
    private static List<ConfiguredNode> ReadNodes(IConfigurationSection section, string path)
    {
        var nodes = new List<ConfiguredNode>();
        foreach (var child in section.GetChildren())
        {
            if (child.Value is not null)
            {
                nodes.Add(new ConfiguredNode(child.Key, child.Value, null));
                continue;
            }

            // An array element names its node; an object's member is named by its key unless it says otherwise.
            var name = child["Name"] ?? child.Key;
            var settingPath = $"{path}:Nodes:{child.Key}";
            ClusterNodeOptions? options = null;
            if (child["Priority"] is { } priorityText)
            {
                options = new ClusterNodeOptions
                {
                    Priority = int.TryParse(priorityText, NumberStyles.Integer, CultureInfo.InvariantCulture, out var priority)
                        ? priority
                        : throw new ArgumentException($"'{settingPath}:Priority' is not an integer."),
                };
            }

            if (child["ConnectTimeout"] is { } timeoutText)
            {
                options ??= new ClusterNodeOptions();
                options.ConnectTimeout = TimeSpan.TryParse(timeoutText, CultureInfo.InvariantCulture, out var timeout)
                    ? timeout
                    : throw new ArgumentException($"'{settingPath}:ConnectTimeout' is not a time span (hh:mm:ss).");
            }

            nodes.Add(new ConfiguredNode(name, child["ConnectionString"] ?? "", options));
        }

        return nodes;
    }

    private static void CheckConnectionString(DbProviderFactory providerFactory, ConfiguredNode node)
    {
        var builder = providerFactory.CreateConnectionStringBuilder();
        if (builder is null)
        {
            return;
        }

        try
        {
            builder.ConnectionString = node.ConnectionString;
        }
        catch (Exception ex) when (ConnectionStringErrors.IsParseFailure(ex))
        {
            throw new ArgumentException(Describe(providerFactory, node.Name, node.ConnectionString));
        }
    }

    private static string Describe(DbProviderFactory providerFactory, string node, string connectionString)
    {
        var provider = providerFactory.GetType().Name;
        provider = provider.EndsWith("Factory", StringComparison.Ordinal) && provider.Length > "Factory".Length ? provider[..^"Factory".Length] : provider;
        return ConnectionStringErrors.Describe(node, provider, connectionString, providerFactory.CreateConnectionStringBuilder);
    }

    private sealed record ConfiguredNode(string Name, string ConnectionString, ClusterNodeOptions? Options);
}

using System;
using System.Data.Common;
using ClusterSql;
using ClusterSql.Extensions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers ClusterSql clusters with dependency injection.</summary>
public static class ClusterSqlServiceCollectionExtensions
{
    /// <summary>
    /// Registers a <see cref="ClusterDataSource"/> singleton, also as <see cref="DbDataSource"/>. The container
    /// disposes it, and with it every node's data source. An <see cref="ILoggerFactory"/> and a <see cref="TimeProvider"/>
    /// registered in the container are used unless <paramref name="configure"/> sets others.
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
        return services;
    }

    /// <summary>Registers a keyed <see cref="ClusterDataSource"/> singleton, also as a keyed <see cref="DbDataSource"/>, for several clusters in one container.</summary>
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
        return services;
    }

    /// <summary>
    /// Registers a cluster described by configuration (see <see cref="ClusterSqlSettings"/>), each node's data source made
    /// by <paramref name="providerFactory"/> (for instance <c>MySqlConnectorFactory.Instance</c>). The section is read and
    /// validated now, so that a mistake fails at startup with a message naming the setting, never a connection string.
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
        var settings = Read(configuration);
        return services.AddClusterSql((sp, builder) =>
        {
            settings.ApplyTo(builder.Options);
            foreach (var (name, connectionString) in settings.Nodes)
            {
                builder.AddNode(name, providerFactory.CreateDataSource(connectionString));
            }

            configure?.Invoke(sp, builder);
        });
    }

    /// <summary>
    /// Registers a cluster class made by the <c>[ClusterNode]</c> generator as a singleton, and its data source as
    /// <see cref="ClusterDataSource"/> and <see cref="DbDataSource"/>; the container disposes the cluster.
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
        return services;
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

    private static ClusterSqlSettings Read(IConfiguration configuration)
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

        if (settings.Nodes.Count == 0)
        {
            throw new InvalidOperationException($"Configuration '{path}' has no nodes: add '{path}:Nodes:<name>' = <connection string>.");
        }

        // Everything is checked now by the same rules as Build, so that a mistake fails at startup.
        var options = new ClusterOptions();
        try
        {
            foreach (var (name, connectionString) in settings.Nodes)
            {
                ClusterDataSourceBuilder.ValidateName(name);
                if (string.IsNullOrWhiteSpace(connectionString))
                {
                    throw new ArgumentException($"Node '{name}' has no connection string.");
                }
            }

            settings.ApplyTo(options);
            options.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new InvalidOperationException($"Configuration '{path}': {ex.Message}", ex);
        }

        return settings;
    }
}

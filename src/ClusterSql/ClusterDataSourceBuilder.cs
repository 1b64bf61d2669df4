using System;
using System.Threading;
using System.Collections.Generic;
using System.Data.Common;
using ClusterSql.Core;
using Microsoft.Extensions.Logging;

namespace ClusterSql;

/// <summary>Builds a <see cref="ClusterDataSource"/> from named nodes, each over any provider's <see cref="DbDataSource"/>.</summary>
/// <example>
/// <code>
/// await using var cluster = new ClusterDataSourceBuilder()
///     .AddNode("galera1", new MySqlDataSource("Server=127.0.0.21;User ID=app;Password=..."))
///     .AddNode("galera2", new MySqlDataSource("Server=127.0.0.22;User ID=app;Password=..."))
///     .Build();
/// await using var connection = await cluster.OpenConnectionAsync();
/// </code>
/// </example>
public sealed class ClusterDataSourceBuilder
{
    private const int MaxNameLength = 64;

    private readonly List<(string Name, DbDataSource DataSource, ClusterNodeOptions? Options)> _nodes = [];
    private TimeProvider _timeProvider = TimeProvider.System;
    private IClusterNodeHealthProbe? _healthProbe;
    private IClusterConsistency? _consistency;
    private ILoggerFactory? _loggerFactory;

    /// <summary>The cluster's settings; they are copied and validated by <see cref="Build"/>.</summary>
    public ClusterOptions Options { get; } = new();

    internal Random Random { get; set; } = Random.Shared;

    /// <summary>Adds a node. Once the data source is built it owns <paramref name="dataSource"/> and disposes it.</summary>
    /// <param name="name">A unique name: letters, digits, '_', '-' or '.', at most 64 characters. It stands for the node in errors and telemetry.</param>
    /// <param name="dataSource">The provider's data source for the node.</param>
    /// <param name="options">The node's settings, or <see langword="null"/> for the cluster's.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> or <paramref name="dataSource"/> is null.</exception>
    /// <exception cref="ArgumentException">The name is invalid or already used.</exception>
    public ClusterDataSourceBuilder AddNode(string name, DbDataSource dataSource, ClusterNodeOptions? options = null)
    {
        ValidateNode(name, dataSource, options);
        foreach (var node in _nodes)
        {
            if (string.Equals(node.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"A node named '{node.Name}' was already added; node names must be unique (case-insensitive).", nameof(name));
            }
        }

        _nodes.Add((name, dataSource, options?.Copy()));
        return this;
    }

    /// <summary>Sets the acquire policy.</summary>
    /// <param name="policy">The policy.</param>
    /// <returns>This builder.</returns>
    public ClusterDataSourceBuilder UsePolicy(AcquirePolicy policy)
    {
        Options.Policy = policy;
        return this;
    }

    /// <summary>Sets the clock and timers used for latency, hedging, ejection and health checks (a fake one in tests).</summary>
    /// <param name="timeProvider">The time provider.</param>
    /// <returns>This builder.</returns>
    public ClusterDataSourceBuilder UseTimeProvider(TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        _timeProvider = timeProvider;
        return this;
    }

    /// <summary>
    /// Runs <paramref name="probe"/> for every node every <see cref="ClusterOptions.HealthCheckInterval"/>; a node whose
    /// check fails is never handed out until a later check passes.
    /// </summary>
    /// <param name="probe">The health check.</param>
    /// <returns>This builder.</returns>
    public ClusterDataSourceBuilder UseHealthProbe(IClusterNodeHealthProbe probe)
    {
        ArgumentNullException.ThrowIfNull(probe);
        _healthProbe = probe;
        return this;
    }

    /// <summary>
    /// Lets reads see writes: <see cref="ClusterDataSource.RecordWriteAsync"/> (called for you by the retry API of the
    /// provider package) remembers the position of a committed write, and a read acquired with
    /// <see cref="ClusterOptions.CausalReads"/> on, or through <see cref="ClusterRoleDataSource.OpenConnectionAsync(string, CancellationToken)"/>,
    /// waits on its node until that position is applied. ClusterSql.MySql's <c>UseGaleraConsistency()</c> sets Galera's (GTIDs).
    /// </summary>
    /// <param name="consistency">The provider's positions and wait.</param>
    /// <returns>This builder.</returns>
    public ClusterDataSourceBuilder UseConsistency(IClusterConsistency consistency)
    {
        ArgumentNullException.ThrowIfNull(consistency);
        _consistency = consistency;
        return this;
    }

    /// <summary>Logs node ejections and recoveries, health-check changes and acquires that failed on every node (category "ClusterSql").</summary>
    /// <param name="loggerFactory">The logger factory.</param>
    /// <returns>This builder.</returns>
    public ClusterDataSourceBuilder UseLoggerFactory(ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _loggerFactory = loggerFactory;
        return this;
    }

    /// <summary>Builds the data source.</summary>
    /// <returns>The data source; dispose it to dispose every node's data source.</returns>
    /// <exception cref="InvalidOperationException">No node was added.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A setting in <see cref="Options"/> is out of range; the message names it.</exception>
    public ClusterDataSource Build()
    {
        if (_nodes.Count == 0)
        {
            throw new InvalidOperationException("A cluster needs at least one node: call AddNode before Build.");
        }

        var options = Options.Clone();
        options.Validate();
        foreach (var node in _nodes)
        {
            if (node.Options?.ConnectTimeout is { } timeout)
            {
                ClusterOptions.RequirePositive(timeout, $"{nameof(ClusterNodeOptions.ConnectTimeout)} of node '{node.Name}'");
            }
        }

        var context = new ClusterContext(options, _timeProvider, Random, _loggerFactory?.CreateLogger("ClusterSql"));
        if (options.CausalReads && _consistency is null)
        {
            throw new InvalidOperationException(
                $"{nameof(ClusterOptions.CausalReads)} needs the provider's positions: call UseConsistency (ClusterSql.MySql: UseGaleraConsistency) or turn it off.");
        }

        return new ClusterDataSource(context, _nodes.ToArray(), _healthProbe, _consistency);
    }

    internal static void ValidateNode(string name, DbDataSource dataSource, ClusterNodeOptions? options)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ValidateName(name);
        if (options?.ConnectTimeout is { } timeout)
        {
            ClusterOptions.RequirePositive(timeout, nameof(options.ConnectTimeout));
        }

        if (options?.MaxConnections is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxConnections, $"{nameof(ClusterNodeOptions.MaxConnections)} of node '{name}' must be at least 1, or null when unknown.");
        }
    }

    internal static void ValidateName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0 || name.Length > MaxNameLength)
        {
            throw new ArgumentException($"A node name must have 1 to {MaxNameLength} characters; got {name.Length}.", nameof(name));
        }

        foreach (var c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('_' or '-' or '.'))
            {
                throw new ArgumentException($"The node name '{name}' has the character '{c}'; use letters, digits, '_', '-' or '.'.", nameof(name));
            }
        }
    }
}

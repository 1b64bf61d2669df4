using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.Extensions.Time.Testing;

namespace ClusterSql.Tests.Fakes;

/// <summary>A cluster of fake nodes on a fake clock, built the way users build one.</summary>
internal sealed class FakeCluster : IAsyncDisposable
{
    private FakeCluster(FakeTimeProvider time, FakeNode[] nodes, ClusterDataSource dataSource)
    {
        Time = time;
        Nodes = nodes;
        DataSource = dataSource;
    }

    public FakeTimeProvider Time { get; }

    public FakeNode[] Nodes { get; }

    public ClusterDataSource DataSource { get; }

    public FakeNode this[string name] => Nodes.Single(n => n.Name == name);

    public static FakeCluster Create(int nodeCount, Action<ClusterOptions>? configure = null, int seed = 1, IClusterNodeHealthProbe? probe = null, int? maxConnections = null)
    {
        var time = new FakeTimeProvider();
        var nodes = Enumerable.Range(1, nodeCount).Select(i => new FakeNode($"node{i}", time, OpenScript.Succeed)).ToArray();
        var builder = new ClusterDataSourceBuilder().UseTimeProvider(time);
        builder.Random = new Random(seed);
        foreach (var node in nodes)
        {
            builder.AddNode(node.Name, node, maxConnections is null ? null : new ClusterNodeOptions { MaxConnections = maxConnections });
        }

        configure?.Invoke(builder.Options);
        if (probe is not null)
        {
            builder.UseHealthProbe(probe);
        }

        return new FakeCluster(time, nodes, builder.Build());
    }

    public ClusterNode Node(string name) => DataSource.GetNode(name)!;

    public int TotalOpens => Nodes.Sum(n => n.OpensStarted);

    public IEnumerable<int> Alive => Nodes.Select(n => n.Alive);

    /// <summary>Moves the fake clock on in steps until the task completes, giving continuations time to run between steps.</summary>
    public async Task<T> RunUntilDone<T>(Task<T> task, TimeSpan step, int maxSteps = 10_000)
    {
        for (var i = 0; i < maxSteps && !task.IsCompleted; i++)
        {
            if (!await Settle(task))
            {
                Time.Advance(step);
            }
        }

        return await task;
    }

    /// <summary>Waits (in real time, briefly) for asynchronous continuations to run; true when the task completed.</summary>
    public static async Task<bool> Settle(Task task)
    {
        for (var i = 0; i < 20 && !task.IsCompleted; i++)
        {
            await Task.Delay(1);
        }

        return task.IsCompleted;
    }

    /// <summary>
    /// Waits in real time, without moving the fake clock, until <paramref name="condition"/> holds: what happens here
    /// happens at the same fake instant.
    /// </summary>
    public static async Task WaitFor(Func<bool> condition, string what)
    {
        for (var i = 0; i < 5_000 && !condition(); i++)
        {
            await Task.Delay(1);
        }

        if (!condition())
        {
            throw new TimeoutException($"Gave up waiting for: {what}");
        }
    }

    public ValueTask DisposeAsync() => DataSource.DisposeAsync();
}

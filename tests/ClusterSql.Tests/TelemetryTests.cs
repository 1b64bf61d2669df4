using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Linq;
using System.Threading.Tasks;
using ClusterSql.Tests.Fakes;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace ClusterSql.Tests;

[TestFixture]
[NonParallelizable]
public sealed class TelemetryTests
{
    private static readonly TimeSpan Ms = TimeSpan.FromMilliseconds(1);

    [Test]
    public async Task Metrics_FailoverAndHedge_RecordEveryInstrumentWithNodeTags()
    {
        using var metrics = new MetricsCapture();
        await using var cluster = FakeCluster.Create(3, o =>
        {
            o.Name = metrics.Cluster;
            o.Policy = AcquirePolicy.FailOver;
            o.MinHedgeDelay = o.MaxHedgeDelay = 10 * Ms;
        });
        cluster["node1"].Script = OpenScript.Fail;
        cluster["node2"].Script = OpenScript.SucceedAfter(100 * Ms);

        var connection = await cluster.RunUntilDone(cluster.DataSource.OpenConnectionAsync().AsTask(), Ms);
        Assert.That(((FakeConnection)connection).Node.Name, Is.EqualTo("node3"));
        cluster.Time.Advance(100 * Ms);
        await FakeCluster.WaitFor(() => cluster["node2"].Disposed == 1, "the loser disposed");
        await connection.DisposeAsync();

        Assert.Multiple(() =>
        {
            Assert.That(metrics.Values("db.client.connection.create_time", "node1", outcome: "failure"), Has.Count.EqualTo(1));
            Assert.That(metrics.Values("db.client.connection.create_time", "node2", outcome: "success").Single(), Is.GreaterThanOrEqualTo(0.1).And.LessThan(0.2), "the loser opened after its 100 ms");
            Assert.That(metrics.Values("db.client.connection.create_time", "node3", outcome: "success"), Has.Count.EqualTo(1));
            Assert.That(metrics.Values("db.client.connection.wait_time", "node3").Single(), Is.EqualTo(0.010).Within(0.002));
            Assert.That(metrics.Values("clustersql.acquire.attempts").Single(), Is.EqualTo(3));
            Assert.That(metrics.Values("clustersql.hedges", "node3").Sum(), Is.EqualTo(1));
            Assert.That(metrics.Values("clustersql.node.wins", "node3").Sum(), Is.EqualTo(1));
            Assert.That(metrics.Values("clustersql.node.losses", "node2").Sum(), Is.EqualTo(1));
            Assert.That(metrics.Values("db.client.connection.pending_requests"), Is.EqualTo(new double[] { 1, -1 }));
        });

        // Two more failures eject node1; then every node failing is an acquire failure.
        cluster["node2"].Script = OpenScript.Succeed;
        for (var i = 0; i < 2; i++)
        {
            await using var again = await cluster.DataSource.OpenConnectionAsync();
        }

        Assert.That(metrics.Values("clustersql.ejections", "node1").Sum(), Is.EqualTo(1));
        metrics.Listener.RecordObservableInstruments();
        Assert.That(metrics.States(), Is.EquivalentTo(new[] { "node1=ejected", "node2=healthy", "node3=healthy" }));

        cluster["node2"].Script = OpenScript.Fail;
        cluster["node3"].Script = OpenScript.Fail;
        Assert.ThrowsAsync<ClusterException>(async () => await cluster.DataSource.OpenConnectionAsync());
        Assert.That(metrics.Values("clustersql.acquire.failures").Sum(), Is.EqualTo(1));
        Assert.That(metrics.Values("db.client.connection.wait_time", node: null, outcome: "failure"), Has.Count.EqualTo(1));
    }

    [Test]
    public async Task Metrics_ConnectTimeout_CountsATimeout()
    {
        using var metrics = new MetricsCapture();
        await using var cluster = FakeCluster.Create(2, o =>
        {
            o.Name = metrics.Cluster;
            o.Policy = AcquirePolicy.FailOver;
            o.ConnectTimeout = TimeSpan.FromSeconds(1);
            o.HedgeBudget = 0;
        });
        cluster["node1"].Script = OpenScript.Hang;
        var connection = await cluster.RunUntilDone(cluster.DataSource.OpenConnectionAsync().AsTask(), TimeSpan.FromMilliseconds(250));
        await connection.DisposeAsync();
        Assert.That(metrics.Values("db.client.connection.timeouts", "node1").Sum(), Is.EqualTo(1));
        Assert.That(metrics.Values("db.client.connection.create_time", "node1", outcome: "timeout"), Has.Count.EqualTo(1));
    }

    [Test]
    public async Task Activity_Acquire_NamesTheWinnerAttemptsAndHedgesAndRecordsErrors()
    {
        var name = "activity-" + Guid.NewGuid().ToString("N");
        var stopped = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "ClusterSql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if ((string?)activity.GetTagItem("db.client.connection.pool.name") == name)
                {
                    stopped.Enqueue(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);

        await using var cluster = FakeCluster.Create(2, o =>
        {
            o.Name = name;
            o.Policy = AcquirePolicy.FailOver;
        });
        cluster["node1"].Script = OpenScript.Fail;
        await using (await cluster.DataSource.OpenConnectionAsync())
        {
        }

        cluster["node2"].Script = OpenScript.Fail;
        Assert.ThrowsAsync<ClusterException>(async () => await cluster.DataSource.OpenConnectionAsync());

        var spans = stopped.ToArray();
        Assert.That(spans, Has.Length.EqualTo(2));
        Assert.That(spans[0].OperationName, Is.EqualTo("ClusterSql acquire"));
        Assert.That(spans[0].GetTagItem("clustersql.node"), Is.EqualTo("node2"));
        Assert.That(spans[0].GetTagItem("clustersql.attempts"), Is.EqualTo(2));
        Assert.That(spans[0].GetTagItem("clustersql.hedges"), Is.EqualTo(0));
        Assert.That(spans[0].Status, Is.EqualTo(ActivityStatusCode.Unset));
        Assert.That(spans[1].Status, Is.EqualTo(ActivityStatusCode.Error));
        Assert.That(spans[1].StatusDescription, Does.StartWith("No cluster node could open a connection"));
        Assert.That(spans[1].Events.Select(e => e.Name), Does.Contain("exception"));
    }

    [Test]
    public async Task Logging_EjectionRecoveryProbeAndTotalFailure_HaveStableEventIds()
    {
        var logs = new CapturingLoggerFactory();
        var probe = new ToggleProbe();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var node1 = new FakeNode("node1", time, OpenScript.Fail);
        var node2 = new FakeNode("node2", time, OpenScript.Succeed);
        var builder = new ClusterDataSourceBuilder().UseTimeProvider(time).UseLoggerFactory(logs).UseHealthProbe(probe).UsePolicy(AcquirePolicy.FailOver)
            .AddNode("node1", node1).AddNode("node2", node2);
        builder.Options.Name = "logged";
        await using var cluster = builder.Build();

        // The first checks run at once; the fake clock moves only once they are done, so none of them times out.
        await FakeCluster.WaitFor(() => probe.Checks >= 2, "first checks");
        for (var i = 0; i < 3; i++)
        {
            await using var connection = await cluster.OpenConnectionAsync();
        }

        node1.Script = OpenScript.Succeed;
        time.Advance(TimeSpan.FromSeconds(1.2));
        await using (await cluster.OpenConnectionAsync())
        {
        }

        probe.Down = "wsrep_cluster_status is non-Primary";
        time.Advance(TimeSpan.FromSeconds(2));
        await FakeCluster.WaitFor(() => logs.Entries.Any(e => e.Id == 3), "probe failure logged");
        probe.Down = null;
        time.Advance(TimeSpan.FromSeconds(2));
        await FakeCluster.WaitFor(() => logs.Entries.Any(e => e.Id == 4), "probe recovery logged");

        node1.Script = node2.Script = OpenScript.Fail;
        probe.Down = null;
        Assert.ThrowsAsync<ClusterException>(async () => await cluster.OpenConnectionAsync());

        var entries = logs.Entries.ToArray();
        Assert.That(entries.Where(e => e.Id == 1).Select(e => e.Message).First(), Does.StartWith("Node node1 of cluster logged ejected for").And.Contain("after 3 consecutive failures; last error FakeDbException: node1 refused the connection"));
        Assert.That(entries.Where(e => e.Id == 1).Select(e => e.Level), Is.All.EqualTo(LogLevel.Warning));
        Assert.That(entries.Single(e => e.Id == 2).Message, Is.EqualTo("Node node1 of cluster logged recovered: an open succeeded after its ejection"));
        Assert.That(entries.Where(e => e.Id == 3).Select(e => e.Message), Does.Contain("Node node1 of cluster logged marked down by its health check: wsrep_cluster_status is non-Primary"));
        Assert.That(entries.Where(e => e.Id == 5).Select(e => e.Level), Is.Not.Empty.And.All.EqualTo(LogLevel.Error));
    }

    [Test]
    public async Task Secrets_FailureScenario_NeverShowThePasswordAnywhere()
    {
        using var metrics = new MetricsCapture();
        var logs = new CapturingLoggerFactory();
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "ClusterSql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);

        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var builder = new ClusterDataSourceBuilder().UseTimeProvider(time).UseLoggerFactory(logs).UseHealthProbe(new ToggleProbe { Down = "down for the test" });
        builder.Options.Name = metrics.Cluster;
        builder.Options.ConnectTimeout = TimeSpan.FromSeconds(1);
        var nodes = new[] { new FakeNode("a", time, OpenScript.Fail), new FakeNode("b", time, OpenScript.Hang), new FakeNode("c", time, OpenScript.Fail) };
        foreach (var node in nodes)
        {
            builder.AddNode(node.Name, node);
        }

        var texts = new List<string>();
        await using (var cluster = builder.Build())
        {
            await FakeCluster.WaitFor(() => cluster.Nodes.All(n => n.State == ClusterNodeState.Down), "probe ran");
            cluster.GetNode("a")!.MarkUp();
            cluster.GetNode("b")!.MarkUp();
            for (var i = 0; i < 4; i++)
            {
                var open = cluster.OpenConnectionAsync().AsTask();
                time.Advance(TimeSpan.FromSeconds(1));
                try
                {
                    await open;
                }
                catch (ClusterException ex)
                {
                    texts.Add(ex.ToString());
                    texts.AddRange(ex.NodeErrors.Select(e => e.ToString()));
                }
            }

            texts.Add(cluster.ConnectionString);
            texts.Add(cluster.CreateConnection().ConnectionString);
            texts.AddRange(cluster.Nodes.Select(n => n.ToString()));
            texts.AddRange(cluster.Nodes.Select(n => n.GetStatistics().ToString()));
            texts.AddRange(cluster.Nodes.Select(n => n.GetStatistics().LastErrorMessage ?? string.Empty));
            metrics.Listener.RecordObservableInstruments();
        }

        texts.AddRange(logs.Entries.Select(e => e.Message));
        texts.AddRange(metrics.AllTagValues());
        texts.AddRange(spans.SelectMany(s => s.TagObjects.Select(t => t.Value?.ToString() ?? string.Empty).Append(s.StatusDescription ?? string.Empty)));

        Assert.That(texts, Is.Not.Empty);
        Assert.That(logs.Entries, Is.Not.Empty, "the scenario logged");
        Assert.That(texts.Where(t => t.Contains(FakeNode.Secret, StringComparison.Ordinal)), Is.Empty, "the password appears nowhere");
        Assert.That(texts.Where(t => t.Contains("Password=", StringComparison.OrdinalIgnoreCase)), Is.Empty, "nor any connection string");
    }

    private sealed class ToggleProbe : IClusterNodeHealthProbe
    {
        private int _checks;

        public volatile string? Down;

        public int Checks => System.Threading.Volatile.Read(ref _checks);

        public ValueTask<ClusterNodeHealth> CheckAsync(ClusterNode node, System.Threading.CancellationToken cancellationToken)
        {
            var down = Down;
            var health = down is not null && (node.Name == "node1" || down == "down for the test") ? ClusterNodeHealth.Unhealthy(down) : ClusterNodeHealth.Healthy;
            System.Threading.Interlocked.Increment(ref _checks);
            return new(health);
        }
    }

    [Test]
    public async Task Metrics_AcquiresThroughRoles_CarryTheRoleOnWaitTimeAttemptsAndPending()
    {
        using var metrics = new MetricsCapture();
        await using var cluster = FakeCluster.Create(2, o => o.Name = metrics.Cluster);

        await (await cluster.DataSource.Writer.OpenConnectionAsync()).DisposeAsync();
        await (await cluster.DataSource.Readers.OpenConnectionAsync()).DisposeAsync();
        await (await cluster.DataSource.OpenConnectionAsync()).DisposeAsync();

        Assert.That(metrics.Roles("db.client.connection.wait_time"), Is.EqualTo(new[] { "writer", "reader", null }));
        Assert.That(metrics.Roles("clustersql.acquire.attempts"), Is.EqualTo(new[] { "writer", "reader", null }));
        Assert.That(metrics.Roles("db.client.connection.pending_requests"), Is.EqualTo(new[] { "writer", "writer", "reader", "reader", null, null }));
    }

    /// <summary>Every measurement of the ClusterSql meter for one cluster name (tests run clusters side by side).</summary>
    private sealed class MetricsCapture : IDisposable
    {
        private readonly ConcurrentQueue<(string Instrument, double Value, KeyValuePair<string, object?>[] Tags)> _measurements = new();

        public MetricsCapture()
        {
            Listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == "ClusterSql")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            Listener.SetMeasurementEventCallback<double>((i, v, t, _) => Add(i, v, t));
            Listener.SetMeasurementEventCallback<long>((i, v, t, _) => Add(i, v, t));
            Listener.SetMeasurementEventCallback<int>((i, v, t, _) => Add(i, v, t));
            Listener.Start();
        }

        public string Cluster { get; } = "metrics-" + Guid.NewGuid().ToString("N");

        public MeterListener Listener { get; } = new();

        public List<double> Values(string instrument, string? node = null, string? outcome = null) =>
            _measurements.Where(m => m.Instrument == instrument
                && (node is null || Tag(m.Tags, "clustersql.node") == node)
                && (outcome is null || Tag(m.Tags, "clustersql.outcome") == outcome))
                .Select(m => m.Value).ToList();

        public List<string?> Roles(string instrument) =>
            _measurements.Where(m => m.Instrument == instrument).Select(m => Tag(m.Tags, "clustersql.role")).ToList();

        public IEnumerable<string> States() =>
            _measurements.Where(m => m.Instrument == "clustersql.node.state").Select(m => $"{Tag(m.Tags, "clustersql.node")}={Tag(m.Tags, "clustersql.node.state")}");

        public IEnumerable<string> AllTagValues() => _measurements.SelectMany(m => m.Tags.Select(t => t.Value?.ToString() ?? string.Empty));

        public void Dispose() => Listener.Dispose();

        private static string? Tag(KeyValuePair<string, object?>[] tags, string key) => tags.FirstOrDefault(t => t.Key == key).Value as string;

        private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var copy = tags.ToArray();
            if (Tag(copy, "db.client.connection.pool.name") == Cluster)
            {
                _measurements.Enqueue((instrument.Name, value, copy));
            }
        }
    }

    private sealed record LogEntry(int Id, LogLevel Level, string Message);

    private sealed class CapturingLoggerFactory : ILoggerFactory, ILogger
    {
        public ConcurrentQueue<LogEntry> Entries { get; } = new();

        public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();

        public ILogger CreateLogger(string categoryName) => categoryName == "ClusterSql" ? this : throw new ArgumentException(categoryName);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Enqueue(new LogEntry(eventId.Id, logLevel, formatter(state, exception)));

        public void Dispose()
        {
        }
    }
}

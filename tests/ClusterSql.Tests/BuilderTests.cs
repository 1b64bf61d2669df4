using System;
using ClusterSql.Tests.Fakes;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace ClusterSql.Tests;

[TestFixture]
public sealed class BuilderTests
{
    private readonly FakeTimeProvider _time = new();

    [Test]
    public void AddNode_NullName_ThrowsArgumentNull()
    {
        var ex = Assert.Throws<ArgumentNullException>(() => new ClusterDataSourceBuilder().AddNode(null!, new FakeNode("a", _time)));
        Assert.That(ex!.ParamName, Is.EqualTo("name"));
    }

    [Test]
    public void AddNode_NullDataSource_ThrowsArgumentNull()
    {
        var ex = Assert.Throws<ArgumentNullException>(() => new ClusterDataSourceBuilder().AddNode("a", null!));
        Assert.That(ex!.ParamName, Is.EqualTo("dataSource"));
    }

    [TestCase("", "1 to 64 characters")]
    [TestCase("has space", "has the character ' '")]
    [TestCase("semi;colon", "has the character ';'")]
    [TestCase("ünïcode", "has the character 'ü'")]
    public void AddNode_InvalidName_ThrowsNamingTheProblem(string name, string expected)
    {
        var ex = Assert.Throws<ArgumentException>(() => new ClusterDataSourceBuilder().AddNode(name, new FakeNode("a", _time)));
        Assert.That(ex!.Message, Does.Contain(expected));
        Assert.That(ex.ParamName, Is.EqualTo("name"));
    }

    [Test]
    public void AddNode_TooLongName_Throws()
    {
        Assert.That(() => new ClusterDataSourceBuilder().AddNode(new string('a', 65), new FakeNode("a", _time)),
            Throws.ArgumentException.With.Message.Contains("got 65"));
    }

    [Test]
    public void AddNode_DuplicateNameIgnoringCase_Throws()
    {
        var builder = new ClusterDataSourceBuilder().AddNode("galera1", new FakeNode("a", _time));
        Assert.That(() => builder.AddNode("Galera1", new FakeNode("b", _time)),
            Throws.ArgumentException.With.Message.Contains("A node named 'galera1' was already added"));
    }

    [Test]
    public void Build_NoNodes_Throws()
    {
        Assert.That(() => new ClusterDataSourceBuilder().Build(),
            Throws.InvalidOperationException.With.Message.EqualTo("A cluster needs at least one node: call AddNode before Build."));
    }

    [Test]
    public void Build_InvalidOptions_ThrowNamingTheSetting()
    {
        Assert.Multiple(() =>
        {
            AssertInvalid(o => o.MaxHedgeDelay = TimeSpan.FromMilliseconds(1), nameof(ClusterOptions.MaxHedgeDelay));
            AssertInvalid(o => o.MinHedgeDelay = TimeSpan.Zero, nameof(ClusterOptions.MinHedgeDelay));
            AssertInvalid(o => o.HedgeBudget = 1.5, nameof(ClusterOptions.HedgeBudget));
            AssertInvalid(o => o.HedgeBudget = double.NaN, nameof(ClusterOptions.HedgeBudget));
            AssertInvalid(o => o.ConnectTimeout = TimeSpan.FromSeconds(-1), nameof(ClusterOptions.ConnectTimeout));
            AssertInvalid(o => o.ConnectTimeout = System.Threading.Timeout.InfiniteTimeSpan, nameof(ClusterOptions.ConnectTimeout));
            AssertInvalid(o => o.EjectionThreshold = 0, nameof(ClusterOptions.EjectionThreshold));
            AssertInvalid(o => o.MaxEjectionTime = TimeSpan.FromMilliseconds(10), nameof(ClusterOptions.MaxEjectionTime));
            AssertInvalid(o => o.Policy = (AcquirePolicy)42, nameof(ClusterOptions.Policy));
        });
    }

    [Test]
    public void AddNode_InvalidNodeConnectTimeout_Throws()
    {
        Assert.That(() => new ClusterDataSourceBuilder().AddNode("a", new FakeNode("a", _time), new ClusterNodeOptions { ConnectTimeout = TimeSpan.Zero }),
            Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("ConnectTimeout must be a positive, finite time"));
    }

    [Test]
    public void Build_OptionsChangedAfterBuild_DoNotAffectTheDataSource()
    {
        var builder = new ClusterDataSourceBuilder().AddNode("a", new FakeNode("a", _time));
        using var dataSource = builder.Build();
        builder.Options.Policy = AcquirePolicy.Race;
        Assert.That(dataSource.Options.Policy, Is.EqualTo(AcquirePolicy.LatencyAware));

        // Nor do the data source's own: what it hands out is a copy. The acquire path reads the settings live (hedging
        // off when HedgeBudget is 0), and half of them changed under a running bucket would strand a paid exploration.
        dataSource.Options.HedgeBudget = 0;
        dataSource.Options.ConnectTimeout = TimeSpan.FromSeconds(1);
        Assert.That(dataSource.Options.HedgeBudget, Is.EqualTo(new ClusterOptions().HedgeBudget));
        Assert.That(dataSource.Context.Options.ConnectTimeout, Is.EqualTo(new ClusterOptions().ConnectTimeout));
        var first = dataSource.Options;
        Assert.That(dataSource.Options, Is.Not.SameAs(first), "a new copy on each call");
    }

    [Test]
    public void UseTimeProviderAndProbe_Null_Throw()
    {
        Assert.That(() => new ClusterDataSourceBuilder().UseTimeProvider(null!), Throws.ArgumentNullException);
        Assert.That(() => new ClusterDataSourceBuilder().UseHealthProbe(null!), Throws.ArgumentNullException);
    }

    [Test]
    public void MarkDown_EmptyReason_Throws()
    {
        using var dataSource = new ClusterDataSourceBuilder().AddNode("a", new FakeNode("a", _time)).Build();
        Assert.That(() => dataSource.Nodes[0].MarkDown(" "), Throws.ArgumentException);
        Assert.That(() => dataSource.GetNode(null!), Throws.ArgumentNullException);
        Assert.That(dataSource.GetNode("missing"), Is.Null);
    }

    private void AssertInvalid(Action<ClusterOptions> change, string setting)
    {
        var builder = new ClusterDataSourceBuilder().AddNode("a", new FakeNode("a", _time));
        change(builder.Options);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => builder.Build());
        Assert.That(ex!.ParamName, Is.EqualTo(setting));
    }
}

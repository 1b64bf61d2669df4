using System;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using ClusterSql.MySql;
using MySqlConnector;
using NUnit.Framework;

namespace ClusterSql.IntegrationTests;

/// <summary>The README's quick start is this code: it runs against the real cluster, and the README must quote it exactly.</summary>
[TestFixture]
public sealed class ReadmeTests
{
    [Test]
    public async Task QuickStart_RunsAgainstTheCluster()
    {
        ClusterSetUp.RequireCluster();
        var password = TestCluster.Password;
        string? hostname;

        // <quickstart>
        await using var cluster = new ClusterDataSourceBuilder()
            .AddMySqlNode("galera1", $"Server=127.0.0.21;User ID=clustersql;Password={password};Database=test")
            .AddMySqlNode("galera2", $"Server=127.0.0.22;User ID=clustersql;Password={password};Database=test")
            .AddMySqlNode("galera3", $"Server=127.0.0.23;User ID=clustersql;Password={password};Database=test")
            .UseGaleraHealthProbe()
            .Build();

        await using (MySqlConnection connection = await cluster.OpenMySqlConnectionAsync())
        await using (var command = new MySqlCommand("SELECT @@hostname", connection))
        {
            hostname = (string?)await command.ExecuteScalarAsync();
        }

        foreach (var node in cluster.Nodes)
        {
            Console.WriteLine(node.GetStatistics());
        }
        // </quickstart>

        Assert.That(hostname, Is.Not.Empty);
        Assert.That(cluster.Nodes.Sum(n => n.GetStatistics().Wins), Is.EqualTo(1));
    }

    [Test]
    public void QuickStart_IsQuotedInTheReadme()
    {
        // Not [CallerFilePath]: deterministic CI builds map source paths away.
        var source = File.ReadAllLines(Path.Combine(TestCluster.RepositoryRoot, "tests", "ClusterSql.IntegrationTests", "ReadmeTests.cs"));
        var start = Array.FindIndex(source, l => l.Trim() == "// <quickstart>");
        var end = Array.FindIndex(source, l => l.Trim() == "// </quickstart>");
        var indent = source[start].IndexOf('/', StringComparison.Ordinal);
        var snippet = string.Join("\n", source[(start + 1)..end].Select(l => l.Length >= indent ? l[indent..] : l.TrimStart()));

        var readme = File.ReadAllText(Path.Combine(TestCluster.RepositoryRoot, "README.md")).Replace("\r\n", "\n", StringComparison.Ordinal);
        Assert.That(readme, Does.Contain(snippet), "README.md quotes the quick start exactly as this test runs it");
    }
}

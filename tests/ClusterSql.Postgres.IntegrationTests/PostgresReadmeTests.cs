using System;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using ClusterSql.Npgsql;
using Npgsql;
using NUnit.Framework;

namespace ClusterSql.Postgres.IntegrationTests;

/// <summary>The README's PostgreSQL example is this code: it runs against the real nodes, and the README must quote it exactly.</summary>
[TestFixture]
public sealed class PostgresReadmeTests
{
    [Test]
    public async Task Example_RunsAgainstThePrimaryAndStandbys()
    {
        PostgresSetUp.RequirePostgres();
        var password = TestPostgres.Password;
        int writerPort, readerPort;

        // <postgres>
        await using var cluster = NpgsqlCluster.CreateDataSource(
            $"Host=127.0.0.41:5441,127.0.0.42:5442,127.0.0.43:5443;Username=clustersql;Password={password};Database=test;Gss Encryption Mode=Disable",
            configure: options => options.MaxReaderLag = 1024 * 1024); // bytes of WAL received but not yet replayed

        await using (NpgsqlConnection primary = await cluster.Writer.OpenNpgsqlConnectionAsync())
        await using (var command = new NpgsqlCommand("SELECT inet_server_port()", primary))
        {
            writerPort = (int)(await command.ExecuteScalarAsync())!;   // 5441: the primary
        }

        await using (NpgsqlConnection standby = await cluster.Readers.OpenNpgsqlConnectionAsync())
        await using (var command = new NpgsqlCommand("SELECT inet_server_port()", standby))
        {
            readerPort = (int)(await command.ExecuteScalarAsync())!;   // 5442 or 5443: a standby within the lag bound
        }
        // </postgres>

        Assert.That(writerPort, Is.EqualTo(5441));
        Assert.That(readerPort, Is.AnyOf(5442, 5443));
    }

    [Test]
    public void Example_IsQuotedInTheReadme()
    {
        var source = File.ReadAllLines(Path.Combine(TestPostgres.RepositoryRoot, "tests", "ClusterSql.Postgres.IntegrationTests", "PostgresReadmeTests.cs"));
        var start = Array.FindIndex(source, l => l.Trim() == "// <postgres>");
        var end = Array.FindIndex(source, l => l.Trim() == "// </postgres>");
        var indent = source[start].IndexOf('/', StringComparison.Ordinal);
        var snippet = string.Join("\n", source[(start + 1)..end].Select(l => l.Length >= indent ? l[indent..] : l.TrimStart()));

        var readme = File.ReadAllText(Path.Combine(TestPostgres.RepositoryRoot, "README.md")).Replace("\r\n", "\n", StringComparison.Ordinal);
        Assert.That(readme, Does.Contain(snippet), "README.md quotes the PostgreSQL example exactly as this test runs it");
    }
}

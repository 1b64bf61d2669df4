using System;
using System.IO;
using NUnit.Framework;

namespace ClusterSql.Generators.Tests;

/// <summary>
/// Expected generator output under Baselines/, compared exactly. Set CLUSTERSQL_UPDATE_BASELINES=1 to rewrite them
/// in the source tree after a deliberate change, then review the diff.
/// </summary>
internal static class Baseline
{
    private const string UpdateVariable = "CLUSTERSQL_UPDATE_BASELINES";

    public static void AssertMatches(string name, string actual)
    {
        if (Environment.GetEnvironmentVariable(UpdateVariable) == "1")
        {
            File.WriteAllText(Path.Combine(SourceDirectory(), "Baselines", name), actual);
            return;
        }

        var path = Path.Combine(AppContext.BaseDirectory, "Baselines", name);
        Assert.That(File.Exists(path), Is.True, $"No baseline {name}; run the tests with {UpdateVariable}=1 to write it.");
        var expected = File.ReadAllText(path).ReplaceLineEndings("\n");
        Assert.That(actual, Is.EqualTo(expected), $"The generated source differs from Baselines/{name}; if the change is deliberate, rerun with {UpdateVariable}=1.");
    }

    // CallerFilePath is path-mapped in CI builds, so the project directory is found from the output directory instead.
    private static string SourceDirectory()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ClusterSql.Generators.Tests.csproj")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("The test project directory was not found above " + AppContext.BaseDirectory);
    }
}

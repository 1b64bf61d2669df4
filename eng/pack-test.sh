#!/usr/bin/env bash
# Packs ClusterSql (the generator inside), ClusterSql.MySql, .Npgsql, .Extensions, .EntityFrameworkCore and the clustersql tool into artifacts/packages, checks
# what each package holds, then builds and runs a fresh project against the packed ClusterSql from that local feed,
# the generator included, and installs and runs the tool from it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
out="$root/artifacts/packages"
rm -rf "$out" && mkdir -p "$out"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

for project in src/ClusterSql src/ClusterSql.MySql src/ClusterSql.Npgsql src/ClusterSql.Extensions src/ClusterSql.EntityFrameworkCore src/ClusterSql.Cli; do
  dotnet pack "$project" -c Release -o "$out" -warnaserror -nologo -clp:ErrorsOnly
done

version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props)
require() { # require PACKAGE ENTRY...
  local package="$out/$1" listing; shift
  [[ -f $package ]] || { echo "missing package $package"; return 1; }
  listing=$(unzip -l "$package")
  for entry in "$@"; do
    grep -q " $entry\$" <<<"$listing" || { echo "$(basename "$package") lacks $entry"; return 1; }
  done
}
require "ClusterSql.$version.nupkg" lib/net10.0/ClusterSql.dll lib/net10.0/ClusterSql.xml lib/net8.0/ClusterSql.dll analyzers/dotnet/cs/ClusterSql.Generators.dll README.md
require "ClusterSql.MySql.$version.nupkg" lib/net10.0/ClusterSql.MySql.dll lib/net8.0/ClusterSql.MySql.dll README.md
require "ClusterSql.Npgsql.$version.nupkg" lib/net10.0/ClusterSql.Npgsql.dll lib/net8.0/ClusterSql.Npgsql.dll README.md
require "ClusterSql.Extensions.$version.nupkg" lib/net10.0/ClusterSql.Extensions.dll lib/net8.0/ClusterSql.Extensions.dll README.md
require "ClusterSql.EntityFrameworkCore.$version.nupkg" lib/net10.0/ClusterSql.EntityFrameworkCore.dll lib/net8.0/ClusterSql.EntityFrameworkCore.dll README.md
require "ClusterSql.Cli.$version.nupkg" tools/net10.0/any/DotnetToolSettings.xml README.md
for package in ClusterSql ClusterSql.MySql ClusterSql.Npgsql ClusterSql.Extensions ClusterSql.EntityFrameworkCore; do
  [[ -f "$out/$package.$version.snupkg" ]] || { echo "missing symbols for $package"; exit 1; }
done
echo "packages: $(cd "$out" && ls)"

# A fresh consumer with its own package folder, so that no earlier build of the same version is reused.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="local" value="$out" />
  </packageSources>
</configuration>
XML
# nuget.org stays available through the user's configuration for the provider package.
mkdir -p "$work/consumer"
cat >"$work/consumer/consumer.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFrameworks>net10.0;net8.0</TargetFrameworks>
    <Nullable>enable</Nullable>
    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
    <IsAotCompatible>true</IsAotCompatible>
    <RestorePackagesPath>$work/packages</RestorePackagesPath>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include="ClusterSql" Version="$version" />
    <PackageReference Include="Microsoft.Data.Sqlite" Version="10.0.0" />
  </ItemGroup>
</Project>
XML
cat >"$work/consumer/Program.cs" <<'CS'
using System;
using ClusterSql;
using Microsoft.Data.Sqlite;

await using var cluster = Shop.Create();
await using var connection = await cluster.OpenConnectionAsync();
await using var command = connection.CreateCommand();
command.CommandText = "SELECT 6 * 7";
Console.WriteLine($"answer={await command.ExecuteScalarAsync()} node={Shop.NodeNames.Primary} wins={cluster.Primary.GetStatistics().Wins}");

[Cluster(typeof(SqliteFactory), ConnectionType = typeof(SqliteConnection))]
[ClusterNode("primary", ConnectionString = "Data Source=:memory:")]
[ClusterNode("replica", ConnectionString = "Data Source=:memory:")]
internal sealed partial class Shop;
CS
cp "$work/nuget.config" "$work/consumer/"
result=$(dotnet run --project "$work/consumer" -c Release --framework net10.0 2>&1) || { echo "$result"; exit 1; }
echo "consumer: $result"
grep -q "answer=42 node=primary wins=" <<<"$result"

# The packages carry net8.0 too: the same consumer, generated code included, builds for net8.0 with warnings as errors
# (this machine has no .NET 8 runtime to run it).
result=$(dotnet build "$work/consumer" -c Release --framework net8.0 -nologo 2>&1) || { echo "$result"; exit 1; }
echo "consumer for net8.0: built"

dotnet tool install ClusterSql.Cli --version "$version" --tool-path "$work/tool" --add-source "$out" >/dev/null
"$work/tool/clustersql" --help | head -n 3

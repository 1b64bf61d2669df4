#!/usr/bin/env bash
# Passes every test from a fresh Debian machine, as root: installs and starts the Galera test cluster and the PostgreSQL
# primary + standbys (loopback only),
# builds with warnings as errors, runs the unit, generator and integration suites, publishes the NativeAOT CLI and
# checks the cluster with it, packs the packages, and runs every benchmark in its shortest form.
# Ends with its own line "N passed, N failed" (test cases plus the steps above) and exits non-zero on any failure.
# The clusters are left running for the next run; `tests/cluster/cluster.sh down` and `tests/pg/pg.sh down` stop them.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
results="$root/artifacts/test-results"
rm -rf "$results" && mkdir -p "$results"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export CLUSTERSQL_REQUIRE_CLUSTER=1

steps_passed=0
steps_failed=0
failed_steps=()
step() {
  local name=$1; shift
  echo "==> $name"
  local start=$SECONDS
  if "$@"; then
    steps_passed=$((steps_passed + 1)); echo "==> $name: ok ($((SECONDS - start)) s)"
  else
    steps_failed=$((steps_failed + 1)); failed_steps+=("$name"); echo "==> $name: FAILED ($((SECONDS - start)) s)"
  fi
}

# The cluster's scripts need root (apt, iptables, signals); everything targets 127.0.0.0/8 only.
step "cluster install" bash tests/cluster/cluster.sh install
step "cluster up" bash tests/cluster/cluster.sh up
# PostgreSQL: a primary and two streaming standbys on 127.0.0.41-43 (tests/pg/pg.sh), for ClusterSql.Npgsql.
step "postgres install" bash tests/pg/pg.sh install
step "postgres up" flock -w 600 -o /tmp/clustersql-pg.lock bash tests/pg/pg.sh reset

build() { dotnet build ClusterSql.sln -c Release -warnaserror -nologo -clp:ErrorsOnly; }
step "build (warnings as errors)" build

run_tests() {
  local project=$1 name
  name=$(basename "$project" .csproj)
  # Fault tests take the cluster lock so that nothing else faults the same cluster meanwhile (-o: the lock is not
  # inherited by servers that a test restarts).
  local lock=()
  [[ $name == *Integration* || $name == *EntityFrameworkCore* ]] && lock=(flock -o /tmp/clustersql-cluster.lock)
  # The PostgreSQL nodes have their own lock: their faults never touch the Galera cluster, nor its faults them.
  [[ $name == *Postgres* ]] && lock=(flock -w 600 -o /tmp/clustersql-pg.lock)
  "${lock[@]}" dotnet test "$project" -c Release --no-build --nologo \
    --logger "trx;LogFileName=$name.trx" --results-directory "$results" -- NUnit.DefaultTimeout=600000
}
for project in tests/ClusterSql.Tests/ClusterSql.Tests.csproj \
               tests/ClusterSql.Generators.Tests/ClusterSql.Generators.Tests.csproj \
               tests/ClusterSql.IntegrationTests/ClusterSql.IntegrationTests.csproj \
               tests/ClusterSql.Postgres.IntegrationTests/ClusterSql.Postgres.IntegrationTests.csproj \
               tests/ClusterSql.EntityFrameworkCore.Tests/ClusterSql.EntityFrameworkCore.Tests.csproj; do
  step "test $(basename "$project" .csproj)" run_tests "$project"
done

publish() {
  rm -rf artifacts/clustersql
  local log=artifacts/publish.log
  dotnet publish src/ClusterSql.Cli -c Release -r linux-x64 -o artifacts/clustersql -warnaserror -nologo >"$log" 2>&1 || { cat "$log"; return 1; }
  # Any trim or AOT analysis warning fails (they are errors under -warnaserror; this guards the count too).
  if grep -qE "warning (IL|CS)[0-9]+" "$log"; then grep -E "warning" "$log"; return 1; fi
  test -x artifacts/clustersql/clustersql
}
step "NativeAOT publish of clustersql (0 trim/AOT warnings)" publish
step "clustersql check against the test cluster" artifacts/clustersql/clustersql check

# --json: one object for check, one object per line for watch, the documented fields (README, "clustersql --json").
cli_json() {
  local out
  out=$(artifacts/clustersql/clustersql check --json) || { echo "check --json exited $?"; return 1; }
  [[ $(wc -l <<<"$out") -eq 1 ]] || { echo "check --json printed more than one line"; return 1; }
  grep -q '^{"version":1,"type":"check","verdict":"healthy","exitCode":0,"nodes":\[' <<<"$out" || { echo "unexpected: $out"; return 1; }
  out=$(artifacts/clustersql/clustersql watch --json --duration 2 --workers 2) || { echo "watch --json exited $?"; return 1; }
  if grep -qv '^{"version":1,"type":"\(interval\|summary\)",' <<<"$out"; then echo "a line is not a watch object: $out"; return 1; fi
  grep -q '^{"version":1,"type":"interval",.*"nodes":\[{"name":"galera1","state":"Healthy",' <<<"$out" || { echo "no interval line: $out"; return 1; }
  tail -n 1 <<<"$out" | grep -q '^{"version":1,"type":"summary",.*"acquireFailures":0,.*"exitCode":0}$' || { echo "no summary line last: $out"; return 1; }
}
step "clustersql check/watch --json (stable fields, one object per line)" cli_json

# watch on a terminal (a pseudo-terminal from script(1)) redraws its table in place ("cursor up"); redirected, plain lines.
cli_terminal() {
  local out
  out=$(script -qec "artifacts/clustersql/clustersql watch --duration 3 --workers 1" /dev/null) || { echo "watch on a terminal failed"; return 1; }
  grep -q $'\e\[[0-9]*A' <<<"$out" || { echo "no in-place redraw on a terminal"; return 1; }
  out=$(artifacts/clustersql/clustersql watch --duration 2 --workers 1) || { echo "watch redirected failed"; return 1; }
  if grep -q $'\e\[' <<<"$out"; then echo "escape codes in redirected output"; return 1; fi
}
step "clustersql watch redraws in place on a terminal, prints lines when redirected" cli_terminal

# --config: the appsettings.json section a service passes to AddClusterSql, here with the test cluster's nodes.
cli_config() {
  local dir rc=0
  dir=$(mktemp -d)
  local password=${CLUSTERSQL_PASSWORD:-$(cat /var/tmp/clustersql-cluster/cluster.password 2>/dev/null || echo Cs-test-pw-7f3a)}
  cat >"$dir/appsettings.json" <<JSON
{ "Logging": { "LogLevel": { "Default": "Warning" } },
  "ClusterSql": { "Name": "fromconfig", "Nodes": [
    { "Name": "galera1", "ConnectionString": "Server=127.0.0.21;User ID=clustersql;Password=$password;Database=test" },
    { "Name": "galera2", "ConnectionString": "Server=127.0.0.22;User ID=clustersql;Password=$password;Database=test" },
    { "Name": "galera3", "ConnectionString": "Server=127.0.0.23;User ID=clustersql;Password=$password;Database=test", "Priority": 1 } ] } }
JSON
  artifacts/clustersql/clustersql check --json --config "$dir/appsettings.json" | grep -q '"verdict":"healthy"' || rc=1
  # A section that is not there is a usage error (64), not a degraded cluster (1).
  artifacts/clustersql/clustersql check --config "$dir/appsettings.json" --section Missing 2>/dev/null; [[ $? -eq 64 ]] || rc=1
  rm -rf "$dir"
  return $rc
}
step "clustersql --config reads the AddClusterSql section of an appsettings.json" cli_config

# --provider postgres: the same check against the PostgreSQL primary and standbys of tests/pg (their own lock).
cli_postgres() {
  local out password=${CLUSTERSQL_PG_PASSWORD:-Cs-pg-pw-3b9d}
  out=$(flock -w 600 -o /tmp/clustersql-pg.lock artifacts/clustersql/clustersql check --provider postgres --json \
    --connection-string "Host=127.0.0.41:5441,127.0.0.42:5442,127.0.0.43:5443;Username=clustersql;Password=$password;Database=test;Gss Encryption Mode=Disable") \
    || { echo "check --provider postgres exited $?: $out"; return 1; }
  grep -q '^{"version":1,"type":"check","verdict":"healthy","exitCode":0,' <<<"$out" || { echo "unexpected: $out"; return 1; }
  grep -q '"postgres":{"role":"primary"' <<<"$out" && grep -q '"replication":{"checked":true,"ok":true,' <<<"$out" || { echo "no primary or no write read back: $out"; return 1; }
}
step "clustersql check --provider postgres against the PostgreSQL test nodes" cli_postgres

if [[ -f benchmarks/run.sh ]]; then
  step "benchmarks, shortest form" bash benchmarks/run.sh --quick
fi
pg_compare() {
  mkdir -p BenchmarkDotNet.Artifacts/quick
  flock -w 600 -o /tmp/clustersql-pg.lock dotnet benchmarks/ClusterSql.Benchmarks/bin/Release/net10.0/ClusterSql.Benchmarks.dll \
    pg-compare --quick --out BenchmarkDotNet.Artifacts/quick/benchmarks-postgres.md
}
step "PostgreSQL comparison with Npgsql multi-host, shortest form" pg_compare
if [[ -f eng/pack-test.sh ]]; then
  step "pack and consume the packages from a local feed" bash eng/pack-test.sh
fi

# Test cases from the TRX files: a missing file means its suite did not run.
cases_passed=0
cases_failed=0
cases_skipped=0
for trx in "$results"/*.trx; do
  [[ -f $trx ]] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  value() { local v; v=$(sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<<"$counters"); echo "${v:-0}"; }
  cases_passed=$((cases_passed + $(value passed)))
  cases_failed=$((cases_failed + $(value failed) + $(value error) + $(value timeout) + $(value aborted)))
  cases_skipped=$((cases_skipped + $(value notExecuted)))
done

# CI keeps only the tail of the log: name each failed test case and the start of its message here, at the end.
failed_cases() {
  awk '
    /<UnitTestResult / && /outcome="(Failed|Error|Timeout|Aborted)"/ {
      match($0, /testName="[^"]*"/); name = substr($0, RSTART + 10, RLENGTH - 11); want = 1; next
    }
    /<UnitTestResult / { want = 0 }
    want && /<(StdOut|Message)>/ { printing = 1; lines = 0; sub(/.*<(StdOut|Message)>/, "") }
    printing {
      end = sub(/<\/(StdOut|Message)>.*/, "")
      if ($0 != "" && lines < 16) { print "  " name ": " $0; lines++ }
      if (end) printing = 0
    }' "$1"
}
if [[ $cases_failed -gt 0 ]]; then
  echo
  echo "failed test cases:"
  for trx in "$results"/*.trx; do [[ -f $trx ]] && failed_cases "$trx"; done
fi

echo
echo "test cases: $cases_passed passed, $cases_failed failed, $cases_skipped skipped; steps: $steps_passed passed, $steps_failed failed"
for name in "${failed_steps[@]}"; do echo "failed step: $name"; done
passed=$((cases_passed + steps_passed))
failed=$((cases_failed + steps_failed))
summary="$passed passed, $failed failed"
[[ $cases_skipped -gt 0 ]] && summary="$summary, $cases_skipped skipped"
mkdir -p artifacts && echo "$summary" > artifacts/test-summary.txt
echo "$summary"
[[ $failed -eq 0 && $cases_passed -gt 0 ]]

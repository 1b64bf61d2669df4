#!/usr/bin/env bash
# ClusterSql benchmarks: the BenchmarkDotNet suites, the fault-scenario load tool, and the report.
#
#   bash benchmarks/run.sh          full run (about 13 min on 2 cores): writes docs/benchmarks.md and
#                                   docs/benchmarks-latency.svg
#   bash benchmarks/run.sh --quick  CI smoke run (under 5 min): BenchmarkDotNet --job dry for every suite and
#                                   load --quick for every scenario; writes BenchmarkDotNet.Artifacts/quick/
#
# Needs the Galera test cluster (as root: tests/cluster/cluster.sh install && tests/cluster/cluster.sh up).
# Everything that touches the cluster (the real-cluster suite and the load tool, which injects faults into galera1
# and always removes them in a finally) runs under flock /tmp/clustersql-cluster.lock, the lock every fault user
# holds. Exits non-zero when a suite fails to run or the load tool itself fails; slow or failed acquires are results.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

quick=0
case "${1:-}" in
  --quick) quick=1 ;;
  "") ;;
  -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  *) echo "usage: bash benchmarks/run.sh [--quick]" >&2; exit 2 ;;
esac

lock=/tmp/clustersql-cluster.lock
lock_wait="${CLUSTERSQL_LOCK_WAIT:-900}"   # seconds to wait for another fault user to finish
project=benchmarks/ClusterSql.Benchmarks/ClusterSql.Benchmarks.csproj
tool=(dotnet benchmarks/ClusterSql.Benchmarks/bin/Release/net10.0/ClusterSql.Benchmarks.dll)
start=${SECONDS}

if (( quick )); then
  out=BenchmarkDotNet.Artifacts/quick
  bdn_job=(--job dry)
  job_text="Dry (1 cold-start invocation per case): a smoke test, not a measurement"
  load_args=(--quick)
  report_md="${out}/benchmarks.md"
  report_svg="${out}/benchmarks-latency.svg"
else
  out=BenchmarkDotNet.Artifacts/full
  bdn_job=()
  job_text="1 launch, 3 warm-up + 8 measured iterations of ~250 ms (between ShortRun and MediumRun)"
  load_args=()
  report_md=docs/benchmarks.md
  report_svg=docs/benchmarks-latency.svg
fi

step() { printf '\n==== run.sh: %s (%d s)\n' "$*" "$((SECONDS - start))"; }

status=0
bash tests/cluster/cluster.sh status >/dev/null 2>&1 || status=$?
if (( status == 1 )); then
  echo "run.sh: the Galera test cluster is not healthy; start it first (as root): tests/cluster/cluster.sh up" >&2
  exit 1
fi

rm -rf "${out}"
mkdir -p "${out}"

step "build (Release)"
dotnet build -c Release --nologo -v quiet "${project}"

# The real-cluster suite and the load tool run under one lock: nobody else injects a fault while the healthy cluster
# is measured, and the load tool's own faults are injected and healed inside it (it sees the lock held on the
# descriptor it inherits). The in-process suites need no cluster and run outside it in a full run; the quick run
# joins every suite into one BenchmarkDotNet run, which builds its generated project once instead of twice.
take_lock() {
  exec 9>>"${lock}"
  flock -w "${lock_wait}" 9 || { echo "run.sh: ${lock} still held after ${lock_wait} s" >&2; exit 1; }
}

if (( quick )); then
  step "BenchmarkDotNet --job dry, every suite (joined), under ${lock}"
  take_lock
  "${tool[@]}" --filter '*' --join --artifacts "${out}/bdn" "${bdn_job[@]}"
else
  step "BenchmarkDotNet: in-process suites"
  "${tool[@]}" --filter '*CoreOverheadBenchmarks*' '*FastPathPartsBenchmarks*' '*SlowPathBenchmarks*' '*SlowPathWorkBenchmarks*' --artifacts "${out}/bdn" "${bdn_job[@]}"
  step "BenchmarkDotNet: real-cluster suite, under ${lock}"
  take_lock
  "${tool[@]}" --filter '*RealClusterBenchmarks*' --artifacts "${out}/bdn" "${bdn_job[@]}"
fi

step "load tool (${load_args[*]:-full}), under ${lock}"
"${tool[@]}" load "${load_args[@]}" --out "${out}/load-results.json"
step "write scenarios of the Galera roles (${load_args[*]:-full}), under ${lock}"
if (( quick )); then writes_md="${out}/benchmarks-writes.md"; else writes_md=docs/benchmarks-writes.md; fi
"${tool[@]}" writes "${load_args[@]}" --out "${writes_md}"
flock -u 9
exec 9>&-

step "fleet simulation (${load_args[*]:-full}; in-process, virtual clock, no cluster)"
if (( quick )); then fleet_md="${out}/benchmarks-fleet.md"; else fleet_md=docs/benchmarks-fleet.md; fi
"${tool[@]}" fleet "${load_args[@]}" --out "${fleet_md}"

step "report"
"${tool[@]}" report --bdn "${out}/bdn" --load "${out}/load-results.json" --out "${report_md}" --svg "${report_svg}" \
  --discussion benchmarks/discussion.md --job "${job_text}" --took "$((SECONDS - start))"

step "done: ${report_md}, ${report_svg}"

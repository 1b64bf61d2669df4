#!/usr/bin/env bash
# The main job, from a fresh Debian machine, as root: install and start the local Galera cluster (loopback only),
# publish the NativeAOT console service clustersql, and run its demo: a check, then a steady acquire load during
# which galera2 is crashed and restarted. The demo runs until galera2 is back and winning acquires again (then a few
# seconds more), so the failover and the node's return are both visible, and stops by itself (at most
# DEMO_MAX_SECONDS, default 120). Exits with the demo's status: 0 when every acquire succeeded and galera2 came back.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

bash tests/cluster/cluster.sh install
bash tests/cluster/cluster.sh up
if [[ ! -x artifacts/clustersql/clustersql || -n "$(find src generators -newer artifacts/clustersql/clustersql -name '*.cs' -print -quit)" ]]; then
  dotnet publish src/ClusterSql.Cli -c Release -r linux-x64 -o artifacts/clustersql -warnaserror -nologo
fi

crash_after=${DEMO_CRASH_AFTER:-10}   # seconds of steady load before the crash
down_for=${DEMO_DOWN_FOR:-5}          # seconds galera2 stays down before the restart (which takes about 15 s more)
max_seconds=${DEMO_MAX_SECONDS:-120}
started=${SECONDS}
# On a terminal the demo redraws its table in place, and lines from the fault side would break it: they go to a log,
# printed after the demo. Redirected, they are interleaved with the demo's blocks as they happen.
fault_log=/dev/stdout
if [[ -t 1 ]]; then
  fault_log=$(mktemp /tmp/clustersql-demo-faults.XXXXXX)
  echo ">>> demo.sh: galera2 is crashed ${crash_after} s into the load and restarted ${down_for} s later; fault log: ${fault_log}"
fi
artifacts/clustersql/clustersql demo --until-node-wins galera2 --max-duration "$max_seconds" &
demo=$!
(
  # A crash and a restart in the middle of the load, under the same lock as the fault tests.
  exec 9>/tmp/clustersql-cluster.lock
  flock 9
  trap 'bash tests/cluster/cluster.sh heal-all >/dev/null 2>&1 || true' EXIT
  sleep "$crash_after"
  echo ">>> demo.sh t=$((SECONDS - started))s: crashing galera2 (kill -9)"
  bash tests/cluster/cluster.sh crash galera2 2>&1 | sed 's/^/>>> /'
  sleep "$down_for"
  echo ">>> demo.sh t=$((SECONDS - started))s: restarting galera2 (it recovers its position and rejoins by IST)"
  bash tests/cluster/cluster.sh restart galera2 2>&1 | sed 's/^/>>> /'
  echo ">>> demo.sh t=$((SECONDS - started))s: galera2 restarted"
) >>"$fault_log" &
faults=$!
status=0
wait "$demo" || status=$?
fault_status=0
wait "$faults" || fault_status=$?
if [[ $fault_log != /dev/stdout ]]; then
  cat "$fault_log"
  rm -f "$fault_log"
fi
(( fault_status == 0 )) || echo ">>> demo.sh: the fault side failed (exit $fault_status); the cluster was healed"
echo ">>> demo.sh: demo ran $((SECONDS - started)) s, exit $status"
exit "$status"

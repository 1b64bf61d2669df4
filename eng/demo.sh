#!/usr/bin/env bash
# The main job, from a fresh Debian machine, as root: install and start the local Galera cluster (loopback only),
# publish the NativeAOT console service clustersql, and run its demo: a check, then a steady acquire load during
# which galera2 is crashed and restarted, so the failover and the node's return are visible. Stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

bash tests/cluster/cluster.sh install
bash tests/cluster/cluster.sh up
if [[ ! -x artifacts/clustersql/clustersql || -n "$(find src generators -newer artifacts/clustersql/clustersql -name '*.cs' -print -quit)" ]]; then
  dotnet publish src/ClusterSql.Cli -c Release -r linux-x64 -o artifacts/clustersql -warnaserror -nologo
fi

duration=${DEMO_SECONDS:-30}
artifacts/clustersql/clustersql demo --duration "$duration" &
demo=$!
(
  # A crash and a restart in the middle of the load, under the same lock as the fault tests.
  exec 9>/tmp/clustersql-cluster.lock
  flock 9
  trap 'bash tests/cluster/cluster.sh heal-all >/dev/null 2>&1 || true' EXIT
  sleep $((duration / 3))
  echo ">>> demo.sh: crashing galera2 (kill -9)"
  bash tests/cluster/cluster.sh crash galera2 2>&1 | sed 's/^/>>> /'
  sleep $((duration / 4))
  echo ">>> demo.sh: restarting galera2 (it rejoins by IST)"
  bash tests/cluster/cluster.sh restart galera2 2>&1 | sed 's/^/>>> /'
) &
faults=$!
status=0
wait "$demo" || status=$?
wait "$faults" || true
exit "$status"

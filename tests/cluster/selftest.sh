#!/usr/bin/env bash
# Self-test of the Galera test-cluster harness: brings the cluster up, applies every fault, checks
# what a TCP client sees, reverts it, and leaves the cluster up and healthy. Root only; loopback only.
# Prints one line per check and closes with "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail

C="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cluster.sh"
PW="${CLUSTERSQL_PASSWORD:-Cs-test-pw-7f3a}"
pass=0
fail=0
ok() { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "${what}"; else bad "${what}"; fi; }

# client NODE SQL: one fresh TCP connection as the app user; sets RC, OUT, SECS
client() {
  local s e
  s=$(date +%s%N)
  OUT=$(timeout 20 mariadb --no-defaults -h "127.0.0.2$1" -P 3306 -u clustersql -p"${PW}" \
    --connect-timeout=3 -N -B -e "$2" 2>&1)
  RC=$?
  e=$(date +%s%N)
  SECS=$(awk -v d=$((e - s)) 'BEGIN { printf "%.3f", d / 1e9 }')
  echo "       node$1 '$2' -> rc=${RC} ${SECS}s ${OUT//$'\n'/ }"
}
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
run() { echo "  \$ cluster.sh $*"; "${C}" "$@"; }

run up >/dev/null || { bad "up"; echo "0 passed, 1 failed"; exit 1; }
check "status healthy after up" run status
for n in 1 2 3; do client "${n}" "SELECT 1"; check "node${n} answers SELECT 1" test "${RC}" = 0; done
run sql 1 "CREATE TABLE IF NOT EXISTS test.selftest (id INT AUTO_INCREMENT PRIMARY KEY, v INT)" \
  && run sql 1 "INSERT INTO test.selftest (v) VALUES (1)"
check "sql NODE runs as root over the socket" test "$("${C}" sql 2 "SELECT @@wsrep_node_name")" = galera2

# crash / restart
run crash 2
client 2 "SELECT 1"
check "crashed node refuses at once" bash -c "[[ ${RC} != 0 ]] && $(declare -f lt); lt ${SECS} 1"
run sql 1 "INSERT INTO test.selftest (v) VALUES (2)"
check "restart after crash rejoins (IST)" run restart 2
client 2 "SELECT COUNT(*) FROM test.selftest WHERE v = 2"
check "restarted node has the write made while it was down" test "${OUT}" = 1

# hang / resume
run hang 3
client 3 "SELECT 1"
check "hung node: handshake times out" bash -c "[[ ${RC} != 0 && '${OUT}' == *handshake* ]]"
run resume 3
check "wait-healthy after resume" run wait-healthy 60

# blackhole / reject / restore
run blackhole 1
client 1 "SELECT 1"
check "blackholed node: connect times out" bash -c "[[ ${RC} != 0 ]] && $(declare -f ge); ge ${SECS} 2.5"
run status >/dev/null
check "status exits 2 while a fault is active" test $? = 2
run restore 1
run reject 1
client 1 "SELECT 1"
check "rejected node: refused at once" bash -c "[[ ${RC} != 0 ]] && $(declare -f lt); lt ${SECS} 1"
run restore 1
client 1 "SELECT 1"
check "restored node answers" test "${RC}" = 0

# partition / heal
run partition 3
client 3 "SELECT 1"
check "partitioned node still answers SELECT 1" test "${RC}" = 0
client 3 "SELECT COUNT(*) FROM test.selftest"
check "partitioned node: table access fails with 1047" bash -c "[[ ${RC} != 0 && '${OUT}' == *1047* ]]"
check "heal rejoins" run heal 3
client 3 "SELECT COUNT(*) FROM test.selftest"
check "healed node serves tables" test "${RC}" = 0

# slow / unslow: established connections untouched, new ones delayed, proxied ones cut by unslow
# (slow-selftest.sh prints its own ok/FAIL lines; they count here)
slow_out="$(bash "$(dirname "${C}")/slow-selftest.sh" 2 200 2>&1)"
echo "${slow_out}" | grep -v -E '^[0-9]+ passed, [0-9]+ failed$'
pass=$((pass + $(grep -c '^ok   - ' <<<"${slow_out}")))
fail=$((fail + $(grep -c '^FAIL - ' <<<"${slow_out}")))
grep -qE '^[0-9]+ passed, 0 failed$' <<<"${slow_out}" || bad "slow-selftest.sh did not finish cleanly"

# several faults at once, then heal-all
run crash 1
run hang 2
run blackhole 3
run slow 3 20
check "heal-all repairs everything" run heal-all
check "status healthy after heal-all" run status
check "no rules left in our chains" bash -c "[[ -z \$(iptables -S CLUSTERSQL | grep -v '^-N') && -z \$(iptables -t nat -S CLUSTERSQL-NAT | grep -v '^-N') ]]"

# down / up keeps the data
run down
run status >/dev/null
check "status fails when down" test $? != 0
check "up again after down" run up
client 3 "SELECT COUNT(*) FROM test.selftest"
check "data survives down/up" test "${OUT}" = 2
run sql 1 "DROP TABLE test.selftest"

echo "${pass} passed, ${fail} failed"
[[ ${fail} == 0 ]]

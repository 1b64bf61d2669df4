#!/usr/bin/env bash
# Self-test of the harness's `slow` fault against the connections it must and must not touch:
#   1. a client session opened before `slow` keeps working on its own connection (no reset, same connection id)
#      and is not delayed (it still goes straight to the server);
#   2. a new connection made while the node is slowed goes through the delay proxy and pays the delay;
#   3. `unslow` cuts the sessions that went through the proxy, leaves the direct one alone, and new connections
#      are fast (direct) again.
# Usage: tests/cluster/slow-selftest.sh [NODE] [MS]   (default: galera2, 200 ms; root; loopback only)
# The cluster must be up; run it under the shared cluster lock (flock -o /tmp/clustersql-cluster.lock ...).
# Prints one line per check and closes with "N passed, N failed"; bounded to about 30 s; always unslows.
set -uo pipefail

C="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cluster.sh"
PW="${CLUSTERSQL_PASSWORD:-Cs-test-pw-7f3a}"
case "${1:-2}" in 1|galera1) N=1 ;; 2|galera2) N=2 ;; 3|galera3) N=3 ;; *) echo "unknown node $1" >&2; exit 2 ;; esac
MS="${2:-200}"
[[ ${MS} =~ ^[0-9]+$ && ${MS} -ge 50 ]] || { echo "MS must be whole milliseconds >= 50" >&2; exit 2; }
ADDR="127.0.0.2${N}"
PROXY="127.0.0.3${N}"
pass=0
fail=0
ok() { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "${what}"; else bad "${what}"; fi; }
ms_now() { echo $(($(date +%s%N) / 1000000)); }
lt() { (($1 < $2)); }
ge() { (($1 >= $2)); }

# A session: one mariadb client kept open on one TCP connection (no reconnect, so a reset cannot hide behind a new
# connection), fed one statement at a time over a pipe; --unbuffered prints each result as soon as it comes.
# open_session VAR: starts it; VAR_IN and VAR_OUT are the descriptors of its pipes.
TMP="$(mktemp -d)"
declare -a PIDS=()
open_session() {
  local var=$1 in out
  mkfifo "${TMP}/${var}.in" "${TMP}/${var}.out"
  timeout -k 2 60 mariadb --no-defaults --skip-reconnect -h "${ADDR}" -P 3306 -u clustersql -p"${PW}" \
    --connect-timeout=5 --unbuffered -N -B <"${TMP}/${var}.in" >"${TMP}/${var}.out" 2>&1 &
  PIDS+=("$!")
  exec {in}>"${TMP}/${var}.in" {out}<"${TMP}/${var}.out"
  printf -v "${var}_IN" '%s' "${in}"
  printf -v "${var}_OUT" '%s' "${out}"
}
# ask VAR SQL: runs SQL (one result line) on session VAR; sets ANS (the line, or the error) and TOOK (ms)
ask() {
  local var=$1 sql=$2 in out s line=""
  in=${var}_IN; in=${!in}; out=${var}_OUT; out=${!out}
  s=$(ms_now)
  if ! { printf '%s;\n' "${sql}" >&"${in}"; } 2>/dev/null; then
    ANS="(session gone: write failed)"
  elif IFS= read -r -t 10 line <&"${out}"; then
    ANS=${line}
    if [[ ${line} != [0-9]* ]]; then
      # an error comes as several lines (the client frames the statement in dashes): keep them all
      while IFS= read -r -t 1 line <&"${out}"; do ANS+=" ${line}"; done
    fi
  else
    ANS="(no answer: ${line:-session closed or timed out})"
  fi
  TOOK=$(($(ms_now) - s))
}
# whoami VAR: CONNECTION_ID and the client address the server sees for this session (IP:port)
WHO_SQL="SELECT CONCAT(CONNECTION_ID(), ' ', HOST) FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"

# client SQL: one fresh TCP connection; sets RC, OUT, TOOK (ms)
client() {
  local s
  s=$(ms_now)
  OUT=$(timeout -k 2 20 mariadb --no-defaults -h "${ADDR}" -P 3306 -u clustersql -p"${PW}" \
    --connect-timeout=5 -N -B -e "$1" 2>&1)
  RC=$?
  TOOK=$(($(ms_now) - s))
}

slowed=0
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "${p}" 2>/dev/null || true; done
  if ((slowed)); then "${C}" unslow "${N}" >/dev/null 2>&1 || true; fi
  rm -rf "${TMP}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap '' PIPE  # a session that died must fail its next write, not kill this script

echo "  slow self-test on galera${N} (${ADDR}:3306), ${MS} ms per chunk each way"
client "SELECT 1"
echo "       new connection before slow: rc=${RC} ${TOOK} ms"
check "node answers before slow" test "${RC}" = 0

open_session A
ask A "${WHO_SQL}"
before=${ANS}
echo "       session A before slow: '${before}' (${TOOK} ms)"
check "session A opened (direct, not through the proxy)" bash -c "[[ '${before}' =~ ^[0-9]+\ 127\.0\.0\.1: ]]"

echo "  \$ cluster.sh slow ${N} ${MS}"
slowed=1
"${C}" slow "${N}" "${MS}" || bad "slow ${N} ${MS} failed"

ask A "${WHO_SQL}"
after=${ANS}
echo "       session A after slow: '${after}' (${TOOK} ms)"
check "session A survives slow: same connection, no reset" test "${after}" = "${before}"
ask A "SELECT 1"
echo "       session A SELECT 1 after slow: '${ANS}' ${TOOK} ms"
check "session A is not delayed (${TOOK} ms < ${MS} ms)" bash -c "[[ '${ANS}' == 1 ]] && (( ${TOOK} < ${MS} ))"

client "SELECT 1"
echo "       new connection while slowed: rc=${RC} ${TOOK} ms"
check "a new connection pays the delay (${TOOK} ms >= 4 x ${MS} ms; a login and a query cross the proxy 5 times)" \
  bash -c "(( ${RC} == 0 && ${TOOK} >= 4 * ${MS} ))"

open_session B
ask B "${WHO_SQL}"
viaproxy=${ANS}
echo "       session B opened while slowed: '${viaproxy}' (${TOOK} ms)"
check "session B goes through the proxy (the server sees ${PROXY})" bash -c "[[ '${viaproxy}' =~ ^[0-9]+\ ${PROXY//./\\.}: ]]"
ask B "SELECT 1"
echo "       session B SELECT 1: '${ANS}' ${TOOK} ms"
check "session B is delayed (${TOOK} ms >= 2 x ${MS} ms)" bash -c "[[ '${ANS}' == 1 ]] && (( ${TOOK} >= 2 * ${MS} ))"

echo "  \$ cluster.sh unslow ${N}"
"${C}" unslow "${N}" || bad "unslow ${N} failed"
slowed=0

ask A "${WHO_SQL}"
echo "       session A after unslow: '${ANS}' (${TOOK} ms)"
check "session A survives unslow: same connection" test "${ANS}" = "${before}"
ask B "SELECT 1"
echo "       session B after unslow: '${ANS}' (${TOOK} ms)"
check "unslow cuts session B, which went through the proxy" bash -c "[[ '${ANS}' != 1 ]]"

client "SELECT 1"
echo "       new connection after unslow: rc=${RC} ${TOOK} ms"
check "a new connection is fast again (${TOOK} ms < ${MS} ms)" bash -c "(( ${RC} == 0 && ${TOOK} < ${MS} ))"
client "${WHO_SQL}"
check "a new connection goes straight to the server again ('${OUT}')" bash -c "[[ '${OUT}' =~ ^[0-9]+\ 127\.0\.0\.1: ]]"

echo "${pass} passed, ${fail} failed"
[[ ${fail} == 0 ]]

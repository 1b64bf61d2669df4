#!/usr/bin/env bash
# ClusterSql MariaDB Galera test cluster: three nodes on loopback, plus loopback-only fault injection.
# Usage: tests/cluster/cluster.sh COMMAND [ARGS]   (run as root; see README.md beside this file)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATH="/usr/sbin:/sbin:/usr/bin:/bin:${PATH}"

DIR="${CLUSTERSQL_CLUSTER_DIR:-/var/tmp/clustersql-cluster}"
PASSWORD="${CLUSTERSQL_PASSWORD:-Cs-test-pw-7f3a}"
WAIT_TIMEOUT="${CLUSTERSQL_WAIT_TIMEOUT:-120}"
APP_USER=clustersql
APP_DB='test'
PORT=3306              # client port, the same on every node (MySqlConnector multi-host takes one Port)
GCOMM_PORT=4567        # Galera group communication, on the node's group address
IST_PORT=4568
SST_PORT=4444
PROVIDER=/usr/lib/galera/libgalera_smm.so
MARIADBD=/usr/sbin/mariadbd
PERL=/usr/bin/perl
CHAIN=CLUSTERSQL       # filter table, jumped to from INPUT
NAT_CHAIN=CLUSTERSQL-NAT  # nat table, jumped to from OUTPUT
NODES=(1 2 3)
PACKAGES=(mariadb-server mariadb-client galera-4 rsync iptables iproute2 procps util-linux perl)
MARKER=.clustersql-cluster
EVS_OPTS="evs.suspect_timeout=PT1.5S;evs.inactive_timeout=PT3S;evs.install_timeout=PT3S;evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S"

# ---------------------------------------------------------------- helpers

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { printf 'cluster.sh: error: %s\n' "$*" >&2; exit 1; }

require_root() { [[ ${EUID} -eq 0 ]] || die "must run as root"; }
require_installed() {
  [[ -x ${MARIADBD} && -f ${PROVIDER} ]] || die "MariaDB/Galera not installed: run '$0 install' first"
  command -v mariadb >/dev/null || die "mariadb client missing: run '$0 install' first"
}

# node NAME|NUMBER -> 1..3
node_num() {
  case "${1:-}" in
    1|galera1|node1) echo 1 ;;
    2|galera2|node2) echo 2 ;;
    3|galera3|node3) echo 3 ;;
    *) die "unknown node '${1:-}' (use 1, 2, 3 or galera1, galera2, galera3)" ;;
  esac
}
name() { echo "galera$1"; }
client_addr() { echo "127.0.0.2$1"; }
group_addr() { echo "127.0.0.1$1"; }
proxy_addr() { echo "127.0.0.3$1"; }
cnf_of() { echo "${DIR}/galera$1.cnf"; }
data_of() { echo "${DIR}/galera$1"; }
sock_of() { echo "${DIR}/galera$1.sock"; }
pidf_of() { echo "${DIR}/galera$1.pid"; }
err_of() { echo "${DIR}/galera$1.err"; }
proxy_pidf_of() { echo "${DIR}/proxy-galera$1.pid"; }
proxy_log_of() { echo "${DIR}/proxy-galera$1.log"; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# pid of node N's mariadbd if that process is alive, else return 1
node_pid() {
  local pidf pid
  pidf="$(pidf_of "$1")"
  [[ -s ${pidf} ]] || return 1
  pid="$(<"${pidf}")"
  [[ ${pid} =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/${pid}/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF -- "--defaults-file=$(cnf_of "$1")" || return 1
  echo "${pid}"
}
# running | hung (SIGSTOP) | down
proc_state() {
  local pid st
  pid="$(node_pid "$1")" || { echo down; return 0; }
  st="$(awk '{ print $3 }' "/proc/${pid}/stat" 2>/dev/null || echo X)"
  case "${st}" in
    T|t) echo hung ;;
    Z|X) echo down ;;
    *) echo running ;;
  esac
}

# q N "SQL": run SQL as root over node N's unix socket (bounded by CLUSTERSQL_SQL_TIMEOUT or $QT)
q() {
  local n=$1; shift
  timeout -k 2 "${QT:-${CLUSTERSQL_SQL_TIMEOUT:-60}}" \
    mariadb --no-defaults --protocol=socket --socket="$(sock_of "${n}")" -uroot \
      --connect-timeout=3 --batch --skip-column-names -e "$*"
}

# wsrep N -> "state cluster_status ready size threads conf_id last_committed" (spaces in values -> _)
wsrep() {
  local out
  out="$(QT=${QT:-4} q "$1" "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state_comment',
    'wsrep_cluster_status','wsrep_ready','wsrep_cluster_size','Threads_connected','wsrep_cluster_conf_id',
    'wsrep_last_committed')" 2>/dev/null)" || return 1
  awk -F'\t' '{ k = tolower($1); v = $2; gsub(/ /, "_", v); if (v == "") v = "-"; s[k] = v }
    END { d = "-"
      printf "%s %s %s %s %s %s %s\n",
        ("wsrep_local_state_comment" in s ? s["wsrep_local_state_comment"] : d),
        ("wsrep_cluster_status" in s ? s["wsrep_cluster_status"] : d),
        ("wsrep_ready" in s ? s["wsrep_ready"] : d),
        ("wsrep_cluster_size" in s ? s["wsrep_cluster_size"] : d),
        ("threads_connected" in s ? s["threads_connected"] : d),
        ("wsrep_cluster_conf_id" in s ? s["wsrep_cluster_conf_id"] : d),
        ("wsrep_last_committed" in s ? s["wsrep_last_committed"] : d) }' <<<"${out}"
}

# node_ok N: running, Synced, Primary, ready (any cluster size)
node_ok() {
  local st cs rd sz th cid lc
  [[ $(proc_state "$1") == running ]] || return 1
  read -r st cs rd sz th cid lc < <(wsrep "$1") || return 1
  [[ ${st} == Synced && ${cs} == Primary && ${rd} == ON ]]
}

# all_healthy: every node running, Synced, Primary, ready, size 3, and all in the same configuration
all_healthy() {
  local n st cs rd sz th cid lc conf=""
  for n in "${NODES[@]}"; do
    [[ $(proc_state "${n}") == running ]] || return 1
    read -r st cs rd sz th cid lc < <(wsrep "${n}") || return 1
    [[ ${st} == Synced && ${cs} == Primary && ${rd} == ON && ${sz} == 3 ]] || return 1
    [[ -z ${conf} || ${conf} == "${cid}" ]] || return 1
    conf=${cid}
  done
}

# node_joined N: node N is Synced/Primary/ready and in the same configuration (same conf id and size)
# as at least one other running node, so a stale view of a resumed node does not count.
node_joined() {
  local n=$1 m st cs rd sz th cid lc cs2 sz2 cid2
  [[ $(proc_state "${n}") == running ]] || return 1
  read -r st cs rd sz th cid lc < <(wsrep "${n}") || return 1
  [[ ${st} == Synced && ${cs} == Primary && ${rd} == ON ]] || return 1
  for m in "${NODES[@]}"; do
    [[ ${m} != "${n}" && $(proc_state "${m}") == running ]] || continue
    read -r _ cs2 _ sz2 _ cid2 _ < <(wsrep "${m}") || continue
    [[ ${cs2} == Primary && ${cid2} == "${cid}" && ${sz2} == "${sz}" ]] && return 0
  done
  [[ ${sz} == 1 ]]  # alone in the cluster (nobody else running)
}

logs_tail() {
  local n
  for n in "${NODES[@]}"; do
    [[ -f $(err_of "${n}") ]] || continue
    printf -- '----- last lines of %s -----\n' "$(err_of "${n}")" >&2
    tail -n "${1:-25}" "$(err_of "${n}")" >&2 || true
  done
}

# wait_for TIMEOUT "what" CMD...: poll CMD every 0.5 s; on timeout print error + log tails, return 1
wait_for() {
  local timeout=$1 what=$2; shift 2
  local start=${SECONDS}
  until "$@"; do
    if (( SECONDS - start >= timeout )); then
      log "timed out after ${timeout} s waiting for: ${what}"
      status_table >&2 || true
      logs_tail 12
      return 1
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------- iptables (own chains only)

ipt() { iptables -w 10 "$@"; }
have_ipt() { command -v iptables >/dev/null; }

ensure_chains() {
  have_ipt || die "iptables missing: run '$0 install'"
  ipt -t filter -S "${CHAIN}" >/dev/null 2>&1 || ipt -t filter -N "${CHAIN}"
  ipt -t filter -C INPUT -j "${CHAIN}" 2>/dev/null || ipt -t filter -I INPUT 1 -j "${CHAIN}"
  ipt -t nat -S "${NAT_CHAIN}" >/dev/null 2>&1 || ipt -t nat -N "${NAT_CHAIN}"
  ipt -t nat -C OUTPUT -j "${NAT_CHAIN}" 2>/dev/null || ipt -t nat -I OUTPUT 1 -j "${NAT_CHAIN}"
}
# rule_add TABLE CHAIN SPEC...  (idempotent)
rule_add() {
  local t=$1 c=$2; shift 2
  ipt -t "${t}" -C "${c}" "$@" 2>/dev/null || ipt -t "${t}" -A "${c}" "$@"
}
# rule_del TABLE CHAIN SPEC...  (idempotent)
rule_del() {
  local t=$1 c=$2; shift 2
  have_ipt || return 0
  ipt -t "${t}" -S "${c}" >/dev/null 2>&1 || return 0
  while ipt -t "${t}" -C "${c}" "$@" 2>/dev/null; do ipt -t "${t}" -D "${c}" "$@"; done
}
# rule_del_tagged TABLE CHAIN COMMENT: delete every rule of CHAIN carrying COMMENT, whatever its spec (a rule
# written by an older version of this script included)
rule_del_tagged() {
  local t=$1 c=$2 tag=$3 line spec
  have_ipt || return 0
  ipt -t "${t}" -S "${c}" >/dev/null 2>&1 || return 0
  while line="$(ipt -t "${t}" -S "${c}" | grep -m 1 -e "--comment ${tag}\( \|$\)")"; do
    read -ra spec <<<"${line#-A "${c}" }"
    ipt -t "${t}" -D "${c}" "${spec[@]}"
  done
}
remove_chains() {
  have_ipt || return 0
  local t c parent
  for t in filter nat; do
    if [[ ${t} == filter ]]; then c=${CHAIN}; parent=INPUT; else c=${NAT_CHAIN}; parent=OUTPUT; fi
    while ipt -t "${t}" -C "${parent}" -j "${c}" 2>/dev/null; do ipt -t "${t}" -D "${parent}" -j "${c}"; done
    if ipt -t "${t}" -S "${c}" >/dev/null 2>&1; then
      ipt -t "${t}" -F "${c}"
      ipt -t "${t}" -X "${c}"
    fi
  done
}
# our rule specs
spec_blackhole() { echo "-i lo -p tcp -d $(client_addr "$1")/32 --dport ${PORT} -m comment --comment clustersql-blackhole-galera$1 -j DROP"; }
spec_reject() { echo "-i lo -p tcp -d $(client_addr "$1")/32 --dport ${PORT} -m comment --comment clustersql-reject-galera$1 -j REJECT --reject-with tcp-reset"; }
spec_part_src() { echo "-i lo -s $(group_addr "$1")/32 -m comment --comment clustersql-partition-galera$1 -j DROP"; }
spec_part_dst() { echo "-i lo -d $(group_addr "$1")/32 -m comment --comment clustersql-partition-galera$1 -j DROP"; }
# slow: only a connection's first SYN may be translated. Conntrack runs in this network namespace only while some
# rule needs it (here: this DNAT rule), so connections opened before `slow` are untracked when it is added; their
# next packet is then picked up mid-stream as a NEW conntrack entry and goes through the nat table. Without --syn
# it was sent to the proxy, which answered with a reset (measured). With --syn it matches nothing, the entry gets
# no translation, and the established connection goes on straight to the server.
spec_slow() { echo "-o lo -p tcp --syn -d $(client_addr "$1")/32 --dport ${PORT} ! -s $(proxy_addr "$1")/32 -m comment --comment clustersql-slow-galera$1 -j DNAT --to-destination $(proxy_addr "$1"):${PORT}"; }

# faults_of N -> space separated list of active faults (from our chains, process state, proxies)
faults_of() {
  local n=$1 f=() rules="" ps
  if have_ipt; then
    rules="$(ipt -t filter -S "${CHAIN}" 2>/dev/null; ipt -t nat -S "${NAT_CHAIN}" 2>/dev/null)" || true
  fi
  grep -q "clustersql-blackhole-galera${n} " <<<"${rules}" && f+=(blackhole)
  grep -q "clustersql-reject-galera${n} " <<<"${rules}" && f+=(reject)
  grep -q "clustersql-partition-galera${n} " <<<"${rules}" && f+=(partition)
  if grep -q "clustersql-slow-galera${n} " <<<"${rules}" || proxy_pid "${n}" >/dev/null; then
    f+=("slow($(cat "$(proxy_pidf_of "${n}").ms" 2>/dev/null || echo '?')ms)")
  fi
  ps="$(proc_state "${n}")"
  [[ ${ps} == hung ]] && f+=(hang)
  [[ ${ps} == down && -d $(data_of "${n}") ]] && f+=(down)
  echo "${f[*]:-}"
}

# ---------------------------------------------------------------- delay proxy

proxy_pid() {
  local pidf pid
  pidf="$(proxy_pidf_of "$1")"
  [[ -s ${pidf} ]] || return 1
  pid="$(<"${pidf}")"
  [[ ${pid} =~ ^[0-9]+$ && -r /proc/${pid}/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF "delay-proxy.pl $(proxy_addr "$1"):${PORT}" || return 1
  echo "${pid}"
}
proxy_listening() { ss -Hltn "src $(proxy_addr "$1"):${PORT}" 2>/dev/null | grep -q LISTEN; }
stop_proxy() {
  local n=$1 pid i
  if pid="$(proxy_pid "${n}")"; then
    # the proxy runs in its own session: signal its process group (itself and its per-connection children)
    kill -TERM -- "-${pid}" 2>/dev/null || kill -TERM "${pid}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do proxy_pid "${n}" >/dev/null || break; sleep 0.1; done
    if proxy_pid "${n}" >/dev/null; then kill -KILL -- "-${pid}" 2>/dev/null || kill -KILL "${pid}" 2>/dev/null || true; fi
  fi
  rm -f "$(proxy_pidf_of "${n}")" "$(proxy_pidf_of "${n}").ms"
}

# ---------------------------------------------------------------- node lifecycle

write_configs() {
  local n
  for n in "${NODES[@]}"; do
    cat >"$(cnf_of "${n}").tmp" <<EOF
# Generated by tests/cluster/cluster.sh - ClusterSql Galera test node $(name "${n}")
[mysqld]
user=mysql
datadir=$(data_of "${n}")
socket=$(sock_of "${n}")
pid-file=${DIR}/galera${n}.server.pid
log-error=$(err_of "${n}")
bind-address=$(client_addr "${n}")
port=${PORT}
skip-name-resolve
performance_schema=OFF
max_connections=300
# Hang/blackhole faults make clients abort handshakes by nature; with the default (100) MariaDB would
# then block the client address ("Host ... is blocked because of many connection errors").
max_connect_errors=100000
default_storage_engine=InnoDB
binlog_format=ROW
# GTIDs that name a write the same on every node (causal reads wait for them with WSREP_SYNC_WAIT_UPTO_GTID): Galera's
# GTID mode wants the binary log, one server_id and one wsrep_gtid_domain_id across the cluster.
log_bin=galera-bin
log_slave_updates=ON
server_id=1
wsrep_gtid_mode=ON
wsrep_gtid_domain_id=1
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
innodb_flush_log_at_trx_commit=2
wsrep_on=ON
wsrep_provider=${PROVIDER}
wsrep_cluster_name=clustersql-test
wsrep_cluster_address=gcomm://$(group_addr 1):${GCOMM_PORT},$(group_addr 2):${GCOMM_PORT},$(group_addr 3):${GCOMM_PORT}
wsrep_node_name=$(name "${n}")
wsrep_node_address=$(group_addr "${n}")
wsrep_node_incoming_address=$(client_addr "${n}"):${PORT}
wsrep_sst_method=rsync
wsrep_sst_receive_address=$(group_addr "${n}"):${SST_PORT}
wsrep_provider_options="gmcast.listen_addr=tcp://$(group_addr "${n}"):${GCOMM_PORT};ist.recv_addr=$(group_addr "${n}"):${IST_PORT};${EVS_OPTS}"
EOF
    mv "$(cnf_of "${n}").tmp" "$(cnf_of "${n}")"
    chmod 644 "$(cnf_of "${n}")"
  done
}

prepare_dir() {
  [[ ${DIR} == /* && ${DIR} != / ]] || die "CLUSTERSQL_CLUSTER_DIR must be an absolute path other than /"
  if [[ -d ${DIR} && ! -e ${DIR}/${MARKER} ]] && [[ -n $(ls -A "${DIR}") ]]; then
    die "${DIR} exists, is not empty and was not made by this harness; choose another CLUSTERSQL_CLUSTER_DIR"
  fi
  mkdir -p "${DIR}"
  touch "${DIR}/${MARKER}"
  chown mysql:mysql "${DIR}"
  chmod 755 "${DIR}"
  write_configs
}

# start_node N [mariadbd args...]: start node N's mariadbd in its own session (no-op if running)
# detach PIDFILE CMD...: runs CMD in its own session, writing its pid to PIDFILE. bash writes its own pid, then execs
# CMD under that pid, so the pid file is right whatever setsid does. Every inherited descriptor above 2 is closed
# first: a long-lived server must not keep a caller's lock file (flock) or pipe open after the caller is gone.
detach() {
  # shellcheck disable=SC2016
  setsid -f /bin/bash -c 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; if [[ $fd -gt 2 ]]; then eval "exec $fd>&-" 2>/dev/null; fi; done; echo $$ >"$0"; exec "$@"' "$@"
}

start_node() {
  local n=$1; shift
  local i err
  if node_pid "${n}" >/dev/null; then return 0; fi
  err="$(err_of "${n}")"
  mkdir -p "$(data_of "${n}")"
  chown mysql:mysql "$(data_of "${n}")"
  touch "${err}"
  chown mysql:mysql "${err}"
  rm -f "$(pidf_of "${n}")"
  printf -- '----- %s cluster.sh starting %s %s -----\n' "$(date '+%F %T')" "$(name "${n}")" "$*" >>"${err}"
  detach "$(pidf_of "${n}")" "${MARIADBD}" --defaults-file="$(cnf_of "${n}")" "$@" </dev/null >>"${err}" 2>&1
  for ((i = 0; i < 50; i++)); do node_pid "${n}" >/dev/null && return 0; sleep 0.1; done
  logs_tail 20
  die "$(name "${n}") did not start (see $(err_of "${n}"))"
}

# grastate N KEY -> value from node N's grastate.dat (empty if none)
grastate() {
  local f
  f="$(data_of "$1")/grastate.dat"
  [[ -f ${f} ]] || return 0
  awk -v k="$2:" '$1 == k { print $2 }' "${f}"
}

# recover_position N -> "uuid:seqno" from mariadbd --wsrep-recover (empty if none); node must be down
recover_position() {
  local n=$1 rlog pos
  rlog="${DIR}/galera${n}.recover.log"
  rm -f "${rlog}"
  touch "${rlog}"
  chown mysql:mysql "${rlog}"
  if ! timeout -k 5 120 "${MARIADBD}" --defaults-file="$(cnf_of "${n}")" --wsrep-recover \
      --log-error="${rlog}" --pid-file="${DIR}/galera${n}.recover.pid" </dev/null >/dev/null 2>&1; then
    log "$(name "${n}"): --wsrep-recover failed (see ${rlog}); it will rejoin by full state transfer"
    return 0
  fi
  pos="$(grep 'WSREP: Recovered position:' "${rlog}" | tail -n 1 | sed 's/.*Recovered position: *//')"
  [[ ${pos} =~ ^[0-9a-f-]{36}:(-?[0-9]+)$ ]] || { echo ""; return 0; }
  [[ ${BASH_REMATCH[1]} == -1 ]] && { echo ""; return 0; }
  echo "${pos}"
}

# start_joiner N: start node N as a joiner; after a crash (seqno -1) recover the position first so
# it can rejoin by IST
start_joiner() {
  local n=$1 pos="" seqno
  seqno="$(grastate "${n}" seqno)"
  if [[ ${seqno} == -1 && -d $(data_of "${n}")/mysql ]]; then
    pos="$(recover_position "${n}")"
    [[ -n ${pos} ]] && log "$(name "${n}"): recovered position ${pos}"
  fi
  if [[ -n ${pos} ]]; then
    start_node "${n}" --wsrep-start-position="${pos}"
  else
    start_node "${n}"
  fi
}

stop_node() {
  local n=$1 pid i
  pid="$(node_pid "${n}")" || { rm -f "$(pidf_of "${n}")"; return 0; }
  kill -CONT "${pid}" 2>/dev/null || true
  timeout -k 2 30 mariadb-admin --no-defaults --protocol=socket --socket="$(sock_of "${n}")" -uroot \
    --connect-timeout=5 shutdown >/dev/null 2>&1 || true
  for ((i = 0; i < 300; i++)); do node_pid "${n}" >/dev/null || break; sleep 0.1; done
  if node_pid "${n}" >/dev/null; then
    log "$(name "${n}") did not stop within 30 s: SIGTERM"
    kill -TERM "${pid}" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do node_pid "${n}" >/dev/null || break; sleep 0.1; done
  fi
  if node_pid "${n}" >/dev/null; then
    log "$(name "${n}") still running: SIGKILL"
    kill -KILL "${pid}" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do node_pid "${n}" >/dev/null || break; sleep 0.1; done
  fi
  node_pid "${n}" >/dev/null && die "could not stop $(name "${n}") (pid ${pid})"
  rm -f "$(pidf_of "${n}")"
}

node_is_primary_alone() { node_ok "$1"; }

fresh_bootstrap() {
  local n
  log "fresh cluster: wiping node data and initialising $(name 1)"
  for n in "${NODES[@]}"; do rm -rf "$(data_of "${n}")"; done
  mkdir -p "$(data_of 1)"
  chown mysql:mysql "$(data_of 1)"
  if ! mariadb-install-db --defaults-file="$(cnf_of 1)" --user=mysql --skip-test-db \
      --auth-root-authentication-method=socket >"${DIR}/install-db.log" 2>&1; then
    tail -n 30 "${DIR}/install-db.log" >&2
    die "mariadb-install-db failed (see ${DIR}/install-db.log)"
  fi
  start_node 1 --wsrep-new-cluster
  wait_for "${WAIT_TIMEOUT}" "$(name 1) bootstrapped (Synced, Primary)" node_is_primary_alone 1
  start_node 2
  start_node 3
}

# restart_from_data: all nodes down, data dirs exist. Bootstrap the node with safe_to_bootstrap: 1,
# else the one with the highest (recovered) seqno; the others rejoin by IST (or SST).
restart_from_data() {
  local n best="" best_seq=-2 seq pos="" uuid="" u
  declare -A rpos=()
  for n in "${NODES[@]}"; do
    u="$(grastate "${n}" uuid)"
    [[ -z ${u} || ${u} == 00000000-0000-0000-0000-000000000000 ]] && continue
    if [[ -n ${uuid} && ${u} != "${uuid}" ]]; then
      log "nodes disagree on the cluster uuid: starting a fresh cluster"
      fresh_bootstrap
      return 0
    fi
    uuid=${u}
    if [[ $(grastate "${n}" safe_to_bootstrap) == 1 ]]; then best=${n}; break; fi
  done
  if [[ -z ${uuid} ]]; then
    fresh_bootstrap
    return 0
  fi
  if [[ -z ${best} ]]; then
    for n in "${NODES[@]}"; do
      [[ $(grastate "${n}" uuid) == "${uuid}" ]] || continue
      seq="$(grastate "${n}" seqno)"
      if [[ ${seq} == -1 ]]; then
        pos="$(recover_position "${n}")"
        rpos[${n}]=${pos}
        seq="${pos##*:}"
        [[ -n ${pos} ]] || seq=-1
      fi
      if (( seq > best_seq )); then best=${n}; best_seq=${seq}; fi
    done
    [[ -n ${best} ]] || { log "no usable node state: starting a fresh cluster"; fresh_bootstrap; return 0; }
    log "no node is marked safe_to_bootstrap: bootstrapping $(name "${best}") (seqno ${best_seq})"
    sed -i 's/^safe_to_bootstrap:.*/safe_to_bootstrap: 1/' "$(data_of "${best}")/grastate.dat"
  fi
  log "restarting from existing data: bootstrapping $(name "${best}")"
  if [[ -n ${rpos[${best}]:-} ]]; then
    start_node "${best}" --wsrep-new-cluster --wsrep-start-position="${rpos[${best}]}"
  else
    start_node "${best}" --wsrep-new-cluster
  fi
  wait_for "${WAIT_TIMEOUT}" "$(name "${best}") bootstrapped (Synced, Primary)" node_is_primary_alone "${best}"
  for n in "${NODES[@]}"; do
    [[ ${n} == "${best}" ]] && continue
    if [[ -n ${rpos[${n}]:-} ]]; then
      start_node "${n}" --wsrep-start-position="${rpos[${n}]}"
    else
      start_joiner "${n}"
    fi
  done
}

sql_quote() { local s=${1//\\/\\\\}; printf "'%s'" "${s//\'/\'\'}"; }

setup_users() {
  local pw
  pw="$(sql_quote "${PASSWORD}")"
  q 1 "CREATE DATABASE IF NOT EXISTS \`${APP_DB}\`;
    DROP USER IF EXISTS ''@'localhost';
    CREATE USER IF NOT EXISTS '${APP_USER}'@'%' IDENTIFIED BY ${pw};
    ALTER USER '${APP_USER}'@'%' IDENTIFIED BY ${pw};
    GRANT ALL PRIVILEGES ON \`${APP_DB}\`.* TO '${APP_USER}'@'%';
    GRANT PROCESS, REPLICATION CLIENT ON *.* TO '${APP_USER}'@'%';" \
    || die "could not create database ${APP_DB} / user ${APP_USER}"
}

write_env() {
  local hosts
  hosts="$(client_addr 1),$(client_addr 2),$(client_addr 3)"
  cat >"${DIR}/cluster.env" <<EOF
# ClusterSql Galera test cluster (written by tests/cluster/cluster.sh up). The password is not here:
# it is CLUSTERSQL_PASSWORD if set when 'up' ran, else the documented default (also in cluster.password).
CLUSTERSQL_CLUSTER_DIR=${DIR}
CLUSTERSQL_NODE1=$(client_addr 1)
CLUSTERSQL_NODE2=$(client_addr 2)
CLUSTERSQL_NODE3=$(client_addr 3)
CLUSTERSQL_HOSTS=${hosts}
CLUSTERSQL_PORT=${PORT}
CLUSTERSQL_USER=${APP_USER}
CLUSTERSQL_DATABASE=${APP_DB}
CLUSTERSQL_NODE1_SOCKET=$(sock_of 1)
CLUSTERSQL_NODE2_SOCKET=$(sock_of 2)
CLUSTERSQL_NODE3_SOCKET=$(sock_of 3)
EOF
  (umask 077; printf '%s\n' "${PASSWORD}" >"${DIR}/cluster.password")
  chmod 600 "${DIR}/cluster.password"
}

print_conn() {
  local n
  echo "Connection strings (MySqlConnector; add Password=\$CLUSTERSQL_PASSWORD):"
  for n in "${NODES[@]}"; do
    echo "  $(name "${n}"): Server=$(client_addr "${n}");Port=${PORT};User ID=${APP_USER};Database=${APP_DB}"
  done
  echo "  all:     Server=$(client_addr 1),$(client_addr 2),$(client_addr 3);Port=${PORT};User ID=${APP_USER};Database=${APP_DB}"
  echo "Env file: ${DIR}/cluster.env"
}

check_ports_free() {
  local n
  for n in "${NODES[@]}"; do
    node_pid "${n}" >/dev/null && continue
    if ss -Hltn "( sport = :${PORT} or sport = :${GCOMM_PORT} )" 2>/dev/null \
        | awk '{ print $4 }' | grep -qE "^(0\.0\.0\.0|\*|\[::\]|$(client_addr "${n}")|$(group_addr "${n}")):"; then
      ss -Hltnp "( sport = :${PORT} or sport = :${GCOMM_PORT} )" >&2 || true
      die "a port needed by $(name "${n}") is taken (listeners above); is another cluster (other CLUSTERSQL_CLUSTER_DIR) or server running?"
    fi
  done
}

# ---------------------------------------------------------------- commands

cmd_install() {
  require_root
  local p st missing=()
  for p in "${PACKAGES[@]}"; do
    st="$(dpkg-query -W -f='${db:Status-Status}' "${p}" 2>/dev/null || true)"
    [[ ${st} == installed ]] || missing+=("${p}")
  done
  if (( ${#missing[@]} == 0 )); then
    log "all packages already installed"
    return 0
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local aptopts=(-y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
    apt-get -q -o DPkg::Lock::Timeout=300 update
  fi
  if ! apt-get install "${aptopts[@]}" "${missing[@]}"; then
    log "install failed; refreshing package lists and retrying once"
    apt-get -q -o DPkg::Lock::Timeout=300 update
    apt-get install "${aptopts[@]}" "${missing[@]}"
  fi
  require_installed
  log "installed"
}

cmd_up() {
  require_root
  require_installed
  local start n any=0
  start="$(now)"
  if [[ ${1:-} == --fresh ]]; then CLUSTERSQL_FRESH=1; fi
  if [[ ${CLUSTERSQL_FRESH:-0} != 1 ]] && all_healthy && [[ -z $(all_faults) ]]; then
    log "cluster already up and healthy"
    prepare_dir
    write_env
    print_conn
    return 0
  fi
  for n in "${NODES[@]}"; do node_pid "${n}" >/dev/null && any=1; done
  if [[ ${CLUSTERSQL_FRESH:-0} == 1 ]]; then
    if (( any )); then cmd_down; fi
    check_ports_free
    prepare_dir
    fresh_bootstrap
  elif (( any )); then
    log "some nodes are running: healing the cluster"
    prepare_dir
    heal_all_inner
  else
    check_ports_free
    prepare_dir
    if [[ -d $(data_of 1)/mysql || -d $(data_of 2)/mysql || -d $(data_of 3)/mysql ]]; then
      restart_from_data
    else
      fresh_bootstrap
    fi
  fi
  wait_for "${WAIT_TIMEOUT}" "all 3 nodes Synced, Primary, ready, cluster size 3" all_healthy
  setup_users
  write_env
  log "cluster up and healthy in $(elapsed "${start}") s"
  print_conn
}

all_faults() {
  local n f out=""
  for n in "${NODES[@]}"; do
    f="$(faults_of "${n}")"
    [[ -n ${f} ]] && out+="$(name "${n}"):${f// /,} "
  done
  echo "${out% }"
}

cmd_down() {
  require_root
  local n purge=0
  if [[ ${1:-} == --purge ]]; then purge=1; elif [[ -n ${1:-} ]]; then die "down: unknown option $1"; fi
  for n in "${NODES[@]}"; do
    local pid
    if pid="$(node_pid "${n}")"; then kill -CONT "${pid}" 2>/dev/null || true; fi
    stop_proxy "${n}"
  done
  remove_chains
  # Stop the nodes one by one so the last one (galera1) is marked safe_to_bootstrap.
  for n in 3 2 1; do stop_node "${n}"; done
  if (( purge )); then
    if [[ -d ${DIR} ]]; then
      [[ ${DIR} == /* && ${DIR} != / && -e ${DIR}/${MARKER} ]] \
        || die "refusing to purge ${DIR}: not made by this harness"
      rm -rf "${DIR}"
    fi
    log "cluster down, data removed (${DIR})"
  else
    log "cluster down (data kept in ${DIR})"
  fi
}

status_table() {
  local n ps pid st cs rd sz th cid lc
  printf '%-8s %-16s %-8s %-8s %-16s %-12s %-5s %-4s %-7s %s\n' \
    NODE CLIENT PID PROCESS STATE CLUSTER READY SIZE THREADS FAULTS
  for n in "${NODES[@]}"; do
    ps="$(proc_state "${n}")"
    pid="$(node_pid "${n}" || echo -)"
    st=- cs=- rd=- sz=- th=-
    if [[ ${ps} == running ]]; then
      read -r st cs rd sz th cid lc < <(QT=3 wsrep "${n}" || echo "no-answer - - - - - -")
    fi
    printf '%-8s %-16s %-8s %-8s %-16s %-12s %-5s %-4s %-7s %s\n' "$(name "${n}")" \
      "$(client_addr "${n}"):${PORT}" "${pid}" "${ps}" "${st}" "${cs}" "${rd}" "${sz}" "${th}" \
      "$(faults_of "${n}" | sed 's/^$/-/')"
  done
}

cmd_status() {
  status_table
  if ! all_healthy; then
    echo "status: NOT healthy"
    return 1
  fi
  local f
  f="$(all_faults)"
  if [[ -n ${f} ]]; then
    echo "status: Galera healthy, but faults are active: ${f}"
    return 2
  fi
  echo "status: healthy"
}

cmd_wait_healthy() {
  local t=${1:-${WAIT_TIMEOUT}} start
  [[ ${t} =~ ^[0-9]+$ ]] || die "wait-healthy: timeout must be whole seconds"
  start="$(now)"
  wait_for "${t}" "all 3 nodes Synced, Primary, ready, cluster size 3" all_healthy \
    || die "cluster not healthy within ${t} s"
  log "healthy after $(elapsed "${start}") s"
}

cmd_sql() {
  local n stmt
  n="$(node_num "${1:-}")"
  stmt="${2:-}"
  [[ -n ${stmt} ]] || die "usage: sql NODE \"STATEMENT\" (or - to read stdin)"
  [[ ${stmt} == - ]] && stmt="$(cat)"
  q "${n}" "${stmt}"
}

cmd_crash() {
  local n pid i
  n="$(node_num "${1:-}")"
  pid="$(node_pid "${n}")" || { log "$(name "${n}") is not running (already crashed/down)"; return 0; }
  kill -KILL "${pid}"
  for ((i = 0; i < 100; i++)); do node_pid "${n}" >/dev/null || break; sleep 0.1; done
  node_pid "${n}" >/dev/null && die "$(name "${n}") (pid ${pid}) survived SIGKILL"
  log "$(name "${n}") crashed (SIGKILL pid ${pid}); its client port now refuses connections"
}

cmd_restart() {
  local n start ps
  n="$(node_num "${1:-}")"
  require_installed
  ps="$(proc_state "${n}")"
  [[ ${ps} == hung ]] && die "$(name "${n}") is hung (SIGSTOP): use 'resume $(name "${n}")'"
  [[ -f $(cnf_of "${n}") ]] || die "no cluster in ${DIR}: run 'up'"
  start="$(now)"
  if [[ ${ps} == down ]]; then
    local m others=0
    for m in "${NODES[@]}"; do [[ ${m} != "${n}" ]] && node_pid "${m}" >/dev/null && others=1; done
    (( others )) || die "no other node is running: use 'up' to start the cluster"
    start_joiner "${n}"
  fi
  wait_for "${WAIT_TIMEOUT}" "$(name "${n}") Synced and joined" node_joined "${n}" \
    || die "$(name "${n}") did not rejoin within ${WAIT_TIMEOUT} s"
  log "$(name "${n}") Synced and joined after $(elapsed "${start}") s"
}

# stop NODE: a clean shutdown, as an operator stops a node for maintenance (SIGTERM: the server ends its sessions, leaves
# the group with a goodbye, so the others do not wait for an eviction timeout). start NODE: back, Synced (IST).
cmd_stop() {
  local n pid i
  n="$(node_num "${1:-}")"
  pid="$(node_pid "${n}")" || { log "$(name "${n}") is not running (already down)"; return 0; }
  [[ $(proc_state "${n}") == hung ]] && die "$(name "${n}") is hung (SIGSTOP): use 'resume $(name "${n}")' first"
  kill -TERM "${pid}"
  for ((i = 0; i < WAIT_TIMEOUT * 10; i++)); do node_pid "${n}" >/dev/null || break; sleep 0.1; done
  node_pid "${n}" >/dev/null && die "$(name "${n}") (pid ${pid}) did not shut down within ${WAIT_TIMEOUT} s"
  log "$(name "${n}") shut down cleanly (SIGTERM pid ${pid}) after $((i / 10)).$((i % 10)) s"
}

cmd_start() { cmd_restart "$@"; }

cmd_hang() {
  local n pid
  n="$(node_num "${1:-}")"
  pid="$(node_pid "${n}")" || die "$(name "${n}") is not running"
  kill -STOP "${pid}"
  log "$(name "${n}") hung (SIGSTOP pid ${pid}): TCP connects complete but no greeting comes"
}

cmd_resume() {
  local n pid
  n="$(node_num "${1:-}")"
  pid="$(node_pid "${n}")" || { log "$(name "${n}") is not running; nothing to resume"; return 0; }
  kill -CONT "${pid}"
  log "$(name "${n}") resumed (SIGCONT pid ${pid}); use wait-healthy to wait for it to rejoin"
}

cmd_blackhole() {
  local n; n="$(node_num "${1:-}")"
  ensure_chains
  # shellcheck disable=SC2046
  rule_add filter "${CHAIN}" $(spec_blackhole "${n}")
  log "$(name "${n}"): inbound TCP to $(client_addr "${n}"):${PORT} is dropped (connects hang)"
}

cmd_reject() {
  local n; n="$(node_num "${1:-}")"
  ensure_chains
  # shellcheck disable=SC2046
  rule_add filter "${CHAIN}" $(spec_reject "${n}")
  log "$(name "${n}"): inbound TCP to $(client_addr "${n}"):${PORT} is reset (connects refused)"
}

cmd_restore() {
  local n; n="$(node_num "${1:-}")"
  # shellcheck disable=SC2046
  rule_del filter "${CHAIN}" $(spec_blackhole "${n}")
  # shellcheck disable=SC2046
  rule_del filter "${CHAIN}" $(spec_reject "${n}")
  log "$(name "${n}"): client port restored"
}

others_size() { # others_size N SIZE: every running node other than N sees a cluster of at most SIZE
  local n=$1 want=$2 m sz
  for m in "${NODES[@]}"; do
    [[ ${m} == "${n}" || $(proc_state "${m}") != running ]] && continue
    read -r _ _ _ sz _ < <(wsrep "${m}") || return 1
    [[ ${sz} =~ ^[0-9]+$ ]] && (( sz <= want )) || return 1
  done
}
not_primary() {
  local st cs rd sz th cid lc
  read -r st cs rd sz th cid lc < <(wsrep "$1") || return 1
  [[ ${cs} != Primary ]]
}

cmd_partition() {
  local n start t1 before st cs rd sz th cid lc
  n="$(node_num "${1:-}")"
  [[ $(proc_state "${n}") == running ]] || die "$(name "${n}") is not running"
  ensure_chains
  if [[ $(faults_of "${n}") == *partition* ]]; then log "$(name "${n}") already partitioned"; return 0; fi
  read -r st cs rd sz th cid lc < <(wsrep "${n}") || die "$(name "${n}") does not answer"
  before=${sz}
  start="$(now)"
  # shellcheck disable=SC2046
  rule_add filter "${CHAIN}" $(spec_part_src "${n}")
  # shellcheck disable=SC2046
  rule_add filter "${CHAIN}" $(spec_part_dst "${n}")
  wait_for 30 "$(name "${n}") non-Primary after partition" not_primary "${n}" \
    || die "$(name "${n}") still Primary 30 s after the partition"
  t1="$(elapsed "${start}")"
  wait_for 30 "the other nodes to evict $(name "${n}")" others_size "${n}" "$((before - 1))" \
    || die "the other nodes did not evict $(name "${n}") within 30 s"
  log "$(name "${n}") partitioned from the group: non-Primary after ${t1} s, evicted by the others after $(elapsed "${start}") s; its client port still answers"
}

cmd_heal() {
  local n start
  n="$(node_num "${1:-}")"
  start="$(now)"
  # shellcheck disable=SC2046
  rule_del filter "${CHAIN}" $(spec_part_src "${n}")
  # shellcheck disable=SC2046
  rule_del filter "${CHAIN}" $(spec_part_dst "${n}")
  if [[ $(proc_state "${n}") != running ]]; then
    log "$(name "${n}"): partition removed (node not running, not waiting)"
    return 0
  fi
  wait_for "${WAIT_TIMEOUT}" "$(name "${n}") Synced/Primary again after heal" node_joined "${n}" \
    || die "$(name "${n}") did not rejoin within ${WAIT_TIMEOUT} s"
  log "$(name "${n}") healed: Synced and Primary again after $(elapsed "${start}") s"
}

# slow_rule N: exactly one slow rule for node N, the current spec (one left by an older version is replaced)
slow_rule() {
  # shellcheck disable=SC2046
  ipt -t nat -C "${NAT_CHAIN}" $(spec_slow "$1") 2>/dev/null && return 0
  rule_del_tagged nat "${NAT_CHAIN}" "clustersql-slow-galera$1"
  # shellcheck disable=SC2046
  ipt -t nat -A "${NAT_CHAIN}" $(spec_slow "$1")
}

cmd_slow() {
  local n ms pid i
  n="$(node_num "${1:-}")"
  ms="${2:-50}"
  [[ ${ms} =~ ^[0-9]+$ ]] || die "slow: delay must be whole milliseconds"
  ensure_chains
  if pid="$(proxy_pid "${n}")" && [[ $(cat "$(proxy_pidf_of "${n}").ms" 2>/dev/null) == "${ms}" ]]; then
    slow_rule "${n}"
    log "$(name "${n}") already slowed by ${ms} ms"
    return 0
  fi
  stop_proxy "${n}"
  touch "$(proxy_log_of "${n}")"
  detach "$(proxy_pidf_of "${n}")" \
    "${PERL}" "${HERE}/delay-proxy.pl" "$(proxy_addr "${n}"):${PORT}" "$(client_addr "${n}"):${PORT}" \
    "$(proxy_addr "${n}")" "${ms}" </dev/null >>"$(proxy_log_of "${n}")" 2>&1
  echo "${ms}" >"$(proxy_pidf_of "${n}").ms"
  for ((i = 0; i < 100; i++)); do proxy_listening "${n}" && break; sleep 0.05; done
  proxy_listening "${n}" || { tail -n 5 "$(proxy_log_of "${n}")" >&2; stop_proxy "${n}"; die "delay proxy for $(name "${n}") did not start"; }
  slow_rule "${n}"
  log "$(name "${n}"): new connections to $(client_addr "${n}"):${PORT} go through a proxy adding ${ms} ms per chunk each way; established ones stay direct"
}

cmd_unslow() {
  local n; n="$(node_num "${1:-}")"
  rule_del_tagged nat "${NAT_CHAIN}" "clustersql-slow-galera${n}"
  # Stopping the proxy closes every connection that went through it (the client's next statement fails with
  # "Lost connection"); connections made before or after the fault are direct and not touched.
  stop_proxy "${n}"
  log "$(name "${n}"): not slowed (connections made through the proxy are closed)"
}

# heal_all_inner: remove every fault, bring the Primary component back, restart dead nodes
heal_all_inner() {
  local n pid alive=() best="" best_lc=-1 st cs rd sz th cid lc
  for n in "${NODES[@]}"; do
    if pid="$(node_pid "${n}")"; then kill -CONT "${pid}" 2>/dev/null || true; alive+=("${n}"); fi
    stop_proxy "${n}"
  done
  if have_ipt; then
    ipt -t filter -S "${CHAIN}" >/dev/null 2>&1 && ipt -t filter -F "${CHAIN}"
    ipt -t nat -S "${NAT_CHAIN}" >/dev/null 2>&1 && ipt -t nat -F "${NAT_CHAIN}"
  fi
  (( ${#alive[@]} > 0 )) || die "no node is running: use 'up'"
  any_primary() {
    local m s2
    for m in "${alive[@]}"; do
      read -r _ s2 _ < <(wsrep "${m}") || continue
      [[ ${s2} == Primary ]] && return 0
    done
    return 1
  }
  # a lone survivor cannot regain Primary by itself; several may re-form it once faults are gone
  local grace=10
  (( ${#alive[@]} > 1 )) || grace=2
  if ! wait_for "${grace}" "a Primary component" any_primary 2>/dev/null; then
    for n in "${alive[@]}"; do
      read -r st cs rd sz th cid lc < <(wsrep "${n}") || continue
      if [[ ${lc} =~ ^[0-9]+$ ]] && (( lc > best_lc )); then best=${n}; best_lc=${lc}; fi
    done
    [[ -n ${best} ]] || die "no running node answers; use 'down' then 'up'"
    log "no Primary component left: re-bootstrapping it on $(name "${best}") (pc.bootstrap)"
    q "${best}" "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'" || die "pc.bootstrap failed"
    wait_for 30 "$(name "${best}") Primary" node_ok "${best}" || die "$(name "${best}") not Primary after pc.bootstrap"
  fi
  for n in "${NODES[@]}"; do
    [[ $(proc_state "${n}") == down ]] || continue
    log "restarting $(name "${n}")"
    start_joiner "${n}"
    wait_for "${WAIT_TIMEOUT}" "$(name "${n}") Synced and joined" node_joined "${n}" \
      || die "$(name "${n}") did not rejoin"
  done
}

cmd_heal_all() {
  require_installed
  local start
  start="$(now)"
  heal_all_inner
  wait_for "${WAIT_TIMEOUT}" "all 3 nodes Synced, Primary, ready, cluster size 3" all_healthy \
    || die "cluster not healthy after heal-all"
  log "all faults removed; cluster healthy after $(elapsed "${start}") s"
}

usage() {
  cat <<EOF
Usage: $0 COMMAND [ARGS]          (as root; base dir \$CLUSTERSQL_CLUSTER_DIR, default /var/tmp/clustersql-cluster)
  install                 apt-install MariaDB, Galera 4, rsync, iptables, perl... (no-op when present)
  up [--fresh]            start the 3-node cluster (idempotent), create db '${APP_DB}' and user '${APP_USER}'
  down [--purge]          stop all nodes, remove all faults; --purge also deletes the data (= destroy)
  destroy                 same as down --purge
  status                  per-node table; exit 0 healthy, 1 unhealthy, 2 healthy but faults active
  wait-healthy [SECONDS]  wait until all nodes are Synced/Primary/ready with size 3 (default ${WAIT_TIMEOUT})
  sql NODE "STATEMENT"    run SQL as root over the node's socket (batch output, no column names; - = stdin)
  crash NODE | restart NODE          kill -9 | recover position, restart, wait until Synced (IST)
  stop NODE | start NODE             clean shutdown (SIGTERM, leaves the group) | start, wait until Synced (IST)
  hang NODE | resume NODE            kill -STOP | kill -CONT
  blackhole NODE | reject NODE       drop | reset inbound TCP to the node's client address:${PORT}
  restore NODE                       remove blackhole/reject of the node
  partition NODE | heal NODE         drop the node's Galera traffic (non-Primary, port still answers) | undo, wait
  slow NODE [MS] | unslow NODE       delay new client connections by MS (default 50) per chunk each way (open ones
                                     stay direct) | undo, closing the connections made through the proxy
  heal-all                           remove every fault, restart crashed nodes, wait until healthy
NODE is 1, 2, 3 or galera1, galera2, galera3.
EOF
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case "${cmd}" in
    install) cmd_install ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    destroy|purge) cmd_down --purge ;;
    status) require_root; cmd_status ;;
    wait-healthy) require_root; cmd_wait_healthy "$@" ;;
    sql) require_root; cmd_sql "$@" ;;
    crash) require_root; cmd_crash "$@" ;;
    restart) require_root; cmd_restart "$@" ;;
    stop) require_root; cmd_stop "$@" ;;
    start) require_root; cmd_start "$@" ;;
    hang) require_root; cmd_hang "$@" ;;
    resume) require_root; cmd_resume "$@" ;;
    blackhole) require_root; cmd_blackhole "$@" ;;
    reject) require_root; cmd_reject "$@" ;;
    restore) require_root; cmd_restore "$@" ;;
    partition) require_root; cmd_partition "$@" ;;
    heal) require_root; cmd_heal "$@" ;;
    slow) require_root; cmd_slow "$@" ;;
    unslow) require_root; cmd_unslow "$@" ;;
    heal-all) require_root; cmd_heal_all ;;
    help|-h|--help) usage ;;
    "") usage >&2; exit 2 ;;
    *) usage >&2; die "unknown command '${cmd}'" ;;
  esac
}

main "$@"

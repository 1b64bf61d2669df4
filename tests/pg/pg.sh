#!/usr/bin/env bash
# ClusterSql PostgreSQL 15 test cluster: a primary and two streaming-replication standbys on loopback, plus
# loopback-only fault injection. Usage: tests/pg/pg.sh COMMAND [ARGS]   (run as root; see README.md beside this file)
set -euo pipefail

PATH="/usr/sbin:/sbin:/usr/bin:/bin:${PATH}"

DIR="${CLUSTERSQL_PG_DIR:-/var/tmp/clustersql-pg}"
# node_pid matches the postmaster's "-D DIR/pgN" literally: no trailing slash, no doubled ones.
while [[ ${DIR} == */ && ${DIR} != / ]]; do DIR="${DIR%/}"; done
DIR="$(printf '%s' "${DIR}" | tr -s /)"
PASSWORD="${CLUSTERSQL_PG_PASSWORD:-Cs-pg-pw-3b9d}"
WAIT_TIMEOUT="${CLUSTERSQL_WAIT_TIMEOUT:-60}"
BIN=/usr/lib/postgresql/15/bin
APP_USER=clustersql
APP_DB=test
REPL_USER=clustersql_repl
OS_USER=postgres
CHAIN=CLUSTERSQL-PG    # filter table, jumped to from INPUT (cluster.sh owns CLUSTERSQL; the two never touch each other)
NODES=(1 2 3)
PACKAGES=(postgresql-15 postgresql-client-15 iptables iproute2 procps util-linux)
MARKER=.clustersql-pg

# ---------------------------------------------------------------- helpers

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { printf 'pg.sh: error: %s\n' "$*" >&2; exit 1; }

require_root() { [[ ${EUID} -eq 0 ]] || die "must run as root"; }
require_installed() {
  [[ -x ${BIN}/postgres && -x ${BIN}/pg_ctl && -x ${BIN}/initdb ]] || die "PostgreSQL 15 not installed: run '$0 install' first"
  command -v psql >/dev/null || die "psql missing: run '$0 install' first"
  id -u "${OS_USER}" >/dev/null 2>&1 || die "OS user ${OS_USER} missing: run '$0 install' first"
}

# node NAME|NUMBER -> 1..3
node_num() {
  case "${1:-}" in
    1|pg1) echo 1 ;;
    2|pg2) echo 2 ;;
    3|pg3) echo 3 ;;
    *) die "unknown node '${1:-}' (use 1, 2, 3 or pg1, pg2, pg3)" ;;
  esac
}
name() { echo "pg$1"; }
addr() { echo "127.0.0.4$1"; }
port() { echo "544$1"; }
data_of() { echo "${DIR}/pg$1"; }
log_of() { echo "${DIR}/pg$1.log"; }
SOCK_DIR() { echo "${DIR}/run"; }

as_pg() { runuser -u "${OS_USER}" -- "$@"; }

# q N "SQL": run SQL as the superuser over node N's unix socket (bounded by $QT seconds, default 10)
q() {
  local n=$1; shift
  timeout -k 2 "${QT:-10}" runuser -u "${OS_USER}" -- "${BIN}/psql" -X -A -t -q -v ON_ERROR_STOP=1 \
    -h "$(SOCK_DIR)" -p "$(port "${n}")" -d postgres -c "$*"
}

# pid of node N's postmaster if that process is alive, else return 1
node_pid() {
  local pidf pid
  pidf="$(data_of "$1")/postmaster.pid"
  [[ -s ${pidf} ]] || return 1
  pid="$(head -n 1 "${pidf}")"
  [[ ${pid} =~ ^[0-9]+$ && -r /proc/${pid}/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF -- "-D $(data_of "$1")" || return 1
  echo "${pid}"
}
# the postmaster and its children (backends, walsender/walreceiver, startup, checkpointer...)
node_pids() {
  local pid
  pid="$(node_pid "$1")" || return 1
  echo "${pid}"
  ps -o pid= --ppid "${pid}" 2>/dev/null | tr -d ' ' || true
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

# role N -> primary | standby | - (does not answer)
role() {
  local r
  r="$(QT=3 q "$1" "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END" 2>/dev/null)" || { echo -; return 0; }
  echo "${r:--}"
}
is_primary() { [[ $(role "$1") == primary ]]; }
# streaming N: node N is a standby whose WAL receiver streams
streaming() {
  [[ $(QT=3 q "$1" "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'" 2>/dev/null) == 1 ]]
}

wait_for() {
  local timeout=$1 what=$2; shift 2
  local start=${SECONDS}
  until "$@"; do
    if (( SECONDS - start >= timeout )); then
      log "timed out after ${timeout} s waiting for: ${what}"
      status_table >&2 || true
      return 1
    fi
    sleep 0.3
  done
}

# ---------------------------------------------------------------- iptables (own chain only)

ipt() { iptables -w 10 "$@"; }
have_ipt() { command -v iptables >/dev/null; }
ensure_chain() {
  have_ipt || die "iptables missing: run '$0 install'"
  ipt -t filter -S "${CHAIN}" >/dev/null 2>&1 || ipt -t filter -N "${CHAIN}"
  ipt -t filter -C INPUT -j "${CHAIN}" 2>/dev/null || ipt -t filter -I INPUT 1 -j "${CHAIN}"
}
remove_chain() {
  have_ipt || return 0
  while ipt -t filter -C INPUT -j "${CHAIN}" 2>/dev/null; do ipt -t filter -D INPUT -j "${CHAIN}"; done
  if ipt -t filter -S "${CHAIN}" >/dev/null 2>&1; then
    ipt -t filter -F "${CHAIN}"
    ipt -t filter -X "${CHAIN}"
  fi
}
spec_blackhole() { echo "-i lo -p tcp -d $(addr "$1")/32 --dport $(port "$1") -m comment --comment clustersql-blackhole-pg$1 -j DROP"; }

# faults_of N -> space separated list of active faults
faults_of() {
  local n=$1 f=() rules="" ps
  if have_ipt; then rules="$(ipt -t filter -S "${CHAIN}" 2>/dev/null)" || true; fi
  grep -q "clustersql-blackhole-pg${n} " <<<"${rules}" && f+=(blackhole)
  ps="$(proc_state "${n}")"
  [[ ${ps} == hung ]] && f+=(hang)
  [[ ${ps} == down && -d $(data_of "${n}") ]] && f+=(down)
  if [[ ${ps} == running && $(QT=3 q "${n}" "SELECT pg_is_in_recovery() AND pg_is_wal_replay_paused()" 2>/dev/null) == t ]]; then
    f+=(lag)
  fi
  echo "${f[*]:-}"
}

# ---------------------------------------------------------------- node lifecycle

# node.conf: what differs per node; postgresql.conf includes it, and pg_basebackup copies it, so it is rewritten after.
write_node_conf() {
  local n=$1
  cat >"$(data_of "${n}")/node.conf" <<EOF
# Generated by tests/pg/pg.sh - ClusterSql PostgreSQL test node $(name "${n}")
listen_addresses = '$(addr "${n}")'
port = $(port "${n}")
cluster_name = 'clustersql-$(name "${n}")'
EOF
  chown "${OS_USER}:${OS_USER}" "$(data_of "${n}")/node.conf"
}

write_primary_conf() {
  local data
  data="$(data_of 1)"
  cat >>"${data}/postgresql.conf" <<EOF

# ---- ClusterSql test cluster (tests/pg/pg.sh)
unix_socket_directories = '$(SOCK_DIR)'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
# A standby's WAL receiver notices a dead primary within a few seconds, not minutes.
wal_receiver_timeout = 5s
wal_sender_timeout = 5s
wal_retrieve_retry_interval = 1s
max_connections = 200
shared_buffers = 32MB
# Test data only: no fsync, so a crash test costs no disk flushes on a shared machine.
fsync = off
full_page_writes = off
synchronous_commit = off
log_min_messages = warning
log_connections = off
include_if_exists = 'node.conf'
EOF
  cat >"${data}/pg_hba.conf" <<EOF
# Generated by tests/pg/pg.sh: loopback only
local   all             ${OS_USER}                               peer
host    all             all             127.0.0.0/8             scram-sha-256
host    replication     ${REPL_USER}    127.0.0.0/8             scram-sha-256
EOF
  chown "${OS_USER}:${OS_USER}" "${data}/pg_hba.conf"
}

prepare_dir() {
  [[ ${DIR} == /* && ${DIR} != / ]] || die "CLUSTERSQL_PG_DIR must be an absolute path other than /"
  if [[ -d ${DIR} && ! -e ${DIR}/${MARKER} ]] && [[ -n $(ls -A "${DIR}") ]]; then
    die "${DIR} exists, is not empty and was not made by this harness; choose another CLUSTERSQL_PG_DIR"
  fi
  mkdir -p "${DIR}" "$(SOCK_DIR)"
  touch "${DIR}/${MARKER}"
  chown "${OS_USER}:${OS_USER}" "${DIR}" "$(SOCK_DIR)"
  chmod 755 "${DIR}"
  chmod 775 "$(SOCK_DIR)"
}

# Something other than our node already listening on the node's address and port?
check_port_free() {
  local n=$1
  if ss -Hltn "src $(addr "${n}"):$(port "${n}")" 2>/dev/null | grep -q LISTEN || ss -Hltn "sport = :$(port "${n}")" 2>/dev/null | grep -qE "(0\.0\.0\.0|\*|\[::\]):$(port "${n}")"; then
    die "$(addr "${n}"):$(port "${n}") is already in use by another process"
  fi
}

start_node() {
  local n=$1
  [[ $(proc_state "${n}") == down ]] || return 0
  check_port_free "${n}"
  local attempt
  for attempt in 1 2; do
    as_pg "${BIN}/pg_ctl" -D "$(data_of "${n}")" -l "$(log_of "${n}")" -w -t "${WAIT_TIMEOUT}" -s start >/dev/null && return 0
    # pg_ctl gave up: the log says why. A start right after a crash can fail once (a process of the killed server
    # still exiting); a second start is a fresh crash recovery, so it is safe to try once more.
    sleep 1
    tail -n 30 "$(log_of "${n}")" >&2 || true
    # Retried only when nothing runs: a server that is up but not ready in time is a failure, not a success.
    [[ $(proc_state "${n}") == down ]] || die "$(name "${n}") is running but did not become ready in ${WAIT_TIMEOUT} s"
    log "$(name "${n}") did not start (attempt ${attempt})"
  done
  die "$(name "${n}") did not start"
}

# SIGSTOP node N's postmaster (it forks nothing while stopped); returns 1 when it is not running
freeze_postmaster() {
  local pid
  pid="$(node_pid "$1")" || return 1
  kill -STOP "${pid}" 2>/dev/null || return 1
  # SIGSTOP lands asynchronously: wait (bounded) until the process is stopped, so no fork is still under way.
  local i st
  for i in $(seq 1 200); do
    st="$(awk '{ print $3 }' "/proc/${pid}/stat" 2>/dev/null || echo X)"
    [[ ${st} == [TtZX] ]] && return 0
    sleep 0.01
  done
}

stop_node() {
  local n=$1 pid
  pid="$(node_pid "${n}")" || return 0
  local p; for p in $(node_pids "${n}"); do kill -CONT "${p}" 2>/dev/null || true; done
  as_pg "${BIN}/pg_ctl" -D "$(data_of "${n}")" -m fast -w -t 20 -s stop >/dev/null 2>&1 || {
    log "$(name "${n}") did not stop in 20 s: SIGKILL"
    for p in $(node_pids "${n}"); do kill -KILL "${p}" 2>/dev/null || true; done
  }
}

create_primary() {
  local data
  data="$(data_of 1)"
  # Never remove the data of a server that is still running (a caller that misread its role).
  stop_node 1
  rm -rf "${data}"
  log "initdb $(name 1)"
  printf '%s\n' "${PASSWORD}" >"${DIR}/pwfile"
  chown "${OS_USER}:${OS_USER}" "${DIR}/pwfile"; chmod 600 "${DIR}/pwfile"
  as_pg "${BIN}/initdb" -D "${data}" -U "${OS_USER}" --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "${DIR}/pwfile"
  write_primary_conf
  write_node_conf 1
  start_node 1
  q 1 "CREATE ROLE ${APP_USER} LOGIN PASSWORD '${PASSWORD}'" >/dev/null
  q 1 "CREATE ROLE ${REPL_USER} LOGIN REPLICATION PASSWORD '${PASSWORD}'" >/dev/null
  # pg_monitor: the health probe reads pg_stat_wal_receiver and pg_control_* as the application user.
  q 1 "GRANT pg_monitor TO ${APP_USER}" >/dev/null
  q 1 "CREATE DATABASE ${APP_DB} OWNER ${APP_USER}" >/dev/null
}

create_standby() {
  local n=$1 data
  data="$(data_of "${n}")"
  rm -rf "${data}"
  log "pg_basebackup $(name "${n}") from $(name 1)"
  printf '%s:%s:*:%s:%s\n' "$(addr 1)" "$(port 1)" "${REPL_USER}" "${PASSWORD}" >"${DIR}/pgpass"
  chown "${OS_USER}:${OS_USER}" "${DIR}/pgpass"; chmod 600 "${DIR}/pgpass"
  # Bounded: a primary that stops answering mid-copy must fail the reset, not hang it.
  PGPASSFILE="${DIR}/pgpass" timeout -k 5 "${BASEBACKUP_TIMEOUT:-120}" runuser -u "${OS_USER}" -- env PGPASSFILE="${DIR}/pgpass" "${BIN}/pg_basebackup" -h "$(addr 1)" -p "$(port 1)" \
    -U "${REPL_USER}" -D "${data}" -X stream -c fast >/dev/null
  rm -f "${DIR}/pgpass"
  write_node_conf "${n}"
  # The standby follows pg1; the password stays in the data dir (mode 600, owned by postgres), as -R would write it.
  cat >>"${data}/postgresql.auto.conf" <<EOF
primary_conninfo = 'host=$(addr 1) port=$(port 1) user=${REPL_USER} password=${PASSWORD} application_name=$(name "${n}") connect_timeout=2'
EOF
  touch "${data}/standby.signal"
  chown "${OS_USER}:${OS_USER}" "${data}/standby.signal" "${data}/postgresql.auto.conf"
  start_node "${n}"
}

write_env() {
  cat >"${DIR}/pg.env" <<EOF
CLUSTERSQL_PG_HOSTS=$(addr 1):$(port 1),$(addr 2):$(port 2),$(addr 3):$(port 3)
CLUSTERSQL_PG_USER=${APP_USER}
CLUSTERSQL_PG_DATABASE=${APP_DB}
EOF
  chmod 644 "${DIR}/pg.env"
}

# the normal topology: pg1 primary, pg2 and pg3 standbys streaming from it
topology_ok() {
  [[ $(proc_state 1) == running && $(role 1) == primary ]] || return 1
  local n
  for n in 2 3; do
    [[ $(proc_state "${n}") == running && $(role "${n}") == standby ]] || return 1
    streaming "${n}" || return 1
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
  # The package's own cluster (15/main on 5432) is not used: postgresql-common creates none when told so.
  mkdir -p /etc/postgresql-common/createcluster.d
  [[ -e /etc/postgresql-common/createcluster.d/clustersql.conf ]] || echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/clustersql.conf
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
  local start=${SECONDS} n
  prepare_dir
  if [[ ! -f $(data_of 1)/PG_VERSION ]]; then
    create_primary
  else
    start_node 1
  fi
  for n in 2 3; do
    if [[ ! -f $(data_of "${n}")/PG_VERSION ]]; then
      create_standby "${n}"
    else
      start_node "${n}"
    fi
  done
  write_env
  if ! wait_for "${WAIT_TIMEOUT}" "pg1 primary, pg2 and pg3 streaming from it" topology_ok; then
    die "not the normal topology (a promote or a fault?): use 'reset'"
  fi
  log "up after $((SECONDS - start)) s: Host=$(addr 1),$(addr 2),$(addr 3) with ports $(port 1),$(port 2),$(port 3); user ${APP_USER}; database ${APP_DB}"
}

remove_faults() {
  local n p
  for n in "${NODES[@]}"; do
    for p in $(node_pids "${n}" 2>/dev/null || true); do kill -CONT "${p}" 2>/dev/null || true; done
    if [[ $(proc_state "${n}") == running && $(QT=3 q "${n}" "SELECT pg_is_in_recovery() AND pg_is_wal_replay_paused()" 2>/dev/null) == t ]]; then
      QT=3 q "${n}" "SELECT pg_wal_replay_resume()" >/dev/null 2>&1 || true
    fi
  done
  remove_chain
}

cmd_down() {
  require_root
  local purge=0 n
  [[ ${1:-} == --purge ]] && purge=1
  remove_faults
  for n in 3 2 1; do stop_node "${n}"; done
  if (( purge )) && [[ -e ${DIR}/${MARKER} ]]; then
    rm -rf "${DIR}"
    log "down; ${DIR} deleted"
  else
    log "down"
  fi
}

cmd_reset() {
  require_root
  require_installed
  remove_faults
  if topology_ok; then
    log "already pg1 primary with pg2 and pg3 streaming; faults removed"
    return 0
  fi
  log "rebuilding: pg1 primary, pg2 and pg3 standbys"
  local n
  for n in 3 2 1; do stop_node "${n}"; done
  # pg1 keeps its data when it is still on the timeline the standbys would follow: a promote moved the cluster on,
  # so the standbys are cloned afresh from pg1 either way (cheap: the test database is small).
  if [[ -f $(data_of 1)/PG_VERSION && ! -f $(data_of 1)/standby.signal ]] && ! grep -q . <(ls "$(data_of 1)/pg_wal/"*.history 2>/dev/null); then
    start_node 1
    # A role query that times out once (a busy machine) must not make a rebuild of a good primary.
    wait_for 20 "pg1 answers as primary" is_primary 1 || create_primary
  else
    prepare_dir
    create_primary
  fi
  for n in 2 3; do create_standby "${n}"; done
  write_env
  wait_for "${WAIT_TIMEOUT}" "pg1 primary, pg2 and pg3 streaming from it" topology_ok || die "reset failed"
  log "reset done"
}

status_table() {
  local n ps r tl lag f
  printf '%-4s %-16s %-8s %-8s %-9s %-12s %s\n' node address process role timeline replay-lag faults
  for n in "${NODES[@]}"; do
    ps="$(proc_state "${n}")"
    r=-; tl=-; lag=-
    if [[ ${ps} == running ]]; then
      r="$(role "${n}")"
      tl="$(QT=3 q "${n}" "SELECT CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint()) ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END" 2>/dev/null || echo -)"
      if [[ ${r} == standby ]]; then
        lag="$(QT=3 q "${n}" "SELECT COALESCE(GREATEST(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::bigint::text, '-')" 2>/dev/null || echo -)B"
      fi
    fi
    f="$(faults_of "${n}")"
    printf '%-4s %-16s %-8s %-8s %-9s %-12s %s\n' "$(name "${n}")" "$(addr "${n}"):$(port "${n}")" "${ps}" "${r}" "${tl}" "${lag}" "${f:--}"
  done
}

cmd_status() {
  require_root
  status_table
  local n faults=0
  for n in "${NODES[@]}"; do [[ -n $(faults_of "${n}") ]] && faults=1; done
  if topology_ok; then
    (( faults )) && return 2
    return 0
  fi
  return 1
}

cmd_crash() {
  local n pids p
  n="$(node_num "${1:-}")"
  freeze_postmaster "${n}" || die "$(name "${n}") is not running"
  # The postmaster and every child: a postmaster killed alone leaves its backends serving open sessions. The children
  # are listed only once the postmaster is stopped, so that none forked meanwhile is left behind holding the old
  # shared memory (the suspect, not proven, in a restart after a crash that failed once in CI).
  pids="$(node_pids "${n}")" || die "$(name "${n}") is not running"
  for p in ${pids}; do kill -KILL "${p}" 2>/dev/null || true; done
  log "$(name "${n}") crashed (SIGKILL postmaster and children)"
}

cmd_restart() {
  local n
  n="$(node_num "${1:-}")"
  [[ $(proc_state "${n}") == hung ]] && cmd_resume "${n}"
  stop_node "${n}"
  start_node "${n}"
  log "$(name "${n}") restarted ($(role "${n}"))"
}

cmd_hang() {
  local n pids p
  n="$(node_num "${1:-}")"
  # The postmaster first, so that it forks no new backend between listing its children and stopping them.
  freeze_postmaster "${n}" || die "$(name "${n}") is not running"
  pids="$(node_pids "${n}")" || die "$(name "${n}") is not running"
  for p in ${pids}; do kill -STOP "${p}" 2>/dev/null || true; done
  log "$(name "${n}") hung (SIGSTOP postmaster and children): TCP connects complete, nothing answers"
}

cmd_resume() {
  local n pids p
  n="$(node_num "${1:-}")"
  pids="$(node_pids "${n}")" || { log "$(name "${n}") is not running; nothing to resume"; return 0; }
  for p in ${pids}; do kill -CONT "${p}" 2>/dev/null || true; done
  log "$(name "${n}") resumed (SIGCONT)"
}

cmd_blackhole() {
  local n; n="$(node_num "${1:-}")"
  ensure_chain
  # shellcheck disable=SC2046
  ipt -C "${CHAIN}" $(spec_blackhole "${n}") 2>/dev/null || ipt -A "${CHAIN}" $(spec_blackhole "${n}")
  log "$(name "${n}"): inbound TCP to $(addr "${n}"):$(port "${n}") is dropped (connects hang)"
}

cmd_unblackhole() {
  local n; n="$(node_num "${1:-}")"
  have_ipt || return 0
  ipt -S "${CHAIN}" >/dev/null 2>&1 || return 0
  # shellcheck disable=SC2046
  while ipt -C "${CHAIN}" $(spec_blackhole "${n}") 2>/dev/null; do ipt -D "${CHAIN}" $(spec_blackhole "${n}"); done
  log "$(name "${n}"): port restored"
}

cmd_promote() {
  local n; n="$(node_num "${1:-}")"
  [[ $(role "${n}") == standby ]] || die "$(name "${n}") is not a running standby"
  as_pg "${BIN}/pg_ctl" -D "$(data_of "${n}")" -w -t "${WAIT_TIMEOUT}" -s promote >/dev/null || die "promote of $(name "${n}") failed"
  log "$(name "${n}") promoted: now a primary on a new timeline ('reset' rebuilds pg1 primary + 2 standbys)"
}

cmd_lag() {
  local n; n="$(node_num "${1:-}")"
  [[ $(role "${n}") == standby ]] || die "$(name "${n}") is not a running standby"
  q "${n}" "SELECT pg_wal_replay_pause()" >/dev/null
  log "$(name "${n}"): WAL replay paused (it still receives WAL; its replay lag grows with every write)"
}

cmd_unlag() {
  local n; n="$(node_num "${1:-}")"
  [[ $(role "${n}") == standby ]] || { log "$(name "${n}") is not a running standby; nothing to resume"; return 0; }
  q "${n}" "SELECT pg_wal_replay_resume()" >/dev/null
  log "$(name "${n}"): WAL replay resumed"
}

cmd_sql() {
  local n; n="$(node_num "${1:-}")"
  [[ $# -ge 2 ]] || die "usage: sql NODE \"STATEMENT\""
  QT=${QT:-30} q "${n}" "$2"
}

usage() {
  cat <<EOF
Usage: $0 COMMAND [ARGS]     (as root; base dir \$CLUSTERSQL_PG_DIR, default /var/tmp/clustersql-pg)
  install               apt-install PostgreSQL 15, iptables... (no-op when present; creates no 5432 cluster)
  up                    start pg1 (primary) and pg2, pg3 (streaming standbys); idempotent; waits until both stream
  down [--purge]        remove every fault, stop all nodes; --purge also deletes the data (= destroy)
  status                per-node table; exit 0 normal topology, 1 not, 2 normal but a fault is active
  reset                 remove every fault; rebuild pg1 primary + 2 standbys if the topology is not that (after a promote)
  sql NODE "STATEMENT"  run SQL as the superuser over the node's socket
  crash NODE            SIGKILL the postmaster and all its children
  restart NODE          stop (if running) and start the node; waits until it accepts connections
  hang NODE | resume NODE          SIGSTOP | SIGCONT the postmaster and its children
  blackhole NODE | unblackhole NODE   drop | undo inbound TCP to the node's address:port (own chain ${CHAIN})
  promote NODE          pg_ctl promote a standby (it becomes a primary on a new timeline; others keep following pg1)
  lag NODE | unlag NODE            pause | resume WAL replay on a standby (pg_wal_replay_pause/resume)
NODE is 1, 2, 3 or pg1, pg2, pg3: $(addr 1):$(port 1), $(addr 2):$(port 2), $(addr 3):$(port 3).
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
    reset) cmd_reset ;;
    sql) require_root; cmd_sql "$@" ;;
    crash) require_root; cmd_crash "$@" ;;
    restart) require_root; cmd_restart "$@" ;;
    hang) require_root; cmd_hang "$@" ;;
    resume) require_root; cmd_resume "$@" ;;
    blackhole) require_root; cmd_blackhole "$@" ;;
    unblackhole|restore) require_root; cmd_unblackhole "$@" ;;
    promote) require_root; cmd_promote "$@" ;;
    lag) require_root; cmd_lag "$@" ;;
    unlag) require_root; cmd_unlag "$@" ;;
    help|-h|--help) usage ;;
    "") usage >&2; exit 2 ;;
    *) usage >&2; die "unknown command '${cmd}'" ;;
  esac
}

main "$@"

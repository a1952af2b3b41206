#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the workflow's SLURM tests.
#
#   scripts/slurm/cluster.sh install   apt-get the daemons (idempotent; Debian/Ubuntu, as root)
#   scripts/slurm/cluster.sh start     write the configs, start munge, MariaDB, slurmdbd,
#                                      slurmctld and slurmd, register the account, wait until
#                                      the node is idle and sacct answers
#   scripts/slurm/cluster.sh stop      stop every daemon this script started
#   scripts/slurm/cluster.sh status    exit 0 when the cluster takes jobs, 1 otherwise
#
# One node named after `hostname -s` on 127.0.0.1 with every CPU of this machine, one partition
# `debug` (the default), accounting in a local MariaDB so that `sacct` works (the executor plugin
# polls job states with it), account `quantbench` for the calling user. No cgroups: process
# tracking is proctrack/linuxproc and CPU pinning task/affinity, so it runs in containers and VMs
# without a cgroup delegation.
# Daemons run as root; this is a throwaway test cluster, never a production setup.
#
# Environment:
#   QB_SLURM_ACCOUNT        account to create (default quantbench)
#   QB_SLURM_USERS          extra users to add to the account (space separated)
#   QB_SLURM_START_TIMEOUT  seconds to wait for each daemon (default 60)
set -euo pipefail

readonly CLUSTER=quantbench
readonly ACCOUNT="${QB_SLURM_ACCOUNT:-quantbench}"
readonly PARTITION=debug
readonly START_TIMEOUT="${QB_SLURM_START_TIMEOUT:-60}"
# The job step re-reads the config without SLURM_CONF, so it must sit at the compiled-in path.
readonly CONF_DIR=/etc/slurm
readonly STATE_DIR=/var/spool/quantbench-slurm
readonly LOG_DIR=/var/log/quantbench-slurm
# pid files of the daemons this script started; `stop` ends those and nothing else
readonly RUN_DIR=/run/quantbench-slurm
readonly DB_NAME=quantbench_slurm_acct
readonly DB_USER=quantbench_slurm
readonly DB_SOCKET=/run/mysqld/mysqld.sock
readonly PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)

log() { printf '[cluster.sh] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "run as root (the daemons and /etc/slurm need it)"
}

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.2 s until it succeeds.
wait_for() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "timed out after ${timeout}s waiting for ${what}; logs in ${LOG_DIR}"
            return 1
        fi
        sleep 0.2
    done
}

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

cmd_install() {
    need_root
    local missing=()
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        log "packages already installed"
        return 0
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The node as slurmd sees it: CPUs from nproc, memory a little under `free` so that slurmd never
# finds less than configured (which would drain the node).
node_line() {
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    mem_mb=$(free -m | awk '/^Mem:/ {print int($2 * 0.95)}')
    printf 'NodeName=%s NodeAddr=127.0.0.1 CPUs=%s RealMemory=%s State=UNKNOWN\n' \
        "$host" "$cpus" "$mem_mb"
}

write_slurm_conf() {
    local host
    host=$(hostname -s)
    install -d -m 755 "$CONF_DIR"
    cat >"$CONF_DIR/slurm.conf" <<EOF
# Written by scripts/slurm/cluster.sh: single-node test cluster. Edits are overwritten on start.
ClusterName=${CLUSTER}
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
StateSaveLocation=${STATE_DIR}/ctld
SlurmdSpoolDir=${STATE_DIR}/d
SlurmctldPidFile=${RUN_DIR}/slurmctld.pid
SlurmdPidFile=${RUN_DIR}/slurmd.pid
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: containers rarely delegate them. Processes are tracked through /proc, and tasks
# are pinned to their allocated CPUs with sched_setaffinity.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
# CPUs and memory are consumable, so --cpus-per-task, --mem and --exclusive mean what they
# mean on a real cluster.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
# Finished jobs stay in slurmctld (and squeue) for 5 minutes; sacct keeps them for good.
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageEnforce=associations
# The executor plugin puts the rule and wildcards in the job comment; keep it in sacct.
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
$(node_line)
PartitionName=${PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 644 "$CONF_DIR/slurm.conf"

    local db_pass
    db_pass=$(cat "$STATE_DIR/db_password")
    # slurmdbd refuses a config that others can read (it holds the database password).
    (
        umask 077
        cat >"$CONF_DIR/slurmdbd.conf" <<EOF
# Written by scripts/slurm/cluster.sh: accounting for the single-node test cluster.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=${RUN_DIR}/slurmdbd.pid
LogFile=${LOG_DIR}/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=${DB_USER}
StoragePass=${db_pass}
StorageLoc=${DB_NAME}
EOF
    )
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        log "munge already running"
        return 0
    fi
    [[ -s /etc/munge/munge.key ]] || die "/etc/munge/munge.key is missing (run install)"
    install -d -o munge -g munge -m 755 /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    cp /run/munge/munged.pid "$RUN_DIR/munged.pid"
    wait_for "$START_TIMEOUT" munge sh -c 'munge -n | unmunge'
}

start_mariadb() {
    if mariadb-admin --socket="$DB_SOCKET" ping >/dev/null 2>&1; then
        log "MariaDB already running"
    else
        install -d -o mysql -g mysql -m 755 /run/mysqld
        # setsid: the server must not die with this shell or the terminal that ran it.
        setsid /usr/sbin/mariadbd --user=mysql --socket="$DB_SOCKET" \
            --pid-file=/run/mysqld/mysqld.pid --log-error="$LOG_DIR/mariadb.log" \
            --bind-address=127.0.0.1 --innodb-lock-wait-timeout=900 \
            </dev/null >/dev/null 2>&1 &
        wait_for "$START_TIMEOUT" MariaDB mariadb-admin --socket="$DB_SOCKET" ping
        cp /run/mysqld/mysqld.pid "$RUN_DIR/mariadbd.pid"
    fi
    local db_pass
    db_pass=$(cat "$STATE_DIR/db_password")
    mariadb --socket="$DB_SOCKET" <<EOF
CREATE DATABASE IF NOT EXISTS ${DB_NAME};
CREATE USER IF NOT EXISTS '${DB_USER}'@'localhost' IDENTIFIED BY '${db_pass}';
ALTER USER '${DB_USER}'@'localhost' IDENTIFIED BY '${db_pass}';
GRANT ALL ON ${DB_NAME}.* TO '${DB_USER}'@'localhost';
EOF
}

# Users who get the account: root (runs the daemons) and whoever called sudo.
account_users() {
    local users=(root)
    [[ -n ${SUDO_USER:-} && ${SUDO_USER} != root ]] && users+=("$SUDO_USER")
    # shellcheck disable=SC2206 # word splitting of the user list is intended
    [[ -n ${QB_SLURM_USERS:-} ]] && users+=(${QB_SLURM_USERS})
    printf '%s\n' "${users[@]}"
}

register_accounts() {
    # -i: no confirmation prompt. "add" fails when the entity exists; that is fine.
    sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" \
        description="quantbench tests" organization=quantbench >/dev/null 2>&1 || true
    local user
    while read -r user; do
        sacctmgr -i add user "$user" account="$ACCOUNT" defaultaccount="$ACCOUNT" \
            cluster="$CLUSTER" >/dev/null 2>&1 || true
    done < <(account_users)
    sacctmgr -n -P list associations cluster="$CLUSTER" account="$ACCOUNT" format=user |
        grep -qx root || die "sacctmgr did not register root in account ${ACCOUNT}"
}

node_idle() {
    sinfo -h -n "$(hostname -s)" -o '%T' | grep -Eq '^(idle|mixed|allocated)$'
}

cmd_start() {
    need_root
    local t0=$SECONDS
    command -v slurmctld >/dev/null || die "SLURM is not installed (run: $0 install)"
    if cmd_status >/dev/null 2>&1; then
        log "cluster already running"
        return 0
    fi
    install -d -m 755 "$RUN_DIR" "$LOG_DIR" "$STATE_DIR" "$STATE_DIR/ctld" "$STATE_DIR/d"
    if [[ ! -s $STATE_DIR/db_password ]]; then
        (
            umask 077
            od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$STATE_DIR/db_password"
        )
    fi
    write_slurm_conf

    start_munge
    start_mariadb

    if ! pid_alive "$RUN_DIR/slurmdbd.pid"; then
        slurmdbd
    fi
    wait_for "$START_TIMEOUT" slurmdbd sacctmgr -n list cluster
    register_accounts

    if ! pid_alive "$RUN_DIR/slurmctld.pid"; then
        slurmctld
    fi
    wait_for "$START_TIMEOUT" slurmctld scontrol ping
    if ! pid_alive "$RUN_DIR/slurmd.pid"; then
        slurmd
    fi
    # A node left DOWN by an earlier unclean stop comes back with ReturnToService=2; nudge it.
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    wait_for "$START_TIMEOUT" "node $(hostname -s) idle" node_idle
    wait_for "$START_TIMEOUT" sacct sacct -n -X
    log "cluster ${CLUSTER} up in $((SECONDS - t0))s: partition ${PARTITION}, account ${ACCOUNT}"
    sinfo >&2
}

# stop_pidfile NAME FILE: TERM the process, wait up to 15 s, then KILL it.
stop_pidfile() {
    local name=$1 file=$2 pid
    if ! pid_alive "$file"; then
        rm -f "$file"
        return 0
    fi
    pid=$(cat "$file")
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "$name ($pid) ignores TERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$file"
    log "stopped $name"
}

cmd_stop() {
    need_root
    # Reverse start order; only daemons whose pid files this script wrote.
    stop_pidfile slurmd "$RUN_DIR/slurmd.pid"
    stop_pidfile slurmctld "$RUN_DIR/slurmctld.pid"
    stop_pidfile slurmdbd "$RUN_DIR/slurmdbd.pid"
    stop_pidfile MariaDB "$RUN_DIR/mariadbd.pid"
    stop_pidfile munged "$RUN_DIR/munged.pid"
}

cmd_status() {
    local ok=0 name
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        if pid_alive "$RUN_DIR/$name.pid"; then
            printf '%-10s running (pid %s)\n' "$name" "$(cat "$RUN_DIR/$name.pid")"
        else
            printf '%-10s not started by this script\n' "$name"
        fi
    done
    if scontrol ping >/dev/null 2>&1 && node_idle 2>/dev/null; then
        sinfo
    else
        echo "slurmctld or node not answering"
        ok=1
    fi
    if sacct -n -X >/dev/null 2>&1; then
        echo "sacct answers"
    else
        echo "sacct not answering"
        ok=1
    fi
    return "$ok"
}

main() {
    case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 install|start|stop|status" >&2
        exit 2
        ;;
    esac
}

main "$@"

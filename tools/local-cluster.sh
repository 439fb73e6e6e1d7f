#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, to try the SLURM profile before pointing it at a lab's
# cluster (and for the tests): munge, MariaDB + slurmdbd (so `sacct`, which the executor plugin polls,
# answers), slurmctld and slurmd, all on ports away from the defaults and with their state in one folder.
#
#   tools/local-cluster.sh up       # install the Debian packages if missing, start
#   tools/local-cluster.sh status   # what runs
#   tools/local-cluster.sh down     # stop what `up` started, by PID, in reverse order
#
# Needs root and Debian (apt-get); no systemd. Settings (environment):
#   HECVL_SLURM_DIR   state folder (default /tmp/hecvl-slurm); its parents must be searchable by `mysql`
#   HECVL_SLURM_PORT  first of four ports: slurmctld, slurmd, slurmdbd, MariaDB (default 16817)
# /etc/slurm/slurm.conf and slurmdbd.conf become symlinks into the state folder: the jobstep plugin
# drops SLURM_CONF before its `srun`, so the config must be at the default path. Exit status 100: a
# Debian package could not be installed (the message names it).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

DIR="${HECVL_SLURM_DIR:-/tmp/hecvl-slurm}"
PORT="${HECVL_SLURM_PORT:-16817}"
CLUSTER=hecvl
HOST="$(hostname -s)"
PACKAGES=(munge slurm-wlm slurmdbd mariadb-server)
# daemon name, in start order; `down` goes through them backwards
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)
MUNGE_SOCKET=/run/munge/munge.socket.2  # the default: sacct/sacctmgr ignore AuthInfo=socket=
# this script's own SLURM commands (daemons included) read this cluster's config, whatever /etc/slurm holds
export SLURM_CONF="$DIR/etc/slurm.conf"

say() { echo "local-cluster: $*" >&2; }
die() { say "error: $*"; exit "${2:-1}"; }

pidfile() {
    case "$1" in
        munged) echo "$DIR/munge/munged.pid" ;;
        mariadbd) echo "$DIR/mysql/mariadbd.pid" ;;
        *) echo "$DIR/run/$1.pid" ;;
    esac
}

# The PID of daemon $1 if it runs: its PID file names a live process of that name (not a reused PID).
running_pid() {
    local file pid
    file="$(pidfile "$1")"
    [[ -s "$file" ]] || return 1
    pid="$(tr -dc 0-9 <"$file")"
    [[ -n "$pid" && -r "/proc/$pid/comm" && "$(cat "/proc/$pid/comm")" == "$1" ]] || return 1
    echo "$pid"
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.5 s
    local seconds="$1" what="$2"
    shift 2
    local tries=$((seconds * 2))
    until "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        ((tries > 0)) || die "$what did not come up within ${seconds}s; see the logs in $DIR/log"
        sleep 0.5
    done
}

install_packages() {
    local missing=() cmd
    declare -A provides=([munged]=munge [slurmctld]=slurm-wlm [slurmd]=slurm-wlm [sbatch]=slurm-wlm
        [slurmdbd]=slurmdbd [mariadbd]=mariadb-server [mariadb-install-db]=mariadb-server)
    for cmd in "${!provides[@]}"; do
        command -v "$cmd" >/dev/null || missing+=("${provides[$cmd]}")
    done
    ((${#missing[@]})) || return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    say "installing Debian packages: ${missing[*]}"
    # no init scripts during the install: the packages would start munge and MariaDB on default paths
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && made_policy=1
    fi
    local ok=1
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$DIR/log/apt.log" 2>&1; then
        apt-get update -q >>"$DIR/log/apt.log" 2>&1 || true
        apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$DIR/log/apt.log" 2>&1 || ok=""
    fi
    [[ -z "$made_policy" ]] || rm -f "$policy"
    if [[ -z "$ok" ]]; then
        local bad=() pkg
        for pkg in "${missing[@]}"; do
            apt-get install -s -q "$pkg" >/dev/null 2>&1 || bad+=("$pkg")
        done
        ((${#bad[@]})) || bad=("${missing[@]}")
        die "apt-get could not install the Debian package(s) ${bad[*]} (log: $DIR/log/apt.log)" 100
    fi
}

write_configs() {
    local cpus mem
    cpus="$(nproc)"
    mem="$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"  # MB, a bit under MemTotal
    [[ -s "$DIR/etc/dbpass" ]] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9 \
        >"$DIR/etc/dbpass")
    cat >"$DIR/etc/slurm.conf" <<EOF
# written by local-cluster.sh: one node ($HOST), a default partition cpu, accounting through slurmdbd
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$(pidfile slurmctld)
SlurmdPidFile=$(pidfile slurmd)
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
ReturnToService=2
KillWait=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$((PORT + 2))
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStoreFlags=job_comment
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    (umask 077 && cat >"$DIR/etc/slurmdbd.conf" <<EOF
# written by local-cluster.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=$((PORT + 2))
SlurmUser=root
PidFile=$(pidfile slurmdbd)
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((PORT + 3))
StorageUser=slurm
StoragePass=$(cat "$DIR/etc/dbpass")
StorageLoc=slurm_acct_db
EOF
    )
    chmod 0600 "$DIR/etc/slurmdbd.conf"
}

link_configs() {  # /etc/slurm/X -> $DIR/etc/X, refusing to replace anything else
    mkdir -p /etc/slurm
    local name target
    for name in slurm.conf slurmdbd.conf; do
        target="$DIR/etc/$name"
        if [[ -L "/etc/slurm/$name" && "$(readlink "/etc/slurm/$name")" == "$target" ]]; then
            continue
        fi
        [[ ! -e "/etc/slurm/$name" && ! -L "/etc/slurm/$name" ]] \
            || die "/etc/slurm/$name exists and is not this cluster's (a link to $target); move it away first"
        ln -s "$target" "/etc/slurm/$name"
    done
}

start_munged() {
    running_pid munged >/dev/null && return 0
    if [[ -S "$MUNGE_SOCKET" ]] && munge -n -S "$MUNGE_SOCKET" >/dev/null 2>&1; then
        say "a munged this script did not start serves $MUNGE_SOCKET; using it"
        return 0
    fi
    if [[ ! -s "$DIR/munge/munge.key" ]]; then
        (umask 077 && head -c 1024 /dev/urandom >"$DIR/munge/munge.key")
        chmod 0400 "$DIR/munge/munge.key"
    fi
    mkdir -p "$(dirname "$MUNGE_SOCKET")"
    munged --force --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" \
        --log-file="$DIR/munge/munged.log" --pid-file="$(pidfile munged)" --seed-file="$DIR/munge/seed" \
        </dev/null >>"$DIR/log/munged.out" 2>&1
    wait_for 20 munged bash -c "munge -n -S '$MUNGE_SOCKET' | unmunge -S '$MUNGE_SOCKET'"
}

mariadb_client() { mariadb --no-defaults --socket="$DIR/mysql/mariadbd.sock" -u root "$@"; }

start_mariadbd() {
    running_pid mariadbd >/dev/null && return 0
    chown mysql: "$DIR/mysql"
    runuser -u mysql -- test -x "$DIR/mysql" \
        || die "MariaDB runs as user mysql, which cannot reach $DIR/mysql; set HECVL_SLURM_DIR to a folder" \
            "whose parents every user may enter"
    if [[ ! -d "$DIR/mysql/data/mysql" ]]; then
        mariadb-install-db --no-defaults --user=mysql --datadir="$DIR/mysql/data" \
            --auth-root-authentication-method=socket --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 \
            || die "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
    fi
    setsid mariadbd --no-defaults --user=mysql --datadir="$DIR/mysql/data" \
        --socket="$DIR/mysql/mariadbd.sock" --pid-file="$(pidfile mariadbd)" --bind-address=127.0.0.1 \
        --port=$((PORT + 3)) --skip-name-resolve --log-error="$DIR/mysql/mariadbd.log" \
        </dev/null >>"$DIR/log/mariadbd.out" 2>&1 &
    wait_for 60 mariadbd mariadb_client -e "SELECT 1"
    local pass
    pass="$(cat "$DIR/etc/dbpass")"
    mariadb_client -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
        CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
}

start_slurmdbd() {
    running_pid slurmdbd >/dev/null || slurmdbd </dev/null >>"$DIR/log/slurmdbd.out" 2>&1
    wait_for 60 slurmdbd sacctmgr -n list cluster
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null  # before slurmctld registers with slurmdbd
    fi
}

start_slurmctld() {
    running_pid slurmctld >/dev/null || slurmctld </dev/null >>"$DIR/log/slurmctld.out" 2>&1
    wait_for 60 slurmctld scontrol ping
}

node_idle() { [[ "$(sinfo -h -N -n "$HOST" -o %T)" == idle* ]]; }

start_slurmd() {
    running_pid slurmd >/dev/null || slurmd </dev/null >>"$DIR/log/slurmd.out" 2>&1
    wait_for 60 "node $HOST (idle in sinfo)" node_idle
}

up() {
    [[ "$(id -u)" == 0 ]] || die "needs root (it installs Debian packages and writes /etc/slurm)"
    mkdir -p -m 0755 "$DIR"
    mkdir -p "$DIR/etc" "$DIR/log" "$DIR/run" "$DIR/state" "$DIR/spool" "$DIR/mysql"
    mkdir -p -m 0700 "$DIR/munge"
    install_packages
    write_configs
    link_configs
    start_munged
    start_mariadbd
    start_slurmdbd
    start_slurmctld
    start_slurmd
    say "up: cluster $CLUSTER, node $HOST idle, partition cpu; state in $DIR"
}

stop() {  # stop NAME: TERM the PID in its PID file, wait for it to go, KILL after 30 s
    local pid
    pid="$(running_pid "$1")" || return 0
    kill -TERM "$pid"
    for _ in $(seq 60); do
        [[ -d "/proc/$pid" ]] || { say "stopped $1 ($pid)"; return 0; }
        sleep 0.5
    done
    say "$1 ($pid) ignored TERM for 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

down() {
    if running_pid slurmctld >/dev/null && [[ -n "$(squeue -h -o %i 2>/dev/null)" ]]; then
        say "cancelling the jobs still queued or running"
        squeue -h -o %i | xargs -r scancel
        for _ in $(seq 40); do [[ -z "$(squeue -h -o %i 2>/dev/null)" ]] && break; sleep 0.5; done
    fi
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        stop "${DAEMONS[i]}"
    done
    local name
    for name in slurm.conf slurmdbd.conf; do
        if [[ -L "/etc/slurm/$name" && "$(readlink "/etc/slurm/$name")" == "$DIR/etc/$name" ]]; then
            rm "/etc/slurm/$name"
        fi
    done
    say "down (state kept in $DIR)"
}

status() {
    local name pid all=0
    for name in "${DAEMONS[@]}"; do
        if pid="$(running_pid "$name")"; then
            echo "$name: running (pid $pid)"
        else
            echo "$name: stopped"
            all=3
        fi
    done
    if running_pid slurmctld >/dev/null; then
        sinfo -N -o "%N %P %T %c %m %G"
    fi
    return "$all"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status   (state in \${HECVL_SLURM_DIR:-/tmp/hecvl-slurm})" >&2; exit 2 ;;
esac

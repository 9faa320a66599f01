#!/usr/bin/env bash
# Start a real single-node Slurm cluster (Slurm 22.05 as Debian ships it) on this
# machine, with every piece of state inside STATE_DIR:
#
#   STATE_DIR/etc/      slurm.conf, slurmdbd.conf (600), the MariaDB password
#   STATE_DIR/munge/    private munge key, socket, pid, seed, log (owned by munge)
#   STATE_DIR/mysql/    MariaDB datadir (root, private TCP port on 127.0.0.1)
#   STATE_DIR/spool/    slurmctld state save, slurmd spool
#   STATE_DIR/run/      pid files and the MariaDB socket
#   STATE_DIR/log/      one log per daemon
#
# Usage: start.sh STATE_DIR        (as root; run install.sh first)
# Prints the SLURM_CONF path on stdout as its last line; everything else goes to
# stderr. Export SLURM_CONF=<that path> for sbatch/squeue/sacct/submitit.
#
# Ports (override if they collide): DCSL_SLURMCTLD_PORT (default 16817),
# DCSL_SLURMD_PORT (16818), DCSL_SLURMDBD_PORT (16819), DCSL_MARIADB_PORT (16306).
# Other knobs: DCSL_SLURM_START_TIMEOUT (seconds per daemon, default 60),
# DCSL_SLURM_MAX_ARRAY_SIZE (default 1001, Slurm's own default),
# DCSL_SLURM_CRED_EXPIRE (default 10 s: also the delay before a requeued job restarts).
#
# Re-running start.sh on a running STATE_DIR stops it first. A STATE_DIR left by
# a crashed run is reused: configs are rewritten, the database and Slurm's state
# (job ids, accounting) are kept. Delete STATE_DIR for a clean cluster.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 STATE_DIR" >&2
    exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "start.sh: must run as root (slurmd runs jobs as their users; munged runs as munge)" >&2
    exit 1
fi
for bin in munged mungekey mariadbd mariadb-install-db mariadb mariadb-admin \
           slurmdbd slurmctld slurmd sinfo scontrol sacctmgr runuser; do
    if ! command -v "$bin" >/dev/null 2>&1; then
        echo "start.sh: '$bin' not found; run $(dirname "$0")/install.sh first" >&2
        exit 1
    fi
done

HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
STATE_DIR=$(cd "$1" && pwd -P)

CTLD_PORT=${DCSL_SLURMCTLD_PORT:-16817}
SLURMD_PORT=${DCSL_SLURMD_PORT:-16818}
DBD_PORT=${DCSL_SLURMDBD_PORT:-16819}
DB_PORT=${DCSL_MARIADB_PORT:-16306}
TIMEOUT=${DCSL_SLURM_START_TIMEOUT:-60}
MAX_ARRAY_SIZE=${DCSL_SLURM_MAX_ARRAY_SIZE:-1001}
CRED_EXPIRE=${DCSL_SLURM_CRED_EXPIRE:-10}
CLUSTER=dcsl-local
for pair in CTLD_PORT:DCSL_SLURMCTLD_PORT SLURMD_PORT:DCSL_SLURMD_PORT \
            DBD_PORT:DCSL_SLURMDBD_PORT DB_PORT:DCSL_MARIADB_PORT \
            TIMEOUT:DCSL_SLURM_START_TIMEOUT MAX_ARRAY_SIZE:DCSL_SLURM_MAX_ARRAY_SIZE \
            CRED_EXPIRE:DCSL_SLURM_CRED_EXPIRE; do
    var=${pair%%:*}
    if [[ ! "${!var}" =~ ^[1-9][0-9]*$ ]]; then
        echo "start.sh: ${pair#*:} must be a positive integer, got '${!var}'" >&2
        exit 1
    fi
done

ETC=$STATE_DIR/etc
MUNGE_DIR=$STATE_DIR/munge
DB_DIR=$STATE_DIR/mysql
RUN=$STATE_DIR/run
LOG=$STATE_DIR/log
SPOOL=$STATE_DIR/spool
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
DB_SOCKET=$RUN/mariadb.sock
export SLURM_CONF=$ETC/slurm.conf

log() { echo "start.sh: $*" >&2; }

# A previous instance on this STATE_DIR (or a half-started one) goes first, so
# starting twice is a restart rather than a port clash.
bash "$HERE/stop.sh" "$STATE_DIR" >&2

# Unix socket paths are limited to 108 bytes; fail clearly instead of letting a
# daemon die with a truncated path.
if (( ${#MUNGE_SOCKET} > 100 || ${#DB_SOCKET} > 100 )); then
    echo "start.sh: STATE_DIR path too long for unix sockets (${#MUNGE_SOCKET} chars): $STATE_DIR" >&2
    exit 1
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$CTLD_PORT" "$SLURMD_PORT" "$DBD_PORT" "$DB_PORT"; do
    # A daemon stop.sh just stopped may hold its port for a moment longer.
    for _ in $(seq 1 20); do port_in_use "$p" || break; sleep 0.25; done
    if port_in_use "$p"; then
        echo "start.sh: port $p on 127.0.0.1 is already in use; set DCSL_SLURMCTLD_PORT /" \
             "DCSL_SLURMD_PORT / DCSL_SLURMDBD_PORT / DCSL_MARIADB_PORT to free ports" >&2
        exit 1
    fi
done

# On any failure below: show the relevant log tails and leave no daemon behind.
current_log=""
on_error() {
    local rc=$?
    trap - ERR EXIT
    if [[ $rc -ne 0 ]]; then
        echo "start.sh: FAILED (exit $rc)" >&2
        if [[ -n "$current_log" && -s "$current_log" ]]; then
            echo "----- last lines of $current_log -----" >&2
            tail -n 25 "$current_log" >&2
        fi
        # A daemon that died of its own accord says why in a fatal line.
        grep -H -i 'fatal' "$LOG"/*.log "$MUNGE_DIR"/munged.log 2>/dev/null | tail -n 5 >&2 || true
        bash "$HERE/stop.sh" "$STATE_DIR" >&2 || true
    fi
    exit "$rc"
}
trap on_error EXIT

# daemon_alive PID_OR_PIDFILE: is that process running?
daemon_alive() {
    local pid=$1
    if [[ ! "$pid" =~ ^[0-9]+$ ]]; then
        [[ -s "$pid" ]] || return 1
        pid=$(tr -dc '0-9' < "$pid")
    fi
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# wait_for DESCRIPTION LOGFILE PID_OR_PIDFILE COMMAND...: poll COMMAND until it
# succeeds. If the daemon (pid, or pid file; "-" for none) is not running after a
# few seconds' grace, fail at once instead of waiting out the timeout.
wait_for() {
    local what=$1 logfile=$2 pid=$3
    shift 3
    current_log=$logfile
    local start=$SECONDS deadline=$((SECONDS + TIMEOUT)) out
    until out=$("$@" 2>&1); do
        if [[ "$pid" != - ]] && (( SECONDS - start >= 5 )) && ! daemon_alive "$pid"; then
            echo "start.sh: $what exited during startup (log: $logfile)" >&2
            return 1
        fi
        if (( SECONDS >= deadline )); then
            echo "start.sh: timed out after ${TIMEOUT}s waiting for $what (log: $logfile)" >&2
            if [[ -n "$out" ]]; then
                echo "start.sh: last probe said: $(tail -n 3 <<<"$out" | tr '\n' ' ')" >&2
            fi
            return 1
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------- layout
# munged runs as user munge and refuses insecure paths: every ancestor of its
# files must be traversable by munge and not writable by others (sticky /tmp is ok).
mkdir -p "$ETC" "$DB_DIR" "$RUN" "$LOG" "$SPOOL/slurmctld" "$SPOOL/slurmd" "$MUNGE_DIR"
chmod 755 "$STATE_DIR" "$RUN" "$LOG"
chmod 700 "$ETC" "$SPOOL/slurmctld" "$SPOOL/slurmd"
chown munge:munge "$MUNGE_DIR"
chmod 755 "$MUNGE_DIR"   # clients (any user's jobs) must reach the socket
if ! runuser -u munge -- test -x "$MUNGE_DIR"; then
    echo "start.sh: user munge cannot reach $MUNGE_DIR: every parent of STATE_DIR must be" \
         "world-traversable (chmod o+x), e.g. use a folder under /tmp" >&2
    exit 1
fi

# ---------------------------------------------------------------- munge
# A private key: this cluster trusts nobody else's credentials, and the host's
# /etc/munge stays untouched.
if [[ ! -s "$MUNGE_DIR/munge.key" ]]; then
    runuser -u munge -- mungekey --create --keyfile="$MUNGE_DIR/munge.key"
fi
chown munge:munge "$MUNGE_DIR/munge.key"
chmod 600 "$MUNGE_DIR/munge.key"
rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
log "starting munged"
runuser -u munge -- munged \
    --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
    --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
    --seed-file="$MUNGE_DIR/munged.seed" </dev/null >>"$LOG/start.log" 2>&1
wait_for "munged" "$MUNGE_DIR/munged.log" "$MUNGE_DIR/munged.pid" \
    bash -c "munge --socket='$MUNGE_SOCKET' -n | unmunge --socket='$MUNGE_SOCKET'"

# ---------------------------------------------------------------- MariaDB
# Runs as root on a private datadir, TCP only on 127.0.0.1:DB_PORT (slurmdbd has
# no socket option), plus a socket in RUN for our own admin commands. Buffer pool,
# redo log and lock timeout are the least slurmdbd accepts without logging an error
# (half its recommendations); the pool is touched lazily (~130 MB RSS measured).
# Lazy log flushing: a throwaway test database needs no fsync per commit.
if [[ ! -s "$ETC/db.pass" ]]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$ETC/db.pass"
fi
chmod 600 "$ETC/db.pass"
DB_PASS=$(cat "$ETC/db.pass")

if [[ ! -e "$DB_DIR/.dcsl-initialized" ]]; then
    # Missing marker: a fresh folder or an init that died half-way; redo it.
    rm -rf "$DB_DIR"
    mkdir -p "$DB_DIR"
    log "initialising MariaDB datadir"
    current_log=$LOG/mariadb-install.log
    mariadb-install-db --no-defaults --datadir="$DB_DIR" --user=root \
        --auth-root-authentication-method=socket --skip-test-db \
        >"$LOG/mariadb-install.log" 2>&1
    db_fresh=1
else
    db_fresh=0
fi
log "starting mariadbd"
rm -f "$DB_SOCKET"
# mariadbd does not daemonize: setsid + & detaches it from our session so it
# outlives this script and the caller's terminal / process group.
setsid mariadbd --no-defaults --user=root --datadir="$DB_DIR" \
    --socket="$DB_SOCKET" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --pid-file="$RUN/mariadbd.pid" --log-error="$LOG/mariadb.log" \
    --innodb-buffer-pool-size=512M --innodb-lock-wait-timeout=900 --max-connections=50 \
    --innodb-log-file-size=32M --innodb-flush-log-at-trx-commit=2 \
    </dev/null >>"$LOG/mariadb.log" 2>&1 &
wait_for "mariadbd" "$LOG/mariadb.log" "$!" \
    mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root ping
# Idempotent: also resets the password if etc/db.pass was recreated.
mariadb --no-defaults --socket="$DB_SOCKET" -u root <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
if [[ $db_fresh -eq 1 ]]; then touch "$DB_DIR/.dcsl-initialized"; fi

# ---------------------------------------------------------------- configs
CPUS=$(nproc)
MEM_TOTAL_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
# Leave room for the OS and our daemons; slurmd marks a node that has less
# memory than RealMemory as invalid.
REAL_MEM_MB=$(( MEM_TOTAL_MB * 85 / 100 ))
CTLD_HOST=$(uname -n | cut -d. -f1)

cat > "$ETC/slurm.conf" <<EOF
# Generated by slurm/local/start.sh for a single-node test cluster. Do not edit:
# it is rewritten on every start.
ClusterName=$CLUSTER
# slurmctld only runs where SlurmctldHost names this machine; the address pins it
# to loopback.
SlurmctldHost=$CTLD_HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again
# (default 120 s); 10 s keeps preemption tests short. Override: DCSL_SLURM_CRED_EXPIRE.
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=$CRED_EXPIRE

StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true

# No cgroups here: linuxproc tracks processes by parentage; task/affinity pins a
# 1-CPU job to one core so parallel array tasks do not fight.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, each job asks for the whole node's memory and jobs run one at a time.
DefMemPerCPU=2000
# Reject oversized jobs at submit time instead of leaving them pending forever.
EnforcePartLimits=ALL
# submitit requeues preempted / timed-out checkpointable jobs with scontrol requeue.
JobRequeue=1
MaxArraySize=$MAX_ARRAY_SIZE
# Trust the numbers below (taken from this machine) rather than failing the node on
# small detection differences.
SlurmdParameters=config_overrides

# Short intervals: test jobs should start within a second or two of submission.
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2,sched_min_interval=100000
KillWait=2
MinJobAge=300
MessageTimeout=10
InactiveLimit=0
Waittime=0
ReturnToService=2
SlurmdTimeout=60

# Accounting through slurmdbd, so sacct (and submitit, which polls sacct) sees real states.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# The connection to slurmdbd does not follow AuthInfo: it takes the munge socket from here.
AccountingStoragePass=$MUNGE_SOCKET
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none

NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=7-00:00:00 DefaultTime=01:00:00 State=UP
EOF
chmod 644 "$ETC/slurm.conf"

# slurmdbd reads slurmdbd.conf from the folder of SLURM_CONF and insists on mode 600.
cat > "$ETC/slurmdbd.conf" <<EOF
# Generated by slurm/local/start.sh; rewritten on every start.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
chmod 600 "$ETC/slurmdbd.conf"
# ETC holds the password; only the two slurm confs need to be readable by clients.
chmod 711 "$ETC"

# ---------------------------------------------------------------- Slurm
log "starting slurmdbd"
slurmdbd </dev/null >>"$LOG/start.log" 2>&1
wait_for "slurmdbd" "$LOG/slurmdbd.log" "$RUN/slurmdbd.pid" sacctmgr -n show cluster

log "starting slurmctld"
slurmctld </dev/null >>"$LOG/start.log" 2>&1
wait_for "slurmctld" "$LOG/slurmctld.log" "$RUN/slurmctld.pid" bash -c "scontrol ping | grep -q UP"

log "starting slurmd"
# -N: the machine's host name is not 'localhost', the node's name is.
slurmd -N localhost </dev/null >>"$LOG/start.log" 2>&1

node_idle() {
    local state
    state=$(sinfo -h -n localhost -o %T 2>/dev/null) || return 1
    [[ "$state" == idle* ]]
}
wait_for "node localhost to be idle" "$LOG/slurmd.log" "$RUN/slurmd.pid" node_idle

# slurmctld registers the cluster in slurmdbd on its own; wait for it so the first
# job's accounting record is not lost.
cluster_registered() { sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; }
wait_for "cluster $CLUSTER to register with slurmdbd" "$LOG/slurmctld.log" - cluster_registered

trap - EXIT
log "cluster up: CPUs=$CPUS RealMemory=${REAL_MEM_MB}MB ports ctld=$CTLD_PORT slurmd=$SLURMD_PORT dbd=$DBD_PORT mariadb=$DB_PORT"
echo "$SLURM_CONF"

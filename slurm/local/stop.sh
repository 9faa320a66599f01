#!/usr/bin/env bash
# Stop the single-node Slurm cluster that start.sh started in STATE_DIR.
#
# Usage: stop.sh STATE_DIR
#
# Daemons are stopped only through the pid files in STATE_DIR, and a pid is only
# signalled if /proc says it still runs the expected program: never by name, so
# other people's slurmd/munged/mariadbd on the same machine are left alone.
# Safe to run on a STATE_DIR that is stopped, half-started, stale or missing.
# Environment: DCSL_SLURM_STOP_TIMEOUT (seconds per daemon before SIGKILL, default 30).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 STATE_DIR" >&2
    exit 2
fi
if [[ ! -d "$1" ]]; then
    exit 0
fi
STATE_DIR=$(cd "$1" && pwd -P)
RUN=$STATE_DIR/run
TIMEOUT=${DCSL_SLURM_STOP_TIMEOUT:-30}
export SLURM_CONF=$STATE_DIR/etc/slurm.conf

log() { echo "stop.sh: $*" >&2; }

# is_program PID PROGRAM: does PID run PROGRAM's binary? A stale pid file may name
# a recycled pid. Debian installs e.g. /usr/sbin/slurmctld as a link to
# slurmctld-wlm, so compare resolved paths, not names.
is_program() {
    local pid=$1 program=$2 exe want
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    want=$(readlink -f "$(command -v "$program" || echo "/nonexistent/$program")")
    [[ "${exe% (deleted)}" == "$want" ]]
}

# still_running PID: alive and not yet a zombie. (/proc/PID/exe vanishes early in
# exit, before the process closes its sockets, so it cannot tell us "gone".)
still_running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ "${stat%% *}" != Z ]]
}

# Print the pid in PIDFILE if that process is alive and runs PROGRAM.
live_pid() {
    local pidfile=$1 program=$2 pid
    [[ -s "$pidfile" ]] || return 1
    pid=$(tr -dc '0-9' < "$pidfile")
    [[ -n "$pid" ]] || return 1
    is_program "$pid" "$program" || return 1
    echo "$pid"
}

# stop_daemon PIDFILE PROGRAM: SIGTERM, wait for the process itself to go (daemons
# delete their pid file before they finish exiting), SIGKILL after TIMEOUT seconds.
stop_daemon() {
    local pidfile=$1 program=$2 pid
    if ! pid=$(live_pid "$pidfile" "$program"); then
        rm -f "$pidfile"
        return 0
    fi
    log "stopping $program (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + TIMEOUT))
    while still_running "$pid"; do
        if (( SECONDS >= deadline )); then
            log "$program (pid $pid) ignored SIGTERM for ${TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.1
    done
    rm -f "$pidfile"
}

# Cancel jobs first: their slurmstepd processes are not children of slurmd and
# would outlive it (and keep running user code) if we only stopped the daemons.
if live_pid "$RUN/slurmctld.pid" slurmctld >/dev/null && [[ -r "$SLURM_CONF" ]]; then
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
    if [[ -n "${jobs// /}" ]]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null || true
        deadline=$((SECONDS + 15))
        while (( SECONDS < deadline )); do
            left=$(timeout 5 squeue -h -o %A 2>/dev/null || true)
            [[ -z "$left" ]] && break
            sleep 0.3
        done
    fi
fi

stop_daemon "$RUN/slurmd.pid" slurmd
stop_daemon "$RUN/slurmctld.pid" slurmctld
stop_daemon "$RUN/slurmdbd.pid" slurmdbd
stop_daemon "$RUN/mariadbd.pid" mariadbd
stop_daemon "$STATE_DIR/munge/munged.pid" munged

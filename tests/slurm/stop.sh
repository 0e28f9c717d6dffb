#!/usr/bin/env bash
# Stop the one-node Slurm cluster started by tests/slurm/start.sh. Idempotent.
#
#   sudo tests/slurm/stop.sh [RUNDIR] [--keep-munge]    # RUNDIR defaults to /tmp/gexp-slurm
#
# Cancels jobs still queued or running, then stops slurmd, slurmctld and munged
# by their pid files (SIGTERM, then SIGKILL after 30 s). munged is left alone if start.sh found it already running
# (e.g. a system service) or with --keep-munge. RUNDIR (state, logs) is kept.
set -euo pipefail

RUNDIR=/tmp/gexp-slurm
KEEP_MUNGE=0
for arg in "$@"; do
    case "$arg" in
        --keep-munge) KEEP_MUNGE=1 ;;
        *) RUNDIR=$arg ;;
    esac
done

log() { echo "stop.sh: $*"; }

# alive PID NAME: PID is a live (not zombie) process called NAME.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }                                   # fields after "(comm) "
    [ "${stat%% *}" != Z ] || return 1                  # Z: exited, not yet reaped
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

# stop PIDFILE NAME: TERM the process named in PIDFILE if it is NAME; wait for it to exit.
stop() {
    local pidfile=$1 name=$2 pid
    if [ ! -s "$pidfile" ]; then
        log "$name not running (no $pidfile)"
        return 0
    fi
    pid=$(cat "$pidfile")
    if ! alive "$pid" "$name"; then
        log "$name not running (stale $pidfile)"
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 300); do
        alive "$pid" "$name" || { log "$name stopped (pid $pid)"; rm -f "$pidfile"; return 0; }
        sleep 0.1
    done
    log "$name (pid $pid) ignored SIGTERM for 30s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

[ "$(id -u)" -eq 0 ] || { echo "stop.sh: error: must run as root: sudo $0 $*" >&2; exit 1; }

# Jobs still queued or running are cancelled first, so no slurmstepd/job outlives slurmd.
if [ -s "$RUNDIR/slurm.conf" ] && [ -s "$RUNDIR/run/slurmctld.pid" ] \
        && alive "$(cat "$RUNDIR/run/slurmctld.pid")" slurmctld; then
    export SLURM_CONF=$RUNDIR/slurm.conf
    if [ -n "$(squeue --noheader -o %i 2>/dev/null)" ]; then
        log "cancelling jobs: $(squeue --noheader -o %i | tr '\n' ' ')"
        scancel --partition=debug 2>/dev/null || true
        for _ in $(seq 30); do
            [ -z "$(squeue --noheader -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi
stop "$RUNDIR/run/slurmd.pid" slurmd
stop "$RUNDIR/run/slurmctld.pid" slurmctld
if [ "$KEEP_MUNGE" = 1 ]; then
    :
elif [ -e "$RUNDIR/munged.ours" ]; then
    stop /run/munge/munged.pid munged
    rm -f "$RUNDIR/munged.ours"
elif [ -S /run/munge/munge.socket.2 ] && munge -n </dev/null >/dev/null 2>&1; then
    log "munged left alone (running, but not started by start.sh)"
else
    log "munged not running"
fi

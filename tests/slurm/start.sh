#!/usr/bin/env bash
# Start a real one-node Slurm cluster on this machine (for CI). Idempotent.
#
#   sudo tests/slurm/start.sh [RUNDIR]      # RUNDIR defaults to /tmp/gexp-slurm
#   export SLURM_CONF=RUNDIR/slurm.conf     # the line is printed at the end
#
# Starts munged (as the munge user, unless a working munged is already there),
# slurmctld and slurmd (as root) on slurm.conf/gres.conf rendered into RUNDIR,
# then waits until `sinfo` shows the node idle. Stop with tests/slurm/stop.sh RUNDIR.
# Environment: GEXP_SLURM_TIMEOUT (seconds to wait for the node, default 60).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUNDIR=${1:-/tmp/gexp-slurm}
TIMEOUT=${GEXP_SLURM_TIMEOUT:-60}

die() { echo "start.sh: error: $*" >&2; exit 1; }
log() { echo "start.sh: $*"; }

[ "$(id -u)" -eq 0 ] || die "must run as root (slurmd and munged need it): sudo $0 $*"
for cmd in munged slurmctld slurmd sinfo scontrol; do
    command -v "$cmd" >/dev/null || die "$cmd not found; install: apt-get install -y slurm-wlm munge"
done
mkdir -p "$RUNDIR"
RUNDIR=$(cd "$RUNDIR" && pwd)

# pid_alive PIDFILE NAME: the pid file names a live (not zombie) process called NAME.
pid_alive() {
    local pid stat
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }                                   # fields after "(comm) "
    [ "${stat%% *}" != Z ] || return 1                  # Z: exited, not yet reaped
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

tail_logs() {
    local f
    for f in /var/log/munge/munged.log "$RUNDIR/log/slurmctld.log" "$RUNDIR/log/slurmd.log"; do
        [ -f "$f" ] || continue
        echo "----- tail $f" >&2
        tail -n 15 "$f" >&2
    done
}

# --- munge -----------------------------------------------------------------
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /etc/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0600 /etc/munge/munge.key

if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running"
else
    # A munged that died leaves its pid file and socket lock behind; --force takes them over.
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged --force || { tail_logs; die "munged did not start"; }
    touch "$RUNDIR/munged.ours"     # stop.sh only stops a munged that start.sh started
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null || { tail_logs; die "munged started but munge/unmunge fails"; }
    log "munged started"
fi

# --- slurm.conf ------------------------------------------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
install -d -m 0755 "$RUNDIR" "$RUNDIR/log" "$RUNDIR/run"
install -d -m 0700 "$RUNDIR/state"
install -d -m 0755 "$RUNDIR/spool"
render() {
    sed -e "s|@HOST@|$HOST|g" -e "s|@RUNDIR@|$RUNDIR|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEM@|$MEM|g" "$1"
}
changed=0
for f in slurm.conf gres.conf; do
    render "$HERE/$f" > "$RUNDIR/$f.new"
    if cmp -s "$RUNDIR/$f.new" "$RUNDIR/$f"; then
        rm "$RUNDIR/$f.new"
    else
        mv "$RUNDIR/$f.new" "$RUNDIR/$f"
        changed=1
    fi
    chmod 0644 "$RUNDIR/$f"
done
export SLURM_CONF=$RUNDIR/slurm.conf

CTLD_PID=$RUNDIR/run/slurmctld.pid
SLURMD_PID=$RUNDIR/run/slurmd.pid
if [ "$changed" = 1 ] && { pid_alive "$CTLD_PID" slurmctld || pid_alive "$SLURMD_PID" slurmd; }; then
    log "configuration changed: restarting slurm daemons"
    "$HERE/stop.sh" "$RUNDIR" --keep-munge
fi

# --- slurmctld, slurmd ------------------------------------------------------
if pid_alive "$CTLD_PID" slurmctld; then
    log "slurmctld already running (pid $(cat "$CTLD_PID"))"
else
    rm -f "$CTLD_PID"
    # -i: a state file that cannot be read (e.g. after a kill -9) is skipped, not fatal.
    slurmctld -i -f "$SLURM_CONF" || { tail_logs; die "slurmctld did not start"; }
    log "slurmctld started"
fi
if pid_alive "$SLURMD_PID" slurmd; then
    log "slurmd already running (pid $(cat "$SLURMD_PID"))"
else
    rm -f "$SLURMD_PID"
    slurmd -f "$SLURM_CONF" || { tail_logs; die "slurmd did not start"; }
    log "slurmd started"
fi

# --- wait for the node -------------------------------------------------------
start=$SECONDS
state=
while :; do
    state=$(sinfo --noheader --nodes="$HOST" --format=%t 2>/dev/null | head -n1 || true)
    case "$state" in
        idle|mix|alloc) break ;;                 # up (jobs may already run on it)
        inval*)
            # Never heals by itself: a configuration error (e.g. gres, CPUs, memory).
            tail_logs
            scontrol show node "$HOST" >&2 || true
            die "node $HOST is INVAL (configuration rejected; reason above, logs in $RUNDIR/log)" ;;
        down*|drain*|fail*)
            # A node left down by an earlier run: ReturnToService=2 normally clears it.
            scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
    esac
    # Both daemons fork before reading all their configuration: a fatal error shows up here.
    if (( SECONDS - start >= 2 )); then
        for d in slurmctld:"$CTLD_PID" slurmd:"$SLURMD_PID"; do
            pid_alive "${d#*:}" "${d%%:*}" && continue
            tail_logs
            die "${d%%:*} exited (see 'fatal:' / 'error:' in $RUNDIR/log/${d%%:*}.log above)"
        done
    fi
    if (( SECONDS - start >= TIMEOUT )); then
        tail_logs
        sinfo >&2 || true
        die "node $HOST not idle after ${TIMEOUT}s (state: '${state:-no answer from slurmctld}'); logs above, all in $RUNDIR/log"
    fi
    sleep 1
done
log "node $HOST is $state after $(( SECONDS - start ))s; partition debug, $CPUS CPUs, ${MEM} MB, gres gpu:1"
echo "export SLURM_CONF=$SLURM_CONF"

#!/usr/bin/env bash
# Docker's own engine for gexp's tests, on this kind of machine (Debian 12, root, no image
# registry): Debian's docker.io (dockerd 20.10, containerd, runc). Idempotent.
#
#   1. docker.io (and debootstrap, when the base must be made) from apt, when missing.
#   2. A dockerd of its own, apart from any system one (/var/lib/docker, /run/docker.sock):
#      data root, exec root, socket, pidfile and log all under DIR, default /var/tmp/gexp-docker.
#      DIR is kept between runs, so a CI rerun reuses the images and the build cache (seconds, not
#      the minutes and GBs of a fresh training image). No iptables, no bridge: tasks need no
#      network, builds use --network host. Storage driver overlay2 (the root filesystem here is
#      ext4), else vfs (copies every layer: GBs more disk); the one that worked is kept in
#      DIR/storage-driver and used again. GEXP_DOCKER_STORAGE_DRIVER=vfs forces one.
#   3. The base image localhost/debian:bookworm, as setup-podman.sh makes it: debootstrap
#      (minbase) from the Debian mirror apt uses, then `docker import`. The root filesystem is kept
#      as a tarball ($GEXP_ROOTFS, default /var/tmp/gexp-debian-bookworm.tar), so a new data root
#      imports it in seconds.
#   4. A fake GPU for -profile gpu,docker -stub (like tests/slurm's gres on /dev/null): docker
#      run --gpus calls nvidia-container-runtime-hook; DIR/fake-gpu holds a no-op one, last on
#      dockerd's PATH (a real NVIDIA toolkit, if installed, comes first). No GPU is made visible.
#
# Usage (as root):
#   bash tests/containers/setup-docker.sh [start] [DIR]   start it (or find it running), import
#                                                          the base, check it runs a container
#   bash tests/containers/setup-docker.sh stop [DIR]      stop it (images stay in DIR)
#   export DOCKER_HOST=unix://DIR/docker.sock              point docker, and Nextflow, at it
# DIR may also come from GEXP_DOCKER_DIR.
set -euo pipefail

BASE_IMAGE=localhost/debian:bookworm
action=start
case "${1:-}" in start | stop) action=$1; shift ;; esac
DIR=${1:-${GEXP_DOCKER_DIR:-/var/tmp/gexp-docker}}
ROOTFS=${GEXP_ROOTFS:-/var/tmp/gexp-debian-bookworm.tar}
SOCK=$DIR/docker.sock PIDFILE=$DIR/docker.pid LOG=$DIR/dockerd.log
export DOCKER_HOST=unix://$SOCK

# A failed start stops the dockerd it started (and leaves one it found running alone).
die() {
    echo "setup-docker: error: $*" >&2
    if [ -n "${started_here:-}" ]; then started_here=""; stop_engine >/dev/null 2>&1 || true; fi
    exit 1
}
say() { echo "setup-docker: $*"; }

[ "$(id -u)" = 0 ] || die "run as root (dockerd, debootstrap and docker import need it)"
case "$DIR" in /*) ;; *) die "DIR must be an absolute path, not $DIR" ;; esac
# The socket path must fit a sockaddr_un (108 bytes), containerd's under DIR/exec too.
[ ${#DIR} -le 60 ] || die "DIR is too long for the engine's sockets (60 characters at most): $DIR"

# The dockerd of the pidfile is running (not a zombie, not another process with its pid).
alive() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/status" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] \
        && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"
}

stop_engine() {
    if alive; then
        local pid i
        pid=$(cat "$PIDFILE")
        kill -TERM "$pid"
        for i in $(seq 120); do alive || break; sleep 0.5; done
        alive && die "dockerd (pid $pid) did not stop within 60 s (log: $LOG)"
    fi
    # dockerd leaves its network namespace (exec root) mounted: unmount what is left under DIR.
    local m
    for m in $(awk -v d="$DIR/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" || true
    done
}

if [ "$action" = stop ]; then
    if alive; then stop_engine; say "stopped dockerd ($DIR; its images stay there)"
    else stop_engine; say "no dockerd running for $DIR"; fi
    exit 0
fi

# --- 1. packages ------------------------------------------------------------------------------
install() {
    command -v apt-get >/dev/null || die "missing $* and no apt-get to install them"
    say "installing $* with apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; } \
        || die "$* missing and apt-get could not install them"
}
command -v dockerd >/dev/null || install docker.io
command -v docker >/dev/null || die "dockerd is installed but no docker client is on PATH"

# --- 2. the engine ----------------------------------------------------------------------------
mkdir -p "$DIR/fake-gpu"
hook=$DIR/fake-gpu/nvidia-container-runtime-hook
if [ ! -x "$hook" ]; then
    printf '#!/bin/sh\n# No GPU: a no-op OCI prestart hook (setup-docker.sh), so --gpus all runs.\ncat >/dev/null\n' >"$hook"
    chmod +x "$hook"
fi

# start_engine DRIVER: start dockerd with that storage driver; 1 (and a reason) if it won't.
start_engine() {
    local i start=$SECONDS
    started_here=1
    PATH="$PATH:$DIR/fake-gpu" setsid dockerd --storage-driver="$1" \
        --iptables=false --ip6tables=false --bridge=none \
        --data-root "$DIR/data" --exec-root "$DIR/exec" -H "unix://$SOCK" --pidfile "$PIDFILE" \
        </dev/null >"$LOG" 2>&1 &
    for i in $(seq 120); do
        docker info >/dev/null 2>&1 && { say "dockerd started in $((SECONDS - start)) s"; return 0; }
        kill -0 $! 2>/dev/null || break
        sleep 0.5
    done
    reason=$(grep -E 'level=(fatal|error)|^failed' "$LOG" | tail -1 | sed 's/.*msg="\([^"]*\)".*/\1/')
    reason=${reason:-no answer on $SOCK within 60 s}
    stop_engine
    return 1
}

# The base, made once with debootstrap (debian-rootfs.sh, shared with setup-podman.sh).
make_rootfs() {
    bash "$(dirname "$0")/debian-rootfs.sh" "$ROOTFS" >/dev/null
}

# The base imported, and a container run with Nextflow's options; 1 (and a reason) if not.
base_runs() {
    if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        [ -s "$ROOTFS" ] || make_rootfs
        local start=$SECONDS
        docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/bash"]' "$ROOTFS" "$BASE_IMAGE" >/dev/null 2>"$DIR/import.err" \
            || { reason="docker import: $(tail -1 "$DIR/import.err")"; return 1; }
        say "imported $BASE_IMAGE from $ROOTFS in $((SECONDS - start)) s"
    fi
    local out
    out=$(docker run -i --rm -u "$(id -u):$(id -g)" -v "$DIR:$DIR" -w "$DIR" --cpu-shares 1024 \
        --memory 256m "$BASE_IMAGE" bash -c 'echo ok' 2>&1 </dev/null) && [ "$out" = ok ] \
        || { reason="docker run: $(printf '%s\n' "$out" | tail -1)"; return 1; }
}

recorded=$(cat "$DIR/storage-driver" 2>/dev/null || true)
if [ -n "${GEXP_DOCKER_STORAGE_DRIVER:-}" ]; then drivers=("$GEXP_DOCKER_STORAGE_DRIVER")
elif [ "$recorded" = vfs ]; then drivers=(vfs)
else drivers=(overlay2 vfs); fi

if alive && docker info >/dev/null 2>&1; then
    driver=$(docker info --format '{{.Driver}}')
    [[ " ${drivers[*]} " == *" $driver "* ]] \
        || die "dockerd for $DIR runs with $driver, not ${drivers[*]}: stop it first (setup-docker.sh stop)"
    say "dockerd already running for $DIR"
    base_runs || die "$reason (dockerd log: $LOG)"
else
    stop_engine  # a dead one's leftovers
    for driver in "${drivers[@]}"; do
        if start_engine "$driver" && base_runs; then break; fi
        [ "$driver" != "${drivers[-1]}" ] || die "dockerd with storage driver $driver does not work: $reason (log: $LOG)"
        say "storage driver $driver does not work here ($reason); falling back to vfs"
        stop_engine
    done
fi
echo "$driver" >"$DIR/storage-driver"
say "ok: dockerd $(docker version --format '{{.Server.Version}}'), storage driver $driver," \
    "$BASE_IMAGE runs; export DOCKER_HOST=$DOCKER_HOST (stop: setup-docker.sh stop $DIR)"

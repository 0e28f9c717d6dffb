#!/usr/bin/env bash
# Build gexp's images from envs/Dockerfile with podman, on a machine without a registry:
#   localhost/gexp:<version>        data steps (kallisto, bedtools, samtools, gexp; no torch)
#   localhost/gexp-train:<version>  the same plus torch, for training
# <version> is pyproject.toml's. The base is localhost/debian:bookworm, which setup-podman.sh
# (run first, it is idempotent) makes with debootstrap. Unchanged sources rebuild nothing: every
# layer comes from podman's cache, in seconds. pip's downloads (torch is several GB) are kept in
# $PIP_CACHE on the host, mounted into the build, so a rebuild doesn't download them again.
#
# Usage: bash tests/containers/build-images.sh          (as root)
#   BASE=...  TORCH=torch==2.13.0  PIP_CACHE=~/.cache/pip  WHEELS=.wheels  LOG_DIR=/tmp
#   override the defaults.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BASE=${BASE:-localhost/debian:bookworm}
TORCH=${TORCH:-torch==2.13.0}
PIP_CACHE=${PIP_CACHE:-$HOME/.cache/pip}
LOG_DIR=${LOG_DIR:-/tmp}

die() { echo "build-images: error: $*" >&2; exit 1; }
say() { echo "build-images: $*"; }

[ "$(id -u)" = 0 ] || die "run as root (the podman set-up and its image store are root's)"
bash "$here/setup-podman.sh"
command -v podman >/dev/null || die "podman is missing (apt-get install podman runc debootstrap)"

version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$repo/pyproject.toml" | head -1)
[ -n "$version" ] || die "no version = \"...\" in $repo/pyproject.toml"
mkdir -p "$PIP_CACHE" "$LOG_DIR"

# pip inside the build trusts the CAs this machine's pip trusts (here a TLS-inspecting proxy's CA
# is in the system bundle, which the image's own bundle lacks): a pip.conf naming the host's
# bundle, mounted as root's pip config for the build only. The image keeps only the empty
# mount points /root/.config/pip and /root/.cache/pip.
ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
mounts=(-v "$PIP_CACHE:/root/.cache/pip")
# The wheels `make setup` downloaded for the host's venv (torch and its CUDA libraries, GBs):
# the training image installs torch from them, so a CI run downloads it once, not twice.
WHEELS=${WHEELS:-$repo/.wheels}
if [ -d "$WHEELS" ]; then
    mounts+=(-v "$(cd "$WHEELS" && pwd):/wheels:ro")
    say "torch from the wheels in $WHEELS"
fi
if [ -f "$ca" ]; then
    conf=/var/tmp/gexp-build-pip
    mkdir -p "$conf"
    cp "$ca" "$conf/ca.crt"
    printf '[global]\ncert = /root/.config/pip/ca.crt\n' >"$conf/pip.conf"
    mounts+=(-v "$conf:/root/.config/pip:ro")
fi

# build NAME TORCH_REQUIREMENT: build localhost/NAME:$version and say what happened.
build() {
    local tag="localhost/$1:$version" log="$LOG_DIR/gexp-build-$1.log" before after start
    before=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    start=$SECONDS
    say "building $tag (BASE=$BASE TORCH=${2:-none}; log: $log)"
    if ! podman build --network host --layers -f "$repo/envs/Dockerfile" \
        --build-arg BASE="$BASE" --build-arg TORCH="$2" \
        --label org.opencontainers.image.version="$version" \
        "${mounts[@]}" -t "$tag" "$repo" >"$log" 2>&1; then
        tail -30 "$log" >&2
        die "podman build of $tag failed (whole log: $log)"
    fi
    after=$(podman image inspect --format '{{.Id}}' "$tag")
    if [ "$before" = "$after" ]; then
        say "$tag unchanged (every layer cached) in $((SECONDS - start)) s"
    else
        # The image this tag named before, now untagged: drop it (its cached layers stay).
        [ -z "$before" ] || podman rmi "$before" >/dev/null 2>&1 || true
        say "built $tag (${after:0:12}, $(podman image inspect --format '{{.Size}}' "$tag" \
            | awk '{printf "%.0f MB", $1 / 1e6}')) in $((SECONDS - start)) s"
    fi
}

build gexp ""
build gexp-train "$TORCH"

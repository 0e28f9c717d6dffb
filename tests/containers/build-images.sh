#!/usr/bin/env bash
# Build gexp's images from envs/Dockerfile with podman (or docker: ENGINE=docker), on a machine
# without a registry:
#   localhost/gexp:<version>        data steps (kallisto, bedtools, samtools, gexp; no torch)
#   localhost/gexp-train:<version>  the same plus torch, for training
# <version> is pyproject.toml's. The base is localhost/debian:bookworm, which setup-podman.sh
# (run first, it is idempotent) makes with debootstrap. Unchanged sources rebuild nothing: every
# layer comes from podman's cache, in seconds. pip's downloads (torch is several GB) are kept in
# $PIP_CACHE on the host, mounted into the build, so a rebuild doesn't download them again.
#
# ENGINE=docker: the same images in Docker's engine, the one setup-docker.sh starts (run by this
# script; DIR from GEXP_DOCKER_DIR; it stays running: setup-docker.sh stop). docker build has no
# -v, so pip in the build gets no pip.conf, cache or wheels mounted: instead the host's pip
# downloads the dependencies (the newest, as PyPI would give the build) into $WHEELHOUSE, and
# that and $WHEELS are served on 127.0.0.1:$WHEELS_PORT for the build's pip (PIP_NO_INDEX,
# PIP_FIND_LINKS: envs/Dockerfile). A fixed port keeps the build arguments, and so docker's layer
# cache, the same from one run to the next. Docker's legacy builder (DOCKER_BUILDKIT=0): no buildx.
#
# Usage: bash tests/containers/build-images.sh          (as root)
#   ENGINE=podman|docker  BASE=...  TORCH=torch==2.13.0  PIP_CACHE=~/.cache/pip  WHEELS=.wheels
#   LOG_DIR=/tmp  WHEELHOUSE=/var/tmp/gexp-wheelhouse  WHEELS_PORT=47801  override the defaults.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BASE=${BASE:-localhost/debian:bookworm}
TORCH=${TORCH:-torch==2.13.0}
PIP_CACHE=${PIP_CACHE:-$HOME/.cache/pip}
LOG_DIR=${LOG_DIR:-/tmp}
ENGINE=${ENGINE:-podman}

die() { echo "build-images: error: $*" >&2; exit 1; }
say() { echo "build-images: $*"; }

[ "$(id -u)" = 0 ] || die "run as root (the $ENGINE set-up and its image store are root's)"
case "$ENGINE" in
podman)
    bash "$here/setup-podman.sh"
    command -v podman >/dev/null || die "podman is missing (apt-get install podman runc debootstrap)"
    ;;
docker)
    bash "$here/setup-docker.sh" start
    export DOCKER_HOST="unix://${GEXP_DOCKER_DIR:-/var/tmp/gexp-docker}/docker.sock"
    ;;
*) die "ENGINE must be podman or docker, not $ENGINE" ;;
esac

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

# docker: the wheels over HTTP instead of the mounts above (see the top).
engine_args=(--layers "${mounts[@]}")
if [ "$ENGINE" = docker ]; then
    export DOCKER_BUILDKIT=0
    WHEELHOUSE=${WHEELHOUSE:-/var/tmp/gexp-wheelhouse}
    WHEELS_PORT=${WHEELS_PORT:-47801}
    pip=(python3 -m pip)
    [ -x "$repo/.venv/bin/python" ] && pip=("$repo/.venv/bin/python" -m pip)
    serve=$(mktemp -d /var/tmp/gexp-wheels-served.XXXXXX)
    trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$serve"' EXIT
    mkdir -p "$WHEELHOUSE"
    ln -s "$WHEELHOUSE" "$serve/deps"
    # What the Dockerfile installs: pyproject.toml's dependencies but torch, its build backend,
    # and torch itself where no $WHEELS are.
    python3 -c 'import sys, tomllib; p = tomllib.load(open(sys.argv[1], "rb"))
print(*p["project"]["dependencies"], *p["build-system"]["requires"], sep="\n")' \
        "$repo/pyproject.toml" | grep -viE '^torch([^[:alnum:]_.-]|$)' >"$serve/requirements.txt"
    if [ -d "$WHEELS" ]; then ln -s "$(cd "$WHEELS" && pwd)" "$serve/torch"
    else echo "$TORCH" >>"$serve/requirements.txt"; mkdir "$serve/torch"; fi
    start=$SECONDS
    "${pip[@]}" download -q --only-binary=:all: -d "$WHEELHOUSE" -r "$serve/requirements.txt" \
        >"$LOG_DIR/gexp-build-wheelhouse.log" 2>&1 \
        || { tail -20 "$LOG_DIR/gexp-build-wheelhouse.log" >&2; die "pip download into $WHEELHOUSE failed"; }
    say "dependencies' wheels in $WHEELHOUSE ($(du -sm "$WHEELHOUSE" | cut -f1) MB) in $((SECONDS - start)) s"
    python3 -m http.server "$WHEELS_PORT" --bind 127.0.0.1 --directory "$serve" \
        >"$LOG_DIR/gexp-build-wheels-server.log" 2>&1 &
    server=$!
    url=http://127.0.0.1:$WHEELS_PORT
    for _ in $(seq 50); do
        python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
            "$url/deps/" 2>/dev/null && break
        kill -0 "$server" 2>/dev/null || die "cannot serve the wheels on 127.0.0.1:$WHEELS_PORT" \
            "($(tail -1 "$LOG_DIR/gexp-build-wheels-server.log")): set WHEELS_PORT to a free port"
        sleep 0.2
    done
    kill -0 "$server" 2>/dev/null && python3 -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2)' "$url/deps/" 2>/dev/null \
        || die "the wheels' server on 127.0.0.1:$WHEELS_PORT does not answer: set WHEELS_PORT to a free port"
    engine_args=(--build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS="$url/deps/ $url/torch/")
fi

# build NAME TORCH_REQUIREMENT: build localhost/NAME:$version and say what happened.
build() {
    local tag="localhost/$1:$version" log="$LOG_DIR/gexp-build-$1.log" before after start
    before=$($ENGINE image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    start=$SECONDS
    say "building $tag (BASE=$BASE TORCH=${2:-none}; log: $log)"
    if ! $ENGINE build --network host -f "$repo/envs/Dockerfile" \
        --build-arg BASE="$BASE" --build-arg TORCH="$2" \
        --label org.opencontainers.image.version="$version" \
        "${engine_args[@]}" -t "$tag" "$repo" >"$log" 2>&1; then
        tail -30 "$log" >&2
        die "$ENGINE build of $tag failed (whole log: $log)"
    fi
    after=$($ENGINE image inspect --format '{{.Id}}' "$tag")
    if [ "$before" = "$after" ]; then
        say "$tag unchanged (every layer cached) in $((SECONDS - start)) s"
    else
        # The image this tag named before, now untagged: drop it (its cached layers stay).
        [ -z "$before" ] || $ENGINE rmi "$before" >/dev/null 2>&1 || true
        id=${after#sha256:}
        say "built $tag (${id:0:12}, $($ENGINE image inspect --format '{{.Size}}' "$tag" \
            | awk '{printf "%.0f MB", $1 / 1e6}')) in $((SECONDS - start)) s"
    fi
}

build gexp ""
build gexp-train "$TORCH"

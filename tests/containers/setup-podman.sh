#!/usr/bin/env bash
# Make podman usable on this kind of machine (Debian 12, root, no Docker engine, no image
# registry), so that CI can build and run gexp's images. Idempotent: run it as often as you like.
#
#   1. podman, runc and debootstrap from apt, when missing.
#   2. /etc/containers/containers.conf: this kernel fails with crun and with podman's default
#      ulimits, so: runtime = "runc" and default_ulimits = [].
#   3. The base image localhost/debian:bookworm: no registry is reachable, so it is made with
#      debootstrap (minbase) from the Debian mirror that apt already uses, then `podman import`.
#      It stands in for the public debian:bookworm-slim that envs/Dockerfile names by default.
#
# Usage: bash tests/containers/setup-podman.sh     (as root)
set -euo pipefail

BASE_IMAGE=localhost/debian:bookworm
CONF=/etc/containers/containers.conf
MARK="# Written by gexp's tests/containers/setup-podman.sh"

die() { echo "setup-podman: error: $*" >&2; exit 1; }
say() { echo "setup-podman: $*"; }

[ "$(id -u)" = 0 ] || die "run as root (podman import, debootstrap and /etc/containers need it)"

missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    say "installing ${missing[*]} with apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq podman runc debootstrap >/dev/null; } \
        || die "podman, runc or debootstrap missing and apt-get could not install them"
fi

# --- 2. containers.conf ---------------------------------------------------------------------
want="$MARK
[containers]
default_ulimits = []

[engine]
runtime = \"runc\""
mkdir -p /etc/containers
if [ -f "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
    # Someone else's file: keep it if it already has both settings, never overwrite it.
    if grep -Eq '^\s*runtime\s*=\s*"runc"' "$CONF" && grep -Eq '^\s*default_ulimits\s*=\s*\[\s*\]' "$CONF"; then
        say "$CONF already sets runc and no default ulimits, left as is"
    else
        die "$CONF exists and was not written by this script: add runtime = \"runc\" under" \
            "[engine] and default_ulimits = [] under [containers] to it, then run this again"
    fi
elif [ "$(cat "$CONF" 2>/dev/null)" = "$want" ]; then
    say "$CONF up to date"
else
    printf '%s\n' "$want" >"$CONF"
    say "wrote $CONF (runtime runc, no default ulimits)"
fi
# podman-docker's `docker` wrapper prints a notice on every call unless this file exists.
if dpkg -s podman-docker >/dev/null 2>&1 && [ ! -e /etc/containers/nodocker ]; then
    touch /etc/containers/nodocker
    say "created /etc/containers/nodocker"
fi

# --- 3. base image --------------------------------------------------------------------------
if podman image exists "$BASE_IMAGE"; then
    say "$BASE_IMAGE already exists, skipped debootstrap"
else
    # debootstrap's bookworm, as a tarball that setup-docker.sh imports too (one base for both).
    start=$SECONDS
    rootfs=$(bash "$(dirname "$0")/debian-rootfs.sh")
    podman import --quiet \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' "$rootfs" "$BASE_IMAGE" >/dev/null
    say "imported $BASE_IMAGE in $((SECONDS - start)) s"
fi

# --- check ----------------------------------------------------------------------------------
podman run --rm "$BASE_IMAGE" /bin/true \
    || die "podman cannot run $BASE_IMAGE (see the error above; podman info may tell more)"
say "ok: podman $(podman version --format '{{.Client.Version}}'), runtime" \
    "$(podman info --format '{{.Host.OCIRuntime.Name}}'), $BASE_IMAGE runs"

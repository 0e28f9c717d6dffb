#!/usr/bin/env bash
# Debian 12 (bookworm, minbase) as a root filesystem tarball, made once with debootstrap from the
# Debian mirror apt already uses: the base of gexp's images where no image registry is reachable.
# setup-podman.sh (podman import) and setup-docker.sh (docker import) both import it, so the two
# engines run the same base. Idempotent: an existing tarball is kept.
#
# Usage: bash tests/containers/debian-rootfs.sh [TARBALL]   (as root; default
#   $GEXP_ROOTFS or /var/tmp/gexp-debian-bookworm.tar). Prints the tarball's path.
set -euo pipefail

ROOTFS=${1:-${GEXP_ROOTFS:-/var/tmp/gexp-debian-bookworm.tar}}
die() { echo "debian-rootfs: error: $*" >&2; exit 1; }
say() { echo "debian-rootfs: $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap needs it)"
if [ -s "$ROOTFS" ]; then
    echo "$ROOTFS"
    exit 0
fi
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap with apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap \
        >/dev/null; } || die "debootstrap is missing and apt-get could not install it"
fi
make_rootfs() {
    start=$SECONDS
    uris=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
        /etc/apt/sources.list.d/*.list 2>/dev/null | awk '
        /^URIs:/ { for (i = 2; i <= NF; i++) print $i }
        /^deb[ \t]/ { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { print $i; break } }' || true)
    mirror=$(printf '%s\n' "$uris" | grep -E '/debian/?$' | head -1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    security=$(printf '%s\n' "$uris" | grep -E '/debian-security/?$' | head -1 || true)
    security=${security:-http://deb.debian.org/debian-security}
    root=$(mktemp -d /var/tmp/gexp-debootstrap.XXXXXX)
    trap 'rm -rf "$root" "$ROOTFS.tmp"' EXIT
    say "debootstrap --variant=minbase bookworm from $mirror (a few minutes)"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 \
        || { tail -20 "$root.log" >&2; die "debootstrap failed (log: $root.log)"; }
    rm -f "$root.log"
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log "$root"/tmp/*
    tar -C "$root" --numeric-owner -cf "$ROOTFS.tmp" . && mv "$ROOTFS.tmp" "$ROOTFS"
    rm -rf "$root"
    trap - EXIT
    say "made $ROOTFS ($(du -m "$ROOTFS" | cut -f1) MB) in $((SECONDS - start)) s"
}
make_rootfs
echo "$ROOTFS"

#!/usr/bin/env bash
# stampflow-base:bookworm without an image registry: a minimal Debian bookworm root made by
# debootstrap (Debian packages are reachable where registries are not) and `docker import`.
#
#   deploy/image/base.sh            # skip when the image exists
#   deploy/image/base.sh --force    # rebuild it (the cached tarballs still count)
#
# Contents: debootstrap --variant=minbase plus python3 (3.11), python3-venv, ca-certificates;
# apt lists, .debs, docs, man pages and locales removed. The CA certificates the host trusts
# locally (/usr/local/share/ca-certificates, e.g. a TLS-inspecting egress proxy) are added,
# so pip in the build trusts what the host trusts; STAMPFLOW_BASE_HOST_CAS=0 leaves them out.
#
# Cache ($STAMPFLOW_IMAGE_CACHE, default ~/.cache/stampflow-image), so a fresh engine on a
# machine that kept its cache imports in seconds:
#   debs-<key>.tgz    the packages debootstrap downloaded (--make-tarball)
#   rootfs-<key>.tgz  the finished root, as imported
# Needs root (debootstrap, chroot) and an engine that answers (deploy/image/engine.sh start).
set -euo pipefail

BASE_IMAGE=${STAMPFLOW_BASE_IMAGE:-stampflow-base:bookworm}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
INCLUDE=python3,python3-venv,ca-certificates
CACHE=${STAMPFLOW_IMAGE_CACHE:-$HOME/.cache/stampflow-image}
RECIPE=2  # bump when the steps below change what the root contains

say() { echo "base.sh: $*" >&2; }

if [ "${1:-}" != --force ] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "$BASE_IMAGE exists; skipped (--force rebuilds it)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    say "debootstrap needs root"
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
fi

host_cas=()
if [ "${STAMPFLOW_BASE_HOST_CAS:-1}" != 0 ] && [ -d /usr/local/share/ca-certificates ]; then
    while IFS= read -r -d '' ca; do host_cas+=("$ca"); done \
        < <(find /usr/local/share/ca-certificates -name '*.crt' -type f -print0 | sort -z)
fi
debs_key=$(printf '%s\n' "$SUITE" "$MIRROR" "$INCLUDE" | sha256sum | cut -c1-12)
root_key=$(
    { printf '%s\n' "$debs_key" "$RECIPE"; cat "${host_cas[@]}" /dev/null; } | sha256sum | cut -c1-12
)
debs="$CACHE/debs-$SUITE-$debs_key.tgz"
rootfs="$CACHE/rootfs-$SUITE-$root_key.tgz"
mkdir -p "$CACHE"

work=$(mktemp -d "${TMPDIR:-/tmp}/stampflow-base.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ ! -s "$rootfs" ]; then
    if [ ! -s "$debs" ]; then
        say "downloading $SUITE minbase + $INCLUDE from $MIRROR into $debs"
        debootstrap --variant=minbase --include="$INCLUDE" --make-tarball="$work/debs.tgz" \
            "$SUITE" "$work/fetch" "$MIRROR" >"$work/debootstrap-fetch.log" 2>&1 \
            || { tail -n 30 "$work/debootstrap-fetch.log" >&2; exit 1; }
        mv "$work/debs.tgz" "$debs"
    fi
    say "unpacking $debs into a root"
    root="$work/root"
    debootstrap --variant=minbase --include="$INCLUDE" --unpack-tarball="$debs" \
        "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
    if [ "${#host_cas[@]}" -gt 0 ]; then
        say "adding the host's local CA certificates: ${host_cas[*]}"
        cp "${host_cas[@]}" "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null
    fi
    # What an image does not need; apt-get update brings the lists back if a layer wants them.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/usr/share/locale/* "$root"/var/log/*.log "$root"/var/log/apt/* \
        "$root"/debootstrap
    : >"$root/etc/machine-id"
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" \
        >"$root/etc/apt/sources.list"
    tar --numeric-owner -C "$root" -czf "$work/rootfs.tgz" .
    mv "$work/rootfs.tgz" "$rootfs"
else
    say "using the cached root $rootfs"
fi

say "importing $rootfs as $BASE_IMAGE"
docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase --include=$INCLUDE $SUITE $MIRROR" \
    "$rootfs" "$BASE_IMAGE" >/dev/null
docker image inspect -f "base.sh: $BASE_IMAGE {{.Id}} {{.Size}} bytes" "$BASE_IMAGE" >&2

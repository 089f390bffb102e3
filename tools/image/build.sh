#!/usr/bin/env bash
# Proves the Dockerfile builds without a container engine or an image registry: a Debian bookworm base made by
# debootstrap (python3, venv, pip from Debian's packages) stands in for python:3.11-slim-bookworm, and buildah
# (chroot isolation, vfs storage: no daemon, no overlay mounts) builds the Dockerfile on it and runs the image's
# entry point. Needs root and Debian's buildah and debootstrap packages.
#   tools/image/build.sh            build, then run `flux-tenant-exporter --version` inside the image
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${FTE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flux-tenant-exporter}/image
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
mkdir -p "$cache"
if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah debootstrap >/dev/null
fi
if [ ! -f "$cache/rootfs/.complete" ]; then
    rm -rf "$cache/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
        bookworm "$cache/rootfs" http://deb.debian.org/debian >&2
    touch "$cache/rootfs/.complete"
fi
if ! buildah inspect --type image localhost/fte-python-base:bookworm >/dev/null 2>&1; then
    # This machine reaches PyPI through an egress proxy whose CA the host trusts: give the stand-in base the same
    # trust (and point pip at the system store), so the Dockerfile itself stays as it is for real builds.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$cache/rootfs/usr/local/share/ca-certificates/"
        chroot "$cache/rootfs" update-ca-certificates >/dev/null
    fi
    ctr=$(buildah from scratch)
    buildah copy "$ctr" "$cache/rootfs" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt "$ctr"
    buildah commit --quiet "$ctr" localhost/fte-python-base:bookworm >/dev/null
    buildah rm "$ctr" >/dev/null
fi
buildah bud --quiet --layers=false --build-arg PYTHON_IMAGE=localhost/fte-python-base:bookworm \
    -t localhost/flux-tenant-exporter:dev -f "$root/Dockerfile" "$root" >&2
ctr=$(buildah from localhost/flux-tenant-exporter:dev)
trap 'buildah rm "$ctr" >/dev/null' EXIT
echo "user: $(buildah inspect --format '{{.OCIv1.Config.User}}' localhost/flux-tenant-exporter:dev)"
echo "entrypoint: $(buildah inspect --format '{{.OCIv1.Config.Entrypoint}}' localhost/flux-tenant-exporter:dev)"
buildah run --user 65532:65532 "$ctr" -- flux-tenant-exporter --version
out=$(buildah run --user 65532:65532 "$ctr" -- flux-tenant-exporter report --input /dev/null 2>&1 || true)
grep -q "input is empty" <<<"$out" || { echo "unexpected report output: $out" >&2; exit 1; }
# The image holds the product only: no demo harness, and no silent demo when no cluster is configured.
expect_one_line() {  # expect_one_line TEXT ARGS...: exit code 2 and exactly one line on stderr, holding TEXT
    local want=$1 out err rc
    shift
    # stderr of the command alone (buildah adds its own lines on a non-zero exit), then its exit code
    out=$(buildah run --user 65532:65532 "$ctr" -- sh -c 'flux-tenant-exporter "$@" 2>&1 >/dev/null; echo "rc=$?"' \
        sh "$@")
    rc=$(tail -n 1 <<<"$out") rc=${rc#rc=}
    err=$(sed '$d' <<<"$out")
    [ "$rc" = 2 ] && [ "$(wc -l <<<"$err")" = 1 ] && grep -qF "$want" <<<"$err" \
        || { echo "flux-tenant-exporter $*: expected one line with '$want' and exit 2, got exit $rc: $err" >&2; exit 1; }
    echo "flux-tenant-exporter $*: $err"
}
expect_one_line "part of the development harness, which is not installed" demo
expect_one_line "no cluster configured" serve
echo "image OK"

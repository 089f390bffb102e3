#!/usr/bin/env bash
# Builds the real flux-operator the harness runs (testbed/src/testbed/operator.py) from the Go module proxy:
#   bin/flux-operator   github.com/controlplaneio-fluxcd/flux-operator/cmd/operator (wrapper module in this folder)
# into a cache outside the repository, keyed by the pins (go.mod, go.sum and the toolchain), so a rebuild happens
# only when a pin changes. Prints the output directory as its last line.
#
# Three things differ from the Flux controllers' build (tools/fluxcontrollers/build.sh), both said in go.mod:
# - flux-operator v0.59.0 needs Go 1.27: the go1.27.3 toolchain comes from the module proxy (GOTOOLCHAIN);
# - its module zip lacks the web UI's built assets that cmd/operator embeds: the build uses the unmodified module
#   source with a one-page stub in web/dist (the exporter never uses the operator's web UI);
# - it refuses to start unless built in FIPS 140-3 mode (GOFIPS140=latest, as its own Dockerfile builds it).
#
# --check: build nothing; print the output directory if it is complete, else exit 3.
# FTE_CACHE_DIR: the cache root (default ${XDG_CACHE_HOME:-~/.cache}/flux-tenant-exporter).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '[fluxoperator] %s\n' "$*" >&2; }
die() {
    printf '[fluxoperator] ERROR: %s\n' "$*" >&2
    [ "${CI:-}" = true ] && printf '[fluxoperator] CI=true: the flux-operator tests cannot run without it; failing the run\n' >&2
    exit 1
}

command -v go >/dev/null || die "Go is required to build flux-operator (see README)"
toolchain=go1.27.3
module=github.com/controlplaneio-fluxcd/flux-operator
version=$(grep -v '^//' "$here/go.mod" | grep -oE "$module v[0-9][^ ]*" | head -1 | cut -d' ' -f2)
[ -n "$version" ] || die "cannot read the flux-operator pin from $here/go.mod"

key=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | { cat; echo "$toolchain"; } | sha256sum | cut -c1-12)
cache_root=${FTE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flux-tenant-exporter}
out="$cache_root/fluxoperator/flux-operator-${version}_${key}"

if [ -f "$out/.complete" ]; then
    log "up to date: $out"
    echo "$out"
    exit 0
fi
if [ "${1:-}" = --check ]; then
    log "not built yet: $out"
    exit 3
fi

start=$(date +%s)
export GOTOOLCHAIN=$toolchain CGO_ENABLED=0
work="$out/work"
rm -rf "$work" && mkdir -p "$work/src" "$out/bin"
log "fetching $module $version (and the $toolchain toolchain) from the module proxy"
src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$module@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] && [ -d "$src" ] || die "go mod download $module@$version failed (its error is above)"
cp -r "$src" "$work/src/flux-operator" && chmod -R u+w "$work/src/flux-operator"
mkdir -p "$work/src/flux-operator/web/dist"
printf '<!doctype html><title>flux-operator</title><p>Web UI assets not built (the module zip has none).</p>\n' \
    >"$work/src/flux-operator/web/dist/index.html"
cp "$here/go.mod" "$here/go.sum" "$work/"
log "building flux-operator $version (first build: about 3 minutes on 2 cores)"
(cd "$work" && GOFLAGS=-mod=readonly GOFIPS140=latest go build -trimpath -ldflags "-s -w -X main.VERSION=${version#v}" \
    -o "$out/bin/flux-operator.tmp" "$module/cmd/operator") || die "flux-operator $version build failed"
mv "$out/bin/flux-operator.tmp" "$out/bin/flux-operator"
rm -rf "$work"
printf '{"flux-operator": "%s", "go": "%s"}\n' "$version" "$toolchain" >"$out/versions.json"
touch "$out/.complete"
log "built in $(( $(date +%s) - start )) s: $out"
echo "$out"

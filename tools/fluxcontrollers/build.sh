#!/usr/bin/env bash
# Builds the real Flux controllers the harness runs (testbed/src/testbed/controllers.py), from the Go module proxy:
#   bin/source-controller     github.com/fluxcd/source-controller     (wrapper module in source-controller/)
#   bin/kustomize-controller  github.com/fluxcd/kustomize-controller  (kustomize-controller/)
#   bin/helm-controller       github.com/fluxcd/helm-controller       (helm-controller/)
# into a cache outside the repository, keyed by the pins (the wrapper go.mod/go.sum files and the Go version), so
# a rebuild happens only when a pin changes. The three builds share the one Go build cache (GOCACHE), so the
# packages they have in common compile once. Prints the output directory as its last line.
#
# --check: build nothing; print the output directory if it is complete, else exit 3 (how the demo tells a user
# to run `make controllers` rather than start a 12-minute build unasked).
# FTE_CACHE_DIR: the cache root (default ${XDG_CACHE_HOME:-~/.cache}/flux-tenant-exporter).
# A failed build exits non-zero with one clear line; under CI (CI=true) that fails `make test`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '[fluxcontrollers] %s\n' "$*" >&2; }
die() {
    printf '[fluxcontrollers] ERROR: %s\n' "$*" >&2
    [ "${CI:-}" = true ] && printf '[fluxcontrollers] CI=true: the real-Flux tests cannot run without the controllers; failing the run\n' >&2
    exit 1
}

command -v go >/dev/null || die "Go is required to build the Flux controllers (see README)"

controllers=(source-controller kustomize-controller helm-controller)
# The pins, read from the committed wrapper modules.
pin() { grep -v '^//' "$here/$1/go.mod" | grep -oE "github.com/fluxcd/$1 v[0-9][^ ]*" | head -1 | cut -d' ' -f2; }
flux_version=$(sed -n 's|^// Wrapper module .* (Flux \(v[0-9.]*\)).*|\1|p' "$here/source-controller/go.mod")
[ -n "$flux_version" ] || die "cannot read the Flux release from $here/source-controller/go.mod"
label="flux-$flux_version"
declare -A versions
for c in "${controllers[@]}"; do
    versions[$c]=$(pin "$c")
    [ -n "${versions[$c]}" ] || die "cannot read the $c pin from $here/$c/go.mod"
    label+="_${c%%-*}-${versions[$c]}"
done

go_version=$(go env GOVERSION)
key=$(for c in "${controllers[@]}"; do cat "$here/$c/go.mod" "$here/$c/go.sum"; done | { cat; echo "$go_version"; } \
    | sha256sum | cut -c1-12)
cache_root=${FTE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flux-tenant-exporter}
out="$cache_root/fluxcontrollers/${label}_${key}"

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
mkdir -p "$out/bin"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
for c in "${controllers[@]}"; do
    t=$(date +%s)
    log "building $c ${versions[$c]} (first build of all three: about 12 minutes on 2 cores)"
    (cd "$here/$c" && go build -trimpath -ldflags "-s -w" -o "$out/bin/$c.tmp" "github.com/fluxcd/$c") \
        || die "$c ${versions[$c]} build failed (go build in $here/$c; its error is above)"
    mv "$out/bin/$c.tmp" "$out/bin/$c"
    log "$c built in $(( $(date +%s) - t )) s"
done

{
    printf '{"flux": "%s", "go": "%s"' "$flux_version" "$go_version"
    for c in "${controllers[@]}"; do printf ', "%s": "%s"' "$c" "${versions[$c]}"; done
    printf '}\n'
} >"$out/versions.json"
touch "$out/.complete"
log "built in $(( $(date +%s) - start )) s: $out"
echo "$out"

#!/usr/bin/env bash
# Installs a pinned Go command from the Go module proxy into the project cache (once) and prints its path.
#   tools/gotool.sh kustomize           -> sigs.k8s.io/kustomize/kustomize/v5
#   tools/gotool.sh kube-state-metrics  -> k8s.io/kube-state-metrics/v2 (the benchmark's competitor)
#   tools/gotool.sh helm                -> helm.sh/helm/v3 (chart lint/template/install tests)
#   tools/gotool.sh registry            -> distribution's registry (an OCI registry on loopback for the chart)
#   tools/gotool.sh prometheus-operator-crds -> folder with the ServiceMonitor/PrometheusRule CRDs of that release
#                                               (and alertmanagerconfig/ with the AlertmanagerConfig CRD)
#   tools/gotool.sh dashboard-validator -> tools/dashboard-validator (strict Grafana JSON with grafana-foundation-sdk)
set -euo pipefail
declare -A PINS=(
    [kustomize]=sigs.k8s.io/kustomize/kustomize/v5@v5.8.2
    [kube-state-metrics]=k8s.io/kube-state-metrics/v2@v2.15.0  # keep in step with bench/ksm/go.mod
    [helm]=helm.sh/helm/v3/cmd/helm@v3.19.5
    [registry]=github.com/distribution/distribution/v3/cmd/registry@v3.1.2  # local OCI registry (Flux installs the chart)
    [prometheus-operator-crds]=github.com/prometheus-operator/prometheus-operator@v0.85.0
    [dashboard-validator]=github.com/grafana/grafana-foundation-sdk/go@v0.0.22  # keep in step with its go.mod
)
name=${1:?usage: gotool.sh NAME}
pin=${PINS[$name]:?unknown tool $name}
cache=${FTE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flux-tenant-exporter}/tools/${pin//[\/@]/_}
validator=$(dirname "$0")/dashboard-validator
if [ "$name" = dashboard-validator ]; then  # our own source: a change to it builds a new binary
    cache=$cache-$(cat "$validator"/main.go "$validator"/go.mod "$validator"/go.sum | sha256sum | cut -c1-12)
fi
if [ "$name" = prometheus-operator-crds ]; then
    if [ ! -f "$cache/.complete" ] || [ ! -f "$cache/alertmanagerconfig/monitoring.coreos.com_alertmanagerconfigs.yaml" ]; then
        mkdir -p "$cache"
        dir=$(cd "$cache" && GOFLAGS=-mod=mod go mod download -json "$pin" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
        cp "$dir"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml "$cache/"
        # apart: its schema has a YAML 1.1 '=' value (a matchType enum) that PyYAML's safe loader cannot read
        mkdir -p "$cache/alertmanagerconfig"
        cp "$dir"/example/prometheus-operator-crd/monitoring.coreos.com_alertmanagerconfigs.yaml "$cache/alertmanagerconfig/"
        chmod -R u+w "$cache"
        touch "$cache/.complete"
    fi
    echo "$cache"
    exit 0
fi
bin="$cache/$name"
if [ ! -x "$bin" ]; then
    echo "[gotool] building $pin" >&2
    mkdir -p "$cache"
    if [ "$name" = kube-state-metrics ]; then
        # The proxy does not serve this module's version list, which `go install m@v` needs: use the wrapper module.
        (cd "$(dirname "$0")/../bench/ksm" && CGO_ENABLED=0 go build -trimpath -o "$bin" "${pin%@*}") >&2
    elif [ "$name" = dashboard-validator ]; then
        (cd "$validator" && CGO_ENABLED=0 go build -trimpath -o "$bin" .) >&2
    else
        GOBIN="$cache" CGO_ENABLED=0 GOFLAGS= go install -trimpath "$pin" >&2
    fi
fi
echo "$bin"

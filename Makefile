# The two commands of the README:
#   make demo   - set everything up and run the exporter against a local demo cluster
#   make test   - set everything up and run the whole test suite (what CI runs)
# and the fast lane for contributors:
#   make unit   - every test that needs only Python (no Go build, no cluster, no Debian tools)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo cluster test unit lint controlplane controllers operator gotools debian-tools ui-tools screenshots monitoring image clean
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BIN)/.installed: pyproject.toml testbed/pyproject.toml mixin/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e ./testbed -e ./mixin
	touch $@

controlplane:
	bash tools/controlplane/build.sh >/dev/null

# The real source-, kustomize- and helm-controller (Flux v2.9.5) from the Go module proxy, into the pinned cache
# (once; about 12 minutes of 2 cores cold). A failed build fails the target with one clear line.
controllers:
	bash tools/fluxcontrollers/build.sh >/dev/null

# The real flux-operator (v0.59.0; Go 1.27 from the module proxy) for its ResourceSets, input providers and
# FluxInstance, into the pinned cache (once; about 3 minutes of 2 cores cold).
operator:
	bash tools/fluxoperator/build.sh >/dev/null

# kustomize and the prometheus-operator CRDs (deploy tests), helm and an OCI registry (chart tests), kube-state-metrics
# (benchmark), the dashboard validator (grafana-foundation-sdk), from the Go module proxy.
gotools:
	bash tools/gotool.sh kustomize >/dev/null
	bash tools/gotool.sh helm >/dev/null
	bash tools/gotool.sh registry >/dev/null
	bash tools/gotool.sh prometheus-operator-crds >/dev/null
	bash tools/gotool.sh kube-state-metrics >/dev/null
	bash tools/gotool.sh dashboard-validator >/dev/null

# promtool, Prometheus and Alertmanager for the monitoring tests, from Debian's packages.
debian-tools:
	@command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager >/dev/null; }

# Headless Chromium (status page tests) and tmux (`get` terminal tests), from Debian's packages.
ui-tools:
	@command -v chromium >/dev/null && command -v tmux >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    chromium fonts-dejavu-core tmux >/dev/null; }

# Retake the README's status page screenshots (docs/status-*.png) in headless Chromium on the demo fleet.
screenshots: $(BIN)/.installed controlplane ui-tools
	FTE_SCREENSHOT_DIR=docs $(BIN)/pytest -q tests/test_statuspage.py -k chromium

# Regenerate alerts/*.rules.yaml, deploy/prometheusrule.yaml and dashboards/*.json from mixin/src/fte_mixin/.
monitoring: $(BIN)/.installed
	$(BIN)/python -m fte_mixin .

demo: $(BIN)/.installed controlplane controllers
	$(BIN)/flux-tenant-exporter demo

# The demo's cluster without the exporter (control plane, Flux controllers, Git and Helm servers) until Ctrl-C;
# prints KUBECONFIG=, GIT_URL=, HELM_REPO_URL=, HELM_CHARTS_DIR= once ready. ARGS=--demo-fleet seeds the demo's repos.
cluster: $(BIN)/.installed controlplane controllers
	$(BIN)/python -m testbed.cluster $(ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check flux_tenant_exporter mixin testbed tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/openapi-spec-validator flux_tenant_exporter/openapi.yaml

# Build the Dockerfile with buildah on a debootstrap base and run the image (no container engine needed).
image:
	bash tools/image/build.sh

# Every test that needs only Python: no Go build, no cluster, no Debian tools (the markers are in pyproject.toml).
UNIT_LANE := not apiserver and not flux and not gotools and not prometheus and not ui
unit: $(BIN)/.installed
	$(BIN)/pytest -m "$(UNIT_LANE)"

test: $(BIN)/.installed controlplane controllers operator gotools debian-tools ui-tools lint image
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

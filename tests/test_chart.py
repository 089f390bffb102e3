"""The Helm chart with real Helm (built from the Go module proxy, pinned in tools/gotool.sh): it lints, renders
with several value sets into manifests the real API server accepts (server-side dry-run, prometheus-operator
CRDs), every exporter flag is a typed value whose rendered args parse with the real CLI, the schema rejects a
wrong type, and a real ``helm install`` gives a ServiceAccount with which the exporter binary syncs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from flux_tenant_exporter.base.vocabulary import DETAILS, INFO_LABELS
from flux_tenant_exporter.cli.flags import build_parser, parse_serve
from flux_tenant_exporter.kube.client import KubeClient
from testbed import fleet
from testbed.controlplane import ControlPlane, free_port
from testbed.manifests import REST, apply, gotool

ROOT = Path(__file__).parent.parent
CHART = ROOT / "charts" / "flux-tenant-exporter"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
#: serve flags that are not chart config values: set by the chart itself (port, in-cluster config, the mapping file)
NOT_CONFIG = {"--kubeconfig", "--context", "--listen-address", "--port", "--tenant-mapping", "--tls-cert-file",
              "--tls-private-key-file"}
#: kind -> (API prefix, plural, namespaced)
EVERYTHING: dict[str, Any] = {
    "config": {
        "kinds": ["kustomization", "helmrelease"], "namespaces": ["team-a", "team-b"],
        "labelSelector": "sharding.fluxcd.io/key=shard1", "shard": "shard1", "tenantLabel": "example.com/tenant",
        "platformNamespaces": ["flux-system", "infra"], "stuckAfter": "20m", "sourceStuckAfter": "40m",
        "progressingMargin": "10m", "generationStuckAfter": "30m", "requestStuckAfter": "1h",
        "gotkResourceInfo": True, "apiCompression": False, "inactivityTimeout": "3m", "rediscoverInterval": "2m",
        "resourceLabels": ["team", "app.kubernetes.io/part-of"], "detail": "failing",
        "metricsAllowlist": [], "metricsDenylist": ["fluxtenant_resource_generation_lag"],
        "dropInfoLabels": ["revision", "url"], "objectLimit": 1000000, "logFormat": "console", "logLevel": "debug",
    },
    "tenantMapping": {"tenants": {"shop": {"namespaces": ["team-a"], "patterns": ["^shop-.*$"]}}},
    "extraArgs": ["--rediscover-interval=5m"],  # after config's 2m: the last one wins
    "replicas": 2,
    "rbac": {"namespaced": True},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "monitoring", "effect": "NoSchedule"}],
    "priorityClassName": "system-cluster-critical",
    "podLabels": {"team": "platform"}, "podAnnotations": {"example.com/owner": "platform"},
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                   "whenUnsatisfiable": "ScheduleAnyway",
                                   "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "fte"}}}],
    "serviceMonitor": {"interval": "1m", "labels": {"release": "kube-prometheus-stack"},
                       "relabelings": [{"targetLabel": "cluster", "replacement": "prod"}],
                       "metricRelabelings": [{"action": "labeldrop", "regex": "chart"}]},
    "prometheusRule": {"labels": {"release": "kube-prometheus-stack"}, "additionalRuleLabels": {"cluster": "prod"},
                       "alerts": {"FluxSuspendedTooLong": {"enabled": False},
                                  "FluxTenantFailing": {"for": "1h", "severity": "page", "labels": {"team": "x"}}}},
    "dashboards": {"labels": {"grafana_dashboard": "flux"}},
}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"rbac": {"namespaced": True}, "config": {"namespaces": ["team-a", "team-b"]}},
    "ha": {"replicas": 2},
    "sharded": {"replicas": 2, "shards": [{"name": "shard1", "labelSelector": "sharding.fluxcd.io/key=shard1"},
                                          {"name": "main", "labelSelector": "!sharding.fluxcd.io/key"}]},
    "minimal": {"serviceMonitor": {"enabled": False}, "prometheusRule": {"enabled": False},
                "dashboards": {"enabled": False}, "networkPolicy": {"enabled": False}},
    "everything": EVERYTHING,
    "access": {"config": {"auth": "kubernetes", "authTokenAudiences": ["flux-tenant-exporter"],
                          "authAllowCacheTtl": "30s"},
               "tls": {"secretName": "fte-serving"},
               "rbac": {"metricsReaders": [{"kind": "ServiceAccount", "name": "prometheus-k8s",
                                            "namespace": "monitoring"}, {"kind": "Group", "name": "sre"}]},
               "networkPolicy": {"from": [{"namespaceSelector": {}}]}},
}


def _type(node: dict[str, Any]) -> str:
    types = node.get("type", "")
    text = " or ".join(types) if isinstance(types, list) else str(types)
    if "enum" in node:
        text += ": " + ", ".join(str(v) for v in node["enum"] if v is not None)
    if "enum" in node.get("items", {}):
        text += " of " + ", ".join(node["items"]["enum"])
    return text


def values_table() -> str:
    """The README's chart values table, from values.schema.json (types, descriptions) and values.yaml (defaults).

    ``python tests/test_chart.py`` prints it.
    """
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    rows = ["| value | type | default | what |", "|---|---|---|---|"]

    def walk(node: dict[str, Any], path: str, default: Any) -> None:
        if node.get("additionalProperties") is False and "properties" in node:
            for key, child in node["properties"].items():
                if key != "global":
                    walk(child, f"{path}.{key}".lstrip("."), (default or {}).get(key))
            return
        rows.append(f"| `{path}` | {_type(node)} | `{json.dumps(default)}` | {node.get('description', '')} |")

    walk(SCHEMA, "", defaults)
    return "\n".join(rows) + "\n"


def test_readme_values_table_is_the_schema() -> None:
    """The README's values table is generated from the schema and values.yaml (every value, its type, default)."""
    readme = (ROOT / "README.md").read_text()
    assert values_table() in readme, "README chart values table is stale: paste `python tests/test_chart.py`"


def helm_binary() -> str:
    result = subprocess.run(["bash", str(ROOT / "tools" / "gotool.sh"), "helm"], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        pytest.fail(f"cannot build helm: {result.stderr}")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Runs the pinned helm with its own cache/config directories (nothing of the user's)."""
    binary = helm_binary()
    home = tmp_path_factory.mktemp("helm-home")
    env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_DATA_HOME": str(home / "data")}

    def run(*args: str, check: bool = True, values: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
        argv = [binary, *args]
        if values is not None:
            path = home / f"values-{time.monotonic_ns()}.yaml"
            path.write_text(yaml.safe_dump(values))
            argv += ["--values", str(path)]
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if check and result.returncode != 0:
            pytest.fail(f"helm {' '.join(args)}: {result.stderr}")
        return result

    return run


def template(helm: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
    out = helm("template", "fte", str(CHART), "--namespace", "flux-system", values=values).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def args_of(objects: list[dict[str, Any]]) -> list[str]:
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_helm_lint_passes_for_every_value_set(helm: Any) -> None:
    """`helm lint --strict` (templates and values.schema.json) passes with each value set."""
    for name, values in VALUE_SETS.items():
        result = helm("lint", "--strict", str(CHART), values=values, check=False)
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


def test_every_flag_is_a_typed_chart_value() -> None:
    """Each `serve` flag (bar the chart's own: port, in-cluster config, the mapping file) is a config value in the
    schema and in values.yaml; the closed sets are enums spelled as in the vocabulary."""
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr,index]
    flags = {o for a in serve._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    flags = {f for f in flags if not f.startswith("--no-") and f != "--gotk-resource-info"} - NOT_CONFIG
    camel = {re.sub(r"-([a-z])", lambda m: m[1].upper(), f.removeprefix("--")) for f in flags}
    camel.add("gotkResourceInfo")
    config = SCHEMA["properties"]["config"]["properties"]
    assert set(config) == camel
    assert set(yaml.safe_load((CHART / "values.yaml").read_text())["config"]) == camel
    assert [v for v in config["detail"]["enum"] if v] == list(DETAILS)
    assert config["dropInfoLabels"]["items"]["enum"] == list(INFO_LABELS)
    assert config["objectLimit"]["type"] == ["integer", "null"]


def test_template_renders_each_value_set_into_what_it_asks(helm: Any) -> None:
    """Defaults: ClusterRole, ServiceMonitor, PrometheusRule (exactly the mixin's rules), three dashboards, no
    PDB; namespaced: Roles per namespace, no ClusterRole, --namespaces; ha: a PDB; minimal: no monitoring objects."""
    rules = yaml.safe_load((CHART / "files" / "flux-tenant-exporter.rules.yaml").read_text())
    default = template(helm, {})
    kinds = [o["kind"] for o in default]
    assert {"ClusterRole", "ClusterRoleBinding", "ServiceMonitor", "PrometheusRule"} <= set(kinds)
    assert kinds.count("ConfigMap") == 3
    assert "PodDisruptionBudget" not in kinds
    rule = next(o for o in default if o["kind"] == "PrometheusRule")
    assert rule["spec"] == rules  # no overrides: exactly the generated rules
    assert parse_serve(args_of(default)).log.format == "json"

    namespaced = template(helm, VALUE_SETS["namespaced"])
    assert {(o["kind"], o["metadata"]["namespace"]) for o in namespaced if o["kind"] in {"Role", "RoleBinding"}} == {
        ("Role", "team-a"), ("Role", "team-b"), ("RoleBinding", "team-a"), ("RoleBinding", "team-b")}
    assert "ClusterRole" not in {o["kind"] for o in namespaced}
    assert parse_serve(args_of(namespaced)).namespaces == ("team-a", "team-b")

    assert "PodDisruptionBudget" in {o["kind"] for o in template(helm, VALUE_SETS["ha"])}
    assert {o["kind"] for o in template(helm, VALUE_SETS["minimal"])} == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment"}


def test_shards_render_one_deployment_each(helm: Any) -> None:
    """`shards:` renders one Deployment per shard, each with its --shard and --label-selector (parsed by the real
    CLI), its own pod selector and PDB; one Service scrapes them all. config.shard beside shards is refused."""
    objects = template(helm, VALUE_SETS["sharded"])
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in deployments] == ["fte-flux-tenant-exporter-shard1",
                                                            "fte-flux-tenant-exporter-main"]
    shards = {}
    for deployment in deployments:
        settings = parse_serve(deployment["spec"]["template"]["spec"]["containers"][0]["args"])
        assert settings.shard is not None
        shards[settings.shard] = settings.watch.label_selector
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector["flux-tenant-exporter/shard"] == settings.shard
        assert deployment["spec"]["template"]["metadata"]["labels"].items() >= selector.items()
        assert deployment["spec"]["replicas"] == 2
    assert shards == {"shard1": "sharding.fluxcd.io/key=shard1", "main": "!sharding.fluxcd.io/key"}
    assert sorted(o["spec"]["selector"]["matchLabels"]["flux-tenant-exporter/shard"]
                  for o in objects if o["kind"] == "PodDisruptionBudget") == ["main", "shard1"]
    (service,) = [o for o in objects if o["kind"] == "Service"]
    assert "flux-tenant-exporter/shard" not in service["spec"]["selector"]
    conflict = helm("template", "fte", str(CHART), check=False,
                    values={**VALUE_SETS["sharded"], "config": {"shard": "x"}})
    assert conflict.returncode != 0
    assert "not config.shard" in conflict.stderr


def test_template_with_every_value_set(helm: Any) -> None:
    """Every flag value reaches the exporter (its args parse with the real CLI into them), the tenant mapping is
    mounted, the pod gets its scheduling and labels, and the per-alert overrides (disabled, for, severity, labels)
    and extra labels apply to the mixin's rules; the dashboards are the generated ones."""
    rules = yaml.safe_load((CHART / "files" / "flux-tenant-exporter.rules.yaml").read_text())
    alert_names = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    everything = template(helm, EVERYTHING)
    settings = parse_serve(args_of(everything))
    assert settings.kinds == ("kustomization", "helmrelease")
    assert settings.tenancy.tenant_label == "example.com/tenant"
    assert settings.thresholds.not_ready == 20 * 60
    assert settings.gotk_compat is True
    assert settings.api_compression is False
    assert settings.resource_labels == ("team", "app.kubernetes.io/part-of")
    assert settings.detail == "failing"
    assert settings.metrics_denylist == ("fluxtenant_resource_generation_lag",)
    assert settings.drop_info_labels == ("revision", "url")
    assert settings.object_limit == 1000000
    assert settings.watch.rediscover_interval == 5 * 60  # extraArgs come last
    assert settings.watch.inactivity_timeout == 3 * 60
    assert settings.tenancy.tenant_mapping == Path("/etc/flux-tenant-exporter/tenant-mapping.yaml")
    mapping = next(o for o in everything if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("mapping"))
    assert yaml.safe_load(mapping["data"]["tenant-mapping.yaml"]) == EVERYTHING["tenantMapping"]
    pod = next(o for o in everything if o["kind"] == "Deployment")["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "platform"
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    rule = next(o for o in everything if o["kind"] == "PrometheusRule")
    rendered = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(rendered) == set(alert_names) - {"FluxSuspendedTooLong"}
    failing = rendered["FluxTenantFailing"]
    assert failing["for"] == "1h"
    assert failing["labels"] == {"severity": "page", "owner": "tenant", "team": "x", "cluster": "prod"}
    assert rendered["FluxReconciliationStuck"]["labels"]["cluster"] == "prod"
    monitor = next(o for o in everything if o["kind"] == "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["metricRelabelings"] == [{"action": "labeldrop", "regex": "chart"}]
    dashboards = [o for o in everything if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("dashboard")]
    assert {o["metadata"]["labels"]["grafana_dashboard"] for o in dashboards} == {"flux"}
    for board in dashboards:
        (name, text), = board["data"].items()
        assert text.rstrip("\n") == (ROOT / "dashboards" / name).read_text().rstrip("\n")


def test_schema_rejects_a_wrong_type(helm: Any) -> None:
    """A string where an integer belongs, an unknown detail level, a misspelt key: helm refuses with the path."""
    for values, path in (({"replicas": "two"}, "replicas"), ({"config": {"objectLimit": "many"}}, "objectLimit"),
                         ({"config": {"detail": "some"}}, "detail"), ({"serviceMonitr": {}}, "serviceMonitr")):
        result = helm("template", "fte", str(CHART), values=values, check=False)
        assert result.returncode != 0, values
        assert "values don't meet the specifications of the schema" in result.stderr
        assert path in result.stderr


def crd_dir() -> Path:
    return Path(gotool("prometheus-operator-crds"))


@pytest.fixture(scope="module")
def monitoring_crds(control_plane: ControlPlane) -> None:
    control_plane.install_crds(sorted(crd_dir().glob("*.yaml")))


@pytest.fixture
async def namespaces(admin: KubeClient) -> None:
    for ns in ("flux-system", "team-a", "team-b"):
        await fleet.create(admin, fleet.namespace(ns, None if ns == "flux-system" else ns), exist_ok=True)


@pytest.mark.usefixtures("monitoring_crds", "namespaces")
async def test_rendered_chart_passes_a_server_side_dry_run(helm: Any, admin: KubeClient) -> None:
    """Every object of every value set is accepted by the real API server (strict field validation)."""
    for name, values in VALUE_SETS.items():
        for obj in template(helm, values):
            assert obj["kind"] in REST, f"{name}: {obj['kind']}"
            answer = await apply(admin, obj, dry_run=True)
            assert answer["metadata"]["name"] == obj["metadata"]["name"], name


class _CrdLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading YAML 1.1's '=' value tag (the AlertmanagerConfig CRD's matchType) as text."""


def _value_tag(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


_CrdLoader.add_constructor("tag:yaml.org,2002:value", _value_tag)


@pytest.mark.usefixtures("namespaces")
async def test_alertmanagerconfig_example_is_accepted(admin: KubeClient, control_plane: ControlPlane,
                                                      tmp_path: Path) -> None:
    """alerts/alertmanagerconfig.example.yaml passes a strict server-side dry-run against the release's CRD."""
    source = crd_dir() / "alertmanagerconfig" / "monitoring.coreos.com_alertmanagerconfigs.yaml"
    crd = yaml.load(source.read_text(), Loader=_CrdLoader)
    (tmp_path / "crd.json").write_text(json.dumps(crd))
    control_plane.install_crds([tmp_path / "crd.json"])
    example = yaml.safe_load((ROOT / "alerts" / "alertmanagerconfig.example.yaml").read_text())
    path = "/apis/monitoring.coreos.com/v1alpha1/namespaces/team-a/alertmanagerconfigs/flux-tenant-alerts"
    answer = await admin.request("PATCH", path, body=example, content_type="application/apply-patch+yaml",
                                 params={"fieldManager": "fte-tests", "fieldValidation": "Strict", "dryRun": "All"})
    assert answer["spec"]["route"]["receiver"] == "team-a-oncall"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return 0, ""


@pytest.mark.usefixtures("monitoring_crds", "namespaces")
async def test_helm_install_then_the_exporter_syncs_with_its_service_account(
    helm: Any, admin: KubeClient, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """`helm install` creates the release on the real API server; the exporter binary, run with the args of the
    rendered Deployment and the token of the rendered ServiceAccount, syncs every kind and serves the objects;
    `helm uninstall` removes the ClusterRole again."""
    await fleet.create(admin, fleet.kustomization("team-a", "chart-app"), status=fleet.ready_status("Kustomization"),
                       exist_ok=True)
    kubeconfig = str(control_plane.kubeconfig)
    helm("install", "fte", str(CHART), "--namespace", "flux-system", "--kubeconfig", kubeconfig)
    try:
        deployment = await admin.request("GET", "/apis/apps/v1/namespaces/flux-system/deployments/"
                                                "fte-flux-tenant-exporter")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        answer = await admin.request("POST", f"/api/v1/namespaces/flux-system/serviceaccounts/{account}/token",
                                     body={"spec": {"expirationSeconds": 3600}})
        token_config = control_plane.token_kubeconfig(answer["status"]["token"], tmp_path / "sa.kubeconfig")
        port = free_port()
        argv = [sys.executable, "-m", "flux_tenant_exporter", *container["args"], f"--kubeconfig={token_config}",
                "--listen-address=127.0.0.1", f"--port={port}"]
        log = (tmp_path / "exporter.log").open("wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # noqa: ASYNC220
        try:
            deadline = time.monotonic() + 60
            while _get(f"http://127.0.0.1:{port}/readyz")[0] != 200:
                assert proc.poll() is None, (tmp_path / "exporter.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "exporter.log").read_text()
                await asyncio.sleep(0.2)
            _, body = _get(f"http://127.0.0.1:{port}/metrics")
            synced = dict(re.findall(r'^fluxtenant_exporter_kind_synced\{kind="(\w+)"\} (\S+)$', body, re.MULTILINE))
            assert set(synced.values()) == {"1"}, synced
            # a healthy object has no per-object series at the default --detail=failing; /tenants lists it
            _, tenant = _get(f"http://127.0.0.1:{port}/tenants/team-a")
            assert "chart-app" in {r["name"] for r in json.loads(tenant)["resources"]}
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
    finally:
        helm("uninstall", "fte", "--namespace", "flux-system", "--kubeconfig", kubeconfig)
    roles = await admin.request("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                                params={"labelSelector": "app.kubernetes.io/instance=fte"})
    assert roles["items"] == []


if __name__ == "__main__":
    sys.stdout.write(values_table())


def test_access_control_renders_its_rbac_tls_and_an_authorized_scrape(helm: Any) -> None:
    """config.auth=kubernetes: the exporter's auth-delegator binding, the metrics-reader ClusterRole bound to the
    chart's scraper and the values' readers, the scraper's token Secret, the viewer ClusterRole, a cert-manager
    Certificate mounted and served (probes over HTTPS), and a ServiceMonitor scraping over HTTPS with the scraper's
    token as authorization credentials. Without a certificate it refuses to render."""
    objects = template(helm, VALUE_SETS["access"])
    by = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    delegator = by[("ClusterRoleBinding", "fte-flux-tenant-exporter-auth-delegator")]
    assert delegator["roleRef"]["name"] == "system:auth-delegator"
    assert delegator["subjects"] == [{"kind": "ServiceAccount", "name": "fte-flux-tenant-exporter",
                                      "namespace": "flux-system"}]
    reader = by[("ClusterRole", "fte-flux-tenant-exporter-metrics-reader")]
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    readers = by[("ClusterRoleBinding", "fte-flux-tenant-exporter-metrics-reader")]["subjects"]
    assert readers == [
        {"kind": "ServiceAccount", "name": "fte-flux-tenant-exporter-scraper", "namespace": "flux-system"},
        {"kind": "ServiceAccount", "name": "prometheus-k8s", "namespace": "monitoring"},
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "sre"}]
    secret = by[("Secret", "fte-flux-tenant-exporter-scraper-token")]
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert by[("ClusterRole", "fte-flux-tenant-exporter-viewer")]["rules"] == [
        {"apiGroups": ["kustomize.toolkit.fluxcd.io"], "resources": ["kustomizations"], "verbs": ["list"]}]
    settings = parse_serve(args_of(objects))
    assert settings.access.mode == "kubernetes"
    assert settings.access.token_audiences == ("flux-tenant-exporter",)
    assert settings.access.allow_ttl == 30
    assert settings.tls.cert_file == Path("/etc/flux-tenant-exporter-tls/tls.crt")
    pod = by[("Deployment", "fte-flux-tenant-exporter")]["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "fte-serving"}} in pod["volumes"]
    container = pod["containers"][0]
    assert {p: container[p]["httpGet"]["scheme"] for p in ("livenessProbe", "readinessProbe", "startupProbe")} == (
        dict.fromkeys(("livenessProbe", "readinessProbe", "startupProbe"), "HTTPS"))
    endpoint = by[("ServiceMonitor", "fte-flux-tenant-exporter")]["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {"serverName": "fte-flux-tenant-exporter.flux-system.svc",
                                     "ca": {"secret": {"name": "fte-serving", "key": "ca.crt"}}}
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {
        "name": "fte-flux-tenant-exporter-scraper-token", "key": "token"}}
    assert "bearerTokenFile" not in endpoint
    # or a cert-manager Certificate for the Service's names, served from its Secret
    issued = template(helm, {**VALUE_SETS["access"], "tls": {"certManager": {
        "enabled": True, "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}}})
    certificate = next(o for o in issued if o["kind"] == "Certificate")
    assert certificate["spec"]["secretName"] == "fte-flux-tenant-exporter-tls"
    assert certificate["spec"]["dnsNames"][0] == "fte-flux-tenant-exporter.flux-system.svc"
    assert parse_serve(args_of(issued)).tls.cert_file == Path("/etc/flux-tenant-exporter-tls/tls.crt")
    # off by default: none of it
    default = {(o["kind"], o["metadata"]["name"]) for o in template(helm, {})}
    assert not {k for k in default if "auth-delegator" in k[1] or "scraper" in k[1] or k[0] == "Certificate"}
    refused = helm("template", "fte", str(CHART), check=False, values={"config": {"auth": "kubernetes"}})
    assert refused.returncode != 0
    assert "sends bearer tokens" in refused.stderr

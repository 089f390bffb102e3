"""The deploy manifests on the real API server: every overlay passes a server-side dry-run, the RBAC is least
privilege in fact (the exporter syncs with exactly the deploy ClusterRole, reports a removed kind as forbidden,
and in namespaced mode sees only its namespaces), and every flag the manifests use exists."""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from flux_tenant_exporter.base.config import WatchSettings
from flux_tenant_exporter.cli.flags import build_parser, parse_serve
from flux_tenant_exporter.kube.client import ApiError, KubeClient
from flux_tenant_exporter.serve.app import Exporter
from testbed import fleet
from testbed.controlplane import ControlPlane
from testbed.manifests import REST, apply, gotool, path_of
from testbed.running import running_exporter

pytestmark = pytest.mark.gotools

ROOT = Path(__file__).parent.parent
OVERLAYS = ("deploy", "deploy/overlays/namespaced", "deploy/overlays/ha", "deploy/overlays/access-control")
#: kind -> (API prefix, plural, namespaced)
def tool(name: str) -> str:
    try:
        return gotool(name)
    except subprocess.CalledProcessError as err:
        pytest.fail(f"cannot build {name}: {err.stderr}")


def render(overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run([tool("kustomize"), "build", str(ROOT / overlay)], capture_output=True, text=True,
                         check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def monitoring_crds(control_plane: ControlPlane) -> None:
    """ServiceMonitor and PrometheusRule CRDs from the prometheus-operator release's published schemas."""
    crds = Path(tool("prometheus-operator-crds"))
    control_plane.install_crds(sorted(crds.glob("*.yaml")))


@pytest.fixture
async def namespaces(admin: KubeClient) -> None:
    for ns in ("flux-system", "team-a", "team-b", "team-z"):
        await fleet.create(admin, fleet.namespace(ns, None if ns == "flux-system" else ns), exist_ok=True)


@pytest.mark.usefixtures("monitoring_crds", "namespaces")
@pytest.mark.parametrize("overlay", OVERLAYS)
async def test_every_overlay_passes_a_server_side_dry_run(overlay: str, admin: KubeClient) -> None:
    """Each rendered object is accepted by the real API server (schemas, RBAC objects, CRDs) in a dry run."""
    objects = render(overlay)
    assert {o["kind"] for o in objects} <= set(REST)
    for obj in objects:
        answer = await apply(admin, obj, dry_run=True)
        assert answer["metadata"]["name"] == obj["metadata"]["name"]


def test_deployment_hardening_and_flags() -> None:
    """Non-root numeric UID, read-only root filesystem, no privilege escalation, no capabilities, seccomp,
    probes on /healthz and /readyz; its args parse with the real CLI; its env vars are real flags' fallbacks."""
    for overlay in OVERLAYS:
        deployment = next(o for o in render(overlay) if o["kind"] == "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert isinstance(pod["securityContext"]["runAsUser"], int)
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["limits"]["memory"]
        settings = parse_serve(container["args"])
        assert settings.port == container["ports"][0]["containerPort"]
        parser_help = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr,index]
        for env in container.get("env", []):
            assert f"[{env['name']}" in parser_help or f", {env['name']}" in parser_help, env["name"]


def test_clusterrole_is_read_only_and_names_no_secrets() -> None:
    """The ClusterRole grants get/list/watch only, on the Flux kinds and namespaces: never '*', never secrets."""
    role = next(o for o in render("deploy") if o["kind"] == "ClusterRole")
    for rule in role["rules"]:
        assert set(rule["verbs"]) == {"get", "list", "watch"}
        assert "*" not in rule["resources"]
        assert "*" not in rule["apiGroups"]
        assert "secrets" not in rule["resources"]


async def token_kubeconfig(admin: KubeClient, control_plane: ControlPlane, tmp_path: Path) -> Path:
    answer = await admin.request("POST", "/api/v1/namespaces/flux-system/serviceaccounts/flux-tenant-exporter/token",
                                 body={"spec": {"expirationSeconds": 3600}})
    return control_plane.token_kubeconfig(answer["status"]["token"], tmp_path / "exporter.kubeconfig")


@pytest.fixture
async def run() -> AsyncIterator[Any]:
    async with contextlib.AsyncExitStack() as running:

        async def start(kubeconfig: Path, *args: str) -> Exporter:
            settings = parse_serve(["serve", "--listen-address", "127.0.0.1", "--port", "0", *args])
            settings = replace(settings, watch=WatchSettings(backoff_initial=0.05))
            return await running.enter_async_context(running_exporter(settings, kubeconfig))

        yield start


@pytest.mark.usefixtures("namespaces")
async def test_rbac_is_least_privilege_in_fact(
    admin: KubeClient, control_plane: ControlPlane, tmp_path: Path, run: Any
) -> None:
    """With the deploy ServiceAccount and ClusterRole the exporter syncs every kind; without the HelmRelease rule it
    reports HelmRelease forbidden and serves the rest; with only the namespaced overlay's Roles it serves exactly its
    namespaces."""
    await fleet.create(admin, fleet.kustomization("team-a", "a-app"), status=fleet.ready_status("Kustomization"),
                       exist_ok=True)
    await fleet.create(admin, fleet.helmrelease("team-b", "b-release"), status=fleet.ready_status("HelmRelease"),
                       exist_ok=True)
    await fleet.create(admin, fleet.kustomization("team-z", "z-app"), status=fleet.ready_status("Kustomization"),
                       exist_ok=True)
    base = render("deploy")
    rbac = [o for o in base if o["kind"] in {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}]
    for obj in rbac:
        await apply(admin, obj)
    kubeconfig = await token_kubeconfig(admin, control_plane, tmp_path)
    try:
        exporter = await run(kubeconfig)
        assert {k: h.status for k, h in exporter.kinds.items()} == dict.fromkeys(exporter.kinds, "synced")
        names = {r.name for r in exporter.view.resources}
        assert {"a-app", "b-release", "z-app"} <= names

        role = next(o for o in rbac if o["kind"] == "ClusterRole")
        narrowed = role | {"rules": [r for r in role["rules"] if "helmreleases" not in r["resources"]]}
        await apply(admin, narrowed)
        exporter = await run(kubeconfig)
        statuses = {k: h.status for k, h in exporter.kinds.items()}
        assert statuses.pop("helmrelease") == "forbidden"
        assert set(statuses.values()) == {"synced"}
        assert "z-app" in {r.name for r in exporter.view.resources}

        # Namespaced mode: no cluster binding at all, only the overlay's Roles, and its --namespaces flag.
        await admin.request("DELETE", path_of(next(o for o in rbac if o["kind"] == "ClusterRoleBinding")))
        namespaced = render("deploy/overlays/namespaced")
        for obj in namespaced:
            if obj["kind"] in {"Role", "RoleBinding"}:
                await apply(admin, obj)
        args = next(o for o in namespaced if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
        flag = next(a for a in args["args"] if a.startswith("--namespaces="))
        exporter = await run(kubeconfig, flag)
        assert {r.namespace for r in exporter.view.resources} == {"team-a", "team-b"}
        assert exporter.kinds["namespace"].status == "forbidden"
        assert exporter.kinds["kustomization"].status == "synced"
        cluster_wide = await KubeClient.from_kubeconfig(kubeconfig)
        try:
            with pytest.raises(ApiError) as info:
                await cluster_wide.request("GET", "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations")
            assert info.value.status == 403
        finally:
            await cluster_wide.close()
    finally:
        for obj in rbac:  # leave the shared control plane as the other tests expect it
            await apply(admin, obj)


def test_selectors_ports_and_metric_names_line_up() -> None:
    """The Service selects the Deployment's pods, the ServiceMonitor selects the Service and scrapes its named
    port, the NetworkPolicy admits that port to the pods, and the PrometheusRule only names metrics the
    exporter produces (the same check as the plain rule file, on the manifest)."""
    from flux_tenant_exporter.render.prometheus.families import ALL_FAMILIES  # noqa: PLC0415

    objects = {o["kind"]: o for o in render("deploy")}
    pod = objects["Deployment"]["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    service = objects["Service"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    port_names = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    monitor = objects["ServiceMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    policy = objects["NetworkPolicy"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert {p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]} <= port_names
    names = {f.name for f in ALL_FAMILIES}
    for group in objects["PrometheusRule"]["spec"]["groups"]:
        for rule in group["rules"]:
            for metric in re.findall(r"\bfluxtenant_(?!exporter_)[a-z_]+", rule["expr"]):
                assert metric in names, metric

"""Flux installs the chart: packaged and pushed with real Helm to a local OCI registry (distribution, built from
the Go module proxy), fetched by the real source-controller through the README's OCIRepository and installed by
the real helm-controller through the README's HelmRelease, which becomes Ready=True."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flux_tenant_exporter.kube.client import ApiError, KubeClient
from testbed import fleet
from testbed.ociregistry import OciRegistry
from testbed.realflux import RealFlux

pytestmark = pytest.mark.gotools

ROOT = Path(__file__).parent.parent
CHART = ROOT / "charts" / "flux-tenant-exporter"
HELM_RELEASE = "/apis/helm.toolkit.fluxcd.io/v2/namespaces/flux-system/helmreleases/flux-tenant-exporter"


def tool(name: str) -> str:
    result = subprocess.run(["bash", str(ROOT / "tools" / "gotool.sh"), name], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        pytest.fail(f"cannot build {name}: {result.stderr}")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    """A plain-HTTP OCI registry (distribution) on loopback; yields host:port."""
    with OciRegistry() as oci:
        yield oci.host


def helm(*args: str, home: Path) -> str:
    env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_DATA_HOME": str(home / "data")}
    result = subprocess.run([tool("helm"), *args], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)}: {result.stderr}")
    return result.stdout + result.stderr


def push_chart(registry: str, home: Path) -> None:
    """`helm package`, then `helm push` to the registry (plain HTTP on loopback)."""
    helm("package", str(CHART), "--destination", str(home), home=home)
    (archive,) = home.glob("flux-tenant-exporter-*.tgz")
    helm("push", str(archive), f"oci://{registry}/charts", "--plain-http", home=home)


def install_monitoring_crds(flux: RealFlux) -> None:
    """The prometheus-operator CRDs the chart's ServiceMonitor and PrometheusRule need."""
    flux.control_plane.install_crds(sorted(Path(tool("prometheus-operator-crds")).glob("*.yaml")))


def readme_flux_objects(registry: str) -> list[dict[str, Any]]:
    """The README's OCIRepository and HelmRelease, pointed at the local registry (plain HTTP: insecure), and
    without waiting for the Deployment to become ready (this control plane runs no pods)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### The Flux way", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    objects = [o for o in yaml.safe_load_all(block[1]) if o]
    repo = next(o for o in objects if o["kind"] == "OCIRepository")
    repo["spec"]["url"] = repo["spec"]["url"].replace("oci://registry.example.com", f"oci://{registry}")
    repo["spec"] |= {"insecure": True, "interval": "1m"}
    release = next(o for o in objects if o["kind"] == "HelmRelease")
    release["spec"] |= {"install": {"disableWait": True}, "interval": "1m"}
    return objects


async def apply(client: KubeClient, path: str, obj: dict[str, Any]) -> None:
    """Server-side apply."""
    await client.request("PATCH", path, body=obj, content_type="application/apply-patch+yaml",
                         params={"fieldManager": "fte-tests", "force": "true"})


def _ready(obj: dict[str, Any]) -> tuple[str, str]:
    for cond in obj.get("status", {}).get("conditions", []):
        if cond["type"] == "Ready":
            return cond["status"], cond.get("message", "")
    return "Unknown", ""


async def test_flux_installs_the_chart_from_an_oci_registry(
    flux: RealFlux, flux_admin: KubeClient, registry: str, tmp_path: Path
) -> None:
    """The chart pushed to a local OCI registry is installed by the real helm-controller: the HelmRelease is
    Ready=True, and the Deployment carries the README example's values (--detail=failing, the resource labels)."""
    push_chart(registry, tmp_path)
    install_monitoring_crds(flux)
    await fleet.create(flux_admin, fleet.namespace("flux-system"), exist_ok=True)
    # helm-controller impersonates the HelmRelease namespace's default ServiceAccount (--default-service-account):
    # in flux-system that is the platform's, allowed to install cluster-wide objects (ClusterRole, binding).
    await apply(flux_admin, "/api/v1/namespaces/flux-system/serviceaccounts/default",
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default",
                                                                            "namespace": "flux-system"}})
    await apply(flux_admin, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/flux-system-default-admin", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "flux-system-default-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "flux-system"}]})
    for obj in readme_flux_objects(registry):
        await fleet.create(flux_admin, obj, exist_ok=True)
    deadline = time.monotonic() + 45
    status, message = "Unknown", ""
    while status != "True":
        if time.monotonic() > deadline:
            repo = await flux_admin.request("GET", "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/"
                                                   "ocirepositories/flux-tenant-exporter")
            logs = {k: v[-3000:] for k, v in flux.controllers.logs().items()}
            pytest.fail(f"HelmRelease not ready: {message}; OCIRepository: {_ready(repo)}\n{logs}")
        await asyncio.sleep(0.5)
        try:
            status, message = _ready(await flux_admin.request("GET", HELM_RELEASE))
        except ApiError:
            continue
    deployment = await flux_admin.request(
        "GET", "/apis/apps/v1/namespaces/flux-system/deployments/flux-tenant-exporter")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--detail=failing" in args
    assert "--resource-labels=team,app.kubernetes.io/part-of" in args
    rule = await flux_admin.request(
        "GET", "/apis/monitoring.coreos.com/v1/namespaces/flux-system/prometheusrules/flux-tenant-exporter")
    assert "FluxSuspendedTooLong" not in {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}

"""OCIRepository failures and manifests at API versions Flux 2.9 no longer serves, on the real controllers.

- OCIRepositories of a tenant against a real OCI registry (distribution, with a chart pushed by the real
  ``helm push``): a tag the repository does not have (manifest unknown), a semver range no tag matches, a registry
  that is not listening, and a registry that wants credentials; a Kustomization blocked by the first.
- A tenant's repository with a ``helm.toolkit.fluxcd.io/v2beta1`` HelmRelease and a
  ``source.toolkit.fluxcd.io/v1beta1`` HelmRepository, a platform repository with a
  ``source.toolkit.fluxcd.io/v1beta2`` OCIRepository: kustomize-controller v1.9.5 refuses them ("no matches for
  kind ... in version ..."), and the exporter says the version is not served (the manifests' owner fixes one
  line, the detail names the served version), while a kind whose CRD is absent stays ``crd_missing`` for the
  platform.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.serve.app import Exporter
from testbed import fleet, scenario
from testbed.cases import git_app
from testbed.controllers import create_tenant
from testbed.controlplane import free_port
from testbed.fleet import by_kind_strict, meta
from testbed.ociregistry import OciRegistry
from testbed.realflux import RealFlux
from testbed.running import StartExporter

pytestmark = [pytest.mark.timeout(300), pytest.mark.gotools]

OCI = "rf-kinds-oci"
API = "rf-kinds-api"
PLATFORM_APP = "rf-kinds-platform"

Key = tuple[str, str, str]
#: (kind, namespace, name) -> (category, owner, root cause or None, stable part of the message, part of the detail)
EXPECTED: dict[Key, tuple[str, str, Key | None, str, str | None]] = {
    ("OCIRepository", OCI, "missing-tag"): ("source_ref_not_found", "tenant", None, "MANIFEST_UNKNOWN", None),
    ("OCIRepository", OCI, "no-semver"): ("source_ref_not_found", "tenant", None, "no match found for semver", None),
    ("OCIRepository", OCI, "unreachable"): ("source_unreachable", "platform", None, "connection refused", None),
    ("OCIRepository", OCI, "unauthorized"): ("source_auth_failed", "tenant", None, "UNAUTHORIZED", None),
    ("Kustomization", OCI, "app"): ("source_not_ready", "tenant", ("OCIRepository", OCI, "missing-tag"),
                                    "Source artifact not found", None),
    ("Kustomization", API, "app"): ("api_version_not_served", "tenant", None, "no matches for kind",
                                    " serves "),
    ("Kustomization", "flux-system", PLATFORM_APP): (
        "api_version_not_served", "tenant", None, 'in version "source.toolkit.fluxcd.io/v1beta2"',
        "source.toolkit.fluxcd.io serves OCIRepository at v1, not v1beta2"),
    ("Kustomization", "flux-system", f"{PLATFORM_APP}-gadget"): (
        "crd_missing", "platform", None, 'no matches for kind "Gadget"', None),
}


@pytest.fixture(scope="module")
def registries() -> Iterator[tuple[OciRegistry, OciRegistry]]:
    """An anonymous registry with a chart in it, and one that wants credentials."""
    with OciRegistry() as open_registry, OciRegistry(credentials=("tenant-ci", "s3cret")) as private:
        open_registry.push_chart("podinfo", "1.0.0")
        yield open_registry, private


def oci_repository(name: str, url: str, ref: dict[str, str]) -> dict[str, Any]:
    return meta(by_kind_strict("OCIRepository"), OCI, name, spec={
        "interval": scenario.INTERVAL, "timeout": "15s", "url": url, "ref": ref, "insecure": True})


async def set_up(client: KubeClient, env: RealFlux, registries: tuple[OciRegistry, OciRegistry]) -> None:
    open_registry, private = registries
    await create_tenant(client, OCI)
    chart = f"oci://{open_registry.host}/charts/podinfo"
    for obj in (oci_repository("missing-tag", chart, {"tag": "9.9.9"}),
                oci_repository("no-semver", chart, {"semver": ">=10.0.0"}),
                oci_repository("unreachable", f"oci://127.0.0.1:{free_port()}/charts/podinfo", {"tag": "1.0.0"}),
                oci_repository("unauthorized", f"oci://{private.host}/charts/podinfo", {"tag": "1.0.0"}),
                scenario.kustomization(OCI, "app", source=("OCIRepository", "missing-tag"), service_account=OCI,
                                       target_namespace=OCI)):
        await scenario.apply(client, obj)

    await create_tenant(client, API)
    release = ("apiVersion: helm.toolkit.fluxcd.io/v2beta1\nkind: HelmRelease\nmetadata:\n  name: web\nspec:\n"
               "  interval: 5m\n  chart:\n    spec:\n      chart: podinfo\n      sourceRef:\n"
               "        kind: HelmRepository\n        name: charts\n")
    repository = ("apiVersion: source.toolkit.fluxcd.io/v1beta1\nkind: HelmRepository\nmetadata:\n  name: charts\n"
                  "spec:\n  interval: 5m\n  url: https://stefanprodan.github.io/podinfo\n")
    await git_app(client, env, API, {"deploy/release.yaml": release, "deploy/repository.yaml": repository})

    # the platform's own repositories, reconciled in flux-system with the controllers' own account
    await fleet.create(client, fleet.namespace("flux-system"), exist_ok=True)
    old_oci = ("apiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: OCIRepository\nmetadata:\n  name: podinfo\n"
               "  namespace: flux-system\nspec:\n  interval: 5m\n  url: oci://ghcr.io/stefanprodan/manifests/podinfo\n"
               "  ref:\n    tag: latest\n")
    gadget = "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: one\n  namespace: flux-system\nspec: {}\n"
    await git_app(client, env, "flux-system", {"deploy/oci.yaml": old_oci}, name=PLATFORM_APP,
                  service_account=None, target_namespace=None)
    await git_app(client, env, "flux-system", {"deploy/gadget.yaml": gadget}, name=f"{PLATFORM_APP}-gadget",
                  service_account=None, target_namespace=None)


def verdicts(exporter: Exporter) -> dict[Key, tuple[Any, ...]]:
    found = {}
    for res in exporter.view.resources:
        key = (res.kind, res.namespace, res.name)
        if key in EXPECTED:
            root = (res.root_cause.kind, res.root_cause.namespace, res.root_cause.name) if res.root_cause else None
            found[key] = (res.category, res.owner, root, res.message, res.detail)
    return found


def settled(exporter: Exporter) -> bool:
    got = verdicts(exporter)
    for key, (category, owner, root, message, detail) in EXPECTED.items():
        if key not in got:
            return False
        g_category, g_owner, g_root, g_message, g_detail = got[key]
        if (g_category, g_owner, g_root) != (category, owner, root) or message not in g_message:
            return False
        if detail is not None and (g_detail is None or detail not in g_detail):
            return False
    return True


async def test_oci_and_api_version_failures_of_the_real_controllers(
        flux: RealFlux, flux_admin: KubeClient, registries: tuple[OciRegistry, OciRegistry],
        start_exporter: StartExporter) -> None:
    """Each failure the real source- and kustomize-controller write gets its category, owner, root cause and detail:
    the OCI ones by what the registry answered; a manifest at a version no longer served is the manifests'
    owner's (tenant, or the platform's own) with the served version named; an absent CRD stays the platform's."""
    await set_up(flux_admin, flux, registries)
    exporter = await start_exporter(flux.control_plane.kubeconfig)
    try:
        await exporter.wait_for(settled, timeout=180)
    except TimeoutError:
        pytest.fail(f"not settled: {verdicts(exporter)}")
    tenant_app = verdicts(exporter)[("Kustomization", API, "app")]
    assert "serves" in tenant_app[4]
    assert any(f"not {old}" in tenant_app[4] for old in ("v2beta1", "v1beta1"))
    assert exporter.view.tenants[API].status == "failing"

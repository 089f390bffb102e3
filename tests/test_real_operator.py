"""flux-operator's kinds with real statuses: the real flux-operator (v0.59.0, built from the Go module proxy) and the
real Flux controllers on one control plane, and what the exporter says of each failure.

A tenant (made as ``flux create tenant`` does: its ServiceAccount is admin in its namespace only) has
ResourceSets that fail in the ways tenants meet: a template error, a missing input provider, an apply its
ServiceAccount may not make (a ClusterRole), and a dependency that is not ready (a real Kustomization whose
source does not exist); an input provider whose Secret is missing; a ResourceSet that applies a GitRepository
into a platform namespace for the tenant. The platform's FluxInstance names a distribution that cannot be
fetched.
"""

from __future__ import annotations

from typing import Any

import pytest

from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.serve.app import Exporter
from testbed import fleet, identities
from testbed.controllers import create_tenant
from testbed.controlplane import free_port
from testbed.operator import FluxOperator
from testbed.realflux import RealFlux
from testbed.running import StartExporter

pytestmark = pytest.mark.timeout(300)

TENANT = "rf-operator"
OPERATOR_API = "/apis/fluxcd.controlplane.io/v1"

#: (kind, namespace, name) -> (category, owner, root cause (kind, namespace, name) or None, a stable part of the
#: message the operator wrote)
EXPECTED: dict[tuple[str, str, str], tuple[str, str, tuple[str, str, str] | None, str]] = {
    ("ResourceSet", TENANT, "template-error"): (
        "build_failed", "tenant", None, 'map has no entry for key "nosuchkey"'),
    ("ResourceSet", TENANT, "missing-provider"): (
        "source_not_found", "tenant", None, "failed to get provider rf-operator/does-not-exist"),
    ("ResourceSet", TENANT, "cluster-role"): (
        "cluster_scoped_in_tenant", "tenant", None, "at the cluster scope"),
    ("ResourceSet", TENANT, "waits"): (
        "dependency_not_ready", "tenant", ("Kustomization", TENANT, "base"), "Retrying dependency check"),
    ("ResourceSetInputProvider", TENANT, "branches"): (
        "source_auth_failed", "tenant", None, "github-token"),
    ("FluxInstance", "flux-system", "flux"): (
        "source_unreachable", "platform", None, "fetch failed"),
}


def resourceset(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "fluxcd.controlplane.io/v1", "kind": "ResourceSet",
            "metadata": {"name": name, "namespace": TENANT}, "spec": spec}


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": TENANT},
            "data": {"k": "v"}}


async def set_up(client: KubeClient) -> None:
    """The tenant's objects and the platform's FluxInstance."""
    await create_tenant(client, TENANT)
    # a Kustomization whose GitRepository does not exist: kustomize-controller fails it for real
    await fleet.create(client, fleet.kustomization(TENANT, "base", source=("GitRepository", "nowhere"),
                                                  service_account=TENANT))
    # the tenant's ServiceAccount may create GitRepositories in flux-system (a platform namespace) too
    role = await identities.cluster_role(client, "fte-test-gitrepositories", [
        {"apiGroups": ["source.toolkit.fluxcd.io"], "resources": ["gitrepositories"], "verbs": ["*"]}])
    await identities.bind(client, role, [identities.subject(TENANT, TENANT)], namespace="flux-system",
                          name=f"{TENANT}-gitrepositories")
    sa = {"serviceAccountName": TENANT}
    objects: tuple[dict[str, Any], ...] = (
        resourceset("template-error", {**sa, "inputs": [{"tenant": "a"}],
                                       "resources": [configmap("cm-<< inputs.nosuchkey >>")]}),
        resourceset("missing-provider", {**sa, "inputsFrom": [{"apiVersion": "fluxcd.controlplane.io/v1",
                                                                "kind": "ResourceSetInputProvider",
                                                                "name": "does-not-exist"}],
                                         "resources": [configmap("cm-<< inputs.id >>")]}),
        resourceset("cluster-role", {**sa, "resources": [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": f"{TENANT}-reader"}, "rules": []}]}),
        resourceset("waits", {**sa, "dependsOn": [{"apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                                                   "kind": "Kustomization", "name": "base", "ready": True}],
                              "resources": [configmap("after-base")]}),
        resourceset("platform-repo", {**sa, "resources": [
            {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
             "metadata": {"name": f"{TENANT}-infra", "namespace": "flux-system"},
             "spec": {"interval": "10m", "url": f"http://127.0.0.1:{free_port()}/infra.git",
                      "ref": {"branch": "main"}}}]}),
        {"apiVersion": "fluxcd.controlplane.io/v1", "kind": "ResourceSetInputProvider",
         "metadata": {"name": "branches", "namespace": TENANT},
         "spec": {"type": "GitHubBranch", "url": "https://github.com/example/app",
                  "secretRef": {"name": "github-token"}}},
    )
    for obj in objects:
        await client.request("POST", f"{OPERATOR_API}/namespaces/{TENANT}/{str(obj['kind']).lower()}s", body=obj)
    await client.request("POST", f"{OPERATOR_API}/namespaces/flux-system/fluxinstances", body={
        "apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance",
        "metadata": {"name": "flux", "namespace": "flux-system"},
        "spec": {"distribution": {"version": "2.x", "registry": "ghcr.io/fluxcd",
                                  "artifact": f"oci://127.0.0.1:{free_port()}/flux-operator-manifests:latest"}}})


def verdicts(exporter: Exporter) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    found = {}
    for res in exporter.view.resources:
        key = (res.kind, res.namespace, res.name)
        if key in EXPECTED:
            root = (res.root_cause.kind, res.root_cause.namespace, res.root_cause.name) if res.root_cause else None
            found[key] = (res.category, res.owner, root, res.message)
    return found


def settled(exporter: Exporter) -> bool:
    got = verdicts(exporter)
    return all(key in got and got[key][:3] == want[:3] and want[3] in got[key][3] for key, want in EXPECTED.items())


async def test_resourcesets_input_providers_and_a_fluxinstance_fail_for_real_as_the_exporter_says(
        flux: RealFlux, flux_operator: FluxOperator, flux_admin: KubeClient, start_exporter: StartExporter) -> None:
    """Each ResourceSet, input provider and FluxInstance failure the real operator writes gets its category, owner
    and root cause; what a tenant's ResourceSet applied into flux-system is the tenant's; the operator's
    FluxReport is watched (ready)."""
    await set_up(flux_admin)
    exporter = await start_exporter(flux.control_plane.kubeconfig)
    try:
        await exporter.wait_for(settled, timeout=180)
    except TimeoutError:
        pytest.fail(f"not settled: {verdicts(exporter)}\noperator log: {flux_operator.log()[-3000:]}")
    repo = next(r for r in exporter.view.resources if (r.kind, r.name) == ("GitRepository", f"{TENANT}-infra"))
    assert repo.namespace == "flux-system"
    assert repo.tenant == TENANT  # applied by the tenant's ResourceSet
    assert TENANT in exporter.view.tenants[TENANT].namespaces
    report = next(r for r in exporter.view.resources if r.kind == "FluxReport")
    assert report.state == "ready"
    for kind in ("resourceset", "resourcesetinputprovider", "fluxinstance", "fluxreport"):
        assert exporter.kinds[kind].status == "synced", kind

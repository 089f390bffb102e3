"""Real tenant failures, produced by the real Flux controllers, as the exporter's /tenants reports them.

All cases of testbed.cases are set up at once (the controllers work on them in parallel); each test waits for
its case's settled condition, written by the controller, then for the exporter to report it, and asserts the
category, owner, root cause and a stable part of the message on /tenants/{tenant}.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.render.documents import tenants_doc
from flux_tenant_exporter.serve.app import Exporter
from testbed import fleet, scenario
from testbed.cases import CASES, Case, set_up, settled, subject
from testbed.controllers import create_tenant
from testbed.realflux import RealFlux
from testbed.running import StartExporter


@pytest.fixture(scope="module")
def cases_set_up(flux: RealFlux) -> tuple[Case, ...]:
    """Every case's tenant and objects, created once for the module."""

    async def run() -> None:
        client = await KubeClient.from_kubeconfig(flux.control_plane.kubeconfig)
        try:
            for case in CASES:
                await set_up(client, flux, case)
        finally:
            await client.close()

    asyncio.run(run())
    return CASES


@pytest.fixture
def start_exporter(start_exporter: StartExporter, flux: RealFlux) -> StartExporter:
    """Starts exporters against the real controllers' control plane; stopped after the test."""

    async def start(**overrides: Any) -> Exporter:
        return await start_exporter(flux.control_plane.kubeconfig, **overrides)

    return start


def _resource(doc: dict[str, Any], case: Case) -> dict[str, Any] | None:
    for tenant in doc["tenants"]:
        if tenant["name"] != case.namespace:
            continue
        for res in tenant.get("resources") or []:
            if (res["kind"], res["name"]) == (case.expect.kind, case.expect.name):
                found: dict[str, Any] = res
                return found
    return None


def _verdict(res: dict[str, Any] | None) -> dict[str, Any] | None:
    if res is None:
        return None
    return {k: res[k] for k in ("state", "category", "owner", "root_cause", "root_category")}


def _expected(case: Case) -> dict[str, Any]:
    exp = case.expect
    root = {"kind": exp.root[0], "namespace": case.namespace, "name": exp.root[1]} if exp.root else None
    if exp.status == "True":
        return {"state": "ready", "category": None, "owner": None, "root_cause": None, "root_category": None}
    # An object that is its own root cause has its own category as root_category.
    return {"state": "failing", "category": exp.category, "owner": exp.owner, "root_cause": root,
            "root_category": exp.root_category or exp.category}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_real_case_on_tenants(
    case: Case, cases_set_up: tuple[Case, ...], flux_admin: KubeClient,
    start_exporter: StartExporter,
) -> None:
    """The controller settles on the case's condition, and /tenants/{tenant} reports the case's category, owner,
    root cause and a stable part of the real message."""
    assert case in cases_set_up
    await scenario.wait_for(flux_admin, subject(case), settled(case), timeout=180)
    exporter = await start_exporter()
    want = _expected(case)

    def matches(e: Exporter) -> bool:
        return _verdict(_resource(tenants_doc(e.view, with_resources=True), case)) == want

    with contextlib.suppress(TimeoutError):  # the assertions below show what the exporter says instead
        await exporter.wait_for(matches, timeout=45)
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{exporter.port}/tenants/{case.namespace}"
    ) as resp:
        assert resp.status == 200
        doc = await resp.json()
    res = next((r for r in doc["resources"] if (r["kind"], r["name"]) == (case.expect.kind, case.expect.name)), None)
    assert res is not None, f"{case.expect.kind}/{case.expect.name} not in /tenants/{case.namespace}"
    assert (_verdict(res), case.expect.message in res["message"]) == (want, True), res["message"]


async def _tenant_resource(exporter: Exporter, tenant: str, kind: str, name: str) -> dict[str, Any] | None:
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{exporter.port}/tenants/{tenant}"
    ) as resp:
        doc = await resp.json()
    return next((r for r in doc.get("resources") or [] if (r["kind"], r["name"]) == (kind, name)), None)


def _state_is(tenant: str, kind: str, name: str, state: str) -> Callable[[Exporter], bool]:
    def check(e: Exporter) -> bool:
        for t in tenants_doc(e.view, with_resources=True)["tenants"]:
            if t["name"] == tenant:
                return any((r["kind"], r["name"], r["state"]) == (kind, name, state) for r in t["resources"])
        return False

    return check


@pytest.mark.timeout(180)
async def test_suspend_resume_and_an_acknowledged_reconcile_request(
    flux: RealFlux, flux_admin: KubeClient, start_exporter: StartExporter
) -> None:
    """A healthy tenant Kustomization that is suspended reads "suspended"; resumed with a
    reconcile.fluxcd.io/requestedAt annotation, kustomize-controller acknowledges the request in
    status.lastHandledReconcileAt and the exporter shows it ready and not stuck."""
    ns = await create_tenant(flux_admin, "rf-suspend")
    flux.git.push(f"{ns}/app", {"deploy/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s\n"})
    await scenario.apply(flux_admin, scenario.git_repository(ns, "app", flux.git.url(f"{ns}/app")))
    ks = await scenario.apply(flux_admin, scenario.kustomization(
        ns, "app", source=("GitRepository", "app"), path="./deploy", service_account=ns, target_namespace=ns))
    await scenario.wait_for(flux_admin, ks, scenario.is_ready, timeout=60)
    exporter = await start_exporter()
    await exporter.wait_for(_state_is(ns, "Kustomization", "app", "ready"), timeout=30)

    await fleet.patch(flux_admin, ks, {"spec": {"suspend": True}})
    await exporter.wait_for(_state_is(ns, "Kustomization", "app", "suspended"), timeout=30)
    res = await _tenant_resource(exporter, ns, "Kustomization", "app")
    assert res is not None
    assert (res["state"], res["suspended"]) == ("suspended", True)

    requested = fleet.rfc3339()
    await fleet.patch(flux_admin, ks, {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": requested}},
                                       "spec": {"suspend": False}})
    handled = await scenario.wait_for(
        flux_admin, ks, lambda o: (o.get("status") or {}).get("lastHandledReconcileAt") == requested and
        scenario.is_ready(o), timeout=60)
    assert handled["status"]["lastHandledReconcileAt"] == requested
    await exporter.wait_for(_state_is(ns, "Kustomization", "app", "ready"), timeout=30)
    res = await _tenant_resource(exporter, ns, "Kustomization", "app")
    assert res is not None
    assert (res["state"], res["suspended"], res["stuck"], res["stuck_reason"]) == ("ready", False, False, None)


@pytest.mark.timeout(180)
async def test_an_immutable_field_change_is_validation_failed(
    flux: RealFlux, flux_admin: KubeClient, start_exporter: StartExporter
) -> None:
    """A tenant changes the data of an immutable ConfigMap it applied before: the API server refuses the dry-run,
    and /tenants says validation_failed, owned by the tenant, with the real message."""
    ns = await create_tenant(flux_admin, "rf-immutable")
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\nimmutable: true\ndata:\n  k: {value}\n"
    flux.git.push(f"{ns}/app", {"deploy/cm.yaml": cm.format(value="one")})
    repo = await scenario.apply(flux_admin, scenario.git_repository(ns, "app", flux.git.url(f"{ns}/app")))
    ks = await scenario.apply(flux_admin, scenario.kustomization(
        ns, "app", source=("GitRepository", "app"), path="./deploy", service_account=ns, target_namespace=ns))
    await scenario.wait_for(flux_admin, ks, scenario.is_ready, timeout=60)

    sha = flux.git.push(f"{ns}/app", {"deploy/cm.yaml": cm.format(value="two")})
    await fleet.patch(flux_admin, repo, {"metadata": {"annotations": {
        "reconcile.fluxcd.io/requestedAt": fleet.rfc3339()}}})  # fetch the new commit now, not in 30s
    failed = await scenario.wait_for(flux_admin, ks, scenario.ready_false_with(
        "ReconciliationFailed", "field is immutable"), timeout=90)
    assert failed["status"]["lastAttemptedRevision"] == f"main@sha1:{sha}"
    exporter = await start_exporter()
    await exporter.wait_for(_state_is(ns, "Kustomization", "app", "failing"), timeout=30)
    res = await _tenant_resource(exporter, ns, "Kustomization", "app")
    assert res is not None
    assert (res["category"], res["owner"], res["root_cause"]) == ("validation_failed", "tenant", None), res["message"]
    assert "ConfigMap/rf-immutable/frozen dry-run failed (Invalid)" in res["message"]

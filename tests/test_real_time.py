"""Time semantics proven on the real controllers (interval 30s, retryInterval 10s): a tenant Kustomization that
applies a ClusterRole keeps failing, and kustomize-controller flips its Ready condition to Unknown and back on
every retry, moving lastTransitionTime each time. The exporter must keep the first failure as ``since``, call
the object stuck as ``not_ready`` (never ``generation_not_observed``, although observedGeneration stays -1), keep
the time after a restart (Kustomization history), and let the object leave stuck within one retry of a fix."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from flux_tenant_exporter.base.config import ServeSettings, StuckThresholds, WatchSettings
from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.render.documents import tenants_doc
from flux_tenant_exporter.serve.app import Exporter
from testbed import scenario
from testbed.controllers import create_tenant
from testbed.realflux import RealFlux
from testbed.running import running_exporter

STUCK_AFTER = 25.0  # longer than two retries of 10 s
ROLE = ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: rt-reader\n"
        "rules:\n- apiGroups: ['']\n  resources: ['pods']\n  verbs: ['get']\n")
CONFIG = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  k: v\n"
Start = Callable[[], Awaitable[Exporter]]


def _ts(value: str) -> float:
    return datetime.datetime.fromisoformat(value).timestamp()


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    cond = scenario.condition(obj, "Ready")
    assert cond is not None
    return cond


def _resource(exporter: Exporter, tenant: str, name: str) -> dict[str, Any] | None:
    for t in tenants_doc(exporter.view, with_resources=True)["tenants"]:
        if t["name"] == tenant:
            return next((r for r in t["resources"] if (r["kind"], r["name"]) == ("Kustomization", name)), None)
    return None


@pytest.fixture
async def start(flux: RealFlux) -> AsyncIterator[Start]:
    """Start exporters with a 25 s stuck threshold on the real controllers' cluster; stopped after the test."""
    settings = ServeSettings(listen_address="127.0.0.1", port=0, publish_interval=0.01, refresh_interval=0.5,
                        thresholds=StuckThresholds(not_ready=STUCK_AFTER),
                        watch=WatchSettings(backoff_initial=0.05, backoff_max=0.5))
    async with contextlib.AsyncExitStack() as running:

        async def run() -> Exporter:
            return await running.enter_async_context(running_exporter(settings, flux.control_plane.kubeconfig))

        yield run


@pytest.mark.timeout(240)
async def test_since_and_stuck_across_real_retries_and_a_restart(
    flux: RealFlux, flux_admin: KubeClient, start: Start
) -> None:
    """Across real retries, since stays the first failure (within a second) while Ready's lastTransitionTime
    moves, the object becomes stuck as not_ready after the threshold, a restarted exporter keeps the time from
    status.history, and pushing the fix makes it ready and not stuck once the source has the fix (one source interval of
    30 s, then the next retry)."""
    ns = "rt-retrying"
    await create_tenant(flux_admin, ns)
    exporter = await start()
    flux.git.push(f"{ns}/app", {"deploy/role.yaml": ROLE, "deploy/cm.yaml": CONFIG})
    await scenario.apply(flux_admin, scenario.git_repository(ns, "app", flux.git.url(f"{ns}/app")))
    ks = await scenario.apply(flux_admin, scenario.kustomization(
        ns, "app", source=("GitRepository", "app"), path="./deploy", service_account=ns, target_namespace=ns))

    seen = scenario.Seen()
    first_failure: list[float] = []

    def retried_past_threshold(obj: dict[str, Any]) -> bool:
        ready = _ready(obj) if scenario.condition(obj, "Ready") else None
        if ready is None or ready["status"] != "False" or ready["reason"] != "ReconciliationFailed":
            return False
        first_failure.append(_ts(ready["lastTransitionTime"]))
        return _ts(ready["lastTransitionTime"]) - first_failure[0] > STUCK_AFTER

    moved = await scenario.wait_for(flux_admin, ks, retried_past_threshold, timeout=120, seen=seen)
    first_false = next(_ts(_ready(v)["lastTransitionTime"]) for v in seen.versions
                       if scenario.condition(v, "Ready") and _ready(v)["status"] == "False")
    blips = sum(1 for v in seen.versions if scenario.condition(v, "Ready") and _ready(v)["status"] == "Unknown")
    assert blips >= 2, "the controller retried (Ready=Unknown) at least twice"
    assert moved["status"]["observedGeneration"] == -1  # Flux leaves it there while the object fails

    def stuck(e: Exporter) -> bool:
        res = _resource(e, ns, "app")
        return res is not None and res["stuck"]

    await exporter.wait_for(stuck, timeout=30)
    res = _resource(exporter, ns, "app")
    assert res is not None
    assert (res["state"], res["category"], res["stuck_reason"]) == ("failing", "cluster_scoped_in_tenant",
                                                                     "not_ready")
    assert abs(_ts(res["since"]) - first_false) <= 1, (res["since"], first_false)
    assert _ts(_ready(moved)["lastTransitionTime"]) - first_false > STUCK_AFTER  # Ready's own time moved on

    # A restarted exporter reads the first failure from status.history (firstReconciled of the failing entry).
    history = moved["status"].get("history") or []
    assert history
    assert history[0]["lastReconciledStatus"] != "ReconciliationSucceeded"
    restarted = await start()
    await restarted.wait_for(stuck, timeout=30)
    again = _resource(restarted, ns, "app")
    assert again is not None
    assert again["since_source"] == "history"
    assert abs(_ts(again["since"]) - _ts(history[0]["firstReconciled"])) <= 1
    assert abs(_ts(again["since"]) - first_false) <= 5  # the history entry began with the first apply attempt

    # The tenant removes the ClusterRole: ready and not stuck once the GitRepository has fetched it.
    flux.git.push(f"{ns}/app", {"deploy/cm.yaml": CONFIG})

    def fixed(e: Exporter) -> bool:
        found = _resource(e, ns, "app")
        return found is not None and found["state"] == "ready" and not found["stuck"]

    await exporter.wait_for(fixed, timeout=60)

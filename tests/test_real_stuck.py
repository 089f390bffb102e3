"""A controller that dies mid-reconcile, on the real Flux controllers: the object it left Ready=Unknown is stuck once
its attempt has taken its spec.timeout plus the progressing margin, not ready for ever; started again, the
controller brings the object back to its true state.

No kubelet runs here, so a Deployment is never ready by itself: the test writes its status the way the
kube-controller-manager would (ready, then not), which makes kustomize-controller's health checks pass, then wait.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest

from flux_tenant_exporter.base.config import StuckThresholds
from flux_tenant_exporter.base.timefmt import parse_time
from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.serve.app import Exporter
from flux_tenant_exporter.state.published import ResourceView
from testbed import fleet, scenario
from testbed.controllers import create_tenant
from testbed.realflux import RealFlux
from testbed.running import StartExporter

TIMEOUT = 30  # the Kustomization's spec.timeout, seconds
MARGIN = 15  # --progressing-margin
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.invalid/web:1.0
"""


def _deployments(namespace: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments"


async def _deployment_status(client: KubeClient, namespace: str, *, ready: bool) -> None:
    """Write the Deployment's status as the kube-controller-manager does for one replica, ready or not."""
    path = f"{_deployments(namespace)}/web"
    deployment = await client.request("GET", path)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    count = 1 if ready else 0
    status = {
        "observedGeneration": deployment["metadata"]["generation"], "replicas": 1, "updatedReplicas": 1,
        "readyReplicas": count, "availableReplicas": count, "unavailableReplicas": 1 - count,
        "conditions": [
            {"type": "Available", "status": "True" if ready else "False", "lastUpdateTime": now,
             "lastTransitionTime": now, "reason": "MinimumReplicasAvailable" if ready else "MinimumReplicasUnavailable",
             "message": "Deployment has minimum availability." if ready else "Deployment does not have minimum "
                                                                             "availability."},
            {"type": "Progressing", "status": "True", "lastUpdateTime": now, "lastTransitionTime": now,
             "reason": "NewReplicaSetAvailable", "message": 'ReplicaSet "web-1" has successfully progressed.'},
        ],
    }
    await client.request("PATCH", f"{path}/status", body={"status": status},
                         content_type="application/merge-patch+json")


def _resource(exporter: Exporter, namespace: str, kind: str, name: str) -> ResourceView | None:
    tenant = exporter.view.tenants.get(namespace)
    return next((r for r in tenant.resources if (r.kind, r.name) == (kind, name)), None) if tenant else None


def _state(exporter: Exporter, namespace: str, kind: str, name: str) -> tuple[str, bool] | None:
    res = _resource(exporter, namespace, kind, name)
    return (res.state, res.stuck) if res is not None else None


@pytest.mark.timeout(300)
async def test_kustomize_controller_killed_while_waiting_on_health_checks(
    flux: RealFlux, flux_admin: KubeClient, ns_name: str, start_exporter: StartExporter
) -> None:
    """A ready Kustomization (wait: true, timeout 30s) is asked to reconcile while its Deployment is not ready;
    kustomize-controller is SIGKILLed while it waits on the health checks, leaving Ready=Unknown +
    Reconciling=True. The exporter keeps it ready for the attempt's budget (30 s + 15 s from the attempt's start),
    then reports it progressing and stuck (progressing_timeout) since that start; started again with the
    Deployment ready, the controller makes it ready, and the exporter shows it ready and not stuck."""
    client, namespace = flux_admin, ns_name
    await create_tenant(client, namespace)
    flux.git.push(f"{namespace}/app", {"deploy/deploy.yaml": DEPLOYMENT})
    await scenario.apply(client, scenario.git_repository(namespace, "app", flux.git.url(f"{namespace}/app")))
    ks = await scenario.apply(client, scenario.kustomization(
        namespace, "app", source=("GitRepository", "app"), path="./deploy", service_account=namespace,
        target_namespace=namespace, wait=True, timeout=f"{TIMEOUT}s"))
    deployment = {"kind": "Deployment", "metadata": {"name": "web", "namespace": namespace}}
    await scenario.wait_for(client, deployment, lambda _: True, collection=_deployments(namespace))
    await _deployment_status(client, namespace, ready=True)
    await scenario.wait_for(client, ks, scenario.is_ready, timeout=90)
    exporter = await start_exporter(
        flux.control_plane.kubeconfig, namespaces=(namespace,),
        thresholds=StuckThresholds(progressing_margin=MARGIN))
    await exporter.wait_for(lambda e: _state(e, namespace, "Kustomization", "app") == ("ready", False))

    await _deployment_status(client, namespace, ready=False)
    requested = datetime.datetime.now(datetime.UTC).isoformat()
    await client.request("PATCH", fleet.path_of(ks), body={"metadata": {"annotations": {
        "reconcile.fluxcd.io/requestedAt": requested}}}, content_type="application/merge-patch+json")

    def waiting_on_health(obj: dict[str, Any]) -> bool:
        reconciling = scenario.condition(obj, "Reconciling")
        return reconciling is not None and "Running health checks" in reconciling.get("message", "")

    waiting = await scenario.wait_for(client, ks, waiting_on_health, timeout=60)
    try:
        await asyncio.to_thread(flux.controllers.kill, "kustomize-controller")
        left = await client.request("GET", fleet.path_of(ks))
        ready, reconciling = scenario.condition(left, "Ready"), scenario.condition(left, "Reconciling")
        assert ready is not None, left["status"]
        assert ready["status"] == "Unknown", left["status"]
        assert reconciling is not None, left["status"]
        assert reconciling["status"] == "True", left["status"]
        attempt_start = parse_time(scenario.condition(waiting, "Reconciling")["lastTransitionTime"])  # type: ignore[index]
        assert attempt_start is not None
        deadline = attempt_start + TIMEOUT + MARGIN

        # within the budget the routine reconcile is held ready (it has not yet taken longer than it may)
        held = _resource(exporter, namespace, "Kustomization", "app")
        assert held is not None
        assert (held.state, held.stuck) == ("ready", False)
        await exporter.wait_for(lambda e: _state(e, namespace, "Kustomization", "app") == ("progressing", True),
                                timeout=TIMEOUT + MARGIN + 30)
        stuck = _resource(exporter, namespace, "Kustomization", "app")
        assert stuck is not None
        # The attempt began when the exporter first saw it (Reconciling's lastTransitionTime then); the condition the
        # test read during the health checks may be a second later (kustomize-controller marks Reconciling again
        # for the health checks, and the time has a resolution of one second).
        assert attempt_start - 1 <= (stuck.since or 0) <= attempt_start
        assert exporter.view.generated_at >= max((stuck.since or 0) + TIMEOUT + MARGIN, deadline - 1)
        assert (stuck.stuck_reason, stuck.category, stuck.owner) == ("progressing_timeout", "progressing", None)
        assert stuck.stuck_root  # nothing blocks it: it is the root cause to page for
        tenant = exporter.view.tenants[namespace]
        assert (tenant.status, tenant.counts["stuck"]) == ("failing", 1)
        metrics = exporter.exposition.body.decode()
        assert (f'fluxtenant_resource_stuck_root{{tenant="{namespace}",kind="Kustomization",namespace="{namespace}",'
                f'name="app",category="progressing",owner="unknown",reason="progressing_timeout"}} 1') in metrics
    finally:
        await _deployment_status(client, namespace, ready=True)
        if not flux.controllers.alive()["kustomize-controller"]:
            flux.controllers.restart("kustomize-controller")  # this thread: the child dies with the one that made it
    await exporter.wait_for(lambda e: _state(e, namespace, "Kustomization", "app") == ("ready", False),
                            timeout=TIMEOUT + 60)


@pytest.mark.timeout(300)
async def test_helm_controller_killed_mid_install(
    flux: RealFlux, flux_admin: KubeClient, ns_name: str, start_exporter: StartExporter
) -> None:
    """helm-controller is SIGKILLed while a first install waits for its Deployment (spec.timeout 30s): the
    HelmRelease it left Ready=Unknown is progressing, then stuck (progressing_timeout) at the attempt's start plus
    30 s plus the margin; started again, the controller settles it (the install it had begun is not completed), and
    the exporter reports what the controller says."""
    client, namespace = flux_admin, ns_name
    await create_tenant(client, namespace)
    chart = f"{namespace}-web"
    template = DEPLOYMENT.replace("name: web\n", "name: {{ .Release.Name }}\n", 1)
    flux.helm.add_chart(chart, "1.0.0", {"deploy.yaml": template})
    await scenario.apply(client, scenario.helm_repository(namespace, "charts", flux.helm.url))
    release = await scenario.apply(client, scenario.helm_release(
        namespace, "web", chart=chart, version="1.0.0", repository="charts", service_account=namespace,
        target_namespace=namespace, timeout=f"{TIMEOUT}s"))
    exporter = await start_exporter(
        flux.control_plane.kubeconfig, namespaces=(namespace,),
        thresholds=StuckThresholds(progressing_margin=MARGIN))

    def installing(obj: dict[str, Any]) -> bool:
        ready = scenario.condition(obj, "Ready")
        return ready is not None and ready["status"] == "Unknown" and "install" in ready.get("message", "")

    waiting = await scenario.wait_for(client, release, installing, timeout=90)
    try:
        await asyncio.to_thread(flux.controllers.kill, "helm-controller")
        attempt_start = parse_time(scenario.condition(waiting, "Reconciling")["lastTransitionTime"])  # type: ignore[index]
        assert attempt_start is not None
        # (the install's first status was the transient SourceNotReady: blocked, so the attempt that followed is
        # progress, not a retry of that failure)
        await exporter.wait_for(lambda e: _state(e, namespace, "HelmRelease", "web") == ("progressing", True),
                                timeout=TIMEOUT + MARGIN + 30)
        stuck = _resource(exporter, namespace, "HelmRelease", "web")
        assert stuck is not None
        assert exporter.view.generated_at >= attempt_start + TIMEOUT + MARGIN
        assert (stuck.stuck_reason, stuck.since) == ("progressing_timeout", attempt_start)
    finally:
        if not flux.controllers.alive()["helm-controller"]:
            flux.controllers.restart("helm-controller")  # this thread: the child dies with the one that made it

    def settled(obj: dict[str, Any]) -> bool:
        ready = scenario.condition(obj, "Ready")
        return ready is not None and ready["status"] in {"True", "False"}

    after = await scenario.wait_for(client, release, settled, timeout=120)
    truth = scenario.condition(after, "Ready")
    assert truth is not None
    want = "ready" if truth["status"] == "True" else "failing"
    await exporter.wait_for(lambda e: (_state(e, namespace, "HelmRelease", "web") or ("", True))[0] == want,
                            timeout=30)

"""End to end with real components on the hand-written fleet (testbed.synthetic; the real-Flux variant is
tests/test_monitoring_real_flux.py): the control plane with that fleet, the exporter, a real Prometheus
(Debian) scraping it with the alert rules loaded, and a real Alertmanager (Debian) routing with
alerts/alertmanager.example.yml to a webhook receiver in the test, plus the route prometheus-operator would
generate from alerts/alertmanagerconfig.example.yaml (a tenant's own AlertmanagerConfig).

Only the alerts' ``for:`` durations are shortened (the exporter's own stuck thresholds are the defaults; the
demo failures are hours old); the rule expressions are the committed ones.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from monitoring_stack import Receiver, eventually, monitoring, on_job, query, substitute

from flux_tenant_exporter.base.config import ServeSettings, WatchSettings
from flux_tenant_exporter.base.vocabulary import Detail
from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.serve.app import Exporter
from fte_mixin import needs_objects
from testbed import fleet
from testbed.controlplane import ControlPlane
from testbed.synthetic import load_synthetic_fleet

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).parent.parent
#: the webhook path of the receiver team-a/flux-tenant-alerts/team-a-oncall of the AlertmanagerConfig example
TENANT_RECEIVER = "team-a_flux-tenant-alerts_team-a-oncall"
#: the exporter at --detail=all (the other jobs scrape the lower levels)
MAIN_JOB = "flux-tenant-exporter"
LOWER_LEVELS: tuple[Detail, ...] = ("failing", "tenants")
RESOURCE_LABELS = ("team", "app.kubernetes.io/part-of")  # as in AlertDurations: the rules copy them
DEMO_NAMESPACES = ("flux-system", "team-a", "team-a-web", "team-b", "team-c", "team-d")





def operator_route(config: dict[str, Any], url: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The route and receivers prometheus-operator generates from an AlertmanagerConfig (OnNamespace strategy):
    receivers named ``<namespace>/<name>/<receiver>``, the route matching ``namespace="<ns>"`` first, continuing."""
    meta, spec = config["metadata"], config["spec"]
    prefix = f"{meta['namespace']}/{meta['name']}/"
    route = spec["route"]
    matchers = [f'namespace="{meta["namespace"]}"'] + [
        f'{m["name"]}{m.get("matchType", "=")}"{m["value"]}"' for m in route.get("matchers", [])]
    receivers = [{"name": prefix + r["name"], "webhook_configs": [
        {"url": url + "/" + (prefix + r["name"]).replace("/", "_"), "send_resolved": w.get("sendResolved", False)}
        for w in r["webhookConfigs"]]} for r in spec["receivers"]]
    # the intervals are shortened as for the rest of the test
    return ({"receiver": prefix + route["receiver"], "matchers": matchers, "group_by": route["groupBy"],
             "group_wait": "1s", "group_interval": "1s", "continue": True}, receivers)











@dataclass
class Stack:
    exporter: Exporter
    prometheus: str
    alertmanager: str
    receiver: Receiver
    admin: KubeClient


@pytest.fixture
async def stack(control_plane: ControlPlane, stack_dir: Path) -> AsyncIterator[Stack]:
    admin = await KubeClient.from_kubeconfig(control_plane.kubeconfig)
    await load_synthetic_fleet(admin)
    namespaces = await admin.request("GET", "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/team-a/kustomizations/"
                                            "namespaces")
    await fleet.patch(admin, namespaces, {"metadata": {"labels": {"team": "alpha",
                                                                  "app.kubernetes.io/part-of": "platform-base"}}})
    # an image update automation whose push is refused (status written from image-automation-controller's code:
    # the proxy refuses the controller), for FluxImageAutomationFailing
    automation = fleet.meta(fleet.by_kind_strict("ImageUpdateAutomation"), "team-b", "images", spec={
        "interval": "5m", "sourceRef": {"kind": "GitRepository", "name": "repo"},
        "git": {"commit": {"author": {"name": "bot", "email": "bot@example.com"}}},
        "update": {"strategy": "Setters", "path": "./"}})
    await fleet.create(admin, automation, exist_ok=True, status=fleet.failed_status(
        "GitOperationFailed", "failed to update source: failed to push to remote: command error on refs/heads/main: "
        "protected branch hook declined", since=fleet.ago(hours=1)))
    settings = ServeSettings(listen_address="127.0.0.1", port=0, publish_interval=0.05, namespaces=DEMO_NAMESPACES,
                        watch=WatchSettings(backoff_initial=0.05), resource_labels=RESOURCE_LABELS, detail="all")
    exporter = Exporter(settings, await KubeClient.from_kubeconfig(control_plane.kubeconfig))
    stop = asyncio.Event()
    exporter_task = asyncio.create_task(exporter.run(stop))
    # One exporter per lower --detail level beside it, scraped as their own jobs (the rules' max-by collapse them).
    levels = {level: Exporter(replace(settings, detail=level), await KubeClient.from_kubeconfig(
        control_plane.kubeconfig)) for level in LOWER_LEVELS}
    level_tasks = [asyncio.create_task(e.run(stop)) for e in levels.values()]
    await exporter.wait_for(lambda e: e.ready())
    for each in levels.values():
        await each.wait_for(lambda e: e.ready())

    def tenant_route(config: dict[str, Any], url: str) -> None:
        tenant_config = yaml.safe_load((ROOT / "alerts" / "alertmanagerconfig.example.yaml").read_text())
        route, receivers = operator_route(tenant_config, url)
        config["route"]["routes"].insert(0, route)
        config["receivers"] += receivers

    jobs = {MAIN_JOB: exporter.port} | {f"detail-{level}": each.port for level, each in levels.items()}
    try:
        async with monitoring(stack_dir, jobs, tenant_route) as mon:
            yield Stack(exporter, mon.prometheus, mon.alertmanager, mon.receiver, admin)
    finally:
        stop.set()
        await exporter_task
        for task in level_tasks:
            await task
        await admin.close()





async def tenant_config_gets_exactly_its_alerts(stack: Stack) -> None:
    """team-a's AlertmanagerConfig receiver gets exactly the firing alerts of namespace team-a, the tenant-level
    FluxTenantFailing (by the tenant's first namespace) included, and nothing of another namespace."""
    receiver = stack.receiver

    def alert_ids(alerts: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {(a["labels"]["alertname"], a["labels"].get("kind", ""), a["labels"].get("name", "")) for a in alerts}

    firing_here: set[tuple[str, str, str]] = set()

    async def tenant_received_its_alerts() -> bool:
        firing = await query(stack, 'ALERTS{alertstate="firing", namespace="team-a"}')
        firing_here.clear()
        firing_here.update(alert_ids([{"labels": a["metric"]} for a in firing]))
        return bool(firing_here) and alert_ids(receiver.alerts(TENANT_RECEIVER)) == firing_here

    await eventually(tenant_received_its_alerts, "team-a's AlertmanagerConfig receiver to get its namespace's alerts")
    received = receiver.alerts(TENANT_RECEIVER)
    assert {a["labels"]["namespace"] for a in received} == {"team-a"}
    assert {a["labels"]["tenant"] for a in received} == {"team-a"}
    assert ("FluxTenantFailing", "", "") in firing_here  # the tenant-level alert, by the tenant's first namespace
    assert ("FluxReconciliationStuck", "Kustomization", "namespaces") in firing_here


async def test_alerts_reach_alertmanager_routed_by_owner_and_tenant(stack: Stack) -> None:
    """Stuck roots page their owner (tenant routes per tenant, platform to the platform), once per root; the
    healthy tenants raise nothing; alerts carry the objects' --resource-labels; a tenant's AlertmanagerConfig
    (namespace matcher) gets exactly its namespace's alerts; fixing the object resolves its alert; every PromQL
    expression of the rules and dashboards parses and returns data for the fleet."""
    receiver = stack.receiver

    def stuck(name: str) -> list[dict[str, Any]]:
        return [a for a in receiver.alerts() if a["labels"]["alertname"] == "FluxReconciliationStuck"
                and a["labels"]["name"] == name and a["receiver"] != TENANT_RECEIVER]

    def stalled() -> set[str]:
        return {a["labels"]["name"] for a in receiver.alerts() if a["labels"]["alertname"] == "FluxResourceStalled"}

    async def arrived() -> bool:
        # Each alert group is notified on its own: wait for every one the assertions below look at.
        return bool(stuck("namespaces") and stuck("repo") and stuck("monitoring") and stuck("overlays")
                    and receiver.alerts("deadmansswitch") and stalled() >= {"api", "team-b-web", "shared"})

    await eventually(arrived, "the stuck alerts and the watchdog to reach their receivers")
    (namespaces,) = stuck("namespaces")
    assert namespaces["receiver"] == "team-a"
    assert namespaces["labels"] | {"severity": "page", "owner": "tenant", "tenant": "team-a",
                                   "category": "cluster_scoped_in_tenant"} == namespaces["labels"]
    assert namespaces["annotations"]["runbook_url"].endswith("RUNBOOK.md#fluxreconciliationstuck")
    assert stuck("repo")[0]["receiver"] == "team-b"  # source_auth_failed: the tenant's
    assert stuck("monitoring")[0]["receiver"] == "platform"  # crd_missing: the platform's
    assert stuck("web") == []  # blocked by team-a/namespaces: the root pages, not the dependent
    assert stuck("app") == []  # blocked by team-b/repo
    assert stalled() >= {"api", "team-b-web", "shared"}
    # --resource-labels: the object's labels reach the alert through the rules' join on fluxtenant_resource_info
    assert namespaces["labels"]["label_team"] == "alpha"
    assert namespaces["labels"]["label_app_kubernetes_io_part_of"] == "platform-base"
    assert "label_team" not in stuck("repo")[0]["labels"]

    await tenant_config_gets_exactly_its_alerts(stack)

    tenants_alerted = {a["labels"].get("tenant") for a in receiver.alerts()}
    assert "team-d" not in tenants_alerted
    assert "platform" not in tenants_alerted
    exporter_alerts = {a["labels"]["alertname"] for a in receiver.alerts() if "Exporter" in a["labels"]["alertname"]}
    assert exporter_alerts == {"FluxTenantExporterWatchdog"}

    # Fixing a root resolves its alert; breaking a ready object makes a transition for the dashboards.
    overlays = await stack.admin.request("GET", "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/team-c/"
                                                "kustomizations/overlays")
    await fleet.write_status(stack.admin, overlays, fleet.ready_status("Kustomization"))
    redis = await stack.admin.request("GET", "/apis/helm.toolkit.fluxcd.io/v2/namespaces/team-a/helmreleases/redis")
    await fleet.write_status(stack.admin, redis, fleet.failed_status("UpgradeFailed", "upgrade retries exhausted"))

    async def resolved() -> bool:
        return any(a["labels"]["name"] == "overlays" for a in receiver.alerts("team-c", status="resolved"))

    await eventually(resolved, "the fixed object's alert to resolve")

    async def transitions_scraped() -> bool:
        return bool(await query(stack, "fluxtenant_resource_recoveries_total")) and bool(
            await query(stack, 'fluxtenant_resource_failures_total{tenant="team-a"}'))

    await eventually(transitions_scraped, "the transition counters to be scraped")

    rules = [r for g in yaml.safe_load((ROOT / "alerts" / "flux-tenant-exporter.rules.yaml").read_text())["groups"]
             for r in g["rules"]]
    for rule in rules:
        await query(stack, on_job(rule["expr"], MAIN_JOB))  # parses and evaluates
        for selector in re.findall(r"(?:fluxtenant|process)_[a-z_]+(?:\{[^}]*\})?", rule["expr"]):
            assert await query(stack, on_job(selector, MAIN_JOB)), f"{rule['alert']}: {selector} returns nothing"
    targets = [(path.name, panel["title"], target["expr"]) for path in sorted((ROOT / "dashboards").glob("*.json"))
               for panel in json.loads(path.read_text())["panels"] for target in panel["targets"]]
    empty: list[str] = []

    async def every_panel_has_data() -> bool:
        # rate() and increase() need two scrapes of a new counter: poll until they have them
        empty[:] = [f"{board}: {title}: {expr}" for board, title, expr in targets
                    if not await query(stack, on_job(substitute(expr), MAIN_JOB))]
        return not empty

    try:
        await eventually(every_panel_has_data, "every dashboard query to return data", limit=30)
    finally:
        assert empty == []
    await lower_levels_keep_what_they_document(stack, rules, targets)


async def lower_levels_keep_what_they_document(
    stack: Stack, rules: list[dict[str, Any]], targets: list[tuple[str, str, str]]
) -> None:
    """At --detail=failing every panel query and every rule selector that has data at `all` has data too; at
    --detail=tenants only the queries reading per-object series (fte_mixin.needs_objects, listed in the
    README as needing `failing`) return nothing, and every other panel and rule keeps its data. Across the three
    jobs (as across HA replicas) every query still evaluates: no join meets duplicate series."""
    for expr in [substitute(t[2]) for t in targets] + [r["expr"] for r in rules]:
        await query(stack, expr)  # asserts status success
    for level in LOWER_LEVELS:
        job = f"detail-{level}"
        empty_panels = [(board, title, expr) for board, title, expr in targets
                        if not await query(stack, on_job(substitute(expr), job))]
        empty_selectors = [(rule["alert"], selector) for rule in rules
                           for selector in re.findall(r"fluxtenant_[a-z_]+(?:\{[^}]*\})?", rule["expr"])
                           if not await query(stack, on_job(selector, job))]
        if level == "failing":
            assert empty_panels == []
            assert empty_selectors == []
        else:
            assert [p for p in empty_panels if not needs_objects(p[2])] == []
            assert [s for s in empty_selectors if not needs_objects(s[1])] == []
            assert empty_panels, "the tenants level still has per-object series"

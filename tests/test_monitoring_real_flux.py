"""End to end on real Flux (the hand-written-fleet variant, with --detail levels and an AlertmanagerConfig route,
is tests/test_monitoring_e2e.py): the real Flux controllers reconciling the demo's tenant repositories, the
exporter, a real Prometheus (Debian) scraping it with the alert rules loaded, and a real Alertmanager (Debian)
routing with alerts/alertmanager.example.yml to a webhook receiver in the test.

The statuses are the controllers' own. Only durations are shortened: the exporter's stuck thresholds by its
flags (``--stuck-after``, ``--source-stuck-after``), the rules' ``for:`` by ``AlertDurations``; the rule
expressions are the committed ones. The fix is a real ``git push``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from monitoring_stack import Receiver, eventually, monitoring, query, substitute

from flux_tenant_exporter.cli.flags import parse_serve
from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.serve.app import Exporter
from testbed import demofleet, scenario
from testbed.demofleet import DemoFleet
from testbed.realflux import RealFlux

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).parent.parent
NAMESPACES = (demofleet.PLATFORM_NS, *demofleet.TENANTS, demofleet.SYNTHETIC_NS)
#: The exporter's own thresholds, shortened by its flags: failing this long is stuck.
EXPORTER_FLAGS = ("--stuck-after", "5s", "--source-stuck-after", "5s", "--listen-address", "127.0.0.1", "--port",
                  "0", "--namespaces", ",".join(NAMESPACES), "--log-level", "warning")














@dataclass
class Stack:
    exporter: Exporter
    prometheus: str
    alertmanager: str
    receiver: Receiver
    admin: KubeClient
    fleet: DemoFleet


@pytest.fixture
async def stack(flux: RealFlux, stack_dir: Path) -> AsyncIterator[Stack]:
    """The exporter (started first, so it sees every transition), the demo fleet on the real controllers,
    Prometheus and Alertmanager."""
    admin = await KubeClient.from_kubeconfig(flux.control_plane.kubeconfig)
    settings = replace(parse_serve(["serve", *EXPORTER_FLAGS]), publish_interval=0.05)
    exporter = Exporter(settings, await KubeClient.from_kubeconfig(flux.control_plane.kubeconfig))
    stop = asyncio.Event()
    exporter_task = asyncio.create_task(exporter.run(stop))
    await exporter.wait_for(lambda e: e.ready())
    fleet = await demofleet.seed(admin, flux, stack_dir / "work")

    def repeat_watchdog(config: dict[str, Any], _url: str) -> None:
        config["route"]["routes"][0]["repeat_interval"] = "2s"  # the dead man's switch, re-sent while it fires

    try:
        async with monitoring(stack_dir, {"flux-tenant-exporter": exporter.port}, repeat_watchdog) as mon:
            yield Stack(exporter, mon.prometheus, mon.alertmanager, mon.receiver, admin, fleet)
    finally:
        stop.set()
        await exporter_task
        await admin.close()


def alerts_named(receiver: Receiver, alertname: str, name: str, status: str = "firing") -> list[dict[str, Any]]:
    """Every notified alert ``alertname`` about an object ``name``, one per notification it was in."""
    return [a for a in receiver.alerts(status=status) if a["labels"]["alertname"] == alertname
            and a["labels"].get("name") == name]


async def descriptions(stack: Stack, alertname: str, name: str) -> list[str]:
    """The descriptions of Prometheus's active alerts ``alertname`` about an object ``name``, as expanded now."""
    async with aiohttp.ClientSession() as session, session.get(f"{stack.prometheus}/api/v1/alerts") as resp:
        active = (await resp.json())["data"]["alerts"]
    return [a["annotations"]["description"] for a in active
            if a["labels"]["alertname"] == alertname and a["labels"].get("name") == name]


async def test_real_flux_alerts_page_the_owner_once_and_resolve_on_a_pushed_fix(stack: Stack) -> None:
    """On the real controllers' statuses: team-a's ClusterRole (cluster-scoped objects in tenant manifests)
    pages team-a's route as one alert with exactly the expected labels, across the controller's retries; the
    Kustomization that depends on it raises nothing, nor do the dependents of team-b's failing sources; the
    platform's webhook on a closed port and a missing CRD page the platform; a cross-namespace sourceRef pages
    its tenant as stalled; pushing team-a's printed fix to Git makes the Kustomization Ready and resolves its
    alert, and the platform's pushed fix (removing the webhook) resolves the platform's; the dead man's switch
    keeps firing throughout; every PromQL expression of the rules and dashboards returns data (the recovery
    counter too: a real fix passes through progressing)."""
    receiver = stack.receiver

    async def arrived() -> bool:
        return bool(alerts_named(receiver, "FluxReconciliationStuck", "rbac")
                    and alerts_named(receiver, "FluxReconciliationStuck", "policies")
                    and alerts_named(receiver, "FluxReconciliationStuck", "monitoring")
                    and alerts_named(receiver, "FluxResourceStalled", "shared")
                    and receiver.alerts("deadmansswitch"))

    await eventually(arrived, "the stuck alerts and the watchdog to reach their receivers", limit=90)
    rbac = alerts_named(receiver, "FluxReconciliationStuck", "rbac")
    assert {a["receiver"] for a in rbac} == {"team-a"}
    assert rbac[0]["labels"] == {
        "alertname": "FluxReconciliationStuck", "severity": "page", "owner": "tenant", "tenant": "team-a",
        "category": "cluster_scoped_in_tenant", "kind": "Kustomization", "namespace": "team-a", "name": "rbac",
    }
    policies = alerts_named(receiver, "FluxReconciliationStuck", "policies")
    assert {a["receiver"] for a in policies} == {"platform"}
    assert policies[0]["labels"] | {"owner": "platform", "tenant": "team-c", "category": "webhook_failed"} == \
        policies[0]["labels"]

    # A kind whose CRD is not installed is the platform's; a cross-namespace sourceRef is Stalled (the
    # controller will not retry it) and pages the tenant as such.
    assert {a["receiver"] for a in alerts_named(receiver, "FluxReconciliationStuck", "monitoring")} == {"platform"}
    shared = alerts_named(receiver, "FluxResourceStalled", "shared")
    assert {a["receiver"] for a in shared} == {"team-b"}
    assert shared[0]["labels"]["category"] == "cross_namespace_ref_denied"

    # Across retries (every 10s the controller flips Ready to Unknown and back): the stuck series stays 1 on
    # every scrape, and it is still the one alert, never resolved, with the start it had.
    ks = await stack.admin.request("GET", "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/team-a/kustomizations/rbac")
    await scenario.wait_for(stack.admin, ks, retried(2), timeout=40)
    window = 'fluxtenant_resource_stuck_root{namespace="team-a",name="rbac"}[20s]'
    assert [s["value"][1] for s in await query(stack, f"min_over_time({window})")] == ["1"]
    assert int((await query(stack, f"count_over_time({window})"))[0]["value"][1]) >= 10
    rbac = alerts_named(receiver, "FluxReconciliationStuck", "rbac")
    assert {a["startsAt"] for a in rbac} == {rbac[0]["startsAt"]}
    assert alerts_named(receiver, "FluxReconciliationStuck", "rbac", status="resolved") == []
    # The reason is not an alert label (it may move from dependent_stuck to not_ready while the root pages);
    # Prometheus's description of the one alert names the current one.
    (described,) = await descriptions(stack, "FluxReconciliationStuck", "rbac")
    assert "is stuck (not_ready)" in described
    # Blocked by team-a/rbac, by team-b's failing GitRepositories, by team-b's failing HelmChart: no alert.
    dependents = {("team-a", "Kustomization", "web"), ("team-b", "Kustomization", "deploy"),
                  ("team-b", "Kustomization", "config"), ("team-b", "HelmRelease", "web")}
    assert [a["labels"] for a in receiver.alerts() if (a["labels"].get("namespace"), a["labels"].get("kind"),
                                                       a["labels"].get("name")) in dependents] == []
    roots = {(a["labels"].get("kind"), a["labels"].get("name")) for a in receiver.alerts("team-b")}
    assert {("GitRepository", "deploy"), ("GitRepository", "config"), ("HelmChart", "team-b-web")} <= roots
    assert "team-d" not in {a["labels"].get("tenant") for a in receiver.alerts()}
    exporter_alerts = {a["labels"]["alertname"] for a in receiver.alerts() if "Exporter" in a["labels"]["alertname"]}
    assert exporter_alerts == {"FluxTenantExporterWatchdog"}

    watchdog_before = len(receiver.notifications["deadmansswitch"])
    fix = next(f for f in stack.fleet.fixes if f.tenant == "team-a")
    await asyncio.to_thread(subprocess.run, ["bash", "-c", fix.command], check=True, capture_output=True,
                            timeout=60)
    await scenario.wait_for(stack.admin, ks, scenario.is_ready, timeout=60)

    async def resolved() -> bool:
        return bool(alerts_named(receiver, "FluxReconciliationStuck", "rbac", status="resolved"))

    await eventually(resolved, "team-a/rbac's alert to resolve after the pushed fix")
    assert {a["receiver"] for a in alerts_named(receiver, "FluxReconciliationStuck", "rbac", status="resolved")} == \
        {"team-a"}

    # The platform removes its webhook (a pushed fix too): team-c/policies' next retry applies, and the
    # platform's alert resolves.
    platform_fix = next(f for f in stack.fleet.fixes if f.tenant == "platform")
    await asyncio.to_thread(subprocess.run, ["bash", "-c", platform_fix.command], check=True, capture_output=True,
                            timeout=60)
    policies_ks = await stack.admin.request(
        "GET", "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/team-c/kustomizations/policies")
    await scenario.wait_for(stack.admin, policies_ks, scenario.is_ready, timeout=60)

    async def platform_resolved() -> bool:
        return bool(alerts_named(receiver, "FluxReconciliationStuck", "policies", status="resolved"))

    await eventually(platform_resolved, "team-c/policies' alert to resolve after the platform's fix")
    assert {a["receiver"] for a in alerts_named(receiver, "FluxReconciliationStuck", "policies",
                                                status="resolved")} == {"platform"}

    async def watchdog_still_firing() -> bool:
        return len(receiver.notifications["deadmansswitch"]) > watchdog_before

    await eventually(watchdog_still_firing, "the dead man's switch to be notified again")
    assert all(a["labels"]["alertname"] == "FluxTenantExporterWatchdog" for a in receiver.alerts("deadmansswitch"))

    await assert_every_query_has_data(stack)


#: alerts on kinds whose controller cannot run here
NO_REAL_CONTROLLER = frozenset({"FluxImageAutomationFailing"})


async def assert_every_query_has_data(stack: Stack) -> None:
    """Every rule parses and evaluates; every metric selector of a rule and every dashboard query returns data."""
    rules = [r for g in yaml.safe_load((ROOT / "alerts" / "flux-tenant-exporter.rules.yaml").read_text())["groups"]
             for r in g["rules"]]
    for rule in rules:
        await query(stack, rule["expr"])  # parses and evaluates
    targets = [(path.name, panel["title"], target["expr"]) for path in sorted((ROOT / "dashboards").glob("*.json"))
               for panel in json.loads(path.read_text())["panels"] for target in panel["targets"]]
    # the Go module proxy refuses the image automation controllers: no real image automation runs here (their
    # alert has data in tests/test_monitoring_e2e.py, from statuses written from their code)
    selectors = [(rule["alert"], selector) for rule in rules if rule["alert"] not in NO_REAL_CONTROLLER
                 for selector in re.findall(r"(?:fluxtenant|process)_[a-z_]+(?:\{[^}]*\})?", rule["expr"])]
    empty: list[str] = []

    async def everything_has_data() -> bool:
        # rate() and increase() need two scrapes of a new counter: poll until they have them
        empty[:] = [f"{alert}: {selector}" for alert, selector in selectors if not await query(stack, selector)]
        for board, title, expr in targets:
            if not await query(stack, substitute(expr)):
                empty.append(f"{board}: {title}: {expr}")
        return not empty

    try:
        await eventually(everything_has_data, "every rule selector and dashboard query to return data", limit=30)
    finally:
        assert empty == [], "\n".join(empty)


def retried(times: int) -> Callable[[dict[str, Any]], bool]:
    """A predicate for a watch: the object's Ready went Unknown (a retry starting) and back ``times`` times."""
    seen: list[str] = []

    def check(obj: dict[str, Any]) -> bool:
        ready = scenario.condition(obj, "Ready") or {}
        if not seen or seen[-1] != ready.get("status"):
            seen.append(str(ready.get("status")))
        return sum(1 for a, b in itertools.pairwise(seen) if (a, b) == ("Unknown", "False")) >= times

    return check

"""Replicas count once, shards add up: every panel and rule on the real Prometheus gives, for two replicas of one
exporter and for two shards of two replicas each, what it gives for a single exporter.

Seven exporters watch the hand-written fleet (testbed.synthetic) on the real control plane: one alone (job
``single``), two replicas (job ``ha``), and two shards of two replicas each (job ``sharded``), each shard picking its
objects with Flux's sharding label (``--label-selector``) and naming itself (``--shard``). team-b, and two of
team-a's Kustomizations (with their dependency chain), are in shard ``shard1``; the rest in ``main``: team-a spans
both shards. One Prometheus scrapes all three jobs; every query is evaluated at one instant, restricted to one job.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from monitoring_stack import FAST, eventually, monitoring, on_job, query, substitute

from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.serve.app import Exporter
from fte_mixin.alerts import rule_groups
from testbed import fleet
from testbed.controllers import SHARD_KEY_LABEL
from testbed.running import FAST_WATCH, StartExporter
from testbed.synthetic import load_synthetic_fleet

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).parent.parent
DEMO_NAMESPACES = ("flux-system", "team-a", "team-a-web", "team-b", "team-c", "team-d")
#: the objects of shard1 besides all of team-b's: a failing Kustomization of team-a and the one it blocks
SHARD1_TEAM_A = ("namespaces", "web")
SHARDS = {"main": f"!{SHARD_KEY_LABEL}", "shard1": f"{SHARD_KEY_LABEL}=shard1"}
#: labels that tell the series of one job's exporters apart, and that the single exporter does not have
TOPOLOGY_LABELS = frozenset({"job", "instance", "pod", "shard"})
#: the exporter dashboard's panels whose values are each process's own (rates of what it received, its latency and
#: memory): compared for replicas and shards on what they show per kind, not value for value
PER_PROCESS = ("Seconds since the last event", "Watch events", "Watch endings", "duration", "Memory", "Relists")


async def _label_shard1(admin: KubeClient) -> None:
    """Put team-b's objects and two of team-a's Kustomizations into shard1 (Flux's sharding label)."""
    for kind in ("GitRepository", "Kustomization", "HelmRepository", "HelmChart", "HelmRelease"):
        collection = fleet.path_of({"apiVersion": _api_version(kind), "kind": kind,
                                    "metadata": {"namespace": "team-b", "name": "x"}}, collection=True)
        for obj in (await admin.request("GET", collection))["items"]:
            await fleet.patch(admin, obj, {"metadata": {"labels": {SHARD_KEY_LABEL: "shard1"}}})
    for name in SHARD1_TEAM_A:
        path = f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/team-a/kustomizations/{name}"
        obj = await admin.request("GET", path)
        await fleet.patch(admin, obj, {"metadata": {"labels": {SHARD_KEY_LABEL: "shard1"}}})


def _api_version(kind: str) -> str:
    return {"Kustomization": "kustomize.toolkit.fluxcd.io/v1", "HelmRelease": "helm.toolkit.fluxcd.io/v2"}.get(
        kind, "source.toolkit.fluxcd.io/v1")


@pytest.fixture
async def jobs(admin: KubeClient, start_exporter: StartExporter) -> dict[str, list[Exporter]]:
    """The seven exporters, by job (stopped after the test by start_exporter)."""
    await load_synthetic_fleet(admin)
    await _label_shard1(admin)
    common: dict[str, Any] = {"namespaces": DEMO_NAMESPACES, "detail": "all", "publish_interval": 0.05,
                              "resource_labels": ("team", "app.kubernetes.io/part-of")}
    single = [await start_exporter(**common)]
    ha = [await start_exporter(**common) for _ in range(2)]
    sharded = [await start_exporter(**common, shard=shard, watch=replace(FAST_WATCH, label_selector=selector))
               for shard, selector in SHARDS.items() for _ in range(2)]
    return {"single": single, "ha": ha, "sharded": sharded}


def _normalized(result: list[dict[str, Any]]) -> list[tuple[tuple[tuple[str, str], ...], float]]:
    """A result vector without the labels that tell jobs, replicas and shards apart, in a stable order."""
    return sorted((tuple(sorted((k, v) for k, v in sample["metric"].items() if k not in TOPOLOGY_LABELS)),
                   round(float(sample["value"][1]), 6)) for sample in result)


async def _differences(stack: Any, queries: list[tuple[str, str]], job: str, at: float) -> list[str]:
    """The queries whose values for ``job`` differ from the single exporter's, at ``at``."""
    found = []
    for where, expr in queries:
        want = _normalized(await query(stack, on_job(expr, "single"), at))
        got = _normalized(await query(stack, on_job(expr, job), at))
        if got != want:
            found.append(f"{job}: {where}: {expr}\n  single: {want}\n  {job}: {got}")
    return found


def _targets() -> list[tuple[str, str, str]]:
    return [(path.name, panel["title"], substitute(target["expr"]))
            for path in sorted((ROOT / "dashboards").glob("*.json"))
            for panel in json.loads(path.read_text())["panels"] for target in panel["targets"]]


@pytest.mark.timeout(300)
async def test_replicas_count_once_and_shards_add_up(
    jobs: dict[str, list[Exporter]], stack_dir: Path
) -> None:
    """Every overview and tenant panel and every resource alert rule gives the same values for the single exporter,
    its two replicas and the two sharded pairs (team-a spanning both shards keeps one status, its worst, and its
    counts add up); the exporter dashboard's per-kind table and the exporter rules give the same values for two
    replicas as for one, and per shard for the shards."""
    ports = {job: [e.port for e in exporters] for job, exporters in jobs.items()}
    groups = rule_groups(FAST)["groups"]
    resource_rules = [r["expr"] for r in groups[0]["rules"]]
    exporter_rules = [r["expr"] for r in groups[1]["rules"]]
    targets = _targets()
    async with monitoring(stack_dir, ports) as stack:
        objects = len(jobs["single"][0].view.resources)

        async def every_job_scraped() -> bool:
            try:
                return await _scraped()
            except aiohttp.ClientError:  # Prometheus is still starting
                return False

        async def _scraped() -> bool:
            for job, exporters in jobs.items():
                up = await query(stack, f'count(up{{job="{job}"}} == 1)')
                total = "sum(max without (instance, pod) (fluxtenant_tenant_resources))"
                seen = await query(stack, on_job(total, job))
                if not up or int(up[0]["value"][1]) != len(exporters) or not seen:
                    return False
                if int(float(seen[0]["value"][1])) != objects:
                    return False
            return True

        await eventually(every_job_scraped, "every exporter scraped with the whole fleet", limit=60)
        at = time.time()
        fleet_queries = [(f"{board}: {title}", expr) for board, title, expr in targets
                         if board != "flux-tenant-exporter.json"] + [("rule", expr) for expr in resource_rules]
        differences = [d for job in ("ha", "sharded") for d in await _differences(stack, fleet_queries, job, at)]
        compared = 2 * len(fleet_queries)
        assert differences == []
        assert compared > 60

        # the exporter's own health: replicas give the same per kind; the shards give one row per kind and shard
        kinds_table = [t for t in targets if t[0] == "flux-tenant-exporter.json" and t[1] == "Kinds"]
        for _, _, expr in kinds_table:
            want = _normalized(await query(stack, on_job(expr, "single"), at))
            assert _normalized(await query(stack, on_job(expr, "ha"), at)) == want, expr
            per_shard = await query(stack, on_job(expr, "sharded"), at)
            assert {(s["metric"]["kind"], s["metric"]["shard"]) for s in per_shard} == {
                (kind, shard) for (labels, _) in want for key, kind in labels if key == "kind" for shard in SHARDS}
        for _, title, expr in targets:
            if any(part in title for part in PER_PROCESS):
                for job in jobs:
                    await query(stack, on_job(expr, job), at)  # evaluates: no join meets duplicate series
        for expr in exporter_rules:
            want = _normalized(await query(stack, on_job(expr, "single"), at))
            assert _normalized(await query(stack, on_job(expr, "ha"), at)) == want, expr

        # what the comparison stands on: team-a spans the shards with a different status in each, and the
        # combined one is the worst (the single exporter's)
        shards_of_team_a = {e.settings.shard for e in jobs["sharded"]
                            if any(r.tenant == "team-a" for r in e.view.resources)}
        assert shards_of_team_a == set(SHARDS)
        statuses = {e.settings.shard: e.view.tenants["team-a"].status for e in jobs["sharded"]}
        assert statuses["shard1"] == "failing"
        assert statuses["main"] != "failing"
        assert jobs["single"][0].view.tenants["team-a"].status == "failing"
        worst = next(t for t in targets if t[1] == "Tenants")[2]
        ranks = {s["metric"]["tenant"]: float(s["value"][1])
                 for s in await query(stack, on_job(worst, "sharded"), at)}
        assert ranks["team-a"] == 5  # failing

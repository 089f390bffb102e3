"""Cardinality controls and object labels on the real control plane: --resource-labels puts the allow-listed labels
of each Flux object on its info series (sanitised names, updated live), --detail chooses which objects have
per-object series, the allow/deny lists and --drop-info-labels take families and labels away, --object-limit caps
the objects with series (gauge + log line) while the tenant series still count all; bad values are one line and
exit 2."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import structlog

from flux_tenant_exporter.base.config import ServeSettings
from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.serve.app import Exporter
from testbed import fleet
from testbed.running import StartExporter


@pytest.fixture
def start_exporter(start_exporter: StartExporter, namespace: str) -> StartExporter:
    """Starts exporters watching only the test's namespace."""

    async def start(**overrides: Any) -> Exporter:
        return await start_exporter(namespaces=(namespace,), **overrides)

    return start


def body(exporter: Exporter) -> str:
    return exporter.exposition.body.decode()


def series(text: str, family: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(family + "{")]


@pytest.fixture
async def fleet_of_four(admin: KubeClient, namespace: str) -> str:
    """Three ready Kustomizations (two labelled) and a failing one."""
    for name in ("ok-1", "ok-2", "ok-3"):
        obj = fleet.kustomization(namespace, name)
        if name != "ok-3":
            obj["metadata"]["labels"] = {"team": "alpha", "app.kubernetes.io/part-of": "shop", "other": "x"}
        await fleet.create(admin, obj, status=fleet.ready_status("Kustomization"))
    await fleet.create(admin, fleet.kustomization(namespace, "broken"),
                       status=fleet.failed_status("BuildFailed", "kustomize build failed"))
    return namespace


async def test_resource_labels_reach_the_info_series_and_follow_changes(
    start_exporter: StartExporter, fleet_of_four: str, admin: KubeClient
) -> None:
    """Only allow-listed labels appear, as label_<sanitised key>; an object without them has none; relabelling an
    object on the API server updates its series."""
    exporter = await start_exporter(resource_labels=("team", "app.kubernetes.io/part-of"), detail="all")
    info = {re.search(r'name="([^"]+)"', s)[1]: s for s in series(body(exporter), "fluxtenant_resource_info")}  # type: ignore[index]
    assert 'label_team="alpha"' in info["ok-1"]
    assert 'label_app_kubernetes_io_part_of="shop"' in info["ok-1"]
    assert "other" not in info["ok-1"]
    assert "label_" not in info["ok-3"]
    ok3 = await admin.request("GET", fleet.path_of(fleet.kustomization(fleet_of_four, "ok-3")))
    await fleet.patch(admin, ok3, {"metadata": {"labels": {"team": "beta"}}})
    await exporter.wait_for(lambda e: any('name="ok-3"' in s and 'label_team="beta"' in s
                                          for s in series(body(e), "fluxtenant_resource_info")))


@pytest.mark.usefixtures("fleet_of_four")
async def test_detail_levels_choose_the_objects_with_series(
    start_exporter: StartExporter) -> None:
    """all: every object; failing (the default): only the failing one; tenants: no per-object series; the tenant
    series count all four objects at every level. gotk_resource_info, asked for by name for Flux's dashboards,
    keeps every object at `failing`."""
    names: dict[str, set[str]] = {}
    gotk: dict[str, set[str]] = {}
    for level in ("all", "failing", "tenants"):
        text = body(await start_exporter(detail=level, gotk_compat=True))
        names[level] = {re.search(r'name="([^"]+)"', s)[1] for s in series(text, "fluxtenant_resource_state")}  # type: ignore[index]
        gotk[level] = {re.search(r',name="([^"]+)"', s)[1] for s in series(text, "gotk_resource_info")}  # type: ignore[index]
        total = sum(float(s.rsplit(" ", 1)[1]) for s in series(text, "fluxtenant_tenant_resources"))
        assert total == 4, level
    everything = {"ok-1", "ok-2", "ok-3", "broken"}
    assert names == {"all": everything, "failing": {"broken"}, "tenants": set()}
    assert gotk == {"all": everything, "failing": everything, "tenants": set()}
    assert ServeSettings().detail == "failing"


@pytest.mark.usefixtures("fleet_of_four")
async def test_allow_deny_lists_and_dropped_info_labels(start_exporter: StartExporter) -> None:
    """The allow-list keeps only its families, the deny-list removes its own, and --drop-info-labels removes
    revision and url from the info series."""
    allowed = body(await start_exporter(metrics_allowlist=("fluxtenant_resource_ready", "fluxtenant_tenant_status"),
                                        detail="all"))
    families = set(re.findall(r"^(fluxtenant_(?!exporter_)[a-z_]+)\{", allowed, re.MULTILINE))
    assert families == {"fluxtenant_resource_ready", "fluxtenant_tenant_status"}
    denied = body(await start_exporter(metrics_denylist=("fluxtenant_resource_info",), detail="all"))
    assert "fluxtenant_resource_info" not in denied
    assert series(denied, "fluxtenant_resource_ready")
    dropped = body(await start_exporter(drop_info_labels=("revision", "url"), detail="all"))
    assert len(series(dropped, "fluxtenant_resource_info")) == 4
    for line in series(dropped, "fluxtenant_resource_info"):
        assert "revision=" not in line
        assert "url=" not in line
        assert "source=" in line


@pytest.mark.usefixtures("fleet_of_four")
async def test_object_limit_caps_series_with_a_gauge_and_a_log_line(
    start_exporter: StartExporter) -> None:
    """With --object-limit 2, two objects have per-object series, the gauge says 2 are left out, one warning names
    the limit, and the tenant series still count all four."""
    with structlog.testing.capture_logs() as logs:
        exporter = await start_exporter(object_limit=2, detail="all")
    text = body(exporter)
    assert len(series(text, "fluxtenant_resource_state")) == 2
    assert sum(float(s.rsplit(" ", 1)[1]) for s in series(text, "fluxtenant_tenant_resources")) == 4
    assert exporter.metrics.registry.get_sample_value("fluxtenant_exporter_objects_over_limit") == 2
    reached = [e for e in logs if e["event"] == "object_limit_reached"]
    assert len(reached) == 1
    assert reached[0]["object_limit"] == 2
    assert reached[0]["without_series"] == 2


@pytest.mark.parametrize(("args", "expected"), [
    (["--detail", "some"], "argument --detail: invalid choice: 'some'"),
    (["--object-limit", "-3"], "'-3' is not a count"),
    (["--drop-info-labels", "revision,tenant"], "unknown label(s) tenant"),
    (["--resource-labels", "team,bad key"], "not a Kubernetes label key: bad key"),
    (["--resource-labels", "a.b,a_b"], "label keys a.b and a_b both become label_a_b"),
    (["--metrics-denylist", "fluxtenant_nope"], "unknown metric family fluxtenant_nope"),
])
def test_bad_cardinality_values_are_one_line_and_exit_2(args: list[str], expected: str) -> None:
    """Each bad value is one line naming it, exit code 2, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "flux_tenant_exporter", "serve", *args], capture_output=True,
                          text=True, timeout=60, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]

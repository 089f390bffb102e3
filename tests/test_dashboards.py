"""The dashboards as Grafana JSON: strict parsing with the Grafana Foundation SDK (tools/dashboard-validator), and
lint rules after Grafana's dashboard-linter (templated datasource used by every panel and target, valid PromQL,
rate windows of ``$__rate_interval``, a unit, a title and a description on every panel).

Each rule is a function returning its findings; the committed dashboards have none, and a dashboard broken the way
the rule looks for has exactly the expected finding (so no rule passes vacuously).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parent.parent
BOARDS = sorted((ROOT / "dashboards").glob("*.json"))
DATASOURCE = "${datasource}"
#: Grafana unit ids (packages/grafana-data/src/valueFormats/categories.ts) this project's panels may use
UNITS = frozenset({"none", "short", "percent", "percentunit", "s", "ms", "dtdurations", "bytes", "decbytes", "ops",
                   "reqps", "dateTimeAsIso", "dateTimeFromNow"})
#: functions whose range must be Grafana's $__rate_interval (dashboard-linter's target-rate-interval-rule)
RATE_FUNCTIONS = ("rate", "irate", "increase", "delta", "idelta", "deriv")

Board = dict[str, Any]


def load(path: Path) -> Board:
    board: Board = json.loads(path.read_text())
    return board


def panels(board: Board) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", ())  # rows' collapsed panels


def targets(board: Board) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(board):
        for target in panel.get("targets", ()):
            yield panel, target


# -- rules -------------------------------------------------------------------------------------------


def template_datasource_rule(board: Board) -> list[str]:
    """The dashboard has a Prometheus datasource template variable named ``datasource``."""
    found = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    if not found:
        return ["no datasource template variable"]
    return [f"datasource variable {var['name']!r} of {var['query']!r}: want 'datasource' of prometheus"
            for var in found if var["name"] != "datasource" or var["query"] != "prometheus"]


def panel_datasource_rule(board: Board) -> list[str]:
    """Every panel and every target use the templated datasource."""
    problems = [f"panel {p['title']!r} uses datasource {p.get('datasource')}" for p in panels(board)
                if p["type"] != "row" and (p.get("datasource") or {}).get("uid") != DATASOURCE]
    problems += [f"panel {p['title']!r} target {t['refId']} uses datasource {t.get('datasource')}"
                 for p, t in targets(board) if (t.get("datasource") or {}).get("uid") != DATASOURCE]
    for var in board["templating"]["list"]:
        if var["type"] == "query" and (var.get("datasource") or {}).get("uid") != DATASOURCE:
            problems.append(f"variable {var['name']!r} uses datasource {var.get('datasource')}")
    return problems


def target_rate_interval_rule(board: Board) -> list[str]:
    """Every rate(), irate(), increase(), ... takes ``[$__rate_interval]``."""
    problems = []
    call = re.compile(r"\b(" + "|".join(RATE_FUNCTIONS) + r")\s*\(")
    for panel, target in targets(board):
        expr = target["expr"]
        for match in call.finditer(expr):
            depth, end = 1, match.end()
            while depth and end < len(expr):  # the call's argument, up to its closing parenthesis
                depth += {"(": 1, ")": -1}.get(expr[end], 0)
                end += 1
            ranges = re.findall(r"\[([^\]]*)\]", expr[match.end():end])
            if ranges != ["$__rate_interval"]:
                problems.append(f"panel {panel['title']!r}: {match.group(1)}() over {ranges or 'no range'}, "
                                "want [$__rate_interval]")
    return problems


def panel_metadata_rule(board: Board) -> list[str]:
    """Every panel has a title, a description and a valid unit."""
    problems = []
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        name = panel.get("title") or f"#{panel.get('id')}"
        if not (panel.get("title") or "").strip():
            problems.append(f"panel {name}: no title")
        if not (panel.get("description") or "").strip():
            problems.append(f"panel {name!r}: no description")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if unit not in UNITS:
            problems.append(f"panel {name!r}: unit {unit!r} is not a Grafana unit")
    return problems


def promql(board: Board) -> list[str]:
    """Every target's expression with the dashboard variables replaced as Grafana would, for promtool."""
    return [(t["expr"].replace("$__rate_interval", "1m").replace("$cluster", ".*").replace("$tenant", ".+"))
            for _, t in targets(board)]


def target_promql_rule(board: Board, tmp_path: Path) -> list[str]:
    """Every target is valid PromQL: ``promtool check rules`` parses each one as a recording rule."""
    exprs = promql(board)
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"panel:target{i}", "expr": e}
                                                       for i, e in enumerate(exprs)]}]}
    path = tmp_path / "targets.rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return []
    return [exprs[int(m.group(1))] + ": " + m.group(2)
            for m in re.finditer(r'"panel:target(\d+)": (.*)', result.stdout + result.stderr)] or [result.stderr]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `make debian-tools`")
    return path


def validator() -> str:
    result = subprocess.run(["bash", str(ROOT / "tools" / "gotool.sh"), "dashboard-validator"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


RULES: dict[str, Callable[[Board], list[str]]] = {
    "template-datasource": template_datasource_rule,
    "panel-datasource": panel_datasource_rule,
    "target-rate-interval": target_rate_interval_rule,
    "panel-metadata": panel_metadata_rule,
}


# -- tests -------------------------------------------------------------------------------------------


@pytest.mark.gotools
def test_grafana_sdk_parses_every_dashboard_strictly(tmp_path: Path) -> None:
    """The Foundation SDK's strict parse and validation accept every committed dashboard, and reject one with an
    unknown panel field and a mistyped option, naming both, and one with a panel type it cannot decode strictly."""
    binary = validator()
    result = subprocess.run([binary, *map(str, BOARDS)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok") == len(BOARDS) == 3

    board = load(BOARDS[0])
    board["panels"][0]["colour"] = "red"
    table = next(p for p in board["panels"] if p["type"] == "table")
    table["options"]["frameIndex"] = "first"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(board))
    result = subprocess.run([binary, str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "unexpected field 'colour'" in result.stdout
    assert "options.frameIndex" in result.stdout

    board = load(BOARDS[0])
    board["panels"][1]["type"] = "gauge"  # a plugin the validator does not decode strictly: refused, not skipped
    bad.write_text(json.dumps(board))
    result = subprocess.run([binary, str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert 'panels[1]: panel type "gauge" is not registered in the validator' in result.stdout


@pytest.mark.parametrize("path", BOARDS, ids=[p.stem for p in BOARDS])
@pytest.mark.prometheus
def test_dashboards_pass_the_lint_rules(path: Path, tmp_path: Path) -> None:
    """Each committed dashboard has no finding under any rule, and every target is valid PromQL."""
    board = load(path)
    assert sum(1 for _ in targets(board)) > 0
    findings = {name: rule(board) for name, rule in RULES.items()}
    findings["target-promql"] = target_promql_rule(board, tmp_path)
    assert findings == {name: [] for name in findings}


@pytest.mark.prometheus
def test_each_lint_rule_finds_what_it_looks_for(tmp_path: Path) -> None:
    """A dashboard broken in one way per rule gets exactly the finding of that rule."""
    good = load(ROOT / "dashboards" / "flux-tenant-exporter.json")

    def broken(change: Callable[[Board], None]) -> Board:
        board = copy.deepcopy(good)
        change(board)
        return board

    def no_datasource_var(b: Board) -> None:
        b["templating"]["list"] = [v for v in b["templating"]["list"] if v["type"] != "datasource"]

    def fixed_datasource(b: Board) -> None:
        b["panels"][1]["targets"][0]["datasource"] = {"type": "prometheus", "uid": "prom-prod"}

    def fixed_window(b: Board) -> None:
        events = next(p for p in b["panels"] if p["title"] == "Watch events")
        events["targets"][0]["expr"] = events["targets"][0]["expr"].replace("$__rate_interval", "5m")

    def no_unit(b: Board) -> None:
        b["panels"][2]["fieldConfig"]["defaults"] = {}
        b["panels"][3]["description"] = ""

    assert template_datasource_rule(broken(no_datasource_var)) == ["no datasource template variable"]
    (finding,) = panel_datasource_rule(broken(fixed_datasource))
    assert "prom-prod" in finding
    assert target_rate_interval_rule(broken(fixed_window)) == [
        "panel 'Watch events': rate() over ['5m'], want [$__rate_interval]"]
    assert panel_metadata_rule(broken(no_unit)) == [
        f"panel {good['panels'][2]['title']!r}: unit None is not a Grafana unit",
        f"panel {good['panels'][3]['title']!r}: no description"]

    def bad_promql(b: Board) -> None:
        b["panels"][1]["targets"][0]["expr"] = "sum by (kind (up)"

    (finding,) = target_promql_rule(broken(bad_promql), tmp_path)
    assert finding.startswith("sum by (kind (up): could not parse expression")

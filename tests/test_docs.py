"""The README documents what the code does: every metric family and every flag is in its tables."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from exporter.exposition import ALL_FAMILIES
from exporter.health import SelfMetrics
from exporter.settings import build_parser

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_metric_has_help_and_a_readme_row() -> None:
    """Each family the exporter can emit has HELP text and a row in the README metrics table."""
    names = {f.name: f.help for f in ALL_FAMILIES}
    for family in SelfMetrics(CollectorRegistry()).registry.collect():
        if family.name.startswith(("process_", "python_")):
            continue  # prometheus-client's standard collectors, named in one README sentence
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names[family.name + suffix] = family.documentation
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", README, flags=re.MULTILINE))
    assert all(help_ for help_ in names.values())
    assert set(names) <= documented, set(names) - documented


def test_every_flag_has_a_readme_row() -> None:
    """Each `serve` flag is in the README configuration table."""
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr,index]
    flags = {o for a in serve._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    flags = {f for f in flags if not f.startswith("--no-")}  # the negations of boolean flags
    documented = set(re.findall(r"^\| `(--[a-z-]+)` \|", README, flags=re.MULTILINE))
    assert flags <= documented, flags - documented

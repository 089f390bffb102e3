"""The README and the JSON contract document what the code does: every metric family, flag and closed
vocabulary (states, categories, owners, stuck reasons, policy rules, tenant statuses) is in them, as spelled in
``flux_tenant_exporter/base/vocabulary.py``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from flux_tenant_exporter.base import vocabulary
from flux_tenant_exporter.cli.flags import build_parser
from flux_tenant_exporter.render.prometheus.families import ALL_FAMILIES
from flux_tenant_exporter.telemetry.selfmetrics import SelfMetrics

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_metric_has_help_and_a_readme_row() -> None:
    """Each family the exporter can emit has HELP text and a row in the README metrics table."""
    names: dict[str, str] = {f.name: f.help for f in ALL_FAMILIES}
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


# -- the closed vocabularies ------------------------------------------------------------------------

OPENAPI = yaml.safe_load((Path(__file__).parent.parent / "flux_tenant_exporter" / "openapi.yaml").read_text())
#: The named enum schemas of openapi.yaml and the vocabulary each one spells.
ENUM_SCHEMAS = {
    "State": vocabulary.STATES,
    "Category": vocabulary.CATEGORIES,
    "Owner": vocabulary.OWNERS,
    "StuckReason": vocabulary.STUCK_REASONS,
    "PolicyRule": vocabulary.POLICY_RULES,
    "TenantStatus": vocabulary.TENANT_STATUSES,
    "QueryBoolean": ("true", "false"),
    "SinceSource": vocabulary.SINCE_SOURCES,
    "KindStatus": vocabulary.KIND_STATUSES,
    "ReadinessStatus": vocabulary.READINESS,
}


def _enums(node: Any, path: str = "") -> Iterator[tuple[str, list[str]]]:
    if isinstance(node, dict):
        if "enum" in node:
            yield path, node["enum"]
        for key, value in node.items():
            yield from _enums(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _enums(value, f"{path}/{i}")


def test_openapi_enums_are_the_vocabulary() -> None:
    """Each enum of the JSON contract is a named schema that equals its vocabulary set, value for value and in
    order, and no enum is spelled anywhere else in the document."""
    schemas = OPENAPI["components"]["schemas"]
    for name, values in ENUM_SCHEMAS.items():
        assert schemas[name]["enum"] == list(values), name
    named = {f"/components/schemas/{name}" for name in ENUM_SCHEMAS}
    assert {path for path, _ in _enums(OPENAPI)} == named


def test_openapi_tenant_counts_are_the_vocabulary() -> None:
    """The counts of a tenant in the contract are exactly the roll-up's counts."""
    counts = OPENAPI["components"]["schemas"]["TenantCounts"]
    assert list(counts["properties"]) == list(vocabulary.TENANT_COUNTS)
    assert set(counts["required"]) <= set(vocabulary.TENANT_COUNTS)


def test_readme_taxonomy_table_is_the_vocabulary() -> None:
    """The README's category table lists every category once, in vocabulary order, with its owner."""
    rows = re.findall(r"^\| `([a-z_]+)`(?: / `([a-z_]+)`)? \| .* \| ([a-z'\- ]+) \|$", README, flags=re.MULTILINE)
    listed: list[str] = []
    for first, second, owner in rows:
        if first not in vocabulary.CATEGORIES:
            continue
        for category in filter(None, (first, second)):
            listed.append(category)
            expected = vocabulary.CATEGORY_OWNER[category]
            shown = {"the root's": None, "-": None}.get(owner, owner)
            assert shown == expected, (category, owner)
    assert listed == list(vocabulary.CATEGORIES)


def test_readme_names_every_policy_rule_and_stuck_reason() -> None:
    """Every policy rule and stuck reason is named in the README."""
    for value in (*vocabulary.POLICY_RULES, *vocabulary.STUCK_REASONS):
        assert f"`{value}`" in README, value

"""The classifier over the recorded corpus: conditions the real Flux controllers wrote (tests/data/flux-corpus.json).

The corpus is written by ``python -m testbed.corpus`` from the scenarios in testbed.cases, run on the pinned
controllers; these fast tests keep that truth without the controllers. Regenerate it when a pin changes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from flux_tenant_exporter.base.config import StuckThresholds
from flux_tenant_exporter.flux.classify import categorize, classify
from flux_tenant_exporter.flux.projection import parse_object

CORPUS_FILE = Path(__file__).parent / "data" / "flux-corpus.json"
CORPUS: dict[str, Any] = orjson.loads(CORPUS_FILE.read_bytes())
CASES: list[dict[str, Any]] = CORPUS["cases"]
WRAPPERS = Path(__file__).resolve().parents[1] / "tools" / "fluxcontrollers"


def _pin(name: str) -> str:
    for line in (WRAPPERS / name / "go.mod").read_text().splitlines():
        if line.strip().startswith(f"github.com/fluxcd/{name} v"):
            return line.split()[1]
    raise AssertionError(name)


def _failures() -> list[tuple[str, str, str, str]]:
    """Every distinct Ready=False condition in the corpus: (case, kind, reason, message)."""
    seen: dict[tuple[str, str, str], str] = {}
    for case in CASES:
        for obj in case["objects"]:
            for cond in obj["conditions"]:
                if cond["type"] == "Ready" and cond["status"] == "False":
                    seen.setdefault((obj["kind"], cond["reason"], cond["message"]), case["id"])
    return [(case_id, *key) for key, case_id in seen.items()]


def test_corpus_comes_from_the_pinned_controllers_and_every_case_settled() -> None:
    """The corpus names the controller versions the wrapper modules pin, and every case reached its settled
    condition when it was recorded."""
    for name in ("source-controller", "kustomize-controller", "helm-controller"):
        assert CORPUS["versions"][name] == _pin(name)
    assert [c["id"] for c in CASES if c["unsettled"] or not c["settled_object"]] == []


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_settled_real_object_is_classified_as_the_case_expects(case: dict[str, Any]) -> None:
    """classify() on the recorded settled object gives the case's state and category."""
    exp = case["expect"]
    obj = parse_object(case["settled_object"])
    verdict = classify(obj, thresholds=StuckThresholds(), observed_at=time.time(), lag_since=None)
    if exp["status"] == "True":
        assert (verdict.state, verdict.category) == ("ready", None)
    else:
        assert (verdict.state, verdict.category) == ("failing", exp["category"]), verdict.message


@pytest.mark.parametrize(("case_id", "kind", "reason", "message"), _failures())
def test_every_real_failure_message_has_a_category(case_id: str, kind: str, reason: str, message: str) -> None:
    """No Ready=False condition the controllers wrote, transient or settled, falls through to "unknown"."""
    assert categorize(kind, reason, (message,)) != "unknown", case_id

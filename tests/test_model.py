"""Parsing raw objects at the boundary: slim records, clear errors, redaction."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from mypy import api as mypy_api

from flux_tenant_exporter.base.durations import parse_duration
from flux_tenant_exporter.base.redact import redact
from flux_tenant_exporter.base.timefmt import parse_time
from flux_tenant_exporter.flux.model import Condition, FluxObject
from flux_tenant_exporter.flux.projection import parse_namespace, parse_object
from flux_tenant_exporter.kube.codec import MalformedObject
from testbed import fleet


def test_kustomization_projection_keeps_only_used_fields() -> None:
    """sourceRef, dependsOn (default namespace), SA, target namespace, revisions and inventory are projected."""
    raw = fleet.kustomization("team-a", "apps", depends_on=["infra", ("flux-system", "crds")],
                              target_namespace="web", timeout="2m30s")
    raw["metadata"] |= {"generation": 3, "uid": "u-1"}
    raw["status"] = fleet.ready_status(
        "Kustomization", rev="main@sha1:abc", generation=3,
        inventory_entries=[("", "admin", "rbac.authorization.k8s.io", "ClusterRole"), ("web", "api", "apps",
                                                                                     "Deployment")])
    obj = parse_object(raw)
    assert str(obj.source) == "GitRepository/team-a/repo"
    assert [str(d) for d in obj.depends_on] == ["Kustomization/team-a/infra", "Kustomization/flux-system/crds"]
    assert obj.signals is not None
    assert (obj.service_account, obj.target_namespace, obj.signals.timeout) == ("flux", "web", 150.0)
    assert obj.applied_revision == obj.attempted_revision == "main@sha1:abc"
    assert obj.inventory.size == 2
    assert obj.inventory.cluster_scoped == ("_admin_rbac.authorization.k8s.io_ClusterRole",)
    assert obj.inventory.namespaces == ("web",)
    assert not hasattr(obj, "__dict__")  # slots: no stray raw data


def conditions(raw: dict[str, Any]) -> tuple[Condition, ...]:
    signals = parse_object(raw).signals
    assert signals is not None
    return signals.conditions


def test_conditions_kept_are_the_kstatus_ones_and_the_abnormal_others() -> None:
    """Ready, Reconciling and Stalled stay in any state; the others only when abnormal (ArtifactInStorage=False,
    FetchFailed=True), so a healthy source does not hold an ArtifactInStorage=True nobody reads; a reference equals
    the store's (kind, namespace, name) key."""
    healthy = fleet.gitrepository("team-a", "repo")
    healthy["status"] = fleet.ready_status("GitRepository", rev="main@sha1:abc")
    assert [c.type for c in conditions(healthy)] == ["Ready"]
    broken = fleet.gitrepository("team-a", "repo")
    broken["status"] = {"conditions": [
        fleet.condition("Ready", "False", "GitOperationFailed", "auth failed"),
        fleet.condition("Reconciling", "True", "ProgressingWithRetry", "retrying"),
        fleet.condition("FetchFailed", "True", "GitOperationFailed", "auth failed"),
        fleet.condition("ArtifactInStorage", "False", "NoArtifact", "no artifact"),
        fleet.condition("SourceVerified", "True", "Succeeded", "verified"),
        fleet.condition("BuildFailed", "False", "Succeeded", "built"),
    ]}
    kept = [(c.type, c.status) for c in conditions(broken)]
    assert kept == [("Ready", "False"), ("Reconciling", "True"), ("FetchFailed", "True"),
                    ("ArtifactInStorage", "False")]
    ks = fleet.kustomization("team-a", "apps")
    assert parse_object(ks).source == ("GitRepository", "team-a", "repo")


def test_helmrelease_chart_ref_and_history() -> None:
    """A HelmRelease points at its HelmChart (<ns>-<name>) and takes the applied chart version from history."""
    raw = fleet.helmrelease("team-b", "web", repository=("HelmRepository", "charts", "shared"))
    raw["status"] = fleet.ready_status("HelmRelease")
    obj = parse_object(raw)
    assert str(obj.chart) == "HelmChart/shared/team-b-web"
    assert str(obj.source) == "HelmRepository/shared/charts"
    assert obj.applied_revision == "6.5.4"
    assert obj.last_deployed is not None


@pytest.mark.parametrize(("raw", "message"), [
    ([], "Expected `object`, got `array`"),
    ({"kind": "Kustomization", "metadata": {"name": "x"}}, "metadata.namespace"),
    ({"kind": "Kustomization", "metadata": {"name": "x", "namespace": "y"}, "status": {"conditions": "bad"}},
     r"Expected `array \| null`, got `str` - at `\$.status.conditions`"),
    ({"kind": "Kustomization", "metadata": {"name": "x", "namespace": "y"}, "spec": []},
     r"Expected `object \| null`, got `array` - at `\$.spec`"),
    ({"kind": "Widget", "apiVersion": "example.com/v1", "metadata": {"name": "x", "namespace": "y"}},
     "unsupported kind 'Widget'"),
])
def test_malformed_objects_raise_a_clear_error(raw: object, message: str) -> None:
    """An unreadable object raises MalformedObject naming what is wrong."""
    with pytest.raises(MalformedObject, match=message):
        parse_object(raw)


def test_credentials_are_removed_from_urls_and_messages() -> None:
    """user:password@ in URLs and token-like pairs never reach labels or JSON."""
    raw = fleet.gitrepository("t", "repo", url="https://bot:s3cr3t@git.example.com/app.git")
    raw["status"] = fleet.failed_status(
        "GitOperationFailed", "unable to clone 'https://bot:s3cr3t@git.example.com/app.git': password=hunter2"
    )
    obj = parse_object(raw)
    assert obj.url == "https://***@git.example.com/app.git"
    assert "s3cr3t" not in conditions(raw)[0].message
    assert "hunter2" not in conditions(raw)[0].message
    assert redact("oci://ghcr.io/x") == "oci://ghcr.io/x"


def test_times_and_durations() -> None:
    """RFC 3339 times and Go durations parse; junk gives None."""
    assert parse_time("2026-01-01T00:00:00Z") == 1767225600.0
    assert parse_time("yesterday") is None
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("5 minutes") is None


def test_namespace_tenant_label() -> None:
    """A namespace keeps only the value of the configured tenant label."""
    info = parse_namespace(fleet.namespace("team-a-web", tenant="team-a"), "toolkit.fluxcd.io/tenant")
    assert (info.name, info.tenant_label) == ("team-a-web", "team-a")
    assert parse_namespace(fleet.namespace("x"), "toolkit.fluxcd.io/tenant").tenant_label is None


def test_records_are_immutable_values_outside_the_collector(tmp_path: Path) -> None:
    """Records compare and hash by value; assigning to one fails at run time and in mypy; the collector does not
    track them (no cycles to find); a projected object's stored form (no signals) is what the store compares."""
    raw = fleet.kustomization("team-a", "apps")
    raw["status"] = fleet.ready_status("Kustomization", rev="main@sha1:abc")
    obj = parse_object(raw)
    stored = obj.to_store(obj.ref, obj.source, obj.chart, obj.depends_on)
    again = parse_object(raw)
    assert type(stored) is FluxObject
    assert not hasattr(stored, "signals")
    assert again == obj
    assert hash(again) == hash(obj)
    assert again.to_store(again.ref, again.source, again.chart, again.depends_on) == stored
    assert len({obj, again}) == 1
    with pytest.raises(AttributeError):
        stored.suspended = True  # type: ignore[misc]
    assert not gc.is_tracked(stored)
    assert not gc.is_tracked(obj.signals)

    probe = tmp_path / "probe.py"
    probe.write_text("from flux_tenant_exporter.flux.model import Inventory\n"
                     "inv = Inventory(1, (), ())\n"
                     "inv.size = 2\n")
    out, _, status = mypy_api.run(["--strict", "--no-incremental", "--follow-imports=silent", str(probe)])
    assert status == 1
    assert 'Property "size" defined in "Inventory" is read-only' in out

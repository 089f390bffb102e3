"""Drift: an applier whose applied revision is not its source's artifact, or not what it last attempted."""

from __future__ import annotations

from collections.abc import Mapping

from flux_tenant_exporter.base.kinds import APPLIER_KINDS
from flux_tenant_exporter.state.store import Entry, Key


def drift(entry: Entry, objects: Mapping[Key, Entry]) -> tuple[float | None, float | None]:
    """(source drift since, attempt drift since): applied != the source's artifact; attempted != applied.

    Since when: the artifact's update time (or, without one, since the source entered its state), and the Ready
    transition (or, without a Ready condition, since the object entered its state).
    """
    obj = entry.obj
    if obj.kind not in APPLIER_KINDS or obj.suspended:
        return None, None
    source_since = None
    source_ref = obj.chart if obj.kind == "HelmRelease" else obj.source
    if source_ref is not None and (obj.kind == "Kustomization" or source_ref.kind == "HelmChart"):
        source = objects.get(source_ref)
        if (
            source is not None
            and source.obj.artifact_revision
            and obj.applied_revision
            and source.obj.artifact_revision != obj.applied_revision
        ):
            source_since = source.obj.artifact_updated or source.verdict.since
    attempt_since = None
    if obj.attempted_revision and obj.applied_revision and obj.attempted_revision != obj.applied_revision:
        attempt_since = obj.ready_since or entry.verdict.since
    return source_since, attempt_since

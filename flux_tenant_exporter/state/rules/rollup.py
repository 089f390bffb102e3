"""A tenant's roll-up: counts per state, its failures (roots first), violations, and one status."""

from __future__ import annotations

from collections.abc import Container

from flux_tenant_exporter.base.vocabulary import TENANT_COUNTS, TenantCount, TenantStatus
from flux_tenant_exporter.state.published import ResourceView, TenantView, Violation


def roll_up(name: str, namespaces: tuple[str, ...], resources: tuple[ResourceView, ...], *,
            partial: bool = False) -> TenantView:
    """The TenantView of ``resources`` (the tenant's objects, in key order)."""
    counts: dict[TenantCount, int] = dict.fromkeys(TENANT_COUNTS, 0)
    counts["total"] = len(resources)
    violations: list[Violation] = []
    drift = False
    for res in resources:
        counts[res.state] += 1
        counts["stuck"] += res.stuck
        drift = drift or res.source_drift_since is not None or res.attempt_drift_since is not None
        violations.extend(res.violations)
    failures = sorted(
        (r for r in resources if r.state == "failing" or r.stuck),
        key=lambda r: (not r.is_root, r.kind, r.namespace, r.name),
    )
    status: TenantStatus
    if counts["failing"] or counts["stuck"]:
        status = "failing"
    elif counts["progressing"] or counts["unknown"]:
        status = "progressing"
    elif violations or drift:
        status = "degraded"
    elif resources and counts["suspended"] == counts["total"]:
        status = "suspended"
    else:
        status = "healthy"
    return TenantView(name, namespaces, status, counts, resources, tuple(failures), tuple(violations), partial)


def project(tenant: TenantView, visible: Container[str]) -> TenantView | None:
    """``tenant`` as one who sees only the ``visible`` namespaces sees it.

    None when it sees none of them, the tenant itself when it sees all, else the roll-up of its visible objects,
    marked partial.

    What the objects say of others stays as it is: a blocked object still names its root cause and the root's
    category (its own spec names that object), even in a namespace the caller does not see; the root's message,
    state and revision are shown only where its namespace is visible, as one of the tenant's own objects.
    """
    namespaces = tuple(ns for ns in tenant.namespaces if ns in visible)
    if not namespaces:
        return None
    if len(namespaces) == len(tenant.namespaces):
        return tenant
    return roll_up(tenant.name, namespaces, tuple(r for r in tenant.resources if r.namespace in visible),
                   partial=True)

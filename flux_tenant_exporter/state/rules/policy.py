"""Tenancy policy: what a tenant's applier must not do (the multi-tenancy guides' rules), audited per object."""

from __future__ import annotations

from collections.abc import Callable

from flux_tenant_exporter.base.kinds import APPLIER_KINDS
from flux_tenant_exporter.base.vocabulary import PolicyRule
from flux_tenant_exporter.flux.model import FluxObject
from flux_tenant_exporter.flux.tenants import PLATFORM
from flux_tenant_exporter.state.published import Violation


def violations(obj: FluxObject, tenant: str, tenant_of: Callable[[str], str]) -> tuple[Violation, ...]:
    """The tenancy policy rules this object breaks (platform objects are trusted)."""
    if obj.kind not in APPLIER_KINDS or tenant == PLATFORM:
        return ()
    out: list[Violation] = []

    def add(rule: PolicyRule, detail: str) -> None:
        out.append(Violation(rule, obj.kind, obj.namespace, obj.name, detail))

    if obj.service_account is None:
        add("missing_service_account", "no spec.serviceAccountName: applies with the controller's own account")
    if obj.target_namespace and tenant_of(obj.target_namespace) != tenant:
        add("target_namespace_outside_tenant",
            f"targetNamespace {obj.target_namespace} belongs to tenant {tenant_of(obj.target_namespace)}")
    for ref in (obj.source, obj.chart if obj.chart and obj.chart.kind != "HelmChart" else None):
        if ref is not None and ref.namespace != obj.namespace:
            add("cross_namespace_source", f"source {ref} is in another namespace")
            break
    foreign = [d for d in obj.depends_on if d.namespace != obj.namespace]
    if foreign:
        add("cross_namespace_dependency", "dependsOn " + ", ".join(f"{d.namespace}/{d.name}" for d in foreign))
    inv = obj.inventory
    other = sorted(ns for ns in inv.namespaces if tenant_of(ns) != tenant)
    if inv.cluster_scoped or other:
        parts = []
        if inv.cluster_scoped:
            parts.append(f"{len(inv.cluster_scoped)} cluster-scoped object(s), e.g. {inv.cluster_scoped[0]}")
        if other:
            parts.append("objects in other tenants' namespaces: " + ", ".join(other[:5]))
        add("cluster_scoped_in_inventory", "; ".join(parts))
    return tuple(out)

"""Derive the published, immutable ``View`` from the store: what metrics and ``/tenants`` both read.

Cross-object facts live here: tenants, root causes (following sourceRef, chartRef, HelmChart and
dependsOn transitively, with cycle detection), stuck (time-based, from the verdict's ``stuck_at``),
drift against the source's artifact, tenancy policy violations, and per-tenant roll-ups.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from exporter.classify import APPLIERS, BLOCKED_CATEGORIES, CATEGORIES, SOURCE_KINDS
from exporter.model import FluxObject, Ref, redact
from exporter.store import Entry, Key, Store

MESSAGE_LIMIT: Final = 1024
POLICY_RULES: Final = (
    "missing_service_account",
    "target_namespace_outside_tenant",
    "cross_namespace_source",
    "cross_namespace_dependency",
    "cluster_scoped_in_inventory",
)
TENANT_STATUSES: Final = ("failing", "progressing", "degraded", "suspended", "healthy")


@dataclass(frozen=True, slots=True)
class Violation:
    """A tenancy policy violation of one object."""

    rule: str
    kind: str
    namespace: str
    name: str
    detail: str


@dataclass(frozen=True, slots=True)
class ResourceView:
    """One object as published."""

    kind: str
    namespace: str
    name: str
    tenant: str
    api_version: str
    state: str
    ready: str
    category: str | None
    owner: str | None
    reason: str
    message: str
    since: float | None
    stuck: bool
    stuck_reason: str | None
    #: the object to page for: stuck itself and not blocked by another, or the root of a stuck dependent
    stuck_root: bool
    root_cause: Ref | None
    root_category: str | None
    violations: tuple[Violation, ...]
    revision: str | None
    suspended: bool
    generation_lag: int
    last_success: float | None
    source_drift_since: float | None
    attempt_drift_since: float | None
    source: str | None
    path: str | None
    chart: str | None
    url: str | None

    @property
    def is_root(self) -> bool:
        """A failing object that no other object blocks."""
        return self.state == "failing" and self.root_cause is None


@dataclass(frozen=True, slots=True)
class TenantView:
    """One tenant's roll-up."""

    name: str
    namespaces: tuple[str, ...]
    status: str
    counts: Mapping[str, int]
    resources: tuple[ResourceView, ...]
    failures: tuple[ResourceView, ...]
    violations: tuple[Violation, ...]


@dataclass(frozen=True)
class View:
    """Everything published at one instant."""

    generated_at: float
    version: int
    resources: tuple[ResourceView, ...]
    tenants: Mapping[str, TenantView]
    objects_by_kind: Mapping[str, int] = field(default_factory=dict)


def build_view(store: Store, *, now: float) -> View:
    """Derive the View from the store's current contents."""
    objects = store.objects
    tenant_cache: dict[str, str] = {}

    def tenant(ns: str) -> str:
        found = tenant_cache.get(ns)
        if found is None:
            found = tenant_cache[ns] = store.tenant_of(ns)
        return found

    roots = _RootResolver(objects)
    resources = []
    for key in sorted(objects):
        entry = objects[key]
        resources.append(_resource(entry, tenant(key[1]), roots, objects, tenant, now))
    resources = _mark_stuck_roots(resources)

    by_tenant: dict[str, list[ResourceView]] = {}
    for res in resources:
        by_tenant.setdefault(res.tenant, []).append(res)
    namespaces: dict[str, set[str]] = {}
    for ns, info in store.namespaces.items():
        t = tenant(ns)
        if info.tenant_label or t in by_tenant or ns in store.resolver.mapping.exact or t != ns:
            namespaces.setdefault(t, set()).add(ns)
    for res in resources:
        namespaces.setdefault(res.tenant, set()).add(res.namespace)
    tenants = {
        name: _tenant(name, tuple(sorted(namespaces.get(name, ()))), tuple(by_tenant.get(name, ())))
        for name in sorted(namespaces)
    }
    kinds: dict[str, int] = {}
    for res in resources:
        kinds[res.kind] = kinds.get(res.kind, 0) + 1
    return View(now, store.version, tuple(resources), tenants, kinds)


def _mark_stuck_roots(resources: list[ResourceView]) -> list[ResourceView]:
    """Set ``stuck_root`` on each stuck object that nothing blocks, and on the root of each stuck dependent."""
    roots: dict[tuple[str, str, str], str] = {}
    for res in resources:
        if res.stuck:
            ref = res.root_cause
            key = (ref.kind, ref.namespace, ref.name) if ref else (res.kind, res.namespace, res.name)
            if ref is None or key not in roots:
                roots[key] = (res.stuck_reason or "stuck") if ref is None else "dependent_stuck"
    if not roots:
        return resources
    return [
        dataclasses.replace(res, stuck_root=True, stuck_reason=res.stuck_reason or roots[key])
        if (key := (res.kind, res.namespace, res.name)) in roots else res
        for res in resources
    ]


class _RootResolver:
    """Follows what blocks a source_not_ready / dependency_not_ready object, transitively, once per object."""

    def __init__(self, objects: Mapping[Key, Entry]) -> None:
        self.objects = objects
        self.memo: dict[Key, Key] = {}

    def blocker(self, entry: Entry) -> Key | None:
        obj, category = entry.obj, entry.verdict.category
        if category == "source_not_ready":
            for ref in (obj.chart, obj.source):
                key = (ref.kind, ref.namespace, ref.name) if ref is not None else None
                blocker = self.objects.get(key) if key is not None else None
                if key is not None and blocker is not None and blocker.verdict.state != "ready":
                    return key
        elif category == "dependency_not_ready":
            for ref in obj.depends_on:
                key = (ref.kind, ref.namespace, ref.name)
                dep = self.objects.get(key)
                if dep is not None and dep.verdict.state != "ready":
                    return key
        return None

    def root(self, key: Key) -> Key:
        """The object at the end of the blocking chain (``key`` itself when nothing blocks it)."""
        if key in self.memo:
            return self.memo[key]
        path: list[Key] = []
        seen: set[Key] = set()
        current = key
        while True:
            if current in self.memo:
                result = self.memo[current]
                break
            path.append(current)
            seen.add(current)
            entry = self.objects[current]
            nxt = self.blocker(entry) if entry.verdict.category in BLOCKED_CATEGORIES else None
            if nxt is None:
                result = current
                break
            if nxt in seen:  # a cycle: the object that closes it is the root
                result = current
                break
            current = nxt
        for k in path:
            self.memo[k] = result
        return result


def _owner_of_root(root: Entry) -> str:
    category = root.verdict.category
    owner = CATEGORIES.get(category or "unknown")
    if owner is not None:
        return owner
    if category == "suspended":
        return "tenant"
    return "unknown"


def _source_label(obj: FluxObject) -> str | None:
    ref = obj.chart if obj.kind == "HelmRelease" and obj.chart else obj.source
    return str(ref) if ref else None


def _resource(  # noqa: PLR0917 - private, called once
    entry: Entry,
    tenant: str,
    roots: _RootResolver,
    objects: Mapping[Key, Entry],
    tenant_of: Callable[[str], str],
    now: float,
) -> ResourceView:
    obj, verdict = entry.obj, entry.verdict
    key = (obj.kind, obj.namespace, obj.name)
    root_ref: Ref | None = None
    root_category: str | None = None
    owner: str | None = None
    if verdict.state != "ready" and verdict.category is not None:
        owner = CATEGORIES.get(verdict.category)
        root_category = verdict.category
        if verdict.state == "failing":
            root_key = roots.root(key) if verdict.category in BLOCKED_CATEGORIES else key
            if root_key != key:
                root_entry = objects[root_key]
                root_ref = Ref(*root_key)
                root_category = root_entry.verdict.category
                owner = _owner_of_root(root_entry)
            elif owner is None:
                owner = "unknown"
    source_drift, attempt_drift = _drift(entry, objects)
    return ResourceView(
        kind=obj.kind,
        namespace=obj.namespace,
        name=obj.name,
        tenant=tenant,
        api_version=obj.api_version,
        state=verdict.state,
        ready=ready.status if (ready := obj.condition("Ready")) else "Unknown",
        category=verdict.category,
        owner=owner,
        reason=verdict.reason,
        message=_truncate(redact(verdict.message)),
        since=verdict.since,
        stuck=verdict.stuck_at is not None and now >= verdict.stuck_at,
        stuck_reason=verdict.stuck_reason if verdict.stuck_at is not None and now >= verdict.stuck_at else None,
        stuck_root=False,
        root_cause=root_ref,
        root_category=root_category,
        violations=tuple(_violations(obj, tenant, tenant_of)),
        revision=obj.artifact_revision if obj.kind in SOURCE_KINDS else obj.applied_revision,
        suspended=obj.suspended,
        generation_lag=max(0, obj.generation - obj.observed_generation) if obj.observed_generation is not None else 0,
        last_success=_last_success(obj, verdict.state, verdict.since),
        source_drift_since=source_drift,
        attempt_drift_since=attempt_drift,
        source=_source_label(obj),
        path=obj.path,
        chart=obj.chart_name,
        url=obj.url,
    )


def _truncate(message: str) -> str:
    raw = message.encode()
    if len(raw) <= MESSAGE_LIMIT:
        return message
    return raw[: MESSAGE_LIMIT - 3].decode(errors="ignore") + "..."


def _last_success(obj: FluxObject, state: str, since: float | None) -> float | None:
    candidates = [t for t in (obj.last_deployed, obj.artifact_updated) if t is not None]
    if state == "ready" and since is not None:
        candidates.append(since)
    return max(candidates) if candidates else None


def _drift(entry: Entry, objects: Mapping[Key, Entry]) -> tuple[float | None, float | None]:
    """(source drift since, attempt drift since): applied != the source's artifact; attempted != applied."""
    obj = entry.obj
    if obj.kind not in APPLIERS or obj.suspended:
        return None, None
    source_since = None
    source_ref = obj.chart if obj.kind == "HelmRelease" else obj.source
    if source_ref is not None and (obj.kind == "Kustomization" or source_ref.kind == "HelmChart"):
        source = objects.get((source_ref.kind, source_ref.namespace, source_ref.name))
        if (
            source is not None
            and source.obj.artifact_revision
            and obj.applied_revision
            and source.obj.artifact_revision != obj.applied_revision
        ):
            source_since = source.obj.artifact_updated or source.observed_at
    attempt_since = None
    if obj.attempted_revision and obj.applied_revision and obj.attempted_revision != obj.applied_revision:
        ready = obj.condition("Ready")
        attempt_since = (ready.since if ready else None) or entry.observed_at
    return source_since, attempt_since


def _violations(obj: FluxObject, tenant: str, tenant_of: Callable[[str], str]) -> Iterable[Violation]:
    """The tenancy policy rules this object breaks (platform objects are trusted)."""
    if obj.kind not in APPLIERS or tenant == "platform":
        return ()
    out: list[Violation] = []

    def add(rule: str, detail: str) -> None:
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
    return out


def _tenant(name: str, namespaces: tuple[str, ...], resources: tuple[ResourceView, ...]) -> TenantView:
    counts = {"total": len(resources), "ready": 0, "progressing": 0, "failing": 0, "suspended": 0, "unknown": 0,
              "stuck": 0}
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
    return TenantView(name, namespaces, status, counts, resources, tuple(failures), tuple(violations))

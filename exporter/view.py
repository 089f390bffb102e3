"""Derive the published, immutable ``View`` from the store: what metrics and ``/tenants`` both read.

Cross-object facts live here: tenants, root causes (following sourceRef, chartRef, HelmChart and
dependsOn transitively, with cycle detection), stuck (time-based, from the verdict's ``stuck_at``),
drift against the source's artifact, tenancy policy violations, and per-tenant roll-ups.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from exporter.classify import APPLIERS, BLOCKED_CATEGORIES, CATEGORIES, SOURCE_KINDS
from exporter.model import FluxObject, Ref
from exporter.store import Entry, Key, Store

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


class ViewCache:
    """The last publish's per-object and per-tenant results, reused while their inputs are the same objects.

    An object's view depends on its own entry, its tenant (and the namespaces' labels), the entry of its root
    cause, the entry of its source (drift), whether it is stuck now and whether it is a stuck root; a tenant's
    on its namespaces and its objects' views. Entries are immutable and replaced on change, so identity checks
    find what changed without comparing contents: a publish after one event re-derives a handful of objects.
    """

    def __init__(self) -> None:
        """Empty."""
        self.resources: dict[Key, tuple[tuple[object, ...], ResourceView]] = {}
        self.tenants: dict[str, tuple[tuple[object, ...], TenantView]] = {}
        self.derived = 0


def build_view(store: Store, *, now: float, cache: ViewCache | None = None) -> View:
    """Derive the View from the store's current contents (reusing ``cache`` where inputs did not change)."""
    cache = cache or ViewCache()
    objects = store.objects
    tenant_cache: dict[str, str] = {}

    def tenant(ns: str) -> str:
        found = tenant_cache.get(ns)
        if found is None:
            found = tenant_cache[ns] = store.tenant_of(ns)
        return found

    roots = _RootResolver(objects)
    keys = sorted(objects)
    stuck_now: dict[Key, bool] = {}
    root_of: dict[Key, Key] = {}
    stuck_roots: dict[Key, str] = {}
    for key in keys:
        verdict = objects[key].verdict
        stuck = verdict.stuck_at is not None and now >= verdict.stuck_at
        stuck_now[key] = stuck
        root = roots.root(key) if verdict.state == "failing" and verdict.category in BLOCKED_CATEGORIES else key
        root_of[key] = root
        if stuck and (root == key or root not in stuck_roots):
            stuck_roots[root] = (verdict.stuck_reason or "stuck") if root == key else "dependent_stuck"
    resources = _derive_resources(store, keys, root_of, stuck_now, stuck_roots, tenant, cache)
    return View(now, store.version, tuple(resources), _derive_tenants(store, resources, tenant, cache),
                dict(Counter(r.kind for r in resources)))


def _derive_resources(  # noqa: PLR0917 - private
    store: Store,
    keys: list[Key],
    root_of: dict[Key, Key],
    stuck_now: dict[Key, bool],
    stuck_roots: dict[Key, str],
    tenant: Callable[[str], str],
    cache: ViewCache,
) -> list[ResourceView]:
    objects = store.objects
    namespaces_version = store.namespaces_version
    fresh: dict[Key, tuple[tuple[object, ...], ResourceView]] = {}
    resources = []
    for key in keys:
        entry = objects[key]
        root = root_of[key]
        source_ref = entry.obj.chart if entry.obj.kind == "HelmRelease" else entry.obj.source
        source = objects.get((source_ref.kind, source_ref.namespace, source_ref.name)) if source_ref else None
        inputs = (entry, tenant(key[1]), namespaces_version, objects[root] if root != key else None, source,
                  stuck_now[key], stuck_roots.get(key))
        cached = cache.resources.get(key)
        if cached is not None and cached[0] == inputs:  # tuple == checks identity first, element by element
            res = cached[1]
        else:
            res = _resource(entry, tenant(key[1]), root, objects, tenant, stuck=stuck_now[key],
                            stuck_root=stuck_roots.get(key))
            cache.derived += 1
        fresh[key] = (inputs, res)
        resources.append(res)
    cache.resources = fresh
    return resources


def _derive_tenants(
    store: Store, resources: list[ResourceView], tenant: Callable[[str], str], cache: ViewCache
) -> dict[str, TenantView]:
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
    tenants: dict[str, TenantView] = {}
    fresh_tenants: dict[str, tuple[tuple[object, ...], TenantView]] = {}
    for name in sorted(namespaces):
        members = tuple(by_tenant.get(name, ()))
        names = tuple(sorted(namespaces[name]))
        tenant_inputs: tuple[object, ...] = (names, *members)
        cached_tenant = cache.tenants.get(name)
        if cached_tenant is not None and cached_tenant[0] == tenant_inputs:
            tenants[name] = cached_tenant[1]
        else:
            tenants[name] = _tenant(name, names, members)
        fresh_tenants[name] = (tenant_inputs, tenants[name])
    cache.tenants = fresh_tenants
    return tenants


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


def _resource(
    entry: Entry,
    tenant: str,
    root_key: Key,
    objects: Mapping[Key, Entry],
    tenant_of: Callable[[str], str],
    *,
    stuck: bool,
    stuck_root: str | None,
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
        message=verdict.message,
        since=verdict.since,
        stuck=stuck,
        stuck_reason=verdict.stuck_reason if stuck else stuck_root,
        stuck_root=stuck_root is not None,
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

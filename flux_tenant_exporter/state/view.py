"""Derive the published, immutable ``View`` from the store, incrementally: what metrics and ``/tenants`` read.

The cache keeps what the last publish derived and re-derives only what a change can reach. The rules it
applies live in ``rules``: ``rootcause`` (blocking chains, owners), ``drift``, ``policy`` (tenancy violations) and
``rollup`` (a tenant's status and counts); the records are in ``published``.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter

from flux_tenant_exporter.base.vocabulary import StuckReason
from flux_tenant_exporter.flux.tenants import PLATFORM
from flux_tenant_exporter.state.published import Derived, ResourceView, TenantView, Transitions, View, plain
from flux_tenant_exporter.state.rules.drift import drift
from flux_tenant_exporter.state.rules.policy import violations
from flux_tenant_exporter.state.rules.rollup import roll_up
from flux_tenant_exporter.state.rules.rootcause import RootResolver, attribute, is_blocked
from flux_tenant_exporter.state.store import Entry, Key, Store

_KEY = attrgetter("key")
_SERIALS = itertools.count(1)  # unique across caches: a renderer never mistakes another cache's build for its own


class ViewCache:
    """The derived state of the last publish, updated incrementally from the store's change log.

    An object's view depends on its own entry, its tenant (the namespaces' labels), the entries along its
    blocking chain (root cause), its source's entry (drift), whether it is stuck now (time) and whether it is a
    stuck root (the stuck objects it blocks). So a publish re-derives only: the changed objects, everything
    that references them (sourceRef, chartRef, HelmChart, dependsOn; transitively), the objects whose stuck
    time has come, and the roots whose stuck-root flag moved; then the tenants holding any of those. A
    change of namespace labels, a reader that fell behind the change log, or time going backwards derives
    everything again. ``derived`` counts the objects derived, for tests.
    """

    def __init__(self) -> None:
        """Empty: the first build derives everything."""
        self.derived = 0
        self.serial = 0
        self._reset()

    def _reset(self) -> None:
        self.seen_changes = -1
        self.namespaces_version = -1
        self.now = float("-inf")
        self.keys: list[Key] = []  # sorted
        self.ordered: list[ResourceView] = []  # aligned with keys (a key's view is found by bisection: no dict)
        self.root_of: dict[Key, Key] = {}  # the root cause of each blocked object (others are their own root)
        self.stuck: set[Key] = set()  # the objects stuck now
        self.stuck_dependents: Counter[Key] = Counter()  # root -> stuck objects it blocks
        #: the objects referencing each key: one as itself (most objects have one dependent), more in a list
        self.dependents: dict[Key, Key | list[Key]] = {}
        self.pending_stuck: list[tuple[float, Key]] = []  # heap of future stuck times
        self.members: dict[str, list[ResourceView]] = {}  # tenant -> its objects' views, in key order
        self.tenant_namespaces: dict[str, set[str]] = {}  # tenant -> namespaces listed even without objects
        self.own_namespaces: set[str] = set()  # unlabelled namespaces that are their own tenant
        self.tenants: dict[str, TenantView] = {}
        self.by_kind: Counter[str] = Counter()
        self.changed: set[Key] = set()
        self.changed_tenants: set[str] = set()
        self.published_tenants: dict[str, TenantView] = {}  # as the last View has them, in name order
        self.parent = -1  # no build to compare with
        self.transitions = Transitions()
        self.transitions_version = -1

    def build(self, store: Store, now: float) -> View:
        """The View of ``store`` at ``now``."""
        changes = store.changes_since(self.seen_changes) if self.seen_changes >= 0 else None
        if changes is None or store.namespaces_version != self.namespaces_version or now < self.now:
            self._reset()
            self._index_namespaces(store)
            dirty = set(store.objects)
        else:
            dirty = set(changes)
        self.seen_changes = store.change_count
        self.namespaces_version = store.namespaces_version
        self.now = now
        while self.pending_stuck and self.pending_stuck[0][0] <= now:
            dirty.add(heapq.heappop(self.pending_stuck)[1])
        if dirty:
            self._update(store, dirty, now)
        tenants = self._tenant_mapping()
        if store.transitions_version != self.transitions_version:
            self.transitions_version = store.transitions_version
            self.transitions = Transitions(tuple(sorted(store.failures_total.items())),
                                           tuple(sorted(store.recoveries_total.items())))
        self.serial = next(_SERIALS)
        incremental = self.parent >= 0
        view = View(now, store.version, tuple(self.ordered), tenants, dict(self.by_kind), self.serial, self.parent,
                    frozenset(self.changed) if incremental else frozenset(),
                    frozenset(self.changed_tenants) if incremental else frozenset(), self.transitions)
        self.changed.clear()
        self.changed_tenants.clear()
        self.parent = self.serial
        return view

    @property
    def next_stuck(self) -> float | None:
        """When the next object becomes stuck (as the last build knew it), or None."""
        return self.pending_stuck[0][0] if self.pending_stuck else None

    def _tenant_mapping(self) -> dict[str, TenantView]:
        """The tenants in name order: the last View's mapping again if none changed, patched if none came or went."""
        published, changed = self.published_tenants, self.changed_tenants
        if self.parent < 0 or any((name in published) != (name in self.tenants) for name in changed):
            published = {name: self.tenants[name] for name in sorted(self.tenants)}
        elif changed:
            published = dict(published)
            published.update((name, self.tenants[name]) for name in changed if name in self.tenants)
        self.published_tenants = published
        return published

    # -- objects --------------------------------------------------------------------------------

    def _affected(self, dirty: set[Key]) -> set[Key]:
        """``dirty`` and, transitively, every object that references one of them."""
        affected = set(dirty)
        todo = list(dirty)
        while todo:
            for dependent in self._dependents_of(todo.pop()):
                if dependent not in affected:
                    affected.add(dependent)
                    todo.append(dependent)
        return affected

    def _update(self, store: Store, dirty: set[Key], now: float) -> None:
        objects = store.objects
        affected = self._affected(dirty)
        roots = RootResolver(objects)
        rederive: set[Key] = set()
        ordered = sorted(affected)
        for key in ordered:  # a fixed order: nothing may depend on a set's hash order
            old_root = self.root_of.pop(key, key)
            if key in self.stuck and old_root != key:
                self.stuck_dependents[old_root] -= 1
                if not self.stuck_dependents[old_root]:
                    del self.stuck_dependents[old_root]
                rederive.add(old_root)
            self.stuck.discard(key)
            self._unlink(key)
            rederive.add(key)
            entry = objects.get(key)
            if entry is None:
                continue
            verdict = entry.verdict
            stuck = verdict.stuck_at is not None and now >= verdict.stuck_at
            published = self._view(key)
            if verdict.stuck_at is not None and not stuck and (
                published is None or published.entry.verdict.stuck_at != verdict.stuck_at
            ):  # (a deadline the published entry had is in the heap already, or has passed)
                heapq.heappush(self.pending_stuck, (verdict.stuck_at, key))
            root = roots.root(key) if is_blocked(entry) else key
            if root != key:
                self.root_of[key] = root
            if stuck:
                self.stuck.add(key)
                if root != key:
                    self.stuck_dependents[root] += 1
                    rederive.add(root)
            self._link(key, entry)
        if len(self.pending_stuck) > 2 * len(objects) + 1024:  # most are of objects changed since: rebuild
            self.pending_stuck = [(e.verdict.stuck_at, k) for k, e in objects.items()
                                  if e.verdict.stuck_at is not None and e.verdict.stuck_at > now]
            heapq.heapify(self.pending_stuck)
        # affected is a subset of rederive: of the same size, they are the same keys, sorted already
        self._rederive(store, ordered if len(rederive) == len(affected) else sorted(rederive))

    def _rederive(self, store: Store, keys: list[Key]) -> None:
        objects = store.objects
        tenant_cache: dict[str, str] = {}

        def tenant(ns: str) -> str:
            found = tenant_cache.get(ns)
            if found is None:
                found = tenant_cache[ns] = store.tenant_of(ns)
            return found

        touched: set[str] = set()
        for key in keys:  # in key order: a full derivation appends to the sorted lists
            entry = objects.get(key)
            old = self._view(key) if self.keys and self.keys[-1] >= key else None  # none past the last key
            if entry is None:
                if old is not None:
                    self._remove(key, old)
                    touched.add(old.tenant)
                continue
            res = _resource(entry, _tenant_of(entry, key[1], tenant), self.root_of.get(key, key), objects, tenant,
                            stuck=key in self.stuck, stuck_root=self._stuck_root(key, entry))
            self.derived += 1
            if old is not None and old == res:
                continue  # the same value: keep the published object, so renderers see nothing changed
            if old is None:
                if self.keys and self.keys[-1] >= key:
                    self._insert(key, res)
                else:  # past the last key (every key of a full derivation): append
                    self.changed.add(key)
                    self.keys.append(key)
                    self.ordered.append(res)
                    self.by_kind[res.kind] += 1
                    members = self.members.setdefault(res.tenant, [])
                    if members and members[-1].key >= key:
                        bisect.insort(members, res, key=_KEY)
                    else:
                        members.append(res)
            else:
                self._replace(key, old, res)
                touched.add(old.tenant)
            touched.add(res.tenant)
        for name in touched:
            self._derive_tenant(name)

    def _stuck_root(self, key: Key, entry: Entry) -> StuckReason | None:
        """Why ``key`` is a root cause to page for (stuck itself, or blocking a stuck object); None if it is not."""
        if key in self.stuck and key not in self.root_of:
            return entry.verdict.stuck_reason
        return "dependent_stuck" if self.stuck_dependents.get(key, 0) > 0 else None

    def _view(self, key: Key) -> ResourceView | None:
        """The published view of ``key``, if there is one (a bisection of the sorted keys)."""
        keys = self.keys
        at = bisect.bisect_left(keys, key)
        return self.ordered[at] if at < len(keys) and keys[at] == key else None

    def _link(self, key: Key, entry: Entry) -> None:
        for ref in _references(entry):
            users = self.dependents.get(ref)
            if users is None:
                self.dependents[ref] = key
            elif isinstance(users, list):
                users.append(key)
            else:
                self.dependents[ref] = [users, key]

    def _unlink(self, key: Key) -> None:
        """Undo the ``_link`` of ``key``'s published entry (the one its links were made from, or an equal one)."""
        published = self._view(key)
        for ref in _references(published.entry) if published is not None else ():
            users = self.dependents.get(ref)
            if isinstance(users, list):
                users.remove(key)  # _link added it once
                if len(users) == 1:
                    self.dependents[ref] = users[0]
            elif users is not None:  # key itself
                del self.dependents[ref]

    def _dependents_of(self, key: Key) -> Sequence[Key]:
        users = self.dependents.get(key)
        if users is None:
            return ()
        return users if isinstance(users, list) else (users,)

    def _insert(self, key: Key, res: ResourceView) -> None:
        self.changed.add(key)
        at = bisect.bisect_left(self.keys, key)
        self.keys.insert(at, key)
        self.ordered.insert(at, res)
        self.by_kind[res.kind] += 1
        bisect.insort(self.members.setdefault(res.tenant, []), res, key=_KEY)

    def _remove(self, key: Key, old: ResourceView) -> None:
        self.changed.add(key)
        at = bisect.bisect_left(self.keys, key)
        del self.keys[at]
        del self.ordered[at]
        self.by_kind[old.kind] -= 1
        if not self.by_kind[old.kind]:
            del self.by_kind[old.kind]
        members = self.members[old.tenant]
        del members[bisect.bisect_left(members, key, key=_KEY)]

    def _replace(self, key: Key, old: ResourceView, res: ResourceView) -> None:
        self.changed.add(key)
        self.ordered[bisect.bisect_left(self.keys, key)] = res
        members = self.members[old.tenant]
        at = bisect.bisect_left(members, key, key=_KEY)
        if old.tenant == res.tenant:
            members[at] = res
        else:
            del members[at]
            bisect.insort(self.members.setdefault(res.tenant, []), res, key=_KEY)

    # -- tenants --------------------------------------------------------------------------------

    def _index_namespaces(self, store: Store) -> None:
        """The namespaces each tenant lists even without objects: labelled, mapped, or named for another tenant.

        An unlabelled, unmapped namespace is its own tenant, listed only while it holds objects.
        """
        for ns, info in store.namespaces.items():
            t = store.tenant_of(ns)
            if info.tenant_label or ns in store.resolver.mapping.exact or t != ns:
                self.tenant_namespaces.setdefault(t, set()).add(ns)
            else:
                self.own_namespaces.add(ns)
        for name in self.tenant_namespaces:
            self._derive_tenant(name)

    def _derive_tenant(self, name: str) -> None:
        members = self.members.get(name)
        if members is not None and not members:
            del self.members[name]
        resources = tuple(members or ())
        namespaces = set(self.tenant_namespaces.get(name, ()))
        namespaces.update(res.namespace for res in resources)
        if resources and name in self.own_namespaces:
            namespaces.add(name)
        if not namespaces:
            if self.tenants.pop(name, None) is not None:
                self.changed_tenants.add(name)
            return
        names = tuple(sorted(namespaces))
        old = self.tenants.get(name)
        if old is not None and old.namespaces == names and len(old.resources) == len(resources) and all(
            a is b for a, b in zip(old.resources, resources, strict=True)
        ):
            return
        self.tenants[name] = roll_up(name, names, resources)
        self.changed_tenants.add(name)


def _references(entry: Entry) -> set[Key]:
    """The objects ``entry`` references (each once); Refs are Keys, so nothing is copied."""
    obj = entry.obj
    return {r for r in (obj.source, obj.chart, *obj.depends_on) if r}


def _tenant_of(entry: Entry, namespace: str, tenant: Callable[[str], str]) -> str:
    """The object's tenant: its namespace's, but a tenant's when its ResourceSet applied it to a platform namespace.

    flux-operator labels what a ResourceSet applies with the ResourceSet's namespace.
    """
    own = tenant(namespace)
    managed_in = entry.obj.managed_in
    if managed_in is None or managed_in == namespace or own != PLATFORM:
        return own
    return tenant(managed_in)


def build_view(store: Store, *, now: float, cache: ViewCache | None = None) -> View:
    """Derive the View from the store's current contents (incrementally, from what ``cache`` last derived)."""
    return (cache or ViewCache()).build(store, now)


def _resource(
    entry: Entry,
    tenant: str,
    root_key: Key,
    objects: Mapping[Key, Entry],
    tenant_of: Callable[[str], str],
    *,
    stuck: bool,
    stuck_root: StuckReason | None,
) -> ResourceView:
    obj, verdict = entry.obj, entry.verdict
    blame = attribute(entry, root_key, objects)
    source_drift, attempt_drift = drift(entry, objects)
    return ResourceView(entry, tenant, plain(Derived(
        owner=blame.owner,
        stuck=stuck,
        stuck_reason=verdict.stuck_reason if stuck else stuck_root,
        stuck_root=stuck_root is not None,
        root_cause=blame.root_cause,
        root_category=blame.root_category,
        violations=violations(obj, tenant, tenant_of),
        source_drift_since=source_drift,
        attempt_drift_since=attempt_drift,
    )))

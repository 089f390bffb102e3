"""The in-memory model: slim Flux records and namespaces, classified once, on write.

Writes come from the watchers on the event loop; methods never await, so no locks are needed. Every
write that changes something bumps ``version`` and sets ``changed``; the publisher then derives a new
immutable ``View`` (root causes, tenants, stuck, drift, policy) and re-renders what changed. An update
whose projected fields are equal to the stored ones does no work (resourceVersion and managedFields
churn never reach here).

Time is part of the truth: a verdict held through a reconcile in progress (``Verdict.hold``) gives way to the
status's own verdict when the hold expires, and ``expire`` makes that swap, as a write, when its time has come.

Some verdicts depend on more than the object: a manifest the API server refuses for its kind is
``api_version_not_served`` or ``crd_missing`` by what the cluster serves (``set_served``), and an Alert (which
has no status) fails when an object it names does not exist. The store keeps those objects' own verdicts and
judges them again when what they depend on changes: discovery, the kinds listed, an object added or deleted.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable

import msgspec

from flux_tenant_exporter.base.config import StuckThresholds
from flux_tenant_exporter.base.kinds import STATUSLESS_KINDS
from flux_tenant_exporter.base.vocabulary import State
from flux_tenant_exporter.flux.classify import Verdict, classify, served_versions
from flux_tenant_exporter.flux.model import FluxObject, NamespaceInfo, Observed, Ref
from flux_tenant_exporter.flux.tenants import TenantResolver
from flux_tenant_exporter.kube.discovery import ServedApis

Key = tuple[str, str, str]
#: the reason of the verdict the store gives an object without a status that names a missing object
MISSING_REASON = "ReferenceNotFound"
#: object changes remembered for incremental readers (the publisher reads them every publish)
CHANGES_KEPT = 65536
#: references to objects not stored kept for sharing, at least (more in a large fleet)
PENDING_KEPT = 4096


class Entry(msgspec.Struct, frozen=True, gc=False):
    """A stored object with its verdict."""

    obj: FluxObject
    verdict: Verdict
    #: when the exporter first saw generation != observedGeneration (None when they match)
    lag_since: float | None
    #: the last state other than progressing (a fix goes failing -> progressing -> ready: still a recovery)
    settled: State | None = None


class Store:
    """Objects by (kind, namespace, name) and namespaces by name."""

    def __init__(
        self,
        *,
        resolver: TenantResolver | None = None,
        thresholds: StuckThresholds | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """An empty store; tenants by ``resolver`` (default: labels, then own names; flux-system is the platform)."""
        self.resolver = resolver if resolver is not None else TenantResolver()
        self.thresholds = thresholds or StuckThresholds()
        self.clock = clock
        self.objects: dict[Key, Entry] = {}
        self.namespaces: dict[str, NamespaceInfo] = {}
        self.version = 0
        #: the keys of changed (upserted or deleted) objects, oldest first; ``changes_base`` entries were dropped
        self.changes: list[Key] = []
        self.changes_base = 0
        #: bumped when namespaces (tenant labels) change: every object's tenant may have changed
        self.namespaces_version = 0
        self.changed = asyncio.Event()
        #: entries into failing by (tenant, kind, category), and recoveries by (tenant, kind); the View copies them
        #: when ``transitions_version`` moved
        self.failures_total: Counter[tuple[str, str, str]] = Counter()
        self.recoveries_total: Counter[tuple[str, str]] = Counter()
        self.transitions_version = 0
        #: (until, key) of every verdict held through a reconcile in progress; stale ones are skipped when due
        self._holds: list[tuple[float, Key]] = []
        #: one Ref per referenced object that is not stored (yet): every reference to it shares it, and it becomes
        #: the object's key when the object comes (a source listed after the objects that use it)
        self._pending: dict[Key, Ref] = {}
        #: what the API server serves (discovery), and the kinds whose objects are all known (listed)
        self.served: ServedApis | None = None
        self.listed_kinds: frozenset[str] = frozenset()
        #: the verdicts of their own status of the objects judged by more than it (see ``_judge``)
        self._own: dict[Key, Verdict] = {}
        #: referenced key -> the statusless objects naming it
        self._referrers: dict[Key, set[Key]] = {}

    # -- tenants --------------------------------------------------------------------------------

    def tenant_of(self, namespace: str) -> str:
        """The tenant of a namespace, from its labels if the namespace is known."""
        info = self.namespaces.get(namespace)
        return self.resolver.tenant_of(namespace, info.tenant_label if info else None)

    # -- writes ---------------------------------------------------------------------------------

    def _bump(self) -> None:
        self.version += 1
        self.changed.set()

    def _record(self, key: Key) -> None:
        self.changes.append(key)
        if len(self.changes) > CHANGES_KEPT:  # a reader this far behind derives everything again
            drop = len(self.changes) // 2
            del self.changes[:drop]
            self.changes_base += drop

    @property
    def change_count(self) -> int:
        """How many object changes were recorded so far."""
        return self.changes_base + len(self.changes)

    def forget_changes(self, count: int) -> None:
        """Drop the first ``count`` changes: the reader (the publisher) has derived them.

        The log then holds only what is still unread; CHANGES_KEPT bounds it if nobody reads.
        """
        drop = min(count - self.changes_base, len(self.changes))
        if drop > 0:
            del self.changes[:drop]
            self.changes_base += drop

    def changes_since(self, count: int) -> list[Key] | None:
        """The keys changed after the first ``count`` changes; None if some of them were dropped."""
        if count < self.changes_base:
            return None
        return self.changes[count - self.changes_base :]

    def upsert(self, obj: Observed) -> bool:
        """Store a parsed object; returns False (and does nothing) if neither its record nor its verdict changed.

        The stored object keeps no signals (its conditions, ...): it is classified here, once; an update whose record
        is the same and whose status gives the same verdict (a relist, a retry's new message that says nothing new)
        changes nothing.
        """
        if not isinstance(obj, Observed):
            msg = f"{obj.ref} has no signals: only a projected object can be stored"
            raise TypeError(msg)
        signals = obj.signals
        old = self.objects.get(obj.ref)
        # the key the dict, the change log and the view hold: one tuple for the object, whoever refers to it
        key = old.obj.ref if old is not None else self._pending.pop(obj.ref, obj.ref)
        now = self.clock()
        lagging = obj.observed_generation is not None and obj.observed_generation != obj.generation
        if not lagging and obj.observed_generation is None and obj.generation and not signals.conditions:
            lagging = True  # never observed by its controller
        lag_since = (old.lag_since if old and old.lag_since is not None else now) if lagging else None
        own = classify(obj, thresholds=self.thresholds, observed_at=now, lag_since=lag_since,
                       previous=old.verdict if old else None)
        verdict = self._judge(obj, own, old.verdict if old else None)
        if verdict is not own or obj.kind in STATUSLESS_KINDS or own.category == "crd_missing":
            self._own[key] = own
            if obj.kind in STATUSLESS_KINDS:
                for ref in (obj.source, *obj.depends_on):
                    if ref is not None:
                        self._referrers.setdefault(ref, set()).add(key)
        else:
            self._own.pop(key, None)
        stored = obj.to_store(key, self._stored(obj.source), self._stored(obj.chart), self._stored_all(obj.depends_on))
        if old is not None and verdict == old.verdict and lag_since == old.lag_since and old.obj == stored:
            return False
        before = (old.settled or old.verdict.state) if old else None
        self._count_transition(obj, before, verdict)
        settled = (old.settled if old else None) if verdict.state == "progressing" else verdict.state
        self.objects[key] = Entry(stored, verdict, lag_since, settled)
        if verdict.hold is not None and (old is None or old.verdict.hold is None
                                         or old.verdict.hold.until != verdict.hold.until):
            heapq.heappush(self._holds, (verdict.hold.until, key))
            if len(self._holds) > 2 * len(self.objects) + 1024:  # mostly holds replaced since: rebuild
                self._holds = [(e.verdict.hold.until, k) for k, e in self.objects.items() if e.verdict.hold]
                heapq.heapify(self._holds)
        self._record(key)
        self._bump()
        if old is None and key in self._referrers:
            self._judge_again(self._referrers[key])
        return True

    # -- verdicts that depend on more than the object ------------------------------------------------------

    def _judge(self, obj: FluxObject, own: Verdict, previous: Verdict | None) -> Verdict:
        """The verdict of ``obj`` given its own (its status's) and what the store knows beyond it."""
        verdict = served_versions(own, self.served)
        if obj.kind in STATUSLESS_KINDS and verdict.state == "ready":
            missing = [r for r in (obj.source, *obj.depends_on)
                       if r is not None and r.kind in self.listed_kinds and r not in self.objects]
            if missing:
                names = ", ".join(f"{r.kind} {r.namespace}/{r.name}" for r in missing)
                since = previous.since if previous is not None and previous.reason == MISSING_REASON else None
                since = since or self.clock()
                verdict = Verdict("failing", "reference_not_found", MISSING_REASON,
                                  f"{names} named in its spec does not exist (derived by the exporter: "
                                  f"{obj.kind}s have no status)", since, "observed", "False",
                                  since + self.thresholds.not_ready, "not_ready")
        return verdict

    def _judge_again(self, keys: Iterable[Key]) -> None:
        """Judge the objects of ``keys`` again (what their verdicts depend on changed)."""
        changed = False
        for key in list(keys):
            entry, own = self.objects.get(key), self._own.get(key)
            if entry is None or own is None:
                continue
            verdict = self._judge(entry.obj, own, entry.verdict)
            if verdict == entry.verdict:
                continue
            before = entry.settled or entry.verdict.state
            self._count_transition(entry.obj, before, verdict)
            settled = entry.settled if verdict.state == "progressing" else verdict.state
            self.objects[key] = Entry(entry.obj, verdict, entry.lag_since, settled)
            self._record(key)
            changed = True
        if changed:
            self._bump()

    def set_served(self, served: ServedApis) -> None:
        """What the API server serves now (discovery): judge the manifests it refused again."""
        if served == self.served:
            return
        self.served = served
        self._judge_again([k for k, own in self._own.items() if own.category == "crd_missing"])

    def set_listed_kinds(self, kinds: Iterable[str]) -> None:
        """The kinds whose objects are all known now: a reference to one that is not stored names nothing."""
        listed = frozenset(kinds)
        if listed == self.listed_kinds:
            return
        self.listed_kinds = listed
        self._judge_again([k for k in self._own if k[0] in STATUSLESS_KINDS])

    @property
    def next_expiry(self) -> float | None:
        """When the earliest held verdict expires (it may have been replaced since), or None."""
        return self._holds[0][0] if self._holds else None

    def expire(self, now: float) -> int:
        """Give every held verdict whose hold ended by ``now`` way to the verdict it holds back; returns how many.

        A held verdict is the last one of an object whose controller started a routine reconcile; when that takes
        longer than it may (the controller died mid-reconcile), the object is what its status says: progressing,
        and stuck.
        """
        expired = 0
        while self._holds and self._holds[0][0] <= now:
            until, key = heapq.heappop(self._holds)
            entry = self.objects.get(key)
            hold = entry.verdict.hold if entry is not None else None
            if entry is None or hold is None or hold.until != until:
                continue  # deleted, or the verdict changed since
            then = hold.then
            settled = entry.settled if then.state == "progressing" else then.state
            self.objects[key] = Entry(entry.obj, then, entry.lag_since, settled)
            self._record(key)
            expired += 1
        if expired:
            self._bump()
        return expired

    def _stored(self, ref: Ref | None) -> Ref | None:
        """The one tuple standing for a referenced object: its key if it is stored, else the pending reference."""
        if ref is None:
            return None
        entry = self.objects.get(ref)
        if entry is not None:
            return entry.obj.ref
        if len(self._pending) > max(PENDING_KEPT, len(self.objects) // 2):
            self._pending.clear()  # references to objects that never came: sharing restarts, nothing is lost
        return self._pending.setdefault(ref, ref)

    def _stored_all(self, refs: tuple[Ref, ...]) -> tuple[Ref, ...]:
        stored = tuple(self._stored(r) or r for r in refs)
        return stored if any(a is not b for a, b in zip(stored, refs, strict=True)) else refs

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Forget an object; returns whether it was there."""
        key = (kind, namespace, name)
        if self.objects.pop(key, None) is None:
            return False
        self._own.pop(key, None)
        self._record(key)
        self._bump()
        if key in self._referrers:
            self._judge_again(self._referrers[key])
        return True

    def replace(self, kind: str, namespace: str | None, objs: Iterable[Observed]) -> None:
        """Make the stored objects of ``kind`` (in ``namespace``, or everywhere) exactly ``objs`` (a relist)."""
        fresh: set[Key] = set()
        for obj in objs:
            self.upsert(obj)
            fresh.add(obj.ref)
        self.retain(kind, namespace, fresh)

    def retain(self, kind: str, namespace: str | None, keys: set[Key]) -> None:
        """Forget the objects of ``kind`` (in ``namespace``, or everywhere) not in ``keys`` (the end of a relist)."""
        stale = [
            k for k in self.objects if k[0] == kind and (namespace is None or k[1] == namespace) and k not in keys
        ]
        for key in stale:
            del self.objects[key]
            self._own.pop(key, None)
            self._record(key)
        if stale:
            self._bump()
            referrers = {r for key in stale for r in self._referrers.get(key, ())}
            if referrers:
                self._judge_again(referrers)

    def upsert_namespace(self, info: NamespaceInfo) -> bool:
        """Store a namespace's tenant label; returns False if unchanged."""
        if self.namespaces.get(info.name) == info:
            return False
        self.namespaces[info.name] = info
        self.namespaces_version += 1
        self._bump()
        return True

    def delete_namespace(self, name: str) -> bool:
        """Forget a namespace."""
        if self.namespaces.pop(name, None) is None:
            return False
        self.namespaces_version += 1
        self._bump()
        return True

    def replace_namespaces(self, infos: Iterable[NamespaceInfo]) -> None:
        """Make the stored namespaces exactly ``infos``."""
        fresh = {i.name: i for i in infos}
        if fresh != self.namespaces:
            self.namespaces = fresh
            self.namespaces_version += 1
            self._bump()

    def _count_transition(self, obj: FluxObject, old: State | None, new: Verdict) -> None:
        """Count entries into failing and recoveries; ``old`` is the last state before, progressing skipped."""
        if old is None or new.state in {old, "progressing"}:
            return
        tenant = self.tenant_of(obj.namespace)
        if new.state == "failing":
            self.failures_total[(tenant, obj.kind, new.category or "unknown")] += 1
            self.transitions_version += 1
        elif old == "failing" and new.state == "ready":
            self.recoveries_total[(tenant, obj.kind)] += 1
            self.transitions_version += 1

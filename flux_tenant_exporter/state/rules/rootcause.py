"""Root causes: what blocks a ``source_not_ready`` / ``dependency_not_ready`` object, and who owns it.

A blocked object's chain is followed through chartRef, sourceRef and dependsOn (an ArtifactGenerator's
sources), transitively, to the first object that nothing blocks; an object another produces (an
ExternalArtifact) that is not ready passes the chain on to its producer; a cycle's root is its smallest key
wherever the walk entered it, so every derivation (incremental or full) agrees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flux_tenant_exporter.base.kinds import MULTI_SOURCE_KINDS, PRODUCED_KINDS
from flux_tenant_exporter.base.vocabulary import BLOCKED_CATEGORIES, CATEGORY_OWNER, Category, Owner
from flux_tenant_exporter.flux.model import Ref
from flux_tenant_exporter.state.store import Entry, Key


class RootResolver:
    """Follows blocking chains over one store snapshot, once per object (memoised)."""

    def __init__(self, objects: Mapping[Key, Entry]) -> None:
        """Resolve over ``objects``."""
        self.objects = objects
        self.memo: dict[Key, Key] = {}

    def blocker(self, entry: Entry) -> Key | None:
        """The object that blocks ``entry`` directly, if any (it exists and is not ready)."""
        obj, category = entry.obj, entry.verdict.category
        if category == "source_not_ready" or (obj.kind in PRODUCED_KINDS and entry.verdict.state != "ready"):
            # a HelmRelease's chart before its source; an ArtifactGenerator's sources are its source and the rest
            more = obj.depends_on if obj.kind in MULTI_SOURCE_KINDS else ()
            for ref in (obj.chart, obj.source, *more):
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
            nxt = self.blocker(entry) if entry.verdict.category in BLOCKED_CATEGORIES or (
                entry.obj.kind in PRODUCED_KINDS) else None
            if nxt is None:
                result = current
                break
            if nxt in seen:  # a cycle: its smallest key is the root, wherever the walk entered it
                result = min(path[path.index(nxt) :])
                break
            current = nxt
        for k in path:
            self.memo[k] = result
        return result


def is_blocked(entry: Entry) -> bool:
    """Whether another object may be the root cause of ``entry``'s failure."""
    verdict = entry.verdict
    return verdict.state == "failing" and verdict.category in BLOCKED_CATEGORIES


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who has to act on an object that is not ready, and because of which object."""

    owner: Owner | None
    root_cause: Ref | None
    root_category: Category | None


_NONE = Attribution(None, None, None)


def owner_of_root(root: Entry) -> Owner:
    """The owner of a root cause: its category's, the tenant's for a suspended one, else unknown."""
    category = root.verdict.category
    owner = CATEGORY_OWNER.get(category or "unknown")
    if owner is not None:
        return owner
    if category == "suspended":
        return "tenant"
    return "unknown"


def attribute(entry: Entry, root_key: Key, objects: Mapping[Key, Entry]) -> Attribution:
    """The owner and root cause of ``entry``, whose blocking chain ends at ``root_key``."""
    obj, verdict = entry.obj, entry.verdict
    if verdict.state == "ready" or verdict.category is None:
        return _NONE
    owner = CATEGORY_OWNER.get(verdict.category)
    if verdict.state != "failing":
        return Attribution(owner, None, verdict.category)
    if root_key != obj.ref:
        root_entry = objects[root_key]
        return Attribution(owner_of_root(root_entry), Ref(*root_key), root_entry.verdict.category)
    return Attribution(owner or "unknown", None, verdict.category)

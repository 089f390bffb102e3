"""The published records: one immutable ``View`` per publish, read by metrics, ``/tenants`` and ``report``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.model import Ref
from exporter.store import Key
from exporter.vocabulary import (
    Category,
    ConditionStatus,
    Owner,
    PolicyRule,
    SinceSource,
    State,
    StuckReason,
    TenantCount,
    TenantStatus,
)


@dataclass(frozen=True, slots=True)
class Violation:
    """A tenancy policy violation of one object."""

    rule: PolicyRule
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
    state: State
    ready: ConditionStatus
    category: Category | None
    owner: Owner | None
    reason: str
    message: str
    since: float | None
    since_source: SinceSource
    stuck: bool
    stuck_reason: StuckReason | None
    #: the object to page for: stuck itself and not blocked by another, or the root of a stuck dependent
    stuck_root: bool
    root_cause: Ref | None
    root_category: Category | None
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
    #: the object's --resource-labels (key, value) pairs
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def is_root(self) -> bool:
        """A failing object that no other object blocks."""
        return self.state == "failing" and self.root_cause is None


@dataclass(frozen=True, slots=True)
class TenantView:
    """One tenant's roll-up."""

    name: str
    namespaces: tuple[str, ...]
    status: TenantStatus
    counts: Mapping[TenantCount, int]
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
    #: which build of its ViewCache this is, the build it follows (-1: none), and the keys whose ResourceView
    #: was added, replaced or removed since then; lets a renderer skip comparing every object
    serial: int = 0
    parent: int = -1
    changed: frozenset[Key] = frozenset()
    #: the tenants whose TenantView was added, replaced or removed since that build
    changed_tenants: frozenset[str] = frozenset()

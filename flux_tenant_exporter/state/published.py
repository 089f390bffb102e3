"""The published records: one immutable ``View`` per publish, read by metrics, ``/tenants`` and ``report``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import msgspec

from flux_tenant_exporter.base.vocabulary import (
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
from flux_tenant_exporter.flux.model import Ref
from flux_tenant_exporter.state.store import Entry, Key


class Violation(msgspec.Struct, frozen=True, gc=False):
    """A tenancy policy violation of one object."""

    rule: PolicyRule
    kind: str
    namespace: str
    name: str
    detail: str


class Derived(msgspec.Struct, frozen=True, gc=False):
    """What the view derives across objects for one object, when any of it is not the default (most objects: none)."""

    owner: Owner | None = None
    stuck: bool = False
    stuck_reason: StuckReason | None = None
    #: the object to page for: stuck itself and not blocked by another, or the root of a stuck dependent
    stuck_root: bool = False
    root_cause: Ref | None = None
    root_category: Category | None = None
    violations: tuple[Violation, ...] = ()
    source_drift_since: float | None = None
    attempt_drift_since: float | None = None


class ResourceView(msgspec.Struct, frozen=True, gc=False):
    """One object as published: its stored entry, its tenant, and what the view derives across objects.

    What the object and its verdict say is read through the entry (the properties below), not copied: a
    ResourceView exists for every object, and copies would double what each holds. Likewise what the view derives
    is kept only when it is not the default (``derived``: None for a plain object, one that is ready, blocked by
    nothing, not stuck, not drifting and breaking no rule; ``published.plain``), so most objects cost three fields
    here.
    """

    entry: Entry
    tenant: str
    derived: Derived | None = None

    def __repr__(self) -> str:
        """``ResourceView(Kind/namespace/name, tenant, derived)``."""
        return f"ResourceView({self.entry.obj.ref}, {self.tenant!r}, {self.derived!r})"

    @property
    def _derived(self) -> Derived:
        """What the view derived, the defaults for a plain object."""
        return self.derived or PLAIN

    @property
    def owner(self) -> Owner | None:
        """Who has to act on the object's failure (the root cause's owner for a blocked object)."""
        return self._derived.owner

    @property
    def stuck(self) -> bool:
        """Whether the object is stuck now."""
        return self._derived.stuck

    @property
    def stuck_reason(self) -> StuckReason | None:
        """Why it is stuck (or why it is a root to page for)."""
        return self._derived.stuck_reason

    @property
    def stuck_root(self) -> bool:
        """The object to page for: stuck itself and not blocked by another, or the root of a stuck dependent."""
        return self._derived.stuck_root

    @property
    def root_cause(self) -> Ref | None:
        """What blocks the object, at the end of its blocking chain."""
        return self._derived.root_cause

    @property
    def root_category(self) -> Category | None:
        """The root cause's category (the object's own when it is its own root)."""
        return self._derived.root_category

    @property
    def violations(self) -> tuple[Violation, ...]:
        """The tenancy policy rules the object breaks."""
        return self._derived.violations

    @property
    def source_drift_since(self) -> float | None:
        """When the source's artifact began to differ from the applied revision."""
        return self._derived.source_drift_since

    @property
    def attempt_drift_since(self) -> float | None:
        """When the attempted revision began to differ from the applied one."""
        return self._derived.attempt_drift_since

    @property
    def last_success(self) -> float | None:
        """When the object last did its job: deployed, produced an artifact, or became ready."""
        obj, verdict = self.entry.obj, self.entry.verdict
        latest = obj.last_deployed
        if obj.artifact_updated is not None and (latest is None or obj.artifact_updated > latest):
            latest = obj.artifact_updated
        if verdict.state == "ready" and verdict.since is not None and (latest is None or verdict.since > latest):
            latest = verdict.since
        return latest

    @property
    def key(self) -> Key:
        """The store's key of the object."""
        return self.entry.obj.ref

    @property
    def kind(self) -> str:
        """The object's kind."""
        return self.entry.obj.ref.kind

    @property
    def namespace(self) -> str:
        """The object's namespace."""
        return self.entry.obj.ref.namespace

    @property
    def name(self) -> str:
        """The object's name."""
        return self.entry.obj.ref.name

    @property
    def api_version(self) -> str:
        """The object's apiVersion."""
        return self.entry.obj.api_version

    @property
    def suspended(self) -> bool:
        """Whether the object is suspended."""
        return self.entry.obj.suspended

    @property
    def path(self) -> str | None:
        """The object's path (a Kustomization's spec.path)."""
        return self.entry.obj.path

    @property
    def chart(self) -> str | None:
        """The chart's name (a HelmRelease's or HelmChart's)."""
        return self.entry.obj.chart_name

    @property
    def url(self) -> str | None:
        """The source's URL (redacted)."""
        return self.entry.obj.url

    @property
    def labels(self) -> tuple[tuple[str, str], ...]:
        """The object's --resource-labels (key, value) pairs."""
        return self.entry.obj.labels

    @property
    def state(self) -> State:
        """The verdict's state."""
        return self.entry.verdict.state

    @property
    def ready(self) -> ConditionStatus:
        """The Ready status of the verdict's state."""
        return self.entry.verdict.ready

    @property
    def category(self) -> Category | None:
        """The verdict's category."""
        return self.entry.verdict.category

    @property
    def reason(self) -> str:
        """The verdict's reason."""
        return self.entry.verdict.reason

    @property
    def message(self) -> str:
        """The verdict's message."""
        return self.entry.verdict.message

    @property
    def detail(self) -> str | None:
        """What the exporter adds to the controller's message (the versions a group serves)."""
        return self.entry.verdict.detail

    @property
    def since(self) -> float | None:
        """When the object entered its state."""
        return self.entry.verdict.since

    @property
    def since_source(self) -> SinceSource:
        """Where ``since`` comes from."""
        return self.entry.verdict.since_source

    @property
    def revision(self) -> str | None:
        """The revision being rolled out (progressing), else the applied one, else the artifact's.

        An image policy's is its latest image, an automation's its last pushed commit (``flux.kindspecs``).
        """
        obj = self.entry.obj
        if self.entry.verdict.state == "progressing" and obj.attempted_revision:
            return obj.attempted_revision
        return obj.applied_revision or obj.artifact_revision

    @property
    def generation_lag(self) -> int:
        """Generations the controller has not observed; observedGeneration -1 (never reconciled) counts as 0."""
        obj = self.entry.obj
        if obj.observed_generation is None:
            return 0
        return max(0, obj.generation - max(0, obj.observed_generation))

    @property
    def source_ref(self) -> Ref | None:
        """The object's source (what ``flux.kindspecs`` says it reads from)."""
        return self.entry.obj.source

    @property
    def chart_ref(self) -> Ref | None:
        """A HelmRelease's chart (its chartRef, or the HelmChart made from its template)."""
        return self.entry.obj.chart

    @property
    def source(self) -> str | None:
        """``Kind/namespace/name`` of the object's source (a HelmRelease's: its chart)."""
        obj = self.entry.obj
        ref = obj.chart if obj.ref.kind == "HelmRelease" and obj.chart else obj.source
        return str(ref) if ref else None

    @property
    def is_root(self) -> bool:
        """A failing object that no other object blocks."""
        return self.state == "failing" and self.root_cause is None


#: what the view derives for a plain object, kept as None
PLAIN: Final = Derived()


def plain(derived: Derived) -> Derived | None:
    """``derived``, or None when it is the default (``ResourceView.derived`` of a plain object)."""
    return None if derived == PLAIN else derived


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
    #: shown to a caller who may see only some of its namespaces (``namespaces`` lists those)
    partial: bool = False


@dataclass(frozen=True, slots=True)
class Transitions:
    """Transitions counted since the exporter started (the counters' values), in key order."""

    #: entries into failing by (tenant, kind, category)
    failures: tuple[tuple[tuple[str, str, str], int], ...] = ()
    #: recoveries (failing to ready) by (tenant, kind)
    recoveries: tuple[tuple[tuple[str, str], int], ...] = ()


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
    #: the transition counters (the same object while no transition happened)
    transitions: Transitions = Transitions()

"""Render the published View as Prometheus text exposition, once per publish, not per scrape.

Object families are rendered per object and cached by the object's ``ResourceView`` (a frozen value): an
unchanged object is not rendered again. A scrape concatenates the cached section with the exporter's
self-metrics (prometheus-client registry). No sample timestamps; condition messages are never labels.

Sample::

    # HELP fluxtenant_resource_state Current state of a Flux object (1 for the current state only).
    # TYPE fluxtenant_resource_state gauge
    fluxtenant_resource_state{tenant="team-a",kind="Kustomization",namespace="team-a",name="apps",state="failing"} 1
"""

from __future__ import annotations

import bisect
import functools
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import attrgetter, itemgetter
from typing import Final, NamedTuple

from exporter.errors import UserError
from exporter.published import ResourceView, TenantView, View
from exporter.settings import Settings, resource_label_name
from exporter.store import Key, Store
from exporter.vocabulary import INFO_LABELS, POLICY_RULES, TENANT_STATUSES, Detail, InfoLabel

PREFIX: Final = "fluxtenant_"


@dataclass(frozen=True)
class Family:
    """A metric family: name, type and HELP text."""

    name: str
    type: str
    help: str

    def header(self) -> bytes:
        """The HELP and TYPE lines."""
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.type}\n".encode()


def _f(name: str, help_: str, type_: str = "gauge") -> Family:
    return Family(PREFIX + name, type_, help_)


# Per object (labels tenant, kind, namespace, name, plus the ones named).
RESOURCE_INFO = _f("resource_info", "Flux object metadata: revision, source, path, chart, URL (credentials removed).")
RESOURCE_READY = _f("resource_ready", "1 if the Flux object's Ready condition is True, else 0.")
RESOURCE_STATE = _f("resource_state", "Current state of a Flux object (1 for the current state only).")
RESOURCE_SINCE = _f("resource_state_since_timestamp_seconds",
                    "Unix time the object entered its current state (Ready condition lastTransitionTime).")
RESOURCE_STUCK = _f("resource_stuck", "1 if the object's reconciliation is stuck beyond its threshold (absent: 0).")
RESOURCE_SUSPENDED = _f("resource_suspended", "1 if spec.suspend is true (absent: 0).")
RESOURCE_FAILURE = _f("resource_failure",
                      "1 for a failing or unknown object, labelled with its category, owner and root category.")
RESOURCE_ROOT = _f("resource_root_cause",
                   "1 if the object is failing and no other object blocks it, a root cause (absent: 0).")
RESOURCE_STUCK_ROOT = _f("resource_stuck_root",
                         "1 on each root cause to page for: stuck and not blocked by another object, or blocking a "
                         "stuck object; labelled with its category, owner and stuck reason.")
RESOURCE_DRIFT = _f("resource_drift",
                    "1 if the applied revision differs from the source's or from the attempted one (absent: 0).")
RESOURCE_DRIFT_SINCE = _f("resource_drift_since_timestamp_seconds",
                          "Unix time a drift began; type=source (new artifact not applied) "
                          "or attempt (roll-forward failing).")
RESOURCE_GEN_LAG = _f("resource_generation_lag",
                      "metadata.generation minus status.observedGeneration (absent: 0).")
RESOURCE_LAST_SUCCESS = _f("resource_last_success_timestamp_seconds",
                           "Unix time of the last known successful reconcile (Ready transition, deploy or artifact).")
RESOURCE_VIOLATION = _f("resource_policy_violation", "1 per tenancy policy rule the object breaks.")
# Per tenant.
TENANT_RESOURCES = _f("tenant_resources", "Flux objects of a tenant by kind and state.")
TENANT_FAILURES = _f("tenant_failures", "Failing objects of a tenant by category and owner.")
TENANT_ROOT_FAILURES = _f("tenant_root_failures", "Failing root-cause objects of a tenant by category and owner.")
TENANT_STUCK = _f("tenant_stuck_resources", "Stuck objects of a tenant.")
TENANT_VIOLATIONS = _f("tenant_policy_violations", "Tenancy policy violations of a tenant by rule.")
TENANT_STATUS = _f("tenant_status",
                   "Tenant status (1 for the current one): failing, progressing, degraded, suspended, healthy.")
TENANT_HEALTH = _f("tenant_health_ratio", "Ready objects over non-suspended objects of a tenant (1 when it has none).")
TENANT_INFO = _f("tenant_info", "A tenant's first namespace (sorted), the namespace label of its tenant-level alerts.")
# Transitions.
FAILURES_TOTAL = _f("resource_failures_total", "Transitions of objects into failing, by category.", "counter")
RECOVERIES_TOTAL = _f("resource_recoveries_total", "Transitions of objects from failing to ready.", "counter")
# Compatibility with Flux's kube-state-metrics configuration (opt-in).
GOTK_INFO = Family("gotk_resource_info", "gauge",
                   "The current state of a Flux resource (flux2-monitoring-example kube-state-metrics label set).")

OBJECT_FAMILIES: Final = (
    RESOURCE_INFO, RESOURCE_READY, RESOURCE_STATE, RESOURCE_SINCE, RESOURCE_STUCK, RESOURCE_SUSPENDED,
    RESOURCE_FAILURE, RESOURCE_ROOT, RESOURCE_STUCK_ROOT, RESOURCE_DRIFT, RESOURCE_DRIFT_SINCE, RESOURCE_GEN_LAG,
    RESOURCE_LAST_SUCCESS,
    RESOURCE_VIOLATION,
)
TENANT_FAMILIES: Final = (
    TENANT_RESOURCES, TENANT_FAILURES, TENANT_ROOT_FAILURES, TENANT_STUCK, TENANT_VIOLATIONS, TENANT_STATUS,
    TENANT_HEALTH, TENANT_INFO, FAILURES_TOTAL, RECOVERIES_TOTAL,
)
ALL_FAMILIES: Final = (*OBJECT_FAMILIES, *TENANT_FAMILIES, GOTK_INFO)


def escape(value: str) -> str:
    """A label value escaped for the text format."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def number(value: float) -> str:
    """A sample value: integers without a fraction."""
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{escape(v)}"' for k, v in pairs)


def _sample(family: Family, ident: str, extra: Iterable[tuple[str, str]], value: float) -> str:
    more = _labels(extra)
    return f"{family.name}{{{ident}{',' if more else ''}{more}}} {number(value)}\n"


_INFO, _READY, _STATE, _SINCE, _STUCK, _SUSPENDED, _FAILURE, _ROOT, _STUCK_ROOT, _DRIFT, _DRIFT_SINCE, _GEN_LAG, \
    _LAST_SUCCESS, _VIOLATION = (f.name + "{" for f in OBJECT_FAMILIES)


def render_object(res: ResourceView) -> tuple[bytes, ...]:
    """One object's samples, one chunk per OBJECT_FAMILIES entry (b"" where the object has none)."""
    ident = f'tenant="{escape(res.tenant)}",kind="{res.kind}",namespace="{res.namespace}",name="{escape(res.name)}"'
    failing = res.state in {"failing", "unknown"}
    category = res.category or "unknown"
    owner = res.owner or "unknown"
    drift_since = "".join(
        f'{_DRIFT_SINCE}{ident},type="{kind}"}} {number(at)}\n'
        for kind, at in (("source", res.source_drift_since), ("attempt", res.attempt_drift_since))
        if at is not None
    )
    return (
        (f'{_INFO}{ident},revision="{escape(res.revision or "")}",source="{escape(res.source or "")}",'
         f'path="{escape(res.path or "")}",chart="{escape(res.chart or "")}",url="{escape(res.url or "")}"}} 1\n'
         ).encode(),
        f'{_READY}{ident}}} {1 if res.ready == "True" else 0}\n'.encode(),
        f'{_STATE}{ident},state="{res.state}"}} 1\n'.encode(),
        f"{_SINCE}{ident}}} {number(res.since)}\n".encode() if res.since is not None else b"",
        f"{_STUCK}{ident}}} 1\n".encode() if res.stuck else b"",
        f"{_SUSPENDED}{ident}}} 1\n".encode() if res.suspended else b"",
        f'{_FAILURE}{ident},category="{category}",owner="{owner}",'
        f'root_category="{res.root_category or category}"}} 1\n'.encode() if failing else b"",
        f"{_ROOT}{ident}}} 1\n".encode() if res.is_root else b"",
        f'{_STUCK_ROOT}{ident},category="{category}",owner="{owner}",reason="{res.stuck_reason or "stuck"}"}} 1\n'
        .encode() if res.stuck_root else b"",
        f"{_DRIFT}{ident}}} 1\n".encode() if (res.source_drift_since or res.attempt_drift_since) else b"",
        drift_since.encode(),
        f"{_GEN_LAG}{ident}}} {res.generation_lag}\n".encode() if res.generation_lag else b"",
        f"{_LAST_SUCCESS}{ident}}} {number(res.last_success)}\n".encode() if res.last_success is not None else b"",
        "".join(f'{_VIOLATION}{ident},rule="{v.rule}"}} 1\n' for v in res.violations).encode(),
    )


def render_info(res: ResourceView, keep: tuple[InfoLabel, ...], labels: tuple[tuple[str, str], ...]) -> bytes:
    """The info sample with only the ``keep`` labels and the object's resource labels (``labels``: key -> name)."""
    ident = f'tenant="{escape(res.tenant)}",kind="{res.kind}",namespace="{res.namespace}",name="{escape(res.name)}"'
    values = {"revision": res.revision, "source": res.source, "path": res.path, "chart": res.chart, "url": res.url}
    pairs: list[tuple[str, str]] = [(label, values[label] or "") for label in keep]
    if res.labels:
        present = dict(res.labels)
        pairs += [(name, present[key]) for key, name in labels if key in present]
    more = _labels(pairs)
    return f"{_INFO}{ident}{',' if more else ''}{more}}} 1\n".encode()


def needs_attention(res: ResourceView) -> bool:
    """Whether ``--detail=failing`` keeps the object's series.

    Not Ready (failing, progressing, suspended, unknown), stuck, drifting, behind its generation or breaking a
    policy rule: every object a shipped alert can fire on.
    """
    return (res.state != "ready" or res.stuck or res.stuck_root or res.source_drift_since is not None
            or res.attempt_drift_since is not None or bool(res.violations) or res.generation_lag > 0)


def render_gotk(res: ResourceView, drop: tuple[InfoLabel, ...] = ()) -> bytes:
    """The ``gotk_resource_info`` sample of Flux's kube-state-metrics config for one object."""
    group, _, version = res.api_version.rpartition("/")
    labels = [
        ("customresource_group", group), ("customresource_kind", res.kind), ("customresource_version", version),
        ("exported_namespace", res.namespace), ("name", res.name), ("ready", res.ready),
        ("suspended", "true" if res.suspended else "false"),
    ]
    if res.revision and "revision" not in drop:
        labels.append(("revision", res.revision))
    if res.source and res.kind in {"Kustomization", "HelmRelease"} and "source" not in drop:
        labels.append(("source_name", res.source.rsplit("/", 1)[-1]))
    if res.chart and "chart" not in drop:
        labels.append(("chart_name", res.chart))
    if res.url and "url" not in drop:
        labels.append(("url", res.url))
    return f"{GOTK_INFO.name}{{{_labels(labels)}}} 1\n".encode()


#: the per-tenant families (the transition counters follow them in TENANT_FAMILIES)
PER_TENANT: Final = TENANT_FAMILIES[:-2]


class TenantTotals(NamedTuple):
    """What one tenant's samples show: equal totals render the same text."""

    name: str
    by_kind_state: tuple[tuple[tuple[str, str], int], ...]
    failures: tuple[tuple[tuple[str, str], int], ...]
    roots: tuple[tuple[tuple[str, str], int], ...]
    stuck: int
    violations: tuple[tuple[str, int], ...]
    status: str
    health: float
    namespace: str | None


def tenant_totals(t: TenantView) -> TenantTotals:
    """The counts a tenant's samples show (by kind and state, failures by category and owner, ...)."""
    by_kind_state: dict[tuple[str, str], int] = {}
    failures: dict[tuple[str, str], int] = {}
    roots: dict[tuple[str, str], int] = {}
    for res in t.resources:
        state = res.state
        by_kind_state[(res.kind, state)] = by_kind_state.get((res.kind, state), 0) + 1
        if state == "failing":
            key = (res.category or "unknown", res.owner or "unknown")
            failures[key] = failures.get(key, 0) + 1
            if res.is_root:
                roots[key] = roots.get(key, 0) + 1
    rules = dict.fromkeys(POLICY_RULES, 0)
    for v in t.violations:
        rules[v.rule] += 1
    active = t.counts["total"] - t.counts["suspended"]
    return TenantTotals(
        t.name, tuple(sorted(by_kind_state.items())), tuple(sorted(failures.items())), tuple(sorted(roots.items())),
        t.counts["stuck"], tuple(rules.items()), t.status, t.counts["ready"] / active if active else 1,
        min(t.namespaces) if t.namespaces else None,
    )


def render_tenant(totals: TenantTotals) -> tuple[bytes, ...]:
    """One tenant's samples, one chunk per PER_TENANT family."""
    ident = _labels((("tenant", totals.name),))
    chunks = [
        [_sample(TENANT_RESOURCES, ident, (("kind", k), ("state", s)), n) for (k, s), n in totals.by_kind_state],
        [_sample(TENANT_FAILURES, ident, (("category", c), ("owner", o)), n) for (c, o), n in totals.failures],
        [_sample(TENANT_ROOT_FAILURES, ident, (("category", c), ("owner", o)), n) for (c, o), n in totals.roots],
        [_sample(TENANT_STUCK, ident, (), totals.stuck)],
        [_sample(TENANT_VIOLATIONS, ident, (("rule", r),), n) for r, n in totals.violations],
        [_sample(TENANT_STATUS, ident, (("status", s),), 1 if s == totals.status else 0) for s in TENANT_STATUSES],
        [_sample(TENANT_HEALTH, ident, (), totals.health)],
        [_sample(TENANT_INFO, ident, (("namespace", totals.namespace),), 1)] if totals.namespace is not None else [],
    ]
    return tuple("".join(c).encode() for c in chunks)


def render_counters(store: Store) -> list[bytes]:
    """The transition counters (entries into failing, recoveries), one chunk each."""
    failures = "".join(
        _sample(FAILURES_TOTAL, _labels((("tenant", t),)), (("kind", k), ("category", c)), n)
        for (t, k, c), n in sorted(store.failures_total.items())
    )
    recoveries = "".join(
        _sample(RECOVERIES_TOTAL, _labels((("tenant", t),)), (("kind", k),), n)
        for (t, k), n in sorted(store.recoveries_total.items())
    )
    return [failures.encode(), recoveries.encode()]


#: objects per block of the exposition; a block is re-joined when one of its objects changes
BLOCK = 128
#: every family this module renders, by name (what --metrics-allowlist/--metrics-denylist name)
FAMILY_NAMES: Final = tuple(f.name for f in ALL_FAMILIES)


@dataclass(frozen=True)
class RenderOptions:
    """What the exposition carries: the cardinality controls of the Settings."""

    gotk_compat: bool = False
    detail: Detail = "all"
    #: the families rendered (None: all)
    families: frozenset[str] | None = None
    drop_info_labels: tuple[InfoLabel, ...] = ()
    resource_labels: tuple[str, ...] = ()
    object_limit: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> RenderOptions:
        """The options of ``settings``; a UserError names an unknown family of the allow- or deny-list."""
        unknown = [n for n in (*settings.metrics_allowlist, *settings.metrics_denylist) if n not in FAMILY_NAMES]
        if unknown:
            msg = (f"unknown metric famil{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)} in "
                   f"--metrics-allowlist/--metrics-denylist; known: {', '.join(FAMILY_NAMES)}")
            raise UserError(msg)
        families = None
        if settings.metrics_allowlist or settings.metrics_denylist:
            allowed = set(settings.metrics_allowlist or FAMILY_NAMES) - set(settings.metrics_denylist)
            families = frozenset(allowed)
        return cls(gotk_compat=settings.gotk_compat, detail=settings.detail, families=families,
                   drop_info_labels=settings.drop_info_labels, resource_labels=settings.resource_labels,
                   object_limit=settings.object_limit)

    def enabled(self, family: Family) -> bool:
        """Whether ``family`` is rendered."""
        return self.families is None or family.name in self.families


class _Block:
    """A run of consecutive objects (in View order) and their rendered text, per object family."""

    __slots__ = ("keys", "lengths", "parts", "shown", "views")

    def __init__(self, views: list[ResourceView], chunks: list[tuple[bytes, ...]], families: int) -> None:
        self.views = views
        self.keys = [v.key for v in views]
        self.parts = [b"".join(map(itemgetter(f), chunks)) for f in range(families)]
        #: each object's length of text per family; None for a family with no text in the block (at
        #: --detail=failing most families of a block of healthy objects)
        self.lengths: list[array[int] | None] = [
            array("I", map(len, map(itemgetter(f), chunks))) if part else None for f, part in enumerate(self.parts)
        ]
        #: objects with at least one sample (the ones --object-limit counts)
        self.shown = sum(1 for c in chunks if any(c))

    def position(self, key: Key) -> int:
        """The index of ``key`` in the block, or -1."""
        at = bisect.bisect_left(self.keys, key)
        return at if at < len(self.keys) and self.keys[at] == key else -1

    def replace(self, at: int, res: ResourceView, chunks: tuple[bytes, ...]) -> list[int]:
        """Put ``res`` and its ``chunks`` in place of the object at ``at``; returns the families whose text changed."""
        changed = []
        was_shown = any(lengths[at] for lengths in self.lengths if lengths is not None)
        for family, (chunk, known) in enumerate(zip(chunks, self.lengths, strict=True)):
            if known is None and not chunk:
                continue
            lengths = known if known is not None else array("I", bytes(4 * len(self.keys)))
            self.lengths[family] = lengths
            start, size = sum(lengths[:at]), lengths[at]
            part = self.parts[family]
            if size == len(chunk) and part[start : start + size] == chunk:
                continue
            self.parts[family] = b"".join((part[:start], chunk, part[start + size :]))
            lengths[at] = len(chunk)
            changed.append(family)
        self.views[at] = res
        self.shown += any(chunks) - was_shown
        return changed

    def chunks(self) -> list[tuple[bytes, ...]]:
        """Each object's chunks again, sliced out of the block's text."""
        columns = []
        for part, lengths in zip(self.parts, self.lengths, strict=True):
            if lengths is None:
                columns.append([b""] * len(self.keys))
                continue
            ends = list(accumulate(lengths, initial=0))
            columns.append([part[ends[i] : ends[i + 1]] for i in range(len(lengths))])
        return list(zip(*columns, strict=True)) if columns else [() for _ in self.keys]

    def first_shown(self, count: int) -> list[bytes]:
        """The block's text per family, cut after its first ``count`` shown objects."""
        kept: list[tuple[bytes, ...]] = []
        for chunk in self.chunks():
            if count <= 0:
                break
            kept.append(chunk)
            count -= any(chunk)
        return [b"".join(map(itemgetter(f), kept)) for f in range(len(self.parts))]


class Renderer:
    """Renders the exposition, re-rendering only objects whose ``ResourceView`` changed.

    The object families are kept as blocks of ~128 consecutive objects, each holding its rendered text per
    family (and the length of every object's piece in it). A change re-renders the object and re-joins its
    block; nothing else is copied, and the exposition handed to HTTP is the list of block texts. So a publish
    after a few events costs a few blocks whatever the fleet size, and the rendered text is held once.

    ``RenderOptions`` choose the families, the objects with per-object series (``detail``, ``object_limit``)
    and the labels of the info series; tenant families always count every object.
    """

    def __init__(self, *, gotk_compat: bool = False, options: RenderOptions | None = None) -> None:
        """``gotk_compat`` adds ``gotk_resource_info`` (Flux's kube-state-metrics label set)."""
        self.options = options = options or RenderOptions(gotk_compat=gotk_compat)
        self.gotk_compat = options.gotk_compat
        objects = options.detail != "tenants"
        self._object_index = tuple(i for i, f in enumerate(OBJECT_FAMILIES) if objects and options.enabled(f))
        self._gotk = objects and options.gotk_compat and options.enabled(GOTK_INFO)
        self._families = tuple(OBJECT_FAMILIES[i] for i in self._object_index) + ((GOTK_INFO,) if self._gotk else ())
        self._tenant_families = [(i, f) for i, f in enumerate(TENANT_FAMILIES) if options.enabled(f)]
        #: the enabled per-tenant families (indexes into a tenant's chunks), in output order
        self._per_tenant = [i for i, _ in self._tenant_families if i < len(PER_TENANT)]
        self._headers = [family.header() for family in self._families]
        self._info_keep = tuple(label for label in INFO_LABELS if label not in options.drop_info_labels)
        self._label_names = tuple((key, resource_label_name(key)) for key in options.resource_labels)
        self._plain_info = not options.drop_info_labels and not options.resource_labels
        self._empty = (b"",) * len(self._families)
        self._blocks: list[_Block] = []
        self._serial = -1
        self._tenants: dict[str, tuple[TenantView, TenantTotals, tuple[bytes, ...]]] = {}
        #: the object families' part of the output (headers and block texts), kept between renders and patched
        #: where a block's text changed in place; None when blocks were added, removed or split
        self._object_parts: list[bytes] | None = None
        #: the per-tenant families' part (headers and one chunk per tenant), with each tenant's row, likewise
        self._tenant_parts: list[bytes] | None = None
        self._tenant_rows: dict[str, int] = {}
        self.rendered_objects = 0
        self.rendered_tenants = 0  # tenants whose samples were formatted (not reused)
        #: objects left without per-object series by the object limit at the last render
        self.over_limit = 0

    def render(self, view: View, store: Store) -> Exposition:
        """The exposition of every object and tenant family for ``view``."""
        incremental = bool(self._blocks) and view.parent == self._serial and view.parent >= 0
        if not incremental:
            self._rebuild(view.resources)
            self._object_parts = None
        elif view.changed:
            self._apply(view)
        self._serial = view.serial
        if self.options.object_limit:  # which objects are shown can move with any change: assembled anew
            object_parts = self._assemble(self._limited())
        else:
            if self._object_parts is None:
                self._object_parts = self._assemble([block.parts for block in self._blocks])
            object_parts = self._object_parts
        tenant_parts = self._tenant_section(view, incremental=incremental)
        counters = render_counters(store)
        counter_parts: list[bytes] = []
        for index, family in self._tenant_families:
            if index >= len(PER_TENANT):
                counter_parts += (family.header(), counters[index - len(PER_TENANT)])
        return Exposition((*object_parts, *tenant_parts, *counter_parts))

    def _assemble(self, columns: list[list[bytes]]) -> list[bytes]:
        """Per object family its header, then its text from each block: ``len(columns) + 1`` parts per family."""
        parts: list[bytes] = []
        for index, header in enumerate(self._headers):
            parts.append(header)
            parts.extend(column[index] for column in columns)
        return parts

    def _limited(self) -> list[list[bytes]]:
        """Each block's text per family, up to ``object_limit`` shown objects."""
        limit = self.options.object_limit
        if not limit:
            self.over_limit = 0
            return [block.parts for block in self._blocks]
        columns: list[list[bytes]] = []
        shown = 0
        for block in self._blocks:
            if shown + block.shown <= limit:
                columns.append(block.parts)
            elif shown < limit:
                columns.append(block.first_shown(limit - shown))
            shown += block.shown
        self.over_limit = max(0, shown - limit)
        return columns

    def _render(self, res: ResourceView) -> tuple[bytes, ...]:
        if not self._families:
            return self._empty
        if self.options.detail == "failing" and not needs_attention(res):
            # gotk_resource_info is asked for by name, for Flux's own dashboards, which count every object
            return (*self._empty[:-1], render_gotk(res, self.options.drop_info_labels)) if self._gotk else self._empty
        self.rendered_objects += 1
        chunks = render_object(res)
        if not self._plain_info:
            chunks = (render_info(res, self._info_keep, self._label_names), *chunks[1:])
        if len(self._object_index) != len(OBJECT_FAMILIES):
            chunks = tuple(chunks[i] for i in self._object_index)
        return (*chunks, render_gotk(res, self.options.drop_info_labels)) if self._gotk else chunks

    def _rebuild(self, resources: Sequence[ResourceView]) -> None:
        """All blocks anew, reusing the text of objects whose view is equal to the one rendered before."""
        previous: dict[Key, tuple[ResourceView, tuple[bytes, ...]]] = {}
        for block in self._blocks:
            previous.update(zip(block.keys, zip(block.views, block.chunks(), strict=True), strict=True))
        blocks = []
        for start in range(0, len(resources), BLOCK):
            views = list(resources[start : start + BLOCK])
            chunks = []
            for res in views:
                old = previous.get(res.key)
                chunks.append(old[1] if old is not None and (old[0] is res or old[0] == res) else self._render(res))
            blocks.append(_Block(views, chunks, len(self._families)))
        self._blocks = blocks

    def _apply(self, view: View) -> None:
        """Re-render the changed objects and re-join the blocks holding them (adding or removing objects)."""
        current = {res.key: res for res in _changed_views(view)}
        firsts = [block.keys[0] for block in self._blocks]
        by_block: dict[int, list[Key]] = {}
        for key in view.changed:
            by_block.setdefault(max(0, bisect.bisect_right(firsts, key) - 1), []).append(key)
        replaced: dict[int, list[_Block]] = {}
        stride = len(self._blocks) + 1
        for index, keys in by_block.items():
            block = self._blocks[index]
            places = [block.position(key) for key in keys]
            if all(at >= 0 and key in current for key, at in zip(keys, places, strict=True)):
                # objects changed in place (the common case): patch the block's text and the assembled output
                for key, at in zip(keys, places, strict=True):
                    for family in block.replace(at, current[key], self._render(current[key])):
                        if self._object_parts is not None:
                            self._object_parts[family * stride + 1 + index] = block.parts[family]
                continue
            entries = dict(zip(block.keys, zip(block.views, block.chunks(), strict=True), strict=True))
            for key in keys:
                res = current.get(key)
                if res is None:
                    entries.pop(key, None)
                else:
                    entries[key] = (res, self._render(res))
            ordered = sorted(entries.items())
            replaced[index] = [
                _Block([v for _, (v, _) in ordered[i : i + BLOCK]], [c for _, (_, c) in ordered[i : i + BLOCK]],
                       len(self._families))
                for i in range(0, len(ordered), BLOCK)
            ]
        if replaced:
            blocks: list[_Block] = []
            for index, block in enumerate(self._blocks):
                blocks.extend(replaced.get(index, [block]))
            self._blocks = blocks
            self._object_parts = None

    def _tenant_section(self, view: View, *, incremental: bool) -> list[bytes]:
        """Per per-tenant family its header and each tenant's chunk; only changed tenants are rendered again."""
        parts = self._tenant_parts
        same_rows = not view.changed_tenants or view.tenants.keys() == self._tenant_rows.keys()
        if incremental and parts is not None and same_rows:  # patch the changed tenants' rows in place
            stride = len(self._tenant_rows) + 1
            for name in view.changed_tenants:
                cached = self._tenants[name]
                chunks = self._tenant_chunks(view.tenants[name], cached)
                if chunks is cached[2]:
                    continue
                row = self._tenant_rows[name]
                for column, index in enumerate(self._per_tenant):
                    parts[column * stride + 1 + row] = chunks[index]
            return parts
        previous, self._tenants = self._tenants, {}
        rows = [self._tenant_chunks(tenant, previous.get(name)) for name, tenant in view.tenants.items()]
        self._tenant_rows = {name: row for row, name in enumerate(view.tenants)}
        parts = []
        for index in self._per_tenant:
            parts.append(TENANT_FAMILIES[index].header())
            parts.extend(map(itemgetter(index), rows))
        self._tenant_parts = parts
        return parts

    def _tenant_chunks(
        self, tenant: TenantView, cached: tuple[TenantView, TenantTotals, tuple[bytes, ...]] | None
    ) -> tuple[bytes, ...]:
        """A tenant's chunks: the cached ones while its view is the same object or its totals are equal.

        A retried failure (a new revision, message or timestamp) derives a new TenantView with the same totals.
        """
        if cached is not None and cached[0] is tenant:
            self._tenants[tenant.name] = cached
            return cached[2]
        totals = tenant_totals(tenant)
        if cached is not None and cached[1] == totals:
            chunks = cached[2]
        else:
            chunks = render_tenant(totals)
            self.rendered_tenants += 1
        self._tenants[tenant.name] = (tenant, totals, chunks)
        return chunks


def _changed_views(view: View) -> list[ResourceView]:
    """The views of ``view.changed`` keys still present (a binary search each in the sorted resources)."""
    resources = view.resources
    found = []
    for key in view.changed:
        at = bisect.bisect_left(resources, key, key=attrgetter("key"))
        if at < len(resources) and resources[at].key == key:
            found.append(resources[at])
    return found


#: /metrics is written in pieces of about this size
WRITE_SIZE = 256 * 1024


class Exposition:
    """The rendered families of one publish as a list of byte strings (never joined whole), gzip on demand."""

    def __init__(self, parts: tuple[bytes, ...]) -> None:
        """``parts`` in output order."""
        self.parts = parts
        self._gzip: bytes | None = None

    @functools.cached_property
    def size(self) -> int:
        """The length of the text (counted on the first scrape: a publish that nobody reads costs nothing)."""
        return sum(map(len, self.parts))

    @property
    def body(self) -> bytes:
        """The whole text at once (tests, small fleets)."""
        return b"".join(self.parts)

    def pieces(self, size: int = WRITE_SIZE) -> Iterator[bytes]:
        """The text in pieces of about ``size`` bytes, for writing to a socket."""
        batch: list[bytes] = []
        held = 0
        for part in self.parts:
            batch.append(part)
            held += len(part)
            if held >= size:
                yield b"".join(batch)
                batch, held = [], 0
        if batch:
            yield b"".join(batch)

    def gzipped(self) -> bytes:
        """The text as one gzip member (concatenated members are a valid gzip stream)."""
        if self._gzip is None:
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
            self._gzip = b"".join([*map(compressor.compress, self.parts), compressor.flush()])
        return self._gzip

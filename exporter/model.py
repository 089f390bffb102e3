"""Parse raw API objects, at the boundary, into slim frozen records holding only the fields we use.

``wire`` decodes the JSON into typed structs (only the used fields); ``project`` turns one into a
``FluxObject``, sharing one instance of each repeated string (namespaces, reasons, messages, revisions).
Nothing past this module sees raw data. ``parse_object`` does both for an already-decoded value (a YAML
dump, a test) and raises ``MalformedObject`` with a clear message for anything it cannot read; the
watcher counts, logs and skips those.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, NamedTuple

import msgspec

from exporter import wire
from exporter.durations import parse_duration
from exporter.kinds import FLUX_KINDS, FluxKind, by_kind
from exporter.redact import redact
from exporter.vocabulary import ConditionStatus
from exporter.wire import MalformedObject

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
#: A Kustomization history entry's lastReconciledStatus after a successful reconcile.
KUSTOMIZATION_SUCCEEDED = "ReconciliationSucceeded"
#: Condition types kept: the kstatus trio plus the per-controller ones whose messages name a cause.
KEPT_CONDITIONS = frozenset(
    {
        "Ready", "Reconciling", "Stalled", "Healthy", "Released", "TestSuccess", "Remediated",
        "FetchFailed", "BuildFailed", "StorageOperationFailed", "SourceVerified", "IncludeUnavailable",
        "ArtifactInStorage",
    }
)
MAX_MESSAGE = 4096
#: kept in any state; the other kept types only when abnormal (a normal one, e.g. ArtifactInStorage=True on every
#: healthy source, says nothing the Ready condition does not, and the classifier never reads it)
KSTATUS = frozenset({"Ready", "Reconciling", "Stalled"})
#: the normal status of the abnormal-true condition types (the others are normal when True)
_NORMAL = {"FetchFailed": "False", "BuildFailed": "False", "StorageOperationFailed": "False",
           "IncludeUnavailable": "False"}


class Ref(NamedTuple):
    """A reference to a Flux object: equal to (and hashed as) the store's ``(kind, namespace, name)`` key."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        """``Kind/namespace/name``."""
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Condition:
    """One status condition."""

    type: str
    status: ConditionStatus
    reason: str
    message: str
    since: float | None
    observed_generation: int | None


@dataclass(frozen=True, slots=True)
class Inventory:
    """What we keep of a Kustomization inventory: its size, the cluster-scoped ids, the namespaces (sorted)."""

    size: int
    cluster_scoped: tuple[str, ...]
    namespaces: tuple[str, ...]


EMPTY_INVENTORY = Inventory(0, (), ())


@dataclass(frozen=True, slots=True)
class Health:
    """What an object's verdict is judged from, and nothing reads after classification.

    That is its conditions, and the times and the reconcile request they are judged by. The store classifies an
    object once, on write, and then keeps only the ``digest`` of its health, to tell an unchanged status from a
    changed one: the verdict says everything the health said.
    """

    conditions: tuple[Condition, ...]
    created: float | None
    requested_at: str | None
    last_handled_at: str | None
    timeout: float | None
    #: when the status itself says the current failure began: the Kustomization history entry of the manifests
    #: last reconciled (if that reconcile failed), or a HelmRelease's Released=False transition
    failing_since: float | None

    def condition(self, type_: str) -> Condition | None:
        """The condition of a type, or None."""
        for cond in self.conditions:
            if cond.type == type_:
                return cond
        return None

    def digest(self) -> bytes:
        """128 bits of every field: equal digests mean the same health."""
        return hashlib.blake2b(_HEALTH_ENCODER.encode(self), digest_size=16).digest()


_HEALTH_ENCODER = msgspec.msgpack.Encoder()


@dataclass(frozen=True, slots=True)
class FluxObject:
    """A Flux object projected to the fields the exporter uses."""

    #: kind, namespace and name; the store's key for the object
    ref: Ref
    api_version: str
    generation: int
    observed_generation: int | None
    suspended: bool
    source: Ref | None
    chart: Ref | None
    depends_on: tuple[Ref, ...]
    service_account: str | None
    target_namespace: str | None
    path: str | None
    chart_name: str | None
    url: str | None
    applied_revision: str | None
    attempted_revision: str | None
    artifact_revision: str | None
    artifact_updated: float | None
    last_deployed: float | None
    #: the Ready condition's lastTransitionTime
    ready_since: float | None
    inventory: Inventory
    #: the object's labels named by --resource-labels, in that order (absent ones left out)
    labels: tuple[tuple[str, str], ...] = ()
    #: what the verdict is judged from; None once stored (the store keeps its digest, and the verdict)
    health: Health | None = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        """The object's kind."""
        return self.ref.kind

    @property
    def namespace(self) -> str:
        """The object's namespace."""
        return self.ref.namespace

    @property
    def name(self) -> str:
        """The object's name."""
        return self.ref.name

    def to_store(self, ref: Ref, source: Ref | None, chart: Ref | None, depends_on: tuple[Ref, ...]) -> FluxObject:
        """The object as the store keeps it: without its health (its verdict says what the health said).

        The references equal the object's own; they are the instances the store already holds (its key, and the keys
        of the objects referenced, where stored), so one tuple stands for an object everywhere.
        """
        # positional: a third of what dataclasses.replace costs
        return FluxObject(*(ref, *_FIELDS_BEFORE_REFS(self), source, chart, depends_on, *_FIELDS_AFTER_REFS(self)))


_NAMES = [f.name for f in fields(FluxObject)]  # ref, ..., source, chart, depends_on, ..., health
_FIELDS_BEFORE_REFS = attrgetter(*_NAMES[1 : _NAMES.index("source")])
_FIELDS_AFTER_REFS = attrgetter(*_NAMES[_NAMES.index("depends_on") + 1 : _NAMES.index("health")])


@dataclass(frozen=True, slots=True)
class NamespaceInfo:
    """A namespace and its tenant label value (if any)."""

    name: str
    tenant_label: str | None


# -- helpers ------------------------------------------------------------------------------------


def parse_time(value: Any) -> float | None:
    """An RFC 3339 timestamp as epoch seconds; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def truncate(text: str, limit: int = 1024) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (ending in "..." when cut)."""
    if len(text) <= limit // 4:
        return text
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode(errors="ignore") + "..."


#: distinct strings kept for sharing; when exceeded (churn of unique revisions) the table starts again
_SHARED_LIMIT = 8192
_shared: dict[str, str] = {}


def share(text: str) -> str:
    """One instance per distinct string: namespaces, reasons, messages and revisions repeat across objects."""
    return _shared.setdefault(text, text)


_redacted: dict[str, str] = {}
#: characters held by the message cache (keys and redacted values); past MESSAGE_CACHE_CHARS both tables start again,
#: so churn of distinct messages (up to MAX_MESSAGE each) cannot hold more than a few MiB
MESSAGE_CACHE_CHARS = 2 * 1024 * 1024
_message_chars = [0]


def _message(text: str) -> str:
    """A condition message, redacted and truncated once per distinct text."""
    text = text[:MAX_MESSAGE]  # the key too: messages may be 32 KiB long
    found = _redacted.get(text)
    if found is None:
        found = _redacted[text] = share(redact(text))
        _message_chars[0] += len(text) + (len(found) if found is not text else 0)
    return found


#: distinct inventories kept for sharing (the Kustomizations of a namespace often apply the same shape)
_inventories: dict[Inventory, Inventory] = {}


def _bound_caches() -> None:
    """Start the sharing and message tables again when they hold too many strings or characters."""
    if (len(_shared) > _SHARED_LIMIT or len(_redacted) > _SHARED_LIMIT or len(_inventories) > _SHARED_LIMIT
            or _message_chars[0] > MESSAGE_CACHE_CHARS):
        _shared.clear()  # bounded: sharing restarts, nothing is lost
        _redacted.clear()
        _inventories.clear()
        _message_chars[0] = 0


def _share_opt(text: str | None) -> str | None:
    return _shared.setdefault(text, text) if text else None


def _ref(raw: wire.Reference | None, default_ns: str, default_kind: str | None = None) -> Ref | None:
    if raw is None:
        return None
    kind = raw.kind or default_kind
    if not raw.name or not kind:
        return None
    return Ref(share(kind), share(raw.namespace) if raw.namespace else default_ns, share(raw.name))


def _status(value: str | None) -> ConditionStatus:
    """A condition status; anything but True or False reads as Unknown (as kstatus does)."""
    return "True" if value == "True" else "False" if value == "False" else "Unknown"


def _conditions(raw: list[wire.Condition] | None) -> tuple[Condition, ...]:
    if not raw:
        return ()
    return tuple(
        Condition(
            type=share(cond.type),
            status=_status(cond.status),
            reason=share(cond.reason),
            message=_message(cond.message) if cond.message else "",
            since=parse_time(cond.lastTransitionTime),
            observed_generation=cond.observedGeneration,
        )
        for cond in raw
        if cond.type in KEPT_CONDITIONS and (cond.type in KSTATUS or cond.status != _NORMAL.get(cond.type, "True"))
    )


def _inventory(raw: wire.Inventory | None) -> Inventory:
    entries = raw.entries if raw is not None else None
    if not entries:
        return EMPTY_INVENTORY
    # Flux's object id: <namespace>_<name>_<group>_<kind>; cluster-scoped objects have no namespace.
    ids = [entry.id for entry in entries]
    namespaces = {object_id.partition("_")[0] for object_id in ids}
    cluster_scoped = tuple(
        share(object_id) for object_id in ids if object_id.startswith("_") and object_id.count("_") >= 3  # noqa: PLR2004
    ) if "" in namespaces else ()
    namespaces.discard("")
    inventory = Inventory(len(entries), cluster_scoped, tuple(sorted(map(share, namespaces))))
    return _inventories.setdefault(inventory, inventory)


# -- parsing ----------------------------------------------------------------------------------


def parse_namespace(raw: Any, label_key: str) -> NamespaceInfo:
    """A Namespace object (a decoded JSON value) with the value of ``label_key`` as its tenant label."""
    return project_namespace(wire.NAMESPACES.one(raw), label_key)


def _history(
    kind: FluxKind, status: wire.Status, conditions: tuple[Condition, ...]
) -> tuple[str | None, float | None, float | None]:
    """(applied revision, last deployed, failing since) from status.history and the Released condition."""
    applied = status.lastAppliedRevision or None
    last_deployed = failing_since = None
    if kind.kind == "HelmRelease":
        if status.history:
            latest = status.history[0]
            last_deployed = parse_time(latest.lastDeployed)
            if latest.status == "deployed":
                applied = latest.chartVersion or None
        released = next((c for c in conditions if c.type == "Released"), None)
        if released is not None and released.status == "False":
            failing_since = released.since  # Ready flips on every retry; Released keeps the first failure
    elif kind.kind == "Kustomization" and status.history:
        latest = status.history[0]  # newest first
        if latest.lastReconciledStatus and latest.lastReconciledStatus != KUSTOMIZATION_SUCCEEDED:
            failing_since = parse_time(latest.firstReconciled)
    return applied, last_deployed, failing_since


def project_namespace(raw: wire.Namespace, label_key: str) -> NamespaceInfo:
    """A decoded Namespace as NamespaceInfo."""
    name = raw.metadata.name
    if not name:
        raise MalformedObject("metadata.name is missing")
    labels = raw.metadata.labels
    return NamespaceInfo(share(name), _share_opt(labels.get(label_key)) if labels else None)


def parse_object(raw: Any, kind: FluxKind | None = None, *, keep_labels: tuple[str, ...] = ()) -> FluxObject:
    """Project one Flux API object (a decoded JSON value) to a FluxObject; MalformedObject if unreadable."""
    return project(wire.FLUX.one(raw), kind, keep_labels=keep_labels)


def project(raw: wire.FluxObject, kind: FluxKind | None = None, *, keep_labels: tuple[str, ...] = ()) -> FluxObject:
    """Project one decoded Flux object to a FluxObject; MalformedObject if it lacks what identifies it.

    ``keep_labels``: the label keys kept (``--resource-labels``); every other label is dropped here.
    """
    kind = kind or by_kind(raw.kind)
    if kind is None or kind not in FLUX_KINDS:
        msg = f"unsupported kind {raw.kind!r} (apiVersion {raw.apiVersion!r})"
        raise MalformedObject(msg)
    metadata = raw.metadata
    name, namespace = metadata.name, metadata.namespace
    if not name or not namespace:
        raise MalformedObject("metadata.name or metadata.namespace is missing")
    _bound_caches()
    namespace = share(namespace)
    spec = raw.spec or _EMPTY_SPEC
    status = raw.status or _EMPTY_STATUS
    artifact = status.artifact or _EMPTY_ARTIFACT

    source = chart = None
    chart_name = path = None
    if kind.kind == "Kustomization":
        source = _ref(spec.sourceRef, namespace)
        path = spec.path or None
    elif kind.kind == "HelmRelease":
        chart_ref = _ref(spec.chartRef, namespace)
        template = spec.chart.spec if isinstance(spec.chart, wire.HelmChartTemplate) else None
        if chart_ref is not None:
            chart = chart_ref
            source = chart_ref if chart_ref.kind != "HelmChart" else None
        elif template is not None:
            source = _ref(template.sourceRef, namespace)
            chart_name = template.chart or None
            # helm-controller names the HelmChart <release namespace>-<release name> in the source's namespace
            # and records it as status.helmChart "<namespace>/<name>".
            recorded = status.helmChart
            if recorded and "/" in recorded:
                chart_ns, chart_obj = recorded.split("/", 1)
                chart = Ref("HelmChart", share(chart_ns), chart_obj)
            elif source is not None:
                chart = Ref("HelmChart", source.namespace, f"{namespace}-{name}")
    elif kind.kind == "HelmChart":
        source = _ref(spec.sourceRef, namespace)
        chart_name = spec.chart if isinstance(spec.chart, str) and spec.chart else None

    depends_on = tuple(
        r for r in (_ref(d, namespace, default_kind=kind.kind) for d in spec.dependsOn or ()) if r is not None
    )
    conditions = _conditions(status.conditions)
    applied, last_deployed, failing_since = _history(kind, status, conditions)
    url = spec.url or spec.endpoint
    annotations = metadata.annotations
    ready = next((c for c in conditions if c.type == "Ready"), None)
    return FluxObject(
        ref=Ref(kind.kind, namespace, name),
        api_version=share(raw.apiVersion),
        generation=metadata.generation,
        observed_generation=status.observedGeneration,
        suspended=spec.suspend,
        source=source,
        chart=chart,
        depends_on=depends_on,
        service_account=_share_opt(spec.serviceAccountName),
        target_namespace=_share_opt(spec.targetNamespace),
        path=_share_opt(path),
        chart_name=_share_opt(chart_name),
        url=share(redact(url)) if url else None,
        applied_revision=_share_opt(applied),
        attempted_revision=_share_opt(status.lastAttemptedRevision),
        artifact_revision=_share_opt(artifact.revision),
        artifact_updated=parse_time(artifact.lastUpdateTime),
        last_deployed=last_deployed,
        ready_since=ready.since if ready is not None else None,
        inventory=_inventory(status.inventory) if kind.kind == "Kustomization" else EMPTY_INVENTORY,
        labels=_kept_labels(metadata.labels, keep_labels),
        health=Health(
            conditions=conditions,
            created=parse_time(metadata.creationTimestamp),
            requested_at=_share_opt(annotations.get(REQUESTED_AT)) if annotations else None,
            last_handled_at=_share_opt(status.lastHandledReconcileAt),
            timeout=parse_duration(spec.timeout),
            failing_since=failing_since,
        ),
    )


def _kept_labels(labels: dict[str, str] | None, keep: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if not keep or not labels:
        return ()
    return tuple((key, share(labels[key])) for key in keep if key in labels)


_EMPTY_SPEC = wire.Spec()
_EMPTY_STATUS = wire.Status()
_EMPTY_ARTIFACT = wire.Artifact()

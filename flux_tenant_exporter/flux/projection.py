"""Project decoded API objects, at the boundary, into the slim records of ``flux.model``.

``project`` turns one ``schema.RawFluxObject`` into a ``FluxObject``, sharing one instance of each repeated string
through the caller's ``Interner``; ``parse_object`` decodes an already-decoded value (a YAML dump, a test) first.
Both raise ``MalformedObject`` with a clear message for what they cannot read; the sinks count, log and skip those.
"""

from __future__ import annotations

from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any, Final

from flux_tenant_exporter.base.durations import parse_duration
from flux_tenant_exporter.base.kinds import WatchedKind, by_kind
from flux_tenant_exporter.base.timefmt import parse_time
from flux_tenant_exporter.base.vocabulary import ConditionStatus
from flux_tenant_exporter.flux import schema
from flux_tenant_exporter.flux.interning import Interner
from flux_tenant_exporter.flux.kindspecs import GENERIC, spec_of
from flux_tenant_exporter.flux.model import (
    EMPTY_INVENTORY,
    Condition,
    Inventory,
    NamespaceInfo,
    Observed,
    Ref,
    Signals,
)
from flux_tenant_exporter.kube.codec import NAMESPACES, MalformedObject, RawNamespace

REQUESTED_AT: Final = "reconcile.fluxcd.io/requestedAt"
#: A history entry's lastReconciledStatus after a successful reconcile (kustomize-controller, flux-operator).
_SUCCEEDED: Final = frozenset({"ReconciliationSucceeded"})
#: The kinds whose status.history holds reconciliations per manifest digest (a Kustomization's, and flux-operator's
#: FluxInstance and ResourceSet, of the same shape).
_SNAPSHOT_HISTORIES: Final = frozenset({"Kustomization", "FluxInstance", "ResourceSet"})
#: The kinds whose status.inventory lists what they applied.
_INVENTORIES: Final = frozenset({"Kustomization", "ResourceSet"})
#: The value of a suspend annotation (flux-operator's, source-watcher's) that suspends the object.
SUSPENDED_ANNOTATION: Final = "disabled"
#: The label flux-operator puts on what a ResourceSet applies: the ResourceSet's namespace.
RESOURCESET_NAMESPACE: Final = "resourceset.fluxcd.controlplane.io/namespace"
#: Condition types kept: the kstatus trio plus the per-controller ones whose messages name a cause.
KEPT_CONDITIONS: Final = frozenset(
    {
        "Ready", "Reconciling", "Stalled", "Healthy", "Released", "TestSuccess", "Remediated",
        "FetchFailed", "BuildFailed", "StorageOperationFailed", "SourceVerified", "IncludeUnavailable",
        "ArtifactInStorage",
    }
)
#: kept in any state; the other kept types only when abnormal (a normal one, e.g. ArtifactInStorage=True on every
#: healthy source, says nothing the Ready condition does not, and the classifier never reads it)
KSTATUS: Final = frozenset({"Ready", "Reconciling", "Stalled"})
#: the normal status of the abnormal-true condition types (the others are normal when True)
_NORMAL: Final = {"FetchFailed": "False", "BuildFailed": "False", "StorageOperationFailed": "False",
                  "IncludeUnavailable": "False"}
_ID: Final = attrgetter("id")
_FIRST: Final = itemgetter(0)
_EMPTY_SPEC: Final = schema.RawSpec()
_EMPTY_STATUS: Final = schema.RawStatus()


def _status(value: str | None) -> ConditionStatus:
    """A condition status; anything but True or False reads as Unknown (as kstatus does)."""
    return "True" if value == "True" else "False" if value == "False" else "Unknown"


class Projector:
    """Projects decoded objects with one ``Interner`` (so every record shares its strings with the others)."""

    def __init__(self, interner: Interner | None = None, *, keep_labels: tuple[str, ...] = ()) -> None:
        """Share through ``interner`` (a new one if None); keep the object labels named in ``keep_labels``."""
        self.interner = interner if interner is not None else Interner()
        self.keep_labels = keep_labels

    def _ref(self, raw: schema.RawReference | None, default_ns: str, default_kind: str | None = None) -> Ref | None:
        if raw is None:
            return None
        kind = raw.kind or default_kind
        if not raw.name or not kind:
            return None
        share = self.interner.share
        return Ref(share(kind), share(raw.namespace) if raw.namespace else default_ns, share(raw.name))

    def _conditions(self, raw: list[schema.RawCondition] | None) -> tuple[Condition, ...]:
        if not raw:
            return ()
        share, message = self.interner.share, self.interner.message
        return tuple(
            Condition(  # type, status, reason, message, since, observed generation (positional: faster)
                share(cond.type),
                _status(cond.status),
                share(cond.reason),
                message(cond.message) if cond.message else "",
                parse_time(cond.lastTransitionTime),
                cond.observedGeneration,
            )
            for cond in raw
            if cond.type in KEPT_CONDITIONS and (cond.type in KSTATUS or cond.status != _NORMAL.get(cond.type, "True"))
        )

    def _inventory(self, raw: schema.RawInventory | list[schema.RawGenerated] | None) -> Inventory:
        entries = raw.entries if isinstance(raw, schema.RawInventory) else None
        if not entries:
            return EMPTY_INVENTORY
        share = self.interner.share
        # Flux's object id: <namespace>_<name>_<group>_<kind>; cluster-scoped objects have no namespace. A
        # Kustomization lists hundreds: the namespaces are split off in C (map), not in a Python loop.
        ids = list(map(_ID, entries))
        namespaces = set(map(_FIRST, map(str.partition, ids, repeat("_"))))
        cluster_scoped = tuple(
            share(object_id) for object_id in ids if object_id.startswith("_") and object_id.count("_") >= 3  # noqa: PLR2004
        ) if "" in namespaces else ()
        namespaces.discard("")
        return self.interner.inventory(Inventory(len(entries), cluster_scoped, tuple(sorted(map(share, namespaces)))))

    def namespace(self, raw: RawNamespace, label_key: str) -> NamespaceInfo:
        """A decoded Namespace as NamespaceInfo, with the value of ``label_key`` as its tenant label."""
        name = raw.metadata.name
        if not name:
            raise MalformedObject("metadata.name is missing")
        labels = raw.metadata.labels
        return NamespaceInfo(self.interner.share(name),
                             self.interner.share_opt(labels.get(label_key)) if labels else None)

    def project(self, raw: schema.RawFluxObject, kind: WatchedKind | None = None) -> Observed:
        """Project one decoded Flux object to a FluxObject; MalformedObject if it lacks what identifies it.

        ``kind``: the watched kind the object came from (a kind found by discovery included); when None, the
        object's own kind must be a known one.
        """
        kind = kind or by_kind(raw.kind)
        if kind is None or kind.role == "tenancy":
            msg = f"unsupported kind {raw.kind!r} (apiVersion {raw.apiVersion!r})"
            raise MalformedObject(msg)
        metadata = raw.metadata
        name, namespace = metadata.name, metadata.namespace
        if not name or not namespace:
            raise MalformedObject("metadata.name or metadata.namespace is missing")
        interner = self.interner
        interner.bound()
        share, share_opt = interner.share, interner.share_opt
        namespace = share(namespace)
        spec = raw.spec or _EMPTY_SPEC
        status = raw.status or _EMPTY_STATUS
        knowledge = spec_of(kind.kind) if kind.known else GENERIC
        refs = knowledge.refs(spec, status, namespace, name, self._ref)
        revisions = knowledge.revisions(status)
        created = parse_time(metadata.creationTimestamp)
        conditions = self._conditions(status.conditions)
        if knowledge.derived_status is not None and not conditions:
            conditions = (knowledge.derived_status(spec, created),)
        last_deployed, failing_since = _history(kind, status, conditions)
        url = knowledge.address(spec)
        annotations = metadata.annotations
        ready = next((c for c in conditions if c.type == "Ready"), None)
        observed = status.observedGeneration
        if observed is None and ready is not None:
            observed = ready.observed_generation  # flux-operator's and source-watcher's kinds keep it there
        suspended = spec.suspend or bool(
            knowledge.suspend_annotation and annotations
            and annotations.get(knowledge.suspend_annotation) == SUSPENDED_ANNOTATION)
        labels = metadata.labels
        path = knowledge.path(spec, status)
        return Observed(
            ref=Ref(share(kind.kind), namespace, name),
            api_version=share(raw.apiVersion),
            generation=metadata.generation,
            observed_generation=observed,
            suspended=suspended,
            source=refs.source,
            chart=refs.chart,
            depends_on=refs.depends_on,
            service_account=share_opt(spec.serviceAccountName),
            target_namespace=share_opt(spec.targetNamespace),
            path=share_opt(path),
            chart_name=share_opt(refs.chart_name),
            url=interner.redacted(url) if url else None,
            applied_revision=share_opt(revisions.applied),
            attempted_revision=share_opt(revisions.attempted),
            artifact_revision=share_opt(revisions.artifact),
            artifact_updated=revisions.artifact_updated,
            last_deployed=last_deployed,
            ready_since=ready.since if ready is not None else None,
            inventory=self._inventory(status.inventory) if kind.kind in _INVENTORIES else EMPTY_INVENTORY,
            labels=self._kept_labels(labels),
            managed_in=share_opt(labels.get(RESOURCESET_NAMESPACE)) if labels else None,
            signals=Signals(
                conditions=conditions,
                created=created,
                requested_at=share_opt(annotations.get(REQUESTED_AT)) if annotations else None,
                last_handled_at=share_opt(status.lastHandledReconcileAt),
                timeout=parse_duration(spec.timeout),
                failing_since=failing_since,
            ),
        )

    def _kept_labels(self, labels: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
        keep = self.keep_labels
        if not keep or not labels:
            return ()
        return tuple((key, self.interner.share(labels[key])) for key in keep if key in labels)


def _history(
    kind: WatchedKind, status: schema.RawStatus, conditions: tuple[Condition, ...]
) -> tuple[float | None, float | None]:
    """(last deployed, failing since) from status.history and the Released condition."""
    last_deployed = failing_since = None
    if kind.kind == "HelmRelease":
        if status.history:
            last_deployed = parse_time(status.history[0].lastDeployed)
        released = next((c for c in conditions if c.type == "Released"), None)
        if released is not None and released.status == "False":
            failing_since = released.since  # Ready flips on every retry; Released keeps the first failure
    elif kind.kind in _SNAPSHOT_HISTORIES and status.history:
        latest = status.history[0]  # newest first
        if latest.lastReconciledStatus and latest.lastReconciledStatus not in _SUCCEEDED:
            failing_since = parse_time(latest.firstReconciled)
    return last_deployed, failing_since


def parse_object(raw: Any, kind: WatchedKind | None = None, *, projector: Projector | None = None) -> Observed:
    """Decode and project one Flux API object (a decoded JSON value, or JSON); MalformedObject if unreadable."""
    return (projector if projector is not None else Projector()).project(schema.FLUX.one(raw), kind)


def parse_namespace(raw: Any, label_key: str, *, projector: Projector | None = None) -> NamespaceInfo:
    """A Namespace object (a decoded JSON value, or JSON) with the value of ``label_key`` as its tenant label."""
    return (projector if projector is not None else Projector()).namespace(NAMESPACES.one(raw), label_key)

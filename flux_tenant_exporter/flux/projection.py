"""Project decoded API objects, at the boundary, into the slim records of ``flux.model``.

``project`` turns one ``schema.RawFluxObject`` into a ``FluxObject``, sharing one instance of each repeated string
through the caller's ``Interner``; ``parse_object`` decodes an already-decoded value (a YAML dump, a test) first.
Both raise ``MalformedObject`` with a clear message for what they cannot read; the sinks count, log and skip those.
"""

from __future__ import annotations

from typing import Any, Final

from flux_tenant_exporter.base.durations import parse_duration
from flux_tenant_exporter.base.kinds import FLUX_KINDS, WatchedKind, by_kind
from flux_tenant_exporter.base.timefmt import parse_time
from flux_tenant_exporter.base.vocabulary import ConditionStatus
from flux_tenant_exporter.flux import schema
from flux_tenant_exporter.flux.interning import Interner
from flux_tenant_exporter.flux.model import (
    EMPTY_INVENTORY,
    Condition,
    FluxObject,
    Inventory,
    NamespaceInfo,
    Ref,
    Signals,
)
from flux_tenant_exporter.kube.codec import NAMESPACES, MalformedObject, RawNamespace

REQUESTED_AT: Final = "reconcile.fluxcd.io/requestedAt"
#: A Kustomization history entry's lastReconciledStatus after a successful reconcile.
KUSTOMIZATION_SUCCEEDED: Final = "ReconciliationSucceeded"
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
_EMPTY_SPEC: Final = schema.RawSpec()
_EMPTY_STATUS: Final = schema.RawStatus()
_EMPTY_ARTIFACT: Final = schema.RawArtifact()


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
            Condition(
                type=share(cond.type),
                status=_status(cond.status),
                reason=share(cond.reason),
                message=message(cond.message) if cond.message else "",
                since=parse_time(cond.lastTransitionTime),
                observed_generation=cond.observedGeneration,
            )
            for cond in raw
            if cond.type in KEPT_CONDITIONS and (cond.type in KSTATUS or cond.status != _NORMAL.get(cond.type, "True"))
        )

    def _inventory(self, raw: schema.RawInventory | None) -> Inventory:
        entries = raw.entries if raw is not None else None
        if not entries:
            return EMPTY_INVENTORY
        share = self.interner.share
        # Flux's object id: <namespace>_<name>_<group>_<kind>; cluster-scoped objects have no namespace.
        ids = [entry.id for entry in entries]
        namespaces = {object_id.partition("_")[0] for object_id in ids}
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

    def project(self, raw: schema.RawFluxObject, kind: WatchedKind | None = None) -> FluxObject:
        """Project one decoded Flux object to a FluxObject; MalformedObject if it lacks what identifies it."""
        kind = kind or by_kind(raw.kind)
        if kind is None or kind not in FLUX_KINDS:
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
        artifact = status.artifact or _EMPTY_ARTIFACT

        source = chart = None
        chart_name = path = None
        if kind.kind == "Kustomization":
            source = self._ref(spec.sourceRef, namespace)
            path = spec.path or None
        elif kind.kind == "HelmRelease":
            chart_ref = self._ref(spec.chartRef, namespace)
            template = spec.chart.spec if isinstance(spec.chart, schema.RawHelmChartTemplate) else None
            if chart_ref is not None:
                chart = chart_ref
                source = chart_ref if chart_ref.kind != "HelmChart" else None
            elif template is not None:
                source = self._ref(template.sourceRef, namespace)
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
            source = self._ref(spec.sourceRef, namespace)
            chart_name = spec.chart if isinstance(spec.chart, str) and spec.chart else None

        depends_on = tuple(
            r for r in (self._ref(d, namespace, default_kind=kind.kind) for d in spec.dependsOn or ()) if r is not None
        )
        conditions = self._conditions(status.conditions)
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
            service_account=share_opt(spec.serviceAccountName),
            target_namespace=share_opt(spec.targetNamespace),
            path=share_opt(path),
            chart_name=share_opt(chart_name),
            url=interner.redacted(url) if url else None,
            applied_revision=share_opt(applied),
            attempted_revision=share_opt(status.lastAttemptedRevision),
            artifact_revision=share_opt(artifact.revision),
            artifact_updated=parse_time(artifact.lastUpdateTime),
            last_deployed=last_deployed,
            ready_since=ready.since if ready is not None else None,
            inventory=self._inventory(status.inventory) if kind.kind == "Kustomization" else EMPTY_INVENTORY,
            labels=self._kept_labels(metadata.labels),
            signals=Signals(
                conditions=conditions,
                created=parse_time(metadata.creationTimestamp),
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


def parse_object(raw: Any, kind: WatchedKind | None = None, *, projector: Projector | None = None) -> FluxObject:
    """Decode and project one Flux API object (a decoded JSON value, or JSON); MalformedObject if unreadable."""
    return (projector if projector is not None else Projector()).project(schema.FLUX.one(raw), kind)


def parse_namespace(raw: Any, label_key: str, *, projector: Projector | None = None) -> NamespaceInfo:
    """A Namespace object (a decoded JSON value, or JSON) with the value of ``label_key`` as its tenant label."""
    return (projector if projector is not None else Projector()).namespace(NAMESPACES.one(raw), label_key)

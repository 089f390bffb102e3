"""Parse raw API objects, at the boundary, into slim frozen records holding only the fields we use.

Nothing past this module indexes raw dicts. ``parse_object`` raises ``MalformedObject`` with a clear
message for anything it cannot read; the watcher counts, logs and skips those.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from exporter.kinds import FLUX_KINDS, FluxKind, by_kind

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
#: Condition types kept: the kstatus trio plus the per-controller ones whose messages name a cause.
KEPT_CONDITIONS = frozenset(
    {
        "Ready", "Reconciling", "Stalled", "Healthy", "Released", "TestSuccess", "Remediated",
        "FetchFailed", "BuildFailed", "StorageOperationFailed", "SourceVerified", "IncludeUnavailable",
        "ArtifactInStorage",
    }
)
MAX_MESSAGE = 4096
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_TOKEN_LIKE = re.compile(r"(?i)(token|password|passwd|secret|authorization)([=:]\s*)(\S+)")


class MalformedObject(ValueError):  # noqa: N818 - reads as what it is
    """An API object that cannot be read; the message says which field is wrong."""


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to a Flux object."""

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
    status: str
    reason: str
    message: str
    since: float | None
    observed_generation: int | None


@dataclass(frozen=True, slots=True)
class Inventory:
    """What we keep of a Kustomization inventory: its size, the cluster-scoped ids, the namespaces."""

    size: int
    cluster_scoped: tuple[str, ...]
    namespaces: frozenset[str]


EMPTY_INVENTORY = Inventory(0, (), frozenset())


@dataclass(frozen=True, slots=True)
class FluxObject:
    """A Flux object projected to the fields the exporter uses."""

    kind: str
    api_version: str
    namespace: str
    name: str
    uid: str
    created: float | None
    generation: int
    observed_generation: int | None
    suspended: bool
    conditions: tuple[Condition, ...]
    requested_at: str | None
    last_handled_at: str | None
    timeout: float | None
    interval: float | None
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
    inventory: Inventory

    @property
    def ref(self) -> Ref:
        """The object's reference."""
        return Ref(self.kind, self.namespace, self.name)

    def condition(self, type_: str) -> Condition | None:
        """The condition of a type, or None."""
        for cond in self.conditions:
            if cond.type == type_:
                return cond
        return None


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


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float | None:
    """A Go duration (``5m``, ``1h30m``, ``500ms``) in seconds; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


_SECRET_WORDS = ("token", "passw", "secret", "authorization")


def redact(text: str) -> str:
    """Remove credentials from URLs (``https://user:pw@host`` -> ``https://***@host``) and token-like pairs."""
    if "@" in text and "://" in text:
        text = _CREDENTIALS.sub(r"\g<scheme>***@", text)
    lowered = text.lower()
    if any(word in lowered for word in _SECRET_WORDS):
        text = _TOKEN_LIKE.sub(r"\1\2***", text)
    return text


def truncate(text: str, limit: int = 1024) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (ending in "..." when cut)."""
    if len(text) <= limit // 4:
        return text
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode(errors="ignore") + "..."


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        msg = f"{where} is a {type(value).__name__}, not an object"
        raise MalformedObject(msg)
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        msg = f"{where} is a {type(value).__name__}, not a list"
        raise MalformedObject(msg)
    return value


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ref(raw: Any, default_ns: str, where: str, default_kind: str | None = None) -> Ref | None:
    if raw is None:
        return None
    data = _dict(raw, where)
    name = _str(data.get("name"))
    kind = _str(data.get("kind")) or default_kind
    if not name or not kind:
        return None
    return Ref(kind, _str(data.get("namespace")) or default_ns, name)


def _conditions(raw: Any) -> tuple[Condition, ...]:
    out = []
    for item in _list(raw, "status.conditions"):
        cond = _dict(item, "status.conditions[]")
        type_ = _str(cond.get("type"))
        if type_ not in KEPT_CONDITIONS:
            continue
        message = cond.get("message")
        out.append(
            Condition(
                type=type_,
                status=_str(cond.get("status")) or "Unknown",
                reason=_str(cond.get("reason")) or "",
                message=redact(message[:MAX_MESSAGE]) if isinstance(message, str) else "",
                since=parse_time(cond.get("lastTransitionTime")),
                observed_generation=_int(cond.get("observedGeneration")),
            )
        )
    return tuple(out)


def _inventory(raw: Any) -> Inventory:
    entries = _list(_dict(raw, "status.inventory").get("entries"), "status.inventory.entries")
    if not entries:
        return EMPTY_INVENTORY
    cluster_scoped: list[str] = []
    namespaces: set[str] = set()
    for entry in entries:
        object_id = _str(_dict(entry, "status.inventory.entries[]").get("id")) or ""
        # Flux's object id: <namespace>_<name>_<group>_<kind>; cluster-scoped objects have no namespace.
        ns = object_id.split("_", 1)[0]
        if ns:
            namespaces.add(ns)
        elif object_id.count("_") >= 3:  # noqa: PLR2004
            cluster_scoped.append(object_id)
    return Inventory(len(entries), tuple(cluster_scoped), frozenset(namespaces))


# -- parsing ----------------------------------------------------------------------------------


def parse_namespace(raw: Any, label_key: str) -> NamespaceInfo:
    """A Namespace object with the value of ``label_key`` as its tenant label."""
    metadata = _dict(_dict(raw, "object").get("metadata"), "metadata")
    name = _str(metadata.get("name"))
    if not name:
        raise MalformedObject("metadata.name is missing")
    labels = _dict(metadata.get("labels"), "metadata.labels")
    return NamespaceInfo(name, _str(labels.get(label_key)))


def parse_object(raw: Any, kind: FluxKind | None = None) -> FluxObject:
    """Project one Flux API object (a decoded JSON dict) to a FluxObject; MalformedObject if unreadable."""
    obj = _dict(raw, "object")
    kind = kind or by_kind(_str(obj.get("kind")) or "")
    if kind is None or kind not in FLUX_KINDS:
        msg = f"unsupported kind {obj.get('kind')!r} (apiVersion {obj.get('apiVersion')!r})"
        raise MalformedObject(msg)
    metadata = _dict(obj.get("metadata"), "metadata")
    name, namespace = _str(metadata.get("name")), _str(metadata.get("namespace"))
    if not name or not namespace:
        raise MalformedObject("metadata.name or metadata.namespace is missing")
    spec = _dict(obj.get("spec"), "spec")
    status = _dict(obj.get("status"), "status")
    annotations = _dict(metadata.get("annotations"), "metadata.annotations")
    artifact = _dict(status.get("artifact"), "status.artifact")

    source = chart = None
    chart_name = path = None
    if kind.kind == "Kustomization":
        source = _ref(spec.get("sourceRef"), namespace, "spec.sourceRef")
        path = _str(spec.get("path"))
    elif kind.kind == "HelmRelease":
        chart_ref = _ref(spec.get("chartRef"), namespace, "spec.chartRef")
        template = _dict(_dict(spec.get("chart"), "spec.chart").get("spec"), "spec.chart.spec")
        if chart_ref is not None:
            chart = chart_ref
            source = chart_ref if chart_ref.kind != "HelmChart" else None
        elif template:
            source = _ref(template.get("sourceRef"), namespace, "spec.chart.spec.sourceRef")
            chart_name = _str(template.get("chart"))
            # helm-controller names the HelmChart <release namespace>-<release name> in the source's namespace
            # and records it as status.helmChart "<namespace>/<name>".
            recorded = _str(status.get("helmChart"))
            if recorded and "/" in recorded:
                chart_ns, chart_obj = recorded.split("/", 1)
                chart = Ref("HelmChart", chart_ns, chart_obj)
            elif source is not None:
                chart = Ref("HelmChart", source.namespace, f"{namespace}-{name}")
    elif kind.kind == "HelmChart":
        source = _ref(spec.get("sourceRef"), namespace, "spec.sourceRef")
        chart_name = _str(spec.get("chart"))

    depends_on = tuple(
        r
        for r in (
            _ref(d, namespace, "spec.dependsOn[]", default_kind=kind.kind)
            for d in _list(spec.get("dependsOn"), "spec.dependsOn")
        )
        if r is not None
    )
    history = _list(status.get("history"), "status.history")
    last_deployed = None
    applied = _str(status.get("lastAppliedRevision"))
    if kind.kind == "HelmRelease" and history:
        latest = _dict(history[0], "status.history[]")
        last_deployed = parse_time(latest.get("lastDeployed"))
        if _str(latest.get("status")) == "deployed":
            applied = _str(latest.get("chartVersion"))
    url = _str(spec.get("url")) or _str(spec.get("endpoint"))
    return FluxObject(
        kind=kind.kind,
        api_version=_str(obj.get("apiVersion")) or "",
        namespace=namespace,
        name=name,
        uid=_str(metadata.get("uid")) or "",
        created=parse_time(metadata.get("creationTimestamp")),
        generation=_int(metadata.get("generation")) or 0,
        observed_generation=_int(status.get("observedGeneration")),
        suspended=spec.get("suspend") is True,
        conditions=_conditions(status.get("conditions")),
        requested_at=_str(annotations.get(REQUESTED_AT)),
        last_handled_at=_str(status.get("lastHandledReconcileAt")),
        timeout=parse_duration(spec.get("timeout")),
        interval=parse_duration(spec.get("interval")),
        source=source,
        chart=chart,
        depends_on=depends_on,
        service_account=_str(spec.get("serviceAccountName")),
        target_namespace=_str(spec.get("targetNamespace")),
        path=path,
        chart_name=chart_name,
        url=redact(url) if url else None,
        applied_revision=applied,
        attempted_revision=_str(status.get("lastAttemptedRevision")),
        artifact_revision=_str(artifact.get("revision")),
        artifact_updated=parse_time(artifact.get("lastUpdateTime")),
        last_deployed=last_deployed,
        inventory=_inventory(status.get("inventory")) if kind.kind == "Kustomization" else EMPTY_INVENTORY,
    )

"""Where a reflector puts what it reads: a sink decodes and projects list pages and events into the store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import structlog

from flux_tenant_exporter.base.kinds import WatchedKind
from flux_tenant_exporter.flux import schema
from flux_tenant_exporter.flux.model import NamespaceInfo, Observed
from flux_tenant_exporter.flux.projection import Projector
from flux_tenant_exporter.kube import codec
from flux_tenant_exporter.kube.codec import MalformedObject
from flux_tenant_exporter.state.store import Key, Store

if TYPE_CHECKING:
    import msgspec

log = structlog.get_logger("flux_tenant_exporter.ingest")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
_W = TypeVar("_W", schema.RawFluxObject, codec.RawNamespace)


@dataclass(frozen=True, slots=True)
class ParsedPage(Generic[R_co]):
    """One list page, decoded and projected at once (raw pages are not kept)."""

    records: Sequence[R_co]
    #: items that could not be read (each logged)
    malformed: int
    resource_version: str
    continue_token: str


class Sink(Protocol[R]):
    """Where a reflector puts what it reads."""

    def parse(self, body: bytes) -> ParsedPage[R]:
        """Decode and project one list page; raises MalformedObject if the page itself is unreadable."""

    def replace(self, namespace: str | None, records: Sequence[R]) -> None:
        """Replace the scope's contents with ``records`` (``start``, ``add`` and ``finish`` at once)."""

    def start(self, namespace: str | None) -> None:
        """A list of the scope begins (again)."""

    def add(self, namespace: str | None, records: Sequence[R]) -> None:
        """One page of the scope's list: stored now, so work on it overlaps the next page's request."""

    def finish(self, namespace: str | None) -> None:
        """The list is complete: forget what it did not return."""

    def apply(self, event_type: str, raw: msgspec.Raw) -> str:
        """Apply one ADDED/MODIFIED/DELETED event; returns the object's resourceVersion.

        Raises MalformedObject if the object is unreadable.
        """


class FluxSink:
    """Parses Flux objects of one kind into the store."""

    def __init__(self, kind: WatchedKind, store: Store, projector: Projector) -> None:
        """For ``kind``; ``projector`` shares strings with every other sink's records."""
        self.kind = kind
        self.store = store
        self.projector = projector
        self._listed: dict[str | None, set[Key]] = {}

    def parse(self, body: bytes) -> ParsedPage[Observed]:
        """Flux objects of this kind; malformed ones are skipped and logged."""
        kind, project = self.kind, self.projector.project
        return _parse_page(schema.FLUX, body, lambda item: project(item, kind), kind.kind)

    def replace(self, namespace: str | None, records: Sequence[Observed]) -> None:
        """Replace the kind's objects (in ``namespace``, or all)."""
        self.store.replace(self.kind.kind, namespace, records)

    def start(self, namespace: str | None) -> None:
        """Begin a list of ``namespace`` (or all)."""
        self._listed[namespace] = set()

    def add(self, namespace: str | None, records: Sequence[Observed]) -> None:
        """Upsert one page."""
        listed = self._listed.setdefault(namespace, set())
        for obj in records:
            self.store.upsert(obj)
            listed.add(obj.ref)

    def finish(self, namespace: str | None) -> None:
        """Forget the kind's objects the list did not return."""
        self.store.retain(self.kind.kind, namespace, self._listed.pop(namespace, set()))

    def apply(self, event_type: str, raw: msgspec.Raw) -> str:
        """Upsert or delete."""
        if event_type == "DELETED":
            meta = codec.identity(raw)
            self.store.delete(self.kind.kind, meta.namespace, meta.name)
            return meta.resourceVersion
        decoded = schema.FLUX.one(raw)
        self.store.upsert(self.projector.project(decoded, self.kind))
        return decoded.metadata.resourceVersion


class NamespaceSink:
    """Parses Namespaces (their tenant label) into the store."""

    def __init__(self, store: Store, label_key: str, projector: Projector) -> None:
        """``label_key`` names the tenant label."""
        self.store = store
        self.label_key = label_key
        self.projector = projector
        self._listed: list[NamespaceInfo] = []

    def parse(self, body: bytes) -> ParsedPage[NamespaceInfo]:
        """Namespaces with their tenant label; malformed ones are skipped and logged."""
        label, project = self.label_key, self.projector.namespace
        return _parse_page(codec.NAMESPACES, body, lambda item: project(item, label), "Namespace")

    def replace(self, namespace: str | None, records: Sequence[NamespaceInfo]) -> None:  # noqa: ARG002
        """Replace all namespaces (they are cluster-scoped)."""
        self.store.replace_namespaces(records)

    def start(self, namespace: str | None) -> None:  # noqa: ARG002
        """Begin a list of all namespaces."""
        self._listed = []

    def add(self, namespace: str | None, records: Sequence[NamespaceInfo]) -> None:  # noqa: ARG002
        """Keep one page: namespaces replace the previous set at once (each change re-derives every object)."""
        self._listed += records

    def finish(self, namespace: str | None) -> None:  # noqa: ARG002
        """Replace all namespaces with the listed ones."""
        self.store.replace_namespaces(self._listed)
        self._listed = []

    def apply(self, event_type: str, raw: msgspec.Raw) -> str:
        """Upsert or delete a namespace."""
        if event_type == "DELETED":
            meta = codec.identity(raw)
            self.store.delete_namespace(meta.name)
            return meta.resourceVersion
        decoded = codec.NAMESPACES.one(raw)
        self.store.upsert_namespace(self.projector.namespace(decoded, self.label_key))
        return decoded.metadata.resourceVersion


def _parse_page(codec_: codec.Codec[_W], body: bytes, project_one: Callable[[_W], R], kind: str) -> ParsedPage[R]:
    """Decode a page and project every item; unreadable ones are logged, counted and skipped."""
    page = codec_.page(body)
    for error in page.errors:
        log.warning("object_malformed", kind=kind, error=error)
    parsed = []
    malformed = len(page.errors)
    for item in page.items:
        try:
            parsed.append(project_one(item))
        except MalformedObject as err:
            malformed += 1
            log.warning("object_malformed", kind=kind, error=str(err), object=codec.describe(item))
    return ParsedPage(parsed, malformed, page.resource_version, page.continue_token)

"""The shapes read off the wire: typed msgspec decoders for list pages, watch events and Flux objects.

Only the fields the exporter uses are declared; everything else in the JSON (managedFields, the rest of
the spec, inventory versions, ...) is skipped by the decoder without building Python objects. The types
follow the Flux CRDs' OpenAPI schemas, which the API server enforces, so a well-formed object always
decodes; one that does not (a foreign API version, a hand-made dump) raises ``msgspec.ValidationError``
naming the JSON path, and only that object is lost: a page that fails as a whole is decoded again item by
item. ``model`` projects these structs into the slim records the store keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")


class Meta(msgspec.Struct, frozen=True):
    """metadata."""

    name: str = ""
    namespace: str = ""
    resourceVersion: str = ""  # noqa: N815 - the API's field names
    generation: int = 0
    creationTimestamp: str | None = None  # noqa: N815
    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None


class Reference(msgspec.Struct, frozen=True):
    """A sourceRef, chartRef or dependsOn entry."""

    name: str = ""
    namespace: str = ""
    kind: str = ""


class ChartTemplate(msgspec.Struct, frozen=True):
    """HelmRelease spec.chart.spec."""

    chart: str | None = None
    sourceRef: Reference | None = None  # noqa: N815


class HelmChartTemplate(msgspec.Struct, frozen=True):
    """HelmRelease spec.chart."""

    spec: ChartTemplate | None = None


class Spec(msgspec.Struct, frozen=True):
    """The spec fields of every Flux kind the exporter reads (absent ones default)."""

    suspend: bool = False
    sourceRef: Reference | None = None  # noqa: N815
    chartRef: Reference | None = None  # noqa: N815
    #: a chart template on HelmRelease, the chart's name on HelmChart
    chart: HelmChartTemplate | str | None = None
    dependsOn: list[Reference] | None = None  # noqa: N815
    serviceAccountName: str | None = None  # noqa: N815
    targetNamespace: str | None = None  # noqa: N815
    path: str | None = None
    timeout: str | None = None
    url: str | None = None
    endpoint: str | None = None


class Condition(msgspec.Struct, frozen=True):
    """A metav1.Condition."""

    type: str = ""
    status: str = ""
    reason: str = ""
    message: str = ""
    lastTransitionTime: str | None = None  # noqa: N815
    observedGeneration: int | None = None  # noqa: N815


class Artifact(msgspec.Struct, frozen=True):
    """A source's status.artifact."""

    revision: str | None = None
    lastUpdateTime: str | None = None  # noqa: N815


class InventoryEntry(msgspec.Struct, frozen=True):
    """One Kustomization inventory entry: ``<namespace>_<name>_<group>_<kind>``."""

    id: str = ""


class Inventory(msgspec.Struct, frozen=True):
    """A Kustomization's status.inventory."""

    entries: list[InventoryEntry] | None = None


class HistoryEntry(msgspec.Struct, frozen=True):
    """One status.history entry: a HelmRelease's releases, or a Kustomization's reconciliations per manifest digest."""

    # HelmRelease
    status: str | None = None
    chartVersion: str | None = None  # noqa: N815
    lastDeployed: str | None = None  # noqa: N815
    # Kustomization
    firstReconciled: str | None = None  # noqa: N815
    lastReconciledStatus: str | None = None  # noqa: N815


class Status(msgspec.Struct, frozen=True):
    """The status fields of every Flux kind the exporter reads."""

    observedGeneration: int | None = None  # noqa: N815
    conditions: list[Condition] | None = None
    lastHandledReconcileAt: str | None = None  # noqa: N815
    lastAppliedRevision: str | None = None  # noqa: N815
    lastAttemptedRevision: str | None = None  # noqa: N815
    artifact: Artifact | None = None
    inventory: Inventory | None = None
    history: list[HistoryEntry] | None = None
    helmChart: str | None = None  # noqa: N815


class FluxObject(msgspec.Struct, frozen=True):
    """A Flux object as the API serves it (the used fields only)."""

    metadata: Meta
    kind: str = ""
    apiVersion: str = ""  # noqa: N815
    spec: Spec | None = None
    status: Status | None = None


class Namespace(msgspec.Struct, frozen=True):
    """A Namespace (its metadata only)."""

    metadata: Meta


class Identity(msgspec.Struct, frozen=True):
    """Just enough of any object to name it in a log line or delete it."""

    metadata: Meta


class Kinded(msgspec.Struct, frozen=True):
    """Any object's kind, and a List's items (a dump read by ``report``)."""

    kind: str = ""
    items: list[msgspec.Raw] | None = None


class ApiStatus(msgspec.Struct, frozen=True):
    """A metav1.Status, as sent in a watch ERROR event."""

    code: int | None = None
    reason: str = ""
    message: str = ""


class Event(msgspec.Struct, frozen=True):
    """A watch event; its object is decoded once its type says how."""

    type: str
    object: msgspec.Raw


class ListMeta(msgspec.Struct, frozen=True):
    """A list's metadata."""

    resourceVersion: str = ""  # noqa: N815
    continue_: str = msgspec.field(default="", name="continue")


class _Page(msgspec.Struct, Generic[T], frozen=True):
    items: list[T]
    metadata: ListMeta = ListMeta()


class _RawPage(msgspec.Struct, frozen=True):
    items: list[msgspec.Raw]
    metadata: ListMeta = ListMeta()


DecodeError = (msgspec.ValidationError, msgspec.DecodeError)


class MalformedObject(ValueError):  # noqa: N818 - reads as what it is
    """An API object that cannot be read; the message says which field is wrong (the JSON path)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """A decoded list page: the readable items, an error per unreadable one, and the list metadata."""

    items: list[T]
    errors: list[str]
    resource_version: str
    continue_token: str


class Codec(Generic[T]):
    """Decoders for one item type: whole pages, single objects (watch events), and Python values (dumps, tests).

    Every method raises ``MalformedObject`` for what it cannot read.
    """

    def __init__(self, item_type: type[T]) -> None:
        """For ``item_type`` (a Struct above)."""
        self.item_type = item_type
        self._page: msgspec.json.Decoder[_Page[T]] = msgspec.json.Decoder(_Page[item_type])  # type: ignore[valid-type]
        self._item: msgspec.json.Decoder[T] = msgspec.json.Decoder(item_type)

    def page(self, body: bytes) -> Page[T]:
        """Decode a list page; a page with unreadable items is decoded again item by item to keep the rest."""
        try:
            page = self._page.decode(body)
        except msgspec.ValidationError:
            return self._page_by_item(body)
        except msgspec.DecodeError as err:
            msg = f"list response: {err}"
            raise MalformedObject(msg) from err
        return Page(page.items, [], page.metadata.resourceVersion, page.metadata.continue_)

    def _page_by_item(self, body: bytes) -> Page[T]:
        try:
            raw = _RAW_PAGE.decode(body)  # raises if the envelope itself is unreadable
        except DecodeError as err:
            msg = f"list response: {err}"
            raise MalformedObject(msg) from err
        items: list[T] = []
        errors: list[str] = []
        for item in raw.items:
            try:
                items.append(self._item.decode(item))
            except DecodeError as err:
                errors.append(f"{describe(item)}: {err}")
        return Page(items, errors, raw.metadata.resourceVersion, raw.metadata.continue_)

    def one(self, item: bytes | msgspec.Raw | Any) -> T:
        """Decode one object.

        ``item`` is JSON (a watch event's object, an item of a dump) or an already-decoded Python value (a dict
        from YAML or a test).
        """
        try:
            if isinstance(item, bytes | msgspec.Raw):
                return self._item.decode(item)
            return msgspec.convert(item, self.item_type)
        except DecodeError as err:
            raise MalformedObject(str(err)) from err


_RAW_PAGE = msgspec.json.Decoder(_RawPage)
IDENTITY = msgspec.json.Decoder(Identity)
EVENTS = msgspec.json.Decoder(Event)
KINDED = msgspec.json.Decoder(Kinded)
RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
RAW = msgspec.json.Decoder(msgspec.Raw)
STATUS = msgspec.json.Decoder(ApiStatus)
FLUX = Codec(FluxObject)
NAMESPACES = Codec(Namespace)


def describe(raw: bytes | msgspec.Raw | FluxObject | Namespace) -> str:
    """``namespace/name`` of an object if that much is readable, else ``?``."""
    if isinstance(raw, FluxObject | Namespace):
        meta = raw.metadata
    else:
        try:
            meta = IDENTITY.decode(raw).metadata
        except DecodeError:
            return "?"
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name or "?"


def resource_version(raw: bytes | msgspec.Raw) -> str:
    """metadata.resourceVersion of an object, or "" if unreadable."""
    try:
        return IDENTITY.decode(raw).metadata.resourceVersion
    except DecodeError:
        return ""


"""Typed msgspec decoding of what the API server sends: list pages, watch events, statuses, object metadata.

Generic over the item type: ``flux.schema`` declares the Flux objects' used fields and makes a ``Codec`` of them.
Only declared fields are decoded; everything else in the JSON (managedFields, the rest of the spec, ...) is skipped
by the decoder without building Python objects. An item that does not decode (a foreign API version, a hand-made
dump) raises ``msgspec.ValidationError`` naming the JSON path, and only that item is lost: a page that fails as a
whole is decoded again item by item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import msgspec

T = TypeVar("T")


class ObjectMeta(msgspec.Struct, frozen=True):
    """metadata (the fields the exporter reads)."""

    name: str = ""
    namespace: str = ""
    resourceVersion: str = ""  # noqa: N815 - the API's field names
    generation: int = 0
    creationTimestamp: str | None = None  # noqa: N815
    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None


class RawNamespace(msgspec.Struct, frozen=True):
    """A Namespace (its metadata only)."""

    metadata: ObjectMeta


class Identity(msgspec.Struct, frozen=True):
    """Just enough of any object to name it in a log line or delete it."""

    metadata: ObjectMeta


class Kinded(msgspec.Struct, frozen=True):
    """Any object's kind, and a List's items (a dump read by ``report``)."""

    kind: str = ""
    apiVersion: str = ""  # noqa: N815 - the API's field name
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
        """For ``item_type`` (a msgspec Struct)."""
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
NAMESPACES = Codec(RawNamespace)


class HasMetadata(Protocol):
    """A decoded object."""

    @property
    def metadata(self) -> ObjectMeta:
        """Its metadata."""


def describe(raw: bytes | msgspec.Raw | HasMetadata) -> str:
    """``namespace/name`` of an object if that much is readable, else ``?``."""
    if isinstance(raw, bytes | msgspec.Raw):
        try:
            meta = IDENTITY.decode(raw).metadata
        except DecodeError:
            return "?"
    else:
        meta = raw.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name or "?"


def resource_version(raw: bytes | msgspec.Raw) -> str:
    """metadata.resourceVersion of an object, or "" if unreadable."""
    try:
        return IDENTITY.decode(raw).metadata.resourceVersion
    except DecodeError:
        return ""


def identity(raw: msgspec.Raw) -> ObjectMeta:
    """The metadata of an object (a DELETED event's), or MalformedObject."""
    try:
        return IDENTITY.decode(raw).metadata
    except DecodeError as err:
        raise MalformedObject(str(err)) from err

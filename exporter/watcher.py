"""List-watch with client-go reflector semantics, owned by us.

Three levels, as in kopf's watching module:

* ``watch_kind`` never ends: it discovers the kind's API version (preferring the newest GA version),
  reports an absent CRD and re-discovers it periodically, and runs one ``Reflector`` per scope (the whole
  cluster, or each allowed namespace) until the resource disappears.
* ``Reflector.run`` lists (paged, limit 500; a 410 on the continue token restarts the list) and
  replaces the scope's objects, so objects deleted while disconnected disappear; then watches from the
  list's resourceVersion with bookmarks and a random server timeout of 5-10 minutes. A 410 (HTTP status
  or an ERROR event inside the stream) relists; connection errors, 429 (Retry-After honoured), 5xx and
  a stalled stream (client-side inactivity watchdog) retry the watch from the same resourceVersion
  without relisting. Errors back off exponentially with jitter (0.8 s to 30 s); the first successful list or
  watch request resets the backoff, so a second outage starts again from 0.8 s.
* ``Reflector._watch`` is one streaming request; each line is decoded by ``wire`` (typed, used fields only) and
  projected at once into a slim record (``model``); a malformed line or object is counted, logged and skipped.

resourceVersions are opaque strings: stored and sent back, never compared or ordered.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import aiohttp
import structlog

from exporter import wire
from exporter.health import KindHealth, SelfMetrics
from exporter.kinds import NAMESPACE, FluxKind
from exporter.kubeapi import OVERSIZED, ApiError, KubeClient
from exporter.model import NamespaceInfo, project, project_namespace
from exporter.redact import redact
from exporter.settings import WatchSettings
from exporter.store import Store
from exporter.vocabulary import OBJECT_EVENTS
from exporter.wire import MalformedObject

if TYPE_CHECKING:
    import msgspec

log = structlog.get_logger("exporter.watcher")
_T = TypeVar("_T")
_W = TypeVar("_W", wire.FluxObject, wire.Namespace)

HTTP_GONE = 410
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_TOO_MANY = 429


class Gone(Exception):  # noqa: N818 - named after the HTTP status
    """The resourceVersion is too old (410) or the stream lost an event: relist."""


class ResourceGone(Exception):  # noqa: N818
    """The resource is no longer served (404 on list): discover again."""


class Backoff:
    """Exponential backoff with full jitter between ``initial`` and ``maximum``, reset after a quiet period."""

    def __init__(self, settings: WatchSettings, clock: Callable[[], float] = time.monotonic) -> None:
        """A fresh backoff."""
        self.settings = settings
        self.clock = clock
        self.attempt = 0
        self.last_failure = 0.0

    def next_delay(self) -> float:
        """The delay before the next attempt after a failure."""
        now = self.clock()
        if now - self.last_failure > self.settings.backoff_reset_after:
            self.attempt = 0
        self.last_failure = now
        base = min(self.settings.backoff_max, math.ldexp(self.settings.backoff_initial, min(self.attempt, 30)))
        self.attempt += 1
        jitter: float = random.uniform(0, base / 2)  # noqa: S311 - jitter, not crypto
        return base / 2 + jitter

    def reset(self) -> None:
        """A request succeeded: the next failure waits the initial delay again."""
        self.attempt = 0


class Sink(Protocol):
    """Where a reflector puts what it reads."""

    def parse(self, body: bytes) -> tuple[list[Any], int, str, str]:
        """Decode and project one list page at once (raw pages are not kept).

        Returns (records, malformed items, the list's resourceVersion, the continue token); raises
        MalformedObject if the page itself is unreadable.
        """

    def replace(self, namespace: str | None, records: Sequence[Any]) -> None:
        """Replace the scope's contents with ``records`` (``start``, ``add`` and ``finish`` at once)."""

    def start(self, namespace: str | None) -> None:
        """A list of the scope begins (again)."""

    def add(self, namespace: str | None, records: Sequence[Any]) -> None:
        """One page of the scope's list: stored now, so work on it overlaps the next page's request."""

    def finish(self, namespace: str | None) -> None:
        """The list is complete: forget what it did not return."""

    def apply(self, event_type: str, raw: msgspec.Raw) -> str:
        """Apply one ADDED/MODIFIED/DELETED event; returns the object's resourceVersion.

        Raises MalformedObject if the object is unreadable.
        """


class FluxSink:
    """Parses Flux objects of one kind into the store."""

    def __init__(self, kind: FluxKind, store: Store, *, keep_labels: tuple[str, ...] = ()) -> None:
        """For ``kind``, keeping the object labels named in ``keep_labels``."""
        self.kind = kind
        self.store = store
        self.keep_labels = keep_labels
        self._listed: dict[str | None, set[tuple[str, str, str]]] = {}

    def parse(self, body: bytes) -> tuple[list[Any], int, str, str]:
        """Flux objects of this kind; malformed ones are skipped and logged."""
        kind, keep = self.kind, self.keep_labels
        return _parse_page(wire.FLUX, body, lambda item: project(item, kind, keep_labels=keep), kind.kind)

    def replace(self, namespace: str | None, records: Sequence[Any]) -> None:
        """Replace the kind's objects (in ``namespace``, or all)."""
        self.store.replace(self.kind.kind, namespace, records)

    def start(self, namespace: str | None) -> None:
        """Begin a list of ``namespace`` (or all)."""
        self._listed[namespace] = set()

    def add(self, namespace: str | None, records: Sequence[Any]) -> None:
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
            meta = _identity(raw)
            self.store.delete(self.kind.kind, meta.namespace, meta.name)
            return meta.resourceVersion
        decoded = wire.FLUX.one(raw)
        self.store.upsert(project(decoded, self.kind, keep_labels=self.keep_labels))
        return decoded.metadata.resourceVersion


class NamespaceSink:
    """Parses Namespaces (their tenant label) into the store."""

    def __init__(self, store: Store, label_key: str) -> None:
        """``label_key`` names the tenant label."""
        self.store = store
        self.label_key = label_key
        self._listed: list[NamespaceInfo] = []

    def parse(self, body: bytes) -> tuple[list[Any], int, str, str]:
        """Namespaces with their tenant label; malformed ones are skipped and logged."""
        label = self.label_key
        return _parse_page(wire.NAMESPACES, body, lambda item: project_namespace(item, label), "Namespace")

    def replace(self, namespace: str | None, records: Sequence[Any]) -> None:  # noqa: ARG002 - cluster-scoped
        """Replace all namespaces."""
        self.store.replace_namespaces(records)

    def start(self, namespace: str | None) -> None:  # noqa: ARG002
        """Begin a list of all namespaces."""
        self._listed = []

    def add(self, namespace: str | None, records: Sequence[Any]) -> None:  # noqa: ARG002
        """Keep one page: namespaces replace the previous set at once (each change re-derives every object)."""
        self._listed += records

    def finish(self, namespace: str | None) -> None:  # noqa: ARG002
        """Replace all namespaces with the listed ones."""
        self.store.replace_namespaces(self._listed)
        self._listed = []

    def apply(self, event_type: str, raw: msgspec.Raw) -> str:
        """Upsert or delete a namespace."""
        if event_type == "DELETED":
            meta = _identity(raw)
            self.store.delete_namespace(meta.name)
            return meta.resourceVersion
        decoded = wire.NAMESPACES.one(raw)
        self.store.upsert_namespace(project_namespace(decoded, self.label_key))
        return decoded.metadata.resourceVersion


def _parse_page(
    codec: wire.Codec[_W], body: bytes, project_one: Callable[[_W], _T], kind: str
) -> tuple[list[_T], int, str, str]:
    """Decode a page and project every item; unreadable ones are logged, counted and skipped."""
    page = codec.page(body)
    for error in page.errors:
        log.warning("object_malformed", kind=kind, error=error)
    parsed = []
    malformed_items = len(page.errors)
    for item in page.items:
        try:
            parsed.append(project_one(item))
        except MalformedObject as err:
            malformed_items += 1
            log.warning("object_malformed", kind=kind, error=str(err), object=wire.describe(item))
    return parsed, malformed_items, page.resource_version, page.continue_token


def _identity(raw: msgspec.Raw) -> wire.Meta:
    try:
        return wire.IDENTITY.decode(raw).metadata
    except wire.DecodeError as err:
        raise MalformedObject(str(err)) from err


Sleep = Callable[[float], Awaitable[None]]


class Reflector:
    """List then watch one kind in one scope (a namespace, or None for the whole cluster)."""

    def __init__(
        self,
        *,
        client: KubeClient,
        kind: FluxKind,
        version: str,
        namespace: str | None,
        sink: Sink,
        health: KindHealth,
        metrics: SelfMetrics,
        settings: WatchSettings,
        on_status: Callable[[], None] = lambda: None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """Prepare; ``run`` does the work."""
        self.client = client
        self.kind = kind
        self.version = version
        self.namespace = namespace
        self.sink = sink
        self.health = health
        self.metrics = metrics
        self.settings = settings
        self.on_status = on_status
        self.sleep = sleep
        self.path = kind.collection_path(version, namespace)
        self.backoff = Backoff(settings)
        self.scope = namespace or "*"
        #: the last resourceVersion seen (list, event or bookmark); None means the next round lists
        self.rv: str | None = None
        self.log = log.bind(kind=kind.kind, version=version, namespace=namespace or "*")

    def _params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.settings.label_selector and self.kind is not NAMESPACE:
            params["labelSelector"] = self.settings.label_selector
        return params

    def _contact(self, *, ok: bool) -> None:
        """Record whether the API server answered this scope's last request (staleness metrics, /readyz)."""
        record_contact(self.health, self.metrics, self.scope, ok=ok)

    def _set_status(self, status: Any, message: str = "") -> None:
        self.health.pending.discard(self.scope)
        changed = self.health.status != status or (not self.health.settled and not self.health.pending)
        self.health.status = status
        self.health.message = message
        self.health.settled = self.health.settled or not self.health.pending
        self.metrics.kind_status(self.health)
        if changed:
            self.on_status()

    async def run(self, *, iterations: int | None = None) -> None:
        """List and watch until cancelled; raises ResourceGone when the resource is no longer served.

        ``iterations`` bounds the number of list/watch rounds (tests only).
        """
        self.rv = None
        relist_reason = "initial"
        rounds = 0
        while iterations is None or rounds < iterations:
            rounds += 1
            try:
                if self.rv is None:
                    self.metrics.relists.labels(self.kind.kind, relist_reason).inc()
                    self.rv = await self._list()
                    self._set_status("synced")
                await self._watch()
            except Gone as err:
                self.log.info("watch_relist", reason=str(err))
                self.rv, relist_reason = None, "gone"
            except ApiError as err:
                # 410, 403 and 404 are the server's authoritative answers; the rest mean it cannot serve us now.
                self._contact(ok=err.status in {HTTP_GONE, HTTP_FORBIDDEN, HTTP_NOT_FOUND})
                self.rv, relist_reason = await self._on_api_error(err, self.rv, relist_reason)
            except MalformedObject as err:
                delay = self.backoff.next_delay()
                self.log.error(  # noqa: TRY400 - the message is the whole story
                    "list_malformed", error=str(err), retry_in=round(delay, 2)
                )
                await self.sleep(delay)
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                # Connection refused/reset, DNS, TLS, stalled stream: retry from the last resourceVersion seen.
                self._contact(ok=False)
                delay = self.backoff.next_delay()
                self.log.warning("watch_connection_error", error=repr(err), retry_in=round(delay, 2))
                await self.sleep(delay)

    async def _on_api_error(self, err: ApiError, rv: str | None, reason: str) -> tuple[str | None, str]:
        if err.status == HTTP_GONE:
            return None, "gone"
        if err.status == HTTP_NOT_FOUND:
            if rv is None:
                raise ResourceGone(str(err)) from err
            return None, "gone"  # a watch on a deleted CRD: the list will tell
        if err.status == HTTP_TOO_MANY:
            delay = err.retry_after if err.retry_after is not None else self.backoff.next_delay()
            self.log.info("watch_throttled", retry_in=delay)
            await self.sleep(delay)
            return rv, reason
        if err.status == HTTP_FORBIDDEN:
            self._set_status("forbidden", redact(err.message))
            self.sink.replace(self.namespace, [])
            delay = self.settings.backoff_max
            self.log.error("kind_forbidden", error=err.message, retry_in=delay)
            await self.sleep(delay)
            return None, "forbidden"
        delay = self.backoff.next_delay()
        self.log.warning("api_error", status=err.status, error=err.message, retry_in=round(delay, 2))
        await self.sleep(delay)
        # 401 (token rotating), 5xx: retry; keep the resourceVersion so nothing is relisted needlessly.
        return rv, reason

    async def _list(self) -> str:
        """A paged list that replaces the scope's contents; returns the list's resourceVersion.

        Each page is stored as it arrives (deriving it overlaps the next page's request); objects the list did
        not return are dropped at the end.
        """
        while True:
            self.sink.start(self.namespace)
            listed = malformed = 0
            params = {**self._params(), "limit": str(self.settings.page_size)}
            try:
                while True:
                    try:
                        body = await self.client.request_bytes("GET", self.path, params=params)
                    except ApiError as err:
                        result = "gone" if err.status == HTTP_GONE else "error"
                        self.metrics.list_requests.labels(self.kind.kind, result).inc()
                        raise
                    self.metrics.list_requests.labels(self.kind.kind, "success").inc()
                    self._contact(ok=True)
                    parsed, bad, rv, cont = self.sink.parse(body)
                    del body  # only one raw page is alive at a time
                    self.sink.add(self.namespace, parsed)
                    listed += len(parsed)
                    malformed += bad
                    if not cont:
                        break
                    params["continue"] = cont
            except ApiError as err:
                if err.status == HTTP_GONE and "continue" in params:
                    # The continue token expired mid-list: start the list again from scratch.
                    self.log.info("list_continue_expired")
                    continue
                raise
            self.sink.finish(self.namespace)
            if malformed:
                self.metrics.malformed.labels(self.kind.kind).inc(malformed)
            self.backoff.reset()
            self.metrics.last_sync.labels(self.kind.kind).set(time.time())
            self.log.info("list_done", objects=listed, resource_version=rv)
            return rv

    async def _watch(self) -> None:
        """One watch stream from ``self.rv``, which advances with every event and bookmark."""
        assert self.rv is not None
        low, high = self.settings.server_timeout
        params = {
            **self._params(),
            "watch": "1",
            "resourceVersion": self.rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(random.randint(low, high)),  # noqa: S311
        }
        kind = self.kind.kind
        result = "closed"
        try:
            async with self.client.stream(
                self.path, params=params, inactivity_timeout=self.settings.inactivity_timeout
            ) as lines:
                self.backoff.reset()  # the server accepted the watch: connected again
                self._contact(ok=True)
                last_contact = self.metrics.last_contact.labels(kind)
                async for line in lines:  # every line is contact, whatever it holds
                    self.health.last_contact = now = time.time()
                    last_contact.set(now)
                    self.rv = self._handle_line(line, self.rv, now)
        except Gone:
            result = "gone"
            raise
        except TimeoutError:
            result = "timeout"
            raise
        except ApiError as err:
            result = "gone" if err.status == HTTP_GONE else "error"
            raise
        except (aiohttp.ClientError, OSError):
            result = "connection_error"
            raise
        finally:
            self.metrics.watch_requests.labels(kind, result).inc()

    def _handle_line(self, line: bytes | object, rv: str, now: float) -> str:
        kind = self.kind.kind
        if line is OVERSIZED:
            self.metrics.malformed.labels(kind).inc()
            self.log.error("event_oversized", limit_bytes="see kubeapi.MAX_LINE_BYTES")
            msg = "an event exceeded the line limit; relisting to recover it"
            raise Gone(msg)
        assert isinstance(line, bytes)
        try:
            event = wire.EVENTS.decode(line)
        except wire.DecodeError as err:
            self.metrics.malformed.labels(kind).inc()
            self.log.warning("event_malformed", error=str(err), line=redact(line[:200].decode(errors="replace")))
            return rv
        event_type = event.type
        self.metrics.events.labels(kind, event_type).inc()
        self.metrics.last_event.labels(kind).set(now)
        if event_type == "ERROR":
            try:
                status = wire.STATUS.decode(event.object)
            except wire.DecodeError:
                status = wire.ApiStatus(message=bytes(event.object)[:200].decode(errors="replace"))
            if status.code == HTTP_GONE:
                raise Gone(status.message or "resourceVersion too old")
            raise ApiError(status.code or 500, status.reason, status.message)
        if event_type == "BOOKMARK":
            return wire.resource_version(event.object) or rv
        if event_type not in OBJECT_EVENTS:
            self.log.warning("event_type_unknown", type=event_type)
            return rv
        try:
            return self.sink.apply(event_type, event.object) or rv
        except MalformedObject as err:
            self.metrics.malformed.labels(kind).inc()
            self.log.warning("object_malformed", error=str(err), object=wire.describe(event.object))
            return wire.resource_version(event.object) or rv


def record_contact(health: KindHealth, metrics: SelfMetrics, scope: str, *, ok: bool) -> None:
    """Whether the API server answered ``scope``'s last request ("discovery", or a reflector's namespace)."""
    was = health.connected
    if ok:
        health.disconnected.discard(scope)
        health.last_contact = time.time()
    else:
        health.disconnected.add(scope)
    metrics.kind_contact(health)
    if was != health.connected:
        if ok:
            log.info("kind_connected", kind=health.kind, scope=scope)
        else:
            log.warning("kind_disconnected", kind=health.kind, scope=scope, hint="serving the last known state")


async def discover_version(client: KubeClient, kind: FluxKind) -> str | None:
    """The first of ``kind.versions`` the server serves the kind at, or None if the CRD is absent."""
    if not kind.group:
        return kind.versions[0]
    try:
        group = await client.request("GET", f"/apis/{kind.group}")
    except ApiError as err:
        if err.status == HTTP_NOT_FOUND:
            return None
        raise
    served = {v.get("version") for v in group.get("versions", []) if isinstance(v, dict)}
    for version in kind.versions:
        if version not in served:
            continue
        resources = await client.request("GET", f"/apis/{kind.group}/{version}")
        if any(r.get("name") == kind.plural for r in resources.get("resources", [])):
            return version
    return None


async def watch_kind(
    *,
    client: KubeClient,
    kind: FluxKind,
    sink: Sink,
    health: KindHealth,
    metrics: SelfMetrics,
    settings: WatchSettings,
    namespaces: Sequence[str] = (),
    on_status: Callable[[], None] = lambda: None,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Discover, then list-watch ``kind`` forever (per namespace if ``namespaces`` is given)."""
    backoff = Backoff(settings)
    klog = log.bind(kind=kind.kind)
    while True:
        try:
            version = await discover_version(client, kind)
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as err:
            record_contact(health, metrics, "discovery", ok=False)
            delay = backoff.next_delay()
            klog.warning("discovery_failed", error=str(err), retry_in=round(delay, 2))
            await sleep(delay)
            continue
        backoff.reset()
        record_contact(health, metrics, "discovery", ok=True)
        if version is None:
            if health.status != "absent":
                klog.warning("kind_absent", hint="its CRD is not installed; looking again periodically")
            sink.replace(None, [])
            health.disconnected.clear()  # discovery answered; there is nothing else to reach
            health.version = None
            health.status, health.settled = "absent", True
            metrics.kind_status(health)
            on_status()
            await sleep(settings.rediscover_interval)
            continue
        if health.version not in {None, version}:
            metrics.api_version.remove(kind.kind, health.version)  # one version per kind at a time
        health.version = version
        metrics.api_version.labels(kind.kind, version).set(1)
        klog.info("kind_discovered", version=version)
        scopes: Sequence[str | None] = list(namespaces) if namespaces and kind is not NAMESPACE else [None]
        health.pending = {scope or "*" for scope in scopes}
        health.disconnected |= health.pending  # connected once each scope's list is answered
        try:
            async with asyncio.TaskGroup() as group:
                for scope in scopes:
                    reflector = Reflector(
                        client=client, kind=kind, version=version, namespace=scope, sink=sink, health=health,
                        metrics=metrics, settings=settings, on_status=on_status, sleep=sleep,
                    )
                    group.create_task(reflector.run())
        except* ResourceGone:
            klog.warning("kind_gone", hint="the resource is no longer served; discovering again")
            health.status = "pending"

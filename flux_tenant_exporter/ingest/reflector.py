"""List-watch with client-go reflector semantics, owned by us.

Three levels, as in kopf's watching module:

* ``watch_kind`` never ends: it discovers the kind's API version (preferring the newest GA version),
  reports an absent CRD and re-discovers it periodically, and runs one ``Reflector`` per scope (the whole
  cluster, or each allowed namespace) until the resource disappears.
* ``Reflector.run`` lists (paged, limit 500; an expired continue token restarts the list) and replaces the
  scope's objects, so objects deleted while disconnected disappear; then watches from the list's
  resourceVersion with bookmarks and a random server timeout of 5-10 minutes. An expired resourceVersion
  (410, as an HTTP status or an ERROR event inside the stream) relists; connection errors, throttling (429,
  Retry-After honoured), 5xx and a stalled stream (client-side inactivity watchdog) retry the watch from the
  same resourceVersion without relisting. Errors back off exponentially with jitter (0.8 s to 30 s); the first
  successful list or watch request resets the backoff, so a second outage starts again from 0.8 s.
* ``Reflector._watch`` is one streaming request; each line is decoded by ``kube.codec`` and handed to the sink,
  which projects it at once into a slim record; a malformed line or object is counted, logged and skipped.

How a kind stands (contact with the API server, lists, watch ends, events, its status) is reported to a
``KindObserver``; ``telemetry.sync`` implements it with the self-metrics and what ``/readyz`` shows.

resourceVersions are opaque strings: stored and sent back, never compared or ordered.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import structlog

from flux_tenant_exporter.base.config import WatchSettings
from flux_tenant_exporter.base.kinds import NAMESPACE, WatchedKind
from flux_tenant_exporter.base.redact import redact
from flux_tenant_exporter.base.vocabulary import OBJECT_EVENTS, KindStatus, ListResult, RelistReason, WatchEnd
from flux_tenant_exporter.ingest.sinks import Sink
from flux_tenant_exporter.kube import codec
from flux_tenant_exporter.kube.client import (
    CONNECTION_ERRORS,
    OVERSIZED,
    ApiError,
    Expired,
    Forbidden,
    KubeClient,
    NotFound,
    Throttled,
    api_error,
)
from flux_tenant_exporter.kube.codec import MalformedObject

log = structlog.get_logger("flux_tenant_exporter.ingest")
#: what makes a discovery retry: any answer but success, or none
_DISCOVERY_ERRORS: tuple[type[BaseException], ...] = (ApiError, *CONNECTION_ERRORS)


class KindObserver(Protocol):
    """What a kind's discovery and reflectors report; the scope is a namespace, ``*`` (all) or ``discovery``."""

    def contact(self, scope: str, *, ok: bool) -> None:
        """Whether the API server answered the scope's last request (False: what is served may be stale)."""

    def heard(self, now: float) -> None:
        """A line arrived on a watch stream: contact, whatever it holds."""

    def discovered(self, version: str, scopes: Sequence[str]) -> None:
        """The kind is served at ``version``; a reflector starts for each scope."""

    def absent(self) -> None:
        """The kind is not served (its CRD is not installed)."""

    def gone(self) -> None:
        """The kind stopped being served while watched."""

    def scope_status(self, scope: str, status: KindStatus, message: str = "") -> None:
        """A scope's list completed (synced) or was refused (forbidden)."""

    def listing(self, reason: RelistReason) -> None:
        """A full list of a scope begins."""

    def list_request(self, result: ListResult) -> None:
        """One list request (a page) ended."""

    def listed(self, malformed: int) -> None:
        """A scope's list completed; ``malformed`` items of it could not be read."""

    def watch_ended(self, result: WatchEnd) -> None:
        """A watch stream ended."""

    def event(self, event_type: str, now: float) -> None:
        """A watch event (or bookmark) of ``event_type`` arrived."""

    def malformed(self) -> None:
        """An event line or object could not be read, and was skipped."""


class Relist(Exception):  # noqa: N818 - names what the reflector does next
    """The watch must start over from a list: the resourceVersion expired, or the stream lost an event."""


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


Sleep = Callable[[float], Awaitable[None]]


class Reflector:
    """List then watch one kind in one scope (a namespace, or None for the whole cluster)."""

    def __init__(
        self,
        *,
        client: KubeClient,
        kind: WatchedKind,
        version: str,
        namespace: str | None,
        sink: Sink[Any],
        observer: KindObserver,
        settings: WatchSettings,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """Prepare; ``run`` does the work."""
        self.client = client
        self.kind = kind
        self.version = version
        self.namespace = namespace
        self.sink = sink
        self.observer = observer
        self.settings = settings
        self.sleep = sleep
        self.path = kind.collection_path(version, namespace)
        self.backoff = Backoff(settings)
        self.scope = namespace or "*"
        #: the last resourceVersion seen (list, event or bookmark); None means the next round lists
        self.rv: str | None = None
        self.log = log.bind(kind=kind.kind, version=version, namespace=self.scope)

    def _params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.settings.label_selector and self.kind is not NAMESPACE:
            params["labelSelector"] = self.settings.label_selector
        return params

    async def run(self, *, iterations: int | None = None) -> None:
        """List and watch until cancelled; raises ResourceGone when the resource is no longer served.

        ``iterations`` bounds the number of list/watch rounds (tests only).
        """
        self.rv = None
        relist_reason: RelistReason = "initial"
        rounds = 0
        while iterations is None or rounds < iterations:
            rounds += 1
            try:
                if self.rv is None:
                    self.observer.listing(relist_reason)
                    self.rv = await self._list()
                    self.observer.scope_status(self.scope, "synced")
                await self._watch()
            except Relist as err:
                self.log.info("watch_relist", reason=str(err))
                self.rv, relist_reason = None, "gone"
            except ApiError as err:
                # Expired, forbidden and not found are the server's authoritative answers; the rest mean it cannot
                # serve us now.
                self.observer.contact(self.scope, ok=isinstance(err, Expired | Forbidden | NotFound))
                self.rv, relist_reason = await self._on_api_error(err, self.rv, relist_reason)
            except MalformedObject as err:
                delay = self.backoff.next_delay()
                self.log.error(  # noqa: TRY400 - the message is the whole story
                    "list_malformed", error=str(err), retry_in=round(delay, 2)
                )
                await self.sleep(delay)
            except CONNECTION_ERRORS as err:
                # Connection refused/reset, DNS, TLS, stalled stream: retry from the last resourceVersion seen.
                self.observer.contact(self.scope, ok=False)
                delay = self.backoff.next_delay()
                self.log.warning("watch_connection_error", error=repr(err), retry_in=round(delay, 2))
                await self.sleep(delay)

    async def _on_api_error(
        self, err: ApiError, rv: str | None, reason: RelistReason
    ) -> tuple[str | None, RelistReason]:
        if isinstance(err, Expired):
            return None, "gone"
        if isinstance(err, NotFound):
            if rv is None:
                raise ResourceGone(str(err)) from err
            return None, "gone"  # a watch on a deleted CRD: the list will tell
        if isinstance(err, Throttled):
            delay = err.retry_after if err.retry_after is not None else self.backoff.next_delay()
            self.log.info("watch_throttled", retry_in=delay)
            await self.sleep(delay)
            return rv, reason
        if isinstance(err, Forbidden):
            self.observer.scope_status(self.scope, "forbidden", redact(err.message))
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
        observer = self.observer
        while True:
            self.sink.start(self.namespace)
            listed = malformed = 0
            params = {**self._params(), "limit": str(self.settings.page_size)}
            try:
                while True:
                    try:
                        body = await self.client.request_bytes("GET", self.path, params=params)
                    except ApiError as err:
                        observer.list_request("gone" if isinstance(err, Expired) else "error")
                        raise
                    observer.list_request("success")
                    observer.contact(self.scope, ok=True)
                    page = self.sink.parse(body)
                    del body  # only one raw page is alive at a time
                    self.sink.add(self.namespace, page.records)
                    listed += len(page.records)
                    malformed += page.malformed
                    if not page.continue_token:
                        break
                    params["continue"] = page.continue_token
            except Expired:
                if "continue" in params:
                    # The continue token expired mid-list: start the list again from scratch.
                    self.log.info("list_continue_expired")
                    continue
                raise
            self.sink.finish(self.namespace)
            observer.listed(malformed)
            self.backoff.reset()
            self.log.info("list_done", objects=listed, resource_version=page.resource_version)
            return page.resource_version

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
        observer = self.observer
        result: WatchEnd = "closed"
        try:
            async with self.client.stream(
                self.path, params=params, inactivity_timeout=self.settings.inactivity_timeout
            ) as lines:
                self.backoff.reset()  # the server accepted the watch: connected again
                observer.contact(self.scope, ok=True)
                heard = observer.heard
                async for line in lines:  # every line is contact, whatever it holds
                    now = time.time()
                    heard(now)
                    self.rv = self._handle_line(line, self.rv, now)
        except Relist:
            result = "gone"
            raise
        except TimeoutError:
            result = "timeout"
            raise
        except ApiError as err:
            result = "gone" if isinstance(err, Expired) else "error"
            raise
        except CONNECTION_ERRORS:
            result = "connection_error"
            raise
        finally:
            observer.watch_ended(result)

    def _handle_line(self, line: bytes | object, rv: str, now: float) -> str:
        observer = self.observer
        if line is OVERSIZED:
            observer.malformed()
            self.log.error("event_oversized", limit_bytes="see kube.client.MAX_LINE_BYTES")
            msg = "an event exceeded the line limit; relisting to recover it"
            raise Relist(msg)
        assert isinstance(line, bytes)
        try:
            event = codec.EVENTS.decode(line)
        except codec.DecodeError as err:
            observer.malformed()
            self.log.warning("event_malformed", error=str(err), line=redact(line[:200].decode(errors="replace")))
            return rv
        event_type = event.type
        observer.event(event_type, now)
        if event_type == "ERROR":
            try:
                status = codec.STATUS.decode(event.object)
            except codec.DecodeError:
                status = codec.ApiStatus(message=bytes(event.object)[:200].decode(errors="replace"))
            error = api_error(status.code or 500, status.reason, status.message)
            if isinstance(error, Expired):
                raise Relist(status.message or "resourceVersion too old")
            raise error
        if event_type == "BOOKMARK":
            return codec.resource_version(event.object) or rv
        if event_type not in OBJECT_EVENTS:
            self.log.warning("event_type_unknown", type=event_type)
            return rv
        try:
            return self.sink.apply(event_type, event.object) or rv
        except MalformedObject as err:
            observer.malformed()
            self.log.warning("object_malformed", error=str(err), object=codec.describe(event.object))
            return codec.resource_version(event.object) or rv


async def discover_version(client: KubeClient, kind: WatchedKind) -> str | None:
    """The first of ``kind.versions`` the server serves the kind at, or None if the CRD is absent."""
    if not kind.group:
        return kind.versions[0]
    try:
        group = await client.request("GET", f"/apis/{kind.group}")
    except NotFound:
        return None
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
    kind: WatchedKind,
    sink: Sink[Any],
    observer: KindObserver,
    settings: WatchSettings,
    namespaces: Sequence[str] = (),
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Discover, then list-watch ``kind`` forever (per namespace if ``namespaces`` is given)."""
    backoff = Backoff(settings)
    klog = log.bind(kind=kind.kind)
    while True:
        try:
            version = await discover_version(client, kind)
        except _DISCOVERY_ERRORS as err:
            observer.contact("discovery", ok=False)
            delay = backoff.next_delay()
            klog.warning("discovery_failed", error=str(err), retry_in=round(delay, 2))
            await sleep(delay)
            continue
        backoff.reset()
        observer.contact("discovery", ok=True)
        if version is None:
            sink.replace(None, [])
            observer.absent()
            await sleep(settings.rediscover_interval)
            continue
        scopes: Sequence[str | None] = list(namespaces) if namespaces and kind is not NAMESPACE else [None]
        observer.discovered(version, [scope or "*" for scope in scopes])
        try:
            async with asyncio.TaskGroup() as group:
                for scope in scopes:
                    reflector = Reflector(
                        client=client, kind=kind, version=version, namespace=scope, sink=sink, observer=observer,
                        settings=settings, sleep=sleep,
                    )
                    group.create_task(reflector.run())
        except* ResourceGone:
            observer.gone()

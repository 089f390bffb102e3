"""Wiring: one watcher task per kind, the publisher, and the HTTP server, supervised together.

Data flows one way: watchers -> store (classify on write) -> publisher (derive View, render exposition)
-> HTTP handlers (read the last publish). ``Exporter.run`` returns when stopped; a task that ends on its
own is a bug, logged, and stops the whole exporter so Kubernetes restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from flux_tenant_exporter.base.config import ServeSettings, is_loopback
from flux_tenant_exporter.base.errors import UserError
from flux_tenant_exporter.base.kinds import NAMESPACE, WatchedKind, by_id, discovered_kind, is_flux_group
from flux_tenant_exporter.flux.projection import Projector
from flux_tenant_exporter.flux.tenants import TenantResolver
from flux_tenant_exporter.ingest.reflector import watch_kind
from flux_tenant_exporter.ingest.sinks import FluxSink, NamespaceSink, Sink
from flux_tenant_exporter.kube.client import CONNECTION_ERRORS, ApiError, KubeClient
from flux_tenant_exporter.kube.discovery import discover
from flux_tenant_exporter.render.documents import TenantPieces
from flux_tenant_exporter.render.prometheus.renderer import Renderer, RenderOptions
from flux_tenant_exporter.serve.access import Gate
from flux_tenant_exporter.serve.memory import release_free_memory
from flux_tenant_exporter.serve.tls import ServingCertificate
from flux_tenant_exporter.serve.web import create_app
from flux_tenant_exporter.state.store import Store
from flux_tenant_exporter.state.view import ViewCache, build_view
from flux_tenant_exporter.telemetry.selfmetrics import SelfMetrics
from flux_tenant_exporter.telemetry.sync import KindSync, KindTelemetry

log = structlog.get_logger("flux_tenant_exporter.serve")


#: Publishing waits for the first list of every kind, but no longer than this (a kind whose list keeps failing
#: must not hold back the others' metrics).
INITIAL_SYNC_GRACE = 30.0


#: what a failed discovery raises (it is tried again at the next interval)
_DISCOVERY_ERRORS: tuple[type[BaseException], ...] = (ApiError, *CONNECTION_ERRORS)
#: a read publishes first (``Exporter.freshen``) only if at most this many object changes wait
FRESHEN_LIMIT = 512


class Exporter:
    """The running exporter; also what the web layer reads (``serve.web.Served``)."""

    def __init__(self, settings: ServeSettings, client: KubeClient) -> None:
        """Build the store and state; ``run`` starts the work."""
        self.settings = settings
        self.client = client
        self.store = Store(resolver=TenantResolver.from_settings(settings.tenancy), thresholds=settings.thresholds)
        self.projector = Projector(keep_labels=settings.resource_labels)
        self.metrics = SelfMetrics(shard=settings.shard)
        self.renderer = Renderer(RenderOptions.from_settings(settings))
        self.view_cache = ViewCache()
        self._last_publish_seconds = 0.0
        self._over_limit = 0
        self.kinds: dict[str, KindSync] = {}
        self._telemetry: dict[str, KindTelemetry] = {}
        #: the kinds watched, by id: the known kinds asked for, then what discovery finds (``_discoverer``)
        self.watched: dict[str, WatchedKind] = {}
        #: set when every kind has settled: the publish that makes the exporter ready does not wait out a batch
        self._all_settled = asyncio.Event()
        for kind in (*map(by_id, settings.kinds), NAMESPACE):
            self._track(kind)
        self.view = build_view(self.store, now=time.time())
        self.exposition = self.renderer.render(self.view)
        self.tenant_pieces = TenantPieces()
        self.published = 0
        self._ready = False
        self._gc_paused = False
        self._publish_cond = asyncio.Condition()
        self._announcing: set[asyncio.Task[None]] = set()  # notifications after a read's publish, held until done
        self._tasks: list[asyncio.Task[None]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0
        #: access control (``--auth=kubernetes``) and HTTPS, when on
        self.gate = Gate(settings.access, client, self.metrics) if settings.access.mode == "kubernetes" else None
        self.certificate: ServingCertificate | None = None

    # -- what the web layer reads (serve.web.Served) ----------------------------------------------

    def alive(self) -> bool:
        """Every background task is still running."""
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    def ready(self) -> bool:
        """Every enabled kind settled (synced, absent or forbidden) and the result is published."""
        return self._ready

    # -- publishing -----------------------------------------------------------------------------

    def publish(self, *, expose: bool = True) -> None:
        """Derive the View and render the exposition from the store, now.

        With ``expose=False`` (the first list still running) the work is done, so the final publish only has
        to add the last kinds, but HTTP keeps serving the previous snapshot: a partial exposition would count
        tenants from half their objects.
        """
        started = time.perf_counter()
        self.store.changed.clear()
        settled = all(h.settled for h in self.kinds.values())
        # A publish allocates many small acyclic objects: the cyclic GC would rescan the whole (large, long-lived)
        # heap several times meanwhile. Refcounting frees what a publish drops; the GC runs after it.
        collecting = gc.isenabled()
        gc.disable()
        try:
            now = time.time()
            self.store.expire(now)  # held verdicts whose reconcile took too long: the status's own verdict now
            view = build_view(self.store, now=now, cache=self.view_cache)
            self.store.forget_changes(self.view_cache.seen_changes)  # the only reader of the change log
            exposition = self.renderer.render(view)
        finally:
            if collecting:
                gc.enable()
        if expose or settled:
            if self._gc_paused:
                self._resume_gc()  # before the first full snapshot goes out: nobody waits on a scrape yet
            self.view, self.exposition = view, exposition
            self.tenant_pieces.update(view)
            self.published += 1
            for kind, sync in self.kinds.items():
                held = len(self.store.namespaces) if kind == NAMESPACE.id else view.objects_by_kind.get(sync.kind, 0)
                self.metrics.objects.labels(sync.kind).set(held)
            self._note_limit(len(view.resources))
        del view, exposition
        if settled and not self._ready:
            self._ready = True
            log.info("exporter_ready", objects=len(self.view.resources), tenants=len(self.view.tenants))
        self._last_publish_seconds = time.perf_counter() - started
        self.metrics.publish_duration.observe(self._last_publish_seconds)
        self.metrics.last_publish.set(time.time())

    def freshen(self) -> None:
        """Publish now if object changes wait and they are few, so a read sees every event received before it.

        Called by the HTTP handlers before they read the snapshot: a scrape then costs the derivation of the few
        objects changed since the last publish (well under a millisecond) and its update lag loses the publisher's
        batching interval. A backlog larger than FRESHEN_LIMIT (a relist, a burst) is left to the publisher, so a
        read never pays for a large derivation; nor does one before the first complete snapshot.
        """
        if not self._ready or not self.store.changed.is_set():
            return
        if self.store.change_count - self.view_cache.seen_changes > FRESHEN_LIMIT:
            return
        self.publish()
        # wake wait_for() callers now, not at the publisher's next round (which may be refresh_interval away)
        announcing = asyncio.get_running_loop().create_task(self._announce())
        self._announcing.add(announcing)
        announcing.add_done_callback(self._announcing.discard)

    async def _announce(self) -> None:
        """Tell wait_for() callers that a publish happened."""
        async with self._publish_cond:
            self._publish_cond.notify_all()

    def _note_limit(self, objects: int) -> None:
        """The over-limit gauge; a log line when the object limit starts (or stops) leaving objects out."""
        over = self.renderer.over_limit
        if bool(over) != bool(self._over_limit):
            if over:
                log.warning("object_limit_reached", object_limit=self.settings.object_limit, objects=objects,
                            without_series=over)
            else:
                log.info("object_limit_cleared", object_limit=self.settings.object_limit, objects=objects)
        self._over_limit = over
        self.metrics.objects_over_limit.set(over)

    def _pause_gc(self) -> None:
        """No cyclic GC during the first list.

        Every pass would rescan the growing fleet (0.8 s of CPU at 20,000 objects); refcounting still frees
        everything acyclic.
        """
        if gc.isenabled():
            gc.disable()
            self._gc_paused = True

    def _resume_gc(self) -> None:
        if not self._gc_paused:
            return
        self._gc_paused = False
        # Collect what the paused window left (a healthy sync leaves nothing; errors and backoffs leave traceback
        # cycles), then freeze the long-lived fleet out of every later GC pass. ~0.2 s at 20,000 objects.
        gc.collect()
        gc.freeze()
        gc.enable()

    async def _publisher(self) -> None:
        sync_deadline = time.monotonic() + INITIAL_SYNC_GRACE
        while True:
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives while the event is
            # already set (most of the time under churn), and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_refresh()):
                    await self.store.changed.wait()
            # Until every kind listed once (or the grace period is over), derive without exposing.
            self.publish(expose=self._ready or time.monotonic() >= sync_deadline)
            # Here, not in publish(): a read's small publish (freshen) does not make its reader wait for this.
            release_free_memory()
            await self._announce()
            # Batch the next events for at least as long as a publish takes: at most half the CPU goes to publishing.
            # Until ready, the last kind settling ends the wait: a cold start waits for no batch (at 100k objects a
            # publish during the first list takes ~0.3 s, and its wait would follow the last page).
            delay = max(self.settings.publish_interval, self._last_publish_seconds)
            if self._ready:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._all_settled.wait()

    def _next_refresh(self) -> float:
        """Seconds until time changes a verdict (a hold ends, an object becomes stuck), at most refresh_interval."""
        deadlines = [t for t in (self.store.next_expiry, self.view_cache.next_stuck) if t is not None]
        if not deadlines:
            return self.settings.refresh_interval
        return min(self.settings.refresh_interval, max(self.settings.publish_interval, min(deadlines) - time.time()))

    def _kind_settled(self) -> None:
        # a kind changed status: what is listed decides which references name nothing; publish, so /readyz sees it
        self.store.set_listed_kinds(s.kind for s in self.kinds.values() if s.status == "synced")
        self.store.changed.set()
        if all(s.settled for s in self.kinds.values()):
            self._all_settled.set()
        else:  # a kind found by discovery since
            self._all_settled.clear()

    def _track(self, kind: WatchedKind) -> None:
        """Keep the sync state and self-metrics of ``kind`` (before its watch starts)."""
        sync = self.kinds[kind.id] = KindSync(kind.kind)
        self._all_settled.clear()
        self._telemetry[kind.id] = KindTelemetry(sync, self.metrics, self._kind_settled)
        self.watched[kind.id] = kind

    def _watch(self, kind: WatchedKind) -> None:
        """Start list-watching ``kind`` into the store."""
        sink: Sink[Any] = (NamespaceSink(self.store, self.settings.tenancy.tenant_label, self.projector)
                           if kind is NAMESPACE else FluxSink(kind, self.store, self.projector))
        self._tasks.append(asyncio.create_task(
            watch_kind(client=self.client, kind=kind, sink=sink, observer=self._telemetry[kind.id],
                       settings=self.settings.watch, namespaces=self.settings.namespaces),
            name=f"watch-{kind.id}",
        ))

    async def _discoverer(self) -> None:
        """Learn what the API server serves, now and every rediscover interval.

        The store judges manifests the API server refused by it (an API version no longer served), and a Flux
        kind the exporter does not know (a future one) is watched from when it is served (unless --kinds named
        the kinds to watch).
        """
        while True:
            try:
                served = await discover(self.client, is_flux_group)
            except _DISCOVERY_ERRORS as err:
                log.warning("discovery_failed", error=str(err) or type(err).__name__,
                            retry_in=self.settings.watch.rediscover_interval)
            else:
                self.store.set_served(served)
                if self.settings.discover_kinds:
                    for found in served.kinds:
                        kind = discovered_kind(found.kind, found.group, found.plural, found.versions)
                        if is_flux_group(found.group) and kind.id not in self.watched:
                            log.info("kind_discovered", kind=kind.kind, group=kind.group, known=kind.known,
                                     versions=list(found.versions))
                            self._track(kind)
                            self._watch(kind)
            await asyncio.sleep(self.settings.watch.rediscover_interval)

    async def wait_for(self, predicate: Callable[[Exporter], bool], timeout: float = 30) -> None:  # noqa: ASYNC109
        """Wait until ``predicate(self)`` holds after a publish (for tests and the demo)."""
        async with asyncio.timeout(timeout), self._publish_cond:
            await self._publish_cond.wait_for(lambda: predicate(self))

    # -- running --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the HTTP server and the background tasks; returns once they run."""
        if self.settings.tls.enabled:
            self.certificate = ServingCertificate(self.settings.tls)
        self.runner = web.AppRunner(create_app(self, self.gate), handle_signals=False, access_log=None,
                                    shutdown_timeout=2)
        await self.runner.setup()
        address, port = self.settings.listen_address, self.settings.port
        site = web.TCPSite(self.runner, address, port,
                           ssl_context=self.certificate.context if self.certificate is not None else None)
        try:
            await site.start()
        except OSError as err:  # in use, not permitted, or not an address of this host
            await self.runner.cleanup()
            self.runner = None
            # asyncio wraps the errno's text in a long sentence; getaddrinfo errors have negative numbers
            reason = os.strerror(err.errno) if err.errno and err.errno > 0 else err.strerror or str(err)
            msg = f"cannot listen on {address}:{port}: {reason}"
            raise UserError(msg) from err
        self.port = int(self.runner.addresses[0][1])
        if self.settings.access.mode == "none" and not is_loopback(address):
            log.warning("access_control_off", listen_address=address,
                        detail="anyone who reaches the port sees every tenant; --auth=kubernetes shows each caller "
                               "only the namespaces it may see")
        for kind in list(self.watched.values()):
            self._watch(kind)
        self._tasks.append(asyncio.create_task(self._discoverer(), name="discovery"))
        self._tasks.append(asyncio.create_task(self._publisher(), name="publisher"))
        if self.certificate is not None:
            self._tasks.append(asyncio.create_task(self.certificate.watch(), name="tls-reload"))
        self._pause_gc()
        log.info("exporter_started", port=self.port, kinds=list(self.kinds), settings=self.settings.summary())

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or a task dies); then shut down cleanly."""
        stop = stop or asyncio.Event()
        await self.start()
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait([*self._tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper:
                    exc = task.exception() if not task.cancelled() else None
                    log.error("task_stopped_unexpectedly", task=task.get_name(), error=repr(exc))
                    msg = f"task {task.get_name()} stopped: {exc!r}"
                    raise RuntimeError(msg) from exc
        finally:
            stopper.cancel()
            await self.stop()

    async def stop(self) -> None:
        """Cancel the tasks, stop serving and close the API client."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._gc_paused:
            self._resume_gc()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await self.client.close()

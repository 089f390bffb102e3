"""How each watched kind stands with the API server: what ``/readyz`` shows and the per-kind self-metrics say.

``KindTelemetry`` is what a kind's discovery and reflectors report to (``ingest.reflector.KindObserver``): it
keeps the kind's ``KindSync``, moves the self-metrics and logs the kind's transitions (discovered, absent, gone,
connected, disconnected), and tells the exporter when the kind's status changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from flux_tenant_exporter.base.vocabulary import KindStatus, ListResult, RelistReason, WatchEnd
from flux_tenant_exporter.telemetry.selfmetrics import SelfMetrics

log = structlog.get_logger("flux_tenant_exporter.telemetry")


@dataclass
class KindSync:
    """What the exporter knows about one watched kind's list/watch."""

    kind: str
    version: str | None = None
    status: KindStatus = "pending"
    message: str = ""
    #: every scope's first list finished (or the kind was found absent / forbidden): readiness counts it
    settled: bool = False
    #: scopes (namespaces, "*" for cluster-wide) whose first list has not finished yet
    pending: set[str] = field(default_factory=set)
    #: scopes (and "discovery") whose last request to the API server failed (connection, timeout, 401, 429, 5xx)
    disconnected: set[str] = field(default_factory=lambda: {"discovery"})
    #: Unix time of the last answer from the API server for this kind (list page, watch start, event, bookmark)
    last_contact: float | None = None

    @property
    def connected(self) -> bool:
        """The API server answers every request for this kind; False means what is served may be stale."""
        return not self.disconnected


class KindTelemetry:
    """One kind's sync state and self-metrics, moved by what its discovery and reflectors report."""

    def __init__(self, sync: KindSync, metrics: SelfMetrics, on_status: Callable[[], None] = lambda: None) -> None:
        """Report into ``sync`` and ``metrics``; ``on_status`` is called when the kind's status changed."""
        self.sync = sync
        self.metrics = metrics
        self.on_status = on_status
        kind = sync.kind
        metrics.init_kind(kind)
        self._last_event = metrics.last_event.labels(kind)
        self._last_contact = metrics.last_contact.labels(kind)
        self._malformed = metrics.malformed.labels(kind)
        self._show_status()

    def _show_status(self) -> None:
        sync, metrics = self.sync, self.metrics
        metrics.synced.labels(sync.kind).set(1 if sync.status == "synced" else 0)
        metrics.absent.labels(sync.kind).set(1 if sync.status == "absent" else 0)
        metrics.forbidden.labels(sync.kind).set(1 if sync.status == "forbidden" else 0)
        self._show_contact()

    def _show_contact(self) -> None:
        sync = self.sync
        self.metrics.connected.labels(sync.kind).set(1 if sync.connected else 0)
        if sync.last_contact is not None:
            self._last_contact.set(sync.last_contact)

    # -- KindObserver ---------------------------------------------------------------------------------------

    def contact(self, scope: str, *, ok: bool) -> None:
        """Whether the API server answered ``scope``'s last request ("discovery", or a reflector's namespace)."""
        sync = self.sync
        was = sync.connected
        if ok:
            sync.disconnected.discard(scope)
            sync.last_contact = time.time()
        else:
            sync.disconnected.add(scope)
        self._show_contact()
        if was != sync.connected:
            if ok:
                log.info("kind_connected", kind=sync.kind, scope=scope)
            else:
                log.warning("kind_disconnected", kind=sync.kind, scope=scope, hint="serving the last known state")

    def heard(self, now: float) -> None:
        """A watch line arrived."""
        self.sync.last_contact = now
        self._last_contact.set(now)

    def discovered(self, version: str, scopes: Sequence[str]) -> None:
        """The kind is served at ``version``, watched in ``scopes``."""
        sync, metrics = self.sync, self.metrics
        if sync.version not in {None, version}:
            metrics.api_version.remove(sync.kind, sync.version)  # one version per kind at a time
        sync.version = version
        metrics.api_version.labels(sync.kind, version).set(1)
        log.info("kind_discovered", kind=sync.kind, version=version)
        sync.pending = set(scopes)
        sync.disconnected |= sync.pending  # connected once each scope's list is answered

    def absent(self) -> None:
        """The kind's CRD is not installed: settled, with nothing to reach."""
        sync = self.sync
        if sync.status != "absent":
            log.warning("kind_absent", kind=sync.kind, hint="its CRD is not installed; looking again periodically")
        sync.disconnected.clear()  # discovery answered; there is nothing else to reach
        sync.version = None
        sync.status, sync.settled = "absent", True
        self._show_status()
        self.on_status()

    def gone(self) -> None:
        """The kind stopped being served: discovering again."""
        log.warning("kind_gone", kind=self.sync.kind, hint="the resource is no longer served; discovering again")
        self.sync.status = "pending"

    def scope_status(self, scope: str, status: KindStatus, message: str = "") -> None:
        """A scope synced or turned forbidden; the kind settles once every scope did one or the other."""
        sync = self.sync
        sync.pending.discard(scope)
        changed = sync.status != status or (not sync.settled and not sync.pending)
        sync.status = status
        sync.message = message
        sync.settled = sync.settled or not sync.pending
        self._show_status()
        if changed:
            self.on_status()

    def listing(self, reason: RelistReason) -> None:
        """A full list begins."""
        self.metrics.relists.labels(self.sync.kind, reason).inc()

    def list_request(self, result: ListResult) -> None:
        """A list request (page) ended."""
        self.metrics.list_requests.labels(self.sync.kind, result).inc()

    def listed(self, malformed: int) -> None:
        """A list completed."""
        if malformed:
            self._malformed.inc(malformed)
        self.metrics.last_sync.labels(self.sync.kind).set(time.time())

    def watch_ended(self, result: WatchEnd) -> None:
        """A watch stream ended."""
        self.metrics.watch_requests.labels(self.sync.kind, result).inc()

    def event(self, event_type: str, now: float) -> None:
        """A watch event arrived."""
        self.metrics.events.labels(self.sync.kind, event_type).inc()
        self._last_event.set(now)

    def malformed(self) -> None:
        """An unreadable line or object was skipped."""
        self._malformed.inc()

"""The exporter's self-metrics: list/watch health per kind, publishes, scrapes, the process (own registry)."""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, PlatformCollector

from flux_tenant_exporter import __version__
from flux_tenant_exporter.base.vocabulary import (
    LIST_RESULTS,
    RELIST_REASONS,
    REVIEW_KINDS,
    REVIEW_RESULTS,
    WATCH_ENDS,
)
from flux_tenant_exporter.telemetry.instruments import (
    Constant,
    Counter,
    Gauge,
    Histogram,
    Info,
    Instruments,
    ProcessMetrics,
)


class SelfMetrics:
    """Counters and gauges about list/watch health, on an injected registry (rendered by ``render``)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, shard: str | None = None) -> None:
        """Register the self-metrics on ``registry`` (a new one of their own if None).

        ``shard``: a label on each fluxtenant_exporter_* series (the process_* and python_* families are the
        process's, and have none).
        """
        p = "fluxtenant_exporter_"
        c = {"shard": shard} if shard else None
        registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.registry = registry
        self._instruments = Instruments(registry)
        add = self._instruments.add
        self.list_requests = add(Counter(p + "list_requests", "List requests (one per page) by kind and result.",
                                             ["kind", "result"], const=c))
        self.watch_requests = add(Counter(p + "watch_requests", "Watch streams by kind and how they ended.",
                                              ["kind", "result"], const=c))
        self.relists = add(Counter(p + "relists", "Full lists by kind and reason (initial, gone, forbidden).",
                                       ["kind", "reason"], const=c))
        self.events = add(Counter(p + "events", "Watch events received by kind and type.", ["kind", "type"], const=c))
        self.malformed = add(Counter(p + "malformed_events", "Events or objects that could not be read, skipped.",
                                         ["kind"], const=c))
        self.last_event = add(Gauge(p + "last_event_timestamp_seconds",
                                        "Unix time of the last watch event or bookmark.", ["kind"], const=c))
        self.last_sync = add(Gauge(p + "last_sync_timestamp_seconds",
                                       "Unix time the last full list of a kind finished.", ["kind"], const=c))
        self.synced = add(Gauge(p + "kind_synced", "1 if the kind's objects were listed (see kind_connected for "
                                    "whether they are current).", ["kind"], const=c))
        self.connected = add(Gauge(p + "kind_connected", "1 while the API server answers the kind's list/watch "
                                       "requests; 0 during an outage (connection, timeout, 401, 429, 5xx): metrics "
                                       "are stale.", ["kind"], const=c))
        self.last_contact = add(Gauge(p + "last_contact_timestamp_seconds", "Unix time of the last answer from "
                                          "the API server for the kind (list page, watch start, event, bookmark).",
                                          ["kind"], const=c))
        self.absent = add(Gauge(p + "kind_absent", "1 if the kind's CRD is not installed (re-discovered "
                                    "periodically).", ["kind"], const=c))
        self.forbidden = add(Gauge(p + "kind_forbidden", "1 if the exporter's identity may not list or watch the "
                                       "kind.", ["kind"], const=c))
        self.api_version = add(Gauge(p + "kind_api_version_info", "The API version the kind is read at "
                                         "(discovered).", ["kind", "version"], const=c))
        self.objects = add(Gauge(p + "objects", "Objects held in memory per kind.", ["kind"], const=c))
        self.objects_over_limit = add(Gauge(p + "objects_over_limit", "Objects left without per-object series by "
                                                "--object-limit (tenant series still count them).", const=c))
        self.publish_duration = add(Histogram(
            p + "publish_duration_seconds", "Time to derive and render one published snapshot.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), const=c,
        ))
        self.last_publish = add(Gauge(p + "last_publish_timestamp_seconds",
                                          "Unix time of the last published snapshot.", const=c))
        self.scrape_duration = add(Histogram(
            p + "scrape_duration_seconds", "Time to answer /metrics.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1), const=c,
        ))
        # access control (--auth=kubernetes): the API server's reviews, never labelled by user
        self.reviews = add(Counter(p + "auth_reviews", "TokenReviews and SubjectAccessReviews asked of the API "
                                   "server, by kind (token, access) and result (allowed, denied, error).",
                                   ["kind", "result"], const=c))
        self.review_duration = add(Histogram(
            p + "auth_review_duration_seconds", "Time the API server took to answer a review, by kind.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5), labelnames=["kind"], const=c,
        ))
        self.review_cache_hits = add(Counter(p + "auth_cache_hits", "Reviews answered from the exporter's cache "
                                             "instead of the API server, by kind.", ["kind"], const=c))
        self.auth_requests = add(Counter(p + "auth_requests", "HTTP requests that needed a token, by how they "
                                         "were answered (allowed, denied: 401 or 403, error: 503).", ["result"],
                                         const=c))
        # process_resident_memory_bytes, process_cpu_seconds_total, ...; python_info
        add(ProcessMetrics())
        add(Constant(PlatformCollector(registry=None)))
        add(Info(p + "build", "The exporter's version.",
                 {"version": __version__, "python_version": platform.python_version(), **(c or {})}))

    def render(self) -> bytes:
        """The self-metrics in the Prometheus text format."""
        return self._instruments.render()

    def init_access(self) -> None:
        """Create the access-control series at zero (with --auth=kubernetes)."""
        for kind in REVIEW_KINDS:
            self.review_cache_hits.labels(kind)
            self.review_duration.labels(kind)
            for result in REVIEW_RESULTS:
                self.reviews.labels(kind, result)
        for result in REVIEW_RESULTS:
            self.auth_requests.labels(result)

    def init_kind(self, kind: str) -> None:
        """Create a kind's series at zero, so dashboards and alerts see 0 rather than nothing."""
        for result in LIST_RESULTS:
            self.list_requests.labels(kind, result)
        for end in WATCH_ENDS:
            self.watch_requests.labels(kind, end)
        for reason in RELIST_REASONS:
            self.relists.labels(kind, reason)
        self.malformed.labels(kind)
        self.objects.labels(kind)

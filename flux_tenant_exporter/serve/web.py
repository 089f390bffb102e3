"""The HTTP API (aiohttp, one port): /metrics, /healthz, /readyz, /tenants, /tenants/{name}, /openapi.yaml.

The status page for people is at / and /tenant/{name} (HTML, ``render.statuspage``).

Handlers read the published snapshot (publishing first when a few changes wait: ``freshen``); nothing here talks
to the API server.
"""

from __future__ import annotations

import gzip
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from importlib import resources
from typing import Protocol

import orjson
from aiohttp import web

from flux_tenant_exporter.base.textformat import CONTENT_TYPE as CONTENT_TYPE_METRICS
from flux_tenant_exporter.base.timefmt import timestamp
from flux_tenant_exporter.base.vocabulary import TENANT_STATUSES, Readiness
from flux_tenant_exporter.render import statuspage
from flux_tenant_exporter.render.documents import FilterError, Filters, tenant_doc, tenants_doc
from flux_tenant_exporter.render.prometheus.exposition import Exposition
from flux_tenant_exporter.state.published import View
from flux_tenant_exporter.telemetry.selfmetrics import SelfMetrics
from flux_tenant_exporter.telemetry.sync import KindSync

#: tenant names come from label values (up to 63 characters), mapping keys and namespace names (up to 253)
_MAX_TENANT_NAME = 253


class Served(Protocol):
    """What the web layer reads: the latest publish, the self-metrics and each kind's sync state."""

    view: View
    exposition: Exposition
    metrics: SelfMetrics
    kinds: dict[str, KindSync]

    def alive(self) -> bool:
        """Whether every long-running task is still running."""

    def ready(self) -> bool:
        """Whether every enabled kind settled and a snapshot was published."""

    def freshen(self) -> None:
        """Publish first if a few changes wait (a read then sees every event received before it)."""


STATE = web.AppKey("state", Served)
#: each tenant's JSON for the unfiltered /tenants (reused while the tenant is unchanged)
TENANTS_BODY = web.AppKey("tenants_body", dict)


def _json(data: object, status: HTTPStatus = HTTPStatus.OK) -> web.Response:
    resp = web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
    resp.enable_compression()
    return resp


def _error(status: HTTPStatus, message: str) -> web.Response:
    return _json({"error": {"status": status, "message": message}}, status)


async def metrics(request: web.Request) -> web.StreamResponse:
    """The pre-rendered exposition plus the self-metrics, written in pieces; gzip when asked for."""
    started = time.perf_counter()
    state = request.app[STATE]
    exposition = state.exposition
    own = state.metrics.render()
    headers = {"Content-Type": CONTENT_TYPE_METRICS}
    resp = web.StreamResponse(headers=headers)
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        zipped = (exposition.gzipped(), gzip.compress(own, compresslevel=6, mtime=0))
        resp.headers["Content-Encoding"] = "gzip"
        resp.content_length = len(zipped[0]) + len(zipped[1])
        pieces: Iterable[bytes] = zipped
    else:
        pieces = itertools.chain(exposition.pieces(), (own,))
        resp.content_length = exposition.size + len(own)
    resp.headers["Vary"] = "Accept-Encoding"
    await resp.prepare(request)
    if request.method != "HEAD":  # a streamed response writes what it is given, even to a HEAD request
        for piece in pieces:
            await resp.write(piece)  # other work (watch events) runs between the pieces
    await resp.write_eof()
    state.metrics.scrape_duration.observe(time.perf_counter() - started)
    return resp


async def healthz(request: web.Request) -> web.Response:
    """200 while the process and its tasks run; never depends on the API server."""
    if request.app[STATE].alive():
        return _json({"status": "ok"})
    return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "a background task has stopped; see the logs")


async def readyz(request: web.Request) -> web.Response:
    """200 once every enabled kind finished its initial list (or was found absent or forbidden).

    Deliberately stays 200 when the API server becomes unreachable later: the last known state is still the best
    answer, and an unready pod would lose its scrapes too. Staleness is shown instead: per kind ``connected`` and
    ``last_contact`` here, ``fluxtenant_exporter_kind_connected`` and ``..._last_contact_timestamp_seconds`` in
    /metrics, and the FluxTenantExporterDisconnected alert.
    """
    state = request.app[STATE]
    kinds = {
        k: {"status": h.status, "version": h.version, "message": h.message, "connected": h.connected,
            "last_contact": timestamp(h.last_contact)}
        for k, h in sorted(state.kinds.items())
    }
    status: Readiness = "ready" if state.ready() else "not ready"
    code = HTTPStatus.OK if status == "ready" else HTTPStatus.SERVICE_UNAVAILABLE
    return _json({"status": status, "kinds": kinds}, status=code)


def _filters(request: web.Request) -> Filters:
    return Filters.parse(dict(request.query))


async def tenants(request: web.Request) -> web.Response:
    """All tenants with their failures and violations."""
    try:
        filters = _filters(request)
    except FilterError as err:
        return _error(HTTPStatus.BAD_REQUEST, str(err))
    view = request.app[STATE].view
    if filters.active:
        return _json(tenants_doc(view, filters))
    resp = web.Response(body=_tenants_body(view, request.app[TENANTS_BODY]), content_type="application/json")
    resp.enable_compression()
    return resp


def _tenants_body(view: View, cache: dict[str, object]) -> bytes:
    """The unfiltered /tenants document, joining per-tenant JSON cached by the (immutable) TenantView.

    Only the per-tenant pieces are kept (a few MiB at 20,000 objects): joining them per request takes ~1 ms.
    """
    previous: dict[str, tuple[object, bytes]] = cache.get("tenants", {})  # type: ignore[assignment]
    fresh: dict[str, tuple[object, bytes]] = {}
    parts = []
    for name, tenant_view in view.tenants.items():
        hit = previous.get(name)
        body = hit[1] if hit is not None and hit[0] is tenant_view else exact(orjson.dumps(
            tenant_doc(tenant_view, Filters(), with_resources=False)))
        fresh[name] = (tenant_view, body)
        parts.append(body)
    cache["tenants"] = fresh
    head = orjson.dumps({"generated_at": timestamp(view.generated_at)})[:-1]
    return head + b',"tenants":[' + b",".join(parts) + b"]}"


def exact(data: bytes) -> bytes:
    """A copy of ``data`` that holds only its length, for what is cached.

    orjson's output keeps the whole buffer it wrote into: 32 KiB for a 2 KiB document.
    """
    return memoryview(data).tobytes()


async def tenant(request: web.Request) -> web.Response:
    """One tenant, with all its resources."""
    name = request.match_info["name"]  # percent-decoded: any name /tenants lists can be asked for
    try:
        filters = _filters(request)
    except FilterError as err:
        return _error(HTTPStatus.BAD_REQUEST, str(err))
    view = request.app[STATE].view
    found = view.tenants.get(name)
    if found is None:
        if len(name) > _MAX_TENANT_NAME:
            return _error(HTTPStatus.BAD_REQUEST, f"a tenant name is at most {_MAX_TENANT_NAME} characters")
        return _error(HTTPStatus.NOT_FOUND, f"no tenant {name!r}; GET /tenants lists them")
    doc = tenant_doc(found, filters, with_resources=True)
    doc["generated_at"] = timestamp(view.generated_at)
    return _json(doc)


def _html(text: str, status: HTTPStatus = HTTPStatus.OK) -> web.Response:
    resp = web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                                 "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})
    resp.enable_compression()
    return resp


async def status_overview(request: web.Request) -> web.Response:
    """The status page: every tenant, worst first (HTML; filters as on /tenants, plus ?status=)."""
    query = dict(request.query)
    status = query.pop("status", None)
    try:
        filters = Filters.parse(query)
    except FilterError as err:
        return _html(statuspage.error_page(HTTPStatus.BAD_REQUEST, str(err), home="."), HTTPStatus.BAD_REQUEST)
    if status is not None and status not in TENANT_STATUSES:
        message = f"status={status!r} is not one of: {', '.join(TENANT_STATUSES)}"
        return _html(statuspage.error_page(HTTPStatus.BAD_REQUEST, message, home="."), HTTPStatus.BAD_REQUEST)
    return _html(statuspage.overview(request.app[STATE].view, filters, dict(request.query), status))


async def status_tenant(request: web.Request) -> web.Response:
    """The status page of one tenant: root causes first, then its objects and policy violations (HTML)."""
    name = request.match_info["name"]
    try:
        filters = _filters(request)
    except FilterError as err:
        return _html(statuspage.error_page(HTTPStatus.BAD_REQUEST, str(err), home=".."), HTTPStatus.BAD_REQUEST)
    view = request.app[STATE].view
    found = view.tenants.get(name)
    if found is None:
        return _html(statuspage.error_page(HTTPStatus.NOT_FOUND, f"no tenant {name!r}", home=".."),
                     HTTPStatus.NOT_FOUND)
    return _html(statuspage.tenant_page(view, found, filters, dict(request.query)))


async def openapi(_: web.Request) -> web.Response:
    """The OpenAPI description of this API."""
    text = resources.files("flux_tenant_exporter").joinpath("openapi.yaml").read_text()
    return web.Response(text=text, content_type="application/yaml")


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= HTTPStatus.BAD_REQUEST:
            return _error(HTTPStatus(exc.status), exc.reason)
        raise


@web.middleware
async def _fresh(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every request reads a snapshot that holds the events received before it (when only a few wait)."""
    request.app[STATE].freshen()
    return await handler(request)


def create_app(state: Served) -> web.Application:
    """The aiohttp application serving ``state``."""
    app = web.Application(client_max_size=4096, middlewares=[_json_errors, _fresh])
    app[STATE] = state
    app[TENANTS_BODY] = {}
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/tenants", tenants)
    app.router.add_get("/tenants/{name}", tenant)
    app.router.add_get("/openapi.yaml", openapi)
    app.router.add_get("/", status_overview)
    app.router.add_get("/tenant/{name}", status_tenant)
    return app

"""The HTTP API (aiohttp, one port): /metrics, /healthz, /readyz, /tenants, /tenants/{name}, /openapi.yaml.

The status page for people is at / and /tenant/{name} (HTML, ``render.statuspage``).

Handlers read the published snapshot (publishing first when a few changes wait: ``freshen``). With access
control on (a ``serve.access.Gate``), every route but /healthz, /readyz and /openapi.yaml needs a bearer token;
the API server's reviews (cached) say who it is and which namespaces it sees, and each answer shows the tenants
projected onto those namespaces: a hidden tenant answers exactly as a missing one.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from importlib import resources
from typing import Protocol

import orjson
from aiohttp import web

from flux_tenant_exporter.base.textformat import CONTENT_TYPE as CONTENT_TYPE_METRICS
from flux_tenant_exporter.base.timefmt import timestamp
from flux_tenant_exporter.base.vocabulary import TENANT_STATUSES, Readiness
from flux_tenant_exporter.kube.reviews import Identity, ReviewUnavailable
from flux_tenant_exporter.render import statuspage
from flux_tenant_exporter.render.documents import FilterError, Filters, TenantPieces, tenant_doc, tenants_doc
from flux_tenant_exporter.render.prometheus.exposition import Exposition
from flux_tenant_exporter.serve.access import METRICS_ACCESS, Gate, Unauthenticated
from flux_tenant_exporter.serve.memory import TRIM_AFTER, release_free_memory
from flux_tenant_exporter.state.published import TenantView, View
from flux_tenant_exporter.state.rules.rollup import project
from flux_tenant_exporter.telemetry.selfmetrics import SelfMetrics
from flux_tenant_exporter.telemetry.sync import KindSync

#: tenant names come from label values (up to 63 characters), mapping keys and namespace names (up to 253)
_MAX_TENANT_NAME = 253


class Served(Protocol):
    """What the web layer reads: the latest publish, the self-metrics and each kind's sync state."""

    view: View
    exposition: Exposition
    #: the JSON of each tenant of ``view`` for /tenants
    tenant_pieces: TenantPieces
    metrics: SelfMetrics
    kinds: dict[str, KindSync]

    def alive(self) -> bool:
        """Whether every long-running task is still running."""

    def ready(self) -> bool:
        """Whether every enabled kind settled and a snapshot was published."""

    def freshen(self) -> None:
        """Publish first if a few changes wait (a read then sees every event received before it)."""


STATE = web.AppKey("state", Served)
#: access control, when on
GATE = web.AppKey("gate", Gate)
#: who made the request (with access control on)
IDENTITY = web.RequestKey("identity", Identity)
#: the routes every caller may read (the probes, and the API's description)
OPEN_ROUTES = frozenset({"/healthz", "/readyz", "/openapi.yaml"})
#: the routes of the status page (HTML answers)
PAGE_ROUTES = frozenset({"/", "/tenant/{name}"})
#: how long a client should wait before asking again when the API server cannot review its token
RETRY_AFTER_SECONDS = 5


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
        # compressed off the event loop (zlib lets go of the GIL): at 100k objects the first gzip scrape after a
        # publish compresses 16 MiB, ~130 ms that watch events and other requests would otherwise wait
        zipped = (await asyncio.to_thread(exposition.gzipped), gzip.compress(own, compresslevel=6, mtime=0))
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
    if exposition.size >= TRIM_AFTER:
        release_free_memory()  # what was decompressed to be written, or compressed, was freed just now
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


async def tenants(request: web.Request) -> web.StreamResponse:
    """All tenants with their failures and violations."""
    try:
        filters = _filters(request)
    except FilterError as err:
        return _error(HTTPStatus.BAD_REQUEST, str(err))
    view = request.app[STATE].view
    visible = await _visible(request, view, view.tenants.values())
    if filters.active:
        return _json(tenants_doc(view, filters, visible=visible))
    body = request.app[STATE].tenant_pieces.body(view, visible)
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.content_length = len(body)
    resp.enable_compression()  # (which drops the length when it compresses)
    await resp.prepare(request)
    if request.method != "HEAD":
        await resp.write(body)
    await resp.write_eof()
    if len(body) >= TRIM_AFTER:
        del body
        release_free_memory()  # the body and the pieces it was joined from were freed just now
    return resp


async def _visible(request: web.Request, view: View, tenants: Iterable[TenantView]) -> Mapping[str, TenantView]:
    """``tenants`` as the caller may see them.

    All of them with access control off or for a caller who sees every namespace; else each projected onto the
    namespaces the caller sees (left out where it sees none).
    """
    identity = request.get(IDENTITY)
    if identity is None:
        return view.tenants
    tenants = list(tenants)
    scope = await request.app[GATE].scope(identity, (ns for t in tenants for ns in t.namespaces))
    if scope.namespaces is None:  # every namespace
        return view.tenants
    visible = scope.namespaces
    return {t.name: p for t in tenants if (p := project(t, visible)) is not None}


async def tenant(request: web.Request) -> web.Response:
    """One tenant, with all its resources."""
    name = request.match_info["name"]  # percent-decoded: any name /tenants lists can be asked for
    try:
        filters = _filters(request)
    except FilterError as err:
        return _error(HTTPStatus.BAD_REQUEST, str(err))
    if len(name) > _MAX_TENANT_NAME:
        return _error(HTTPStatus.BAD_REQUEST, f"a tenant name is at most {_MAX_TENANT_NAME} characters")
    view = request.app[STATE].view
    found = await _one_tenant(request, view, name)
    if found is None:  # missing, or hidden from the caller: the same answer
        return _error(HTTPStatus.NOT_FOUND, f"no tenant {name!r}; GET /tenants lists them")
    doc = tenant_doc(found, filters, with_resources=True)
    doc["generated_at"] = timestamp(view.generated_at)
    return _json(doc)


async def _one_tenant(request: web.Request, view: View, name: str) -> TenantView | None:
    """The tenant ``name`` as the caller may see it; None when it does not exist or the caller sees none of it."""
    found = view.tenants.get(name)
    if found is None:
        return None
    return (await _visible(request, view, (found,))).get(name)


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
    view = request.app[STATE].view
    visible = await _visible(request, view, view.tenants.values())
    limited = visible is not view.tenants
    return _html(statuspage.overview(view, filters, dict(request.query), status, visible=visible, limited=limited))


async def status_tenant(request: web.Request) -> web.Response:
    """The status page of one tenant: root causes first, then its objects and policy violations (HTML)."""
    name = request.match_info["name"]
    try:
        filters = _filters(request)
    except FilterError as err:
        return _html(statuspage.error_page(HTTPStatus.BAD_REQUEST, str(err), home=".."), HTTPStatus.BAD_REQUEST)
    view = request.app[STATE].view
    found = await _one_tenant(request, view, name) if len(name) <= _MAX_TENANT_NAME else None
    if found is None:  # missing, or hidden from the caller: the same answer
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


def _denied(request: web.Request, status: HTTPStatus, message: str) -> web.Response:
    """A 401, 403 or 503 of access control: JSON for the API, HTML for the status page."""
    route = request.match_info.route.resource
    if route is not None and route.canonical in PAGE_ROUTES:
        home = "." if route.canonical == "/" else ".."
        if status == HTTPStatus.UNAUTHORIZED:
            message += (" - this page shows each person what they may see in Kubernetes: open it through the "
                        "single sign-on proxy in front of it, which passes your token")
        resp = _html(statuspage.error_page(status, message, home=home), status)
    else:
        resp = _error(status, message)
    if status == HTTPStatus.UNAUTHORIZED:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="flux-tenant-exporter"'
    elif status == HTTPStatus.SERVICE_UNAVAILABLE:
        resp.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return resp


@web.middleware
async def _access(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """With access control on: who the caller is, and for /metrics whether it may read it.

    The handlers then show what the caller's namespaces allow. A failed review is a 503 (never a 401 or 403: the
    caller may be allowed), and no token is logged.
    """
    gate = request.app.get(GATE)
    route = request.match_info.route.resource
    if gate is None or route is None or route.canonical in OPEN_ROUTES:
        return await handler(request)
    metrics = request.app[STATE].metrics.auth_requests
    try:
        identity = await gate.identify(request.headers.get("Authorization"))
        if route.canonical == "/metrics" and not await gate.may(identity, METRICS_ACCESS):
            metrics.labels("denied").inc()
            return _denied(request, HTTPStatus.FORBIDDEN,
                           f"{identity.user} may not {METRICS_ACCESS} (a ClusterRole with nonResourceURLs "
                           "[/metrics], verbs [get] grants it)")
        request[IDENTITY] = identity
        response = await handler(request)
    except Unauthenticated as err:
        metrics.labels("denied").inc()
        return _denied(request, HTTPStatus.UNAUTHORIZED, str(err))
    except ReviewUnavailable:
        metrics.labels("error").inc()
        return _denied(request, HTTPStatus.SERVICE_UNAVAILABLE,
                       "the API server cannot check the token or its access now; try again shortly")
    metrics.labels("allowed").inc()
    return response


async def _private(request: web.Request, response: web.StreamResponse) -> None:
    """An answer that depends on who asked is never stored by a shared cache, nor reused for another token."""
    if IDENTITY in request or response.status in {HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN}:
        response.headers["Cache-Control"] = "private, no-store"
        vary = response.headers.get("Vary")
        response.headers["Vary"] = f"{vary}, Authorization" if vary else "Authorization"


@web.middleware
async def _fresh(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every request reads a snapshot that holds the events received before it (when only a few wait)."""
    request.app[STATE].freshen()
    return await handler(request)


def create_app(state: Served, gate: Gate | None = None) -> web.Application:
    """The aiohttp application serving ``state``; ``gate``: access control (None: off)."""
    app = web.Application(client_max_size=4096, middlewares=[_json_errors, _access, _fresh])
    app[STATE] = state
    if gate is not None:
        app[GATE] = gate
        app.on_response_prepare.append(_private)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/tenants", tenants)
    app.router.add_get("/tenants/{name}", tenant)
    app.router.add_get("/openapi.yaml", openapi)
    app.router.add_get("/", status_overview)
    app.router.add_get("/tenant/{name}", status_tenant)
    return app

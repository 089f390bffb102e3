"""Faults a real API server cannot produce on demand, injected with a scripted aiohttp server on loopback:
oversized and garbage lines, unknown event types, 410 inside a 200 stream, 429 with Retry-After, an expired
continue token, a stalled stream, a malformed object in a list."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from flux_tenant_exporter.base.config import WatchSettings
from flux_tenant_exporter.base.kinds import GITREPOSITORY
from flux_tenant_exporter.flux.projection import Projector
from flux_tenant_exporter.ingest.reflector import Reflector
from flux_tenant_exporter.ingest.sinks import FluxSink
from flux_tenant_exporter.kube.client import ApiError, KubeClient
from flux_tenant_exporter.state.store import Store
from flux_tenant_exporter.telemetry.selfmetrics import SelfMetrics
from flux_tenant_exporter.telemetry.sync import KindSync, KindTelemetry
from testbed import fleet

PATH = "/apis/source.toolkit.fluxcd.io/v1/gitrepositories"


def repo(name: str, rv: str, message: str = "ok") -> dict[str, Any]:
    obj = fleet.gitrepository("ns", name)
    obj["metadata"] |= {"resourceVersion": rv, "generation": 1}
    obj["status"] = fleet.failed_status("GitOperationFailed", message)
    return obj


def event(kind: str, obj: Any) -> bytes:
    return orjson.dumps({"type": kind, "object": obj}) + b"\n"


@dataclass
class Script:
    """Responses served in order; each request is logged with its query."""

    responses: list[Any]
    requests: list[dict[str, str]] = field(default_factory=list)
    stalled: asyncio.Event = field(default_factory=asyncio.Event)


SCRIPT = web.AppKey("script", Script)


async def handler(request: web.Request) -> web.StreamResponse:
    script = request.app[SCRIPT]
    script.requests.append(dict(request.query))
    if not script.responses:
        await asyncio.Event().wait()  # nothing scripted: hang until the test ends
    kind, status, payload, headers = script.responses.pop(0)
    if kind == "json":
        return web.Response(status=status, body=orjson.dumps(payload), headers=headers,
                            content_type="application/json")
    resp = web.StreamResponse(status=status)
    await resp.prepare(request)
    for chunk in payload:
        if chunk == "STALL":
            script.stalled.set()
            await asyncio.Event().wait()
        await resp.write(chunk)
    return resp


@pytest.fixture
async def fake() -> AsyncIterator[tuple[Script, KubeClient]]:
    script = Script([])
    app = web.Application()
    app[SCRIPT] = script
    app.router.add_get(PATH, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = KubeClient(host=f"http://127.0.0.1:{port}", ssl_context=False)
    yield script, client
    await client.close()
    await runner.cleanup()


def listing(rv: str, *items: Any, cont: str | None = None) -> tuple[str, int, Any, dict[str, str]]:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    return ("json", 200, {"kind": "GitRepositoryList", "metadata": meta, "items": list(items)}, {})


def watch(*chunks: Any, status: int = 200) -> tuple[str, int, Any, dict[str, str]]:
    return ("stream", status, list(chunks), {})


def make(client: KubeClient, **watch_settings: Any) -> tuple[Reflector, Store, SelfMetrics, list[float], KindSync]:
    store = Store()
    metrics = SelfMetrics(CollectorRegistry())
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    sync = KindSync("GitRepository")
    ref = Reflector(client=client, kind=GITREPOSITORY, version="v1", namespace=None,
                    sink=FluxSink(GITREPOSITORY, store, Projector()), observer=KindTelemetry(sync, metrics),
                    settings=WatchSettings(**watch_settings), sleep=sleep)
    return ref, store, metrics, sleeps, sync


def value(metrics: SelfMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, {"kind": "GitRepository", **labels}) or 0.0


async def test_a_3_mib_event_is_read_and_a_garbage_line_is_skipped(fake: tuple[Script, KubeClient]) -> None:
    """A 3 MiB object arrives intact; a non-JSON line and an unknown event type are counted and skipped."""
    script, client = fake
    big = repo("big", "2", message="x" * (3 * 1024 * 1024))
    script.responses += [
        listing("1"),
        watch(b"{not json\n", event("MODIFIED", big)[:1000], event("MODIFIED", big)[1000:],
              event("WEIRD", repo("w", "3")), event("ADDED", repo("small", "4"))),
    ]
    ref, store, metrics, _, _ = make(client)
    await ref.run(iterations=1)
    assert set(store.objects) == {("GitRepository", "ns", "big"), ("GitRepository", "ns", "small")}
    assert value(metrics, "fluxtenant_exporter_malformed_events_total") == 1
    assert value(metrics, "fluxtenant_exporter_events_total", type="WEIRD") == 1


async def test_a_list_answer_that_is_not_a_list_backs_off_and_retries(fake: tuple[Script, KubeClient]) -> None:
    """A 200 whose body is not a list is an error: back off and list again, never crash."""
    script, client = fake
    script.responses += [("json", 200, {"kind": "Status"}, {}), listing("5", repo("a", "5")), watch()]
    ref, store, _, sleeps, _ = make(client)
    await ref.run(iterations=2)
    assert set(store.objects) == {("GitRepository", "ns", "a")}
    assert len(sleeps) == 1


async def test_error_410_inside_a_200_stream_relists(fake: tuple[Script, KubeClient]) -> None:
    """An ERROR event with code 410 ends the watch and relists; the relist replaces the store."""
    script, client = fake
    gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version: 1 (5)"}
    script.responses += [
        listing("1", repo("a", "1"), repo("b", "1")),
        watch(event("ERROR", gone)),
        listing("9", repo("a", "9")),
        watch(),
    ]
    ref, store, metrics, _, _ = make(client)
    await ref.run(iterations=2)
    assert set(store.objects) == {("GitRepository", "ns", "a")}
    assert value(metrics, "fluxtenant_exporter_relists_total", reason="gone") == 1
    assert script.requests[-1]["resourceVersion"] == "9"


async def test_429_retries_the_watch_after_retry_after_without_relisting(fake: tuple[Script, KubeClient]) -> None:
    """429 Too Many Requests: wait Retry-After, then watch again from the same resourceVersion."""
    script, client = fake
    script.responses += [
        listing("7"),
        ("json", 429, {"kind": "Status", "code": 429, "reason": "TooManyRequests", "message": "slow down"},
         {"Retry-After": "3"}),
        watch(),
    ]
    ref, _, metrics, sleeps, _ = make(client)
    await ref.run(iterations=2)
    assert sleeps == [3.0]
    assert [r.get("resourceVersion") for r in script.requests] == [None, "7", "7"]
    assert value(metrics, "fluxtenant_exporter_relists_total", reason="initial") == 1


async def test_an_expired_continue_token_restarts_the_list(fake: tuple[Script, KubeClient]) -> None:
    """410 on page 2 restarts the paged list from the first page; only the complete list is stored."""
    script, client = fake
    expired = {"kind": "Status", "code": 410, "reason": "Expired", "message": "continue token expired"}
    script.responses += [
        listing("1", repo("a", "1"), cont="tok1"),
        ("json", 410, expired, {}),
        listing("2", repo("a", "2"), cont="tok2"),
        listing("2", repo("b", "2")),
        watch(),
    ]
    ref, store, metrics, _, _ = make(client, page_size=1)
    await ref.run(iterations=1)
    assert [r.get("continue") for r in script.requests[:4]] == [None, "tok1", None, "tok2"]
    assert set(store.objects) == {("GitRepository", "ns", "a"), ("GitRepository", "ns", "b")}
    assert value(metrics, "fluxtenant_exporter_list_requests_total", result="gone") == 1


async def test_a_stalled_stream_is_abandoned_and_resumed_from_the_same_resource_version(
    fake: tuple[Script, KubeClient],
) -> None:
    """No bytes for the inactivity timeout: the watch is dropped and resumed from the last resourceVersion."""
    script, client = fake
    script.responses += [listing("3"), watch(event("ADDED", repo("a", "4")), "STALL"), watch()]
    ref, store, metrics, sleeps, _ = make(client, inactivity_timeout=0.3)
    await ref.run(iterations=2)
    assert ("GitRepository", "ns", "a") in store.objects
    assert [r.get("resourceVersion") for r in script.requests] == [None, "3", "4"]
    assert value(metrics, "fluxtenant_exporter_watch_requests_total", result="timeout") == 1
    assert len(sleeps) == 1  # one backoff, no relist
    assert value(metrics, "fluxtenant_exporter_relists_total", reason="gone") == 0


async def test_a_malformed_object_in_a_list_is_skipped_and_the_rest_kept(fake: tuple[Script, KubeClient]) -> None:
    """One unreadable item does not lose the others."""
    script, client = fake
    bad = {"kind": "GitRepository", "metadata": {"name": "bad", "namespace": "ns"}, "status": {"conditions": "x"}}
    script.responses += [listing("1", repo("a", "1"), bad, repo("b", "1")), watch()]
    ref, store, metrics, _, _ = make(client)
    await ref.run(iterations=1)
    assert set(store.objects) == {("GitRepository", "ns", "a"), ("GitRepository", "ns", "b")}
    assert value(metrics, "fluxtenant_exporter_malformed_events_total") == 1


async def test_server_errors_back_off_exponentially_with_jitter(fake: tuple[Script, KubeClient]) -> None:
    """Repeated 500s back off: each delay is within [base/2, base] and the base doubles up to the maximum."""
    script, client = fake
    status = {"kind": "Status", "code": 500, "message": "etcd unavailable"}
    failure: tuple[str, int, Any, dict[str, str]] = ("json", 500, status, {})
    script.responses += [failure] * 6
    ref, _, _, sleeps, _ = make(client, backoff_initial=0.8, backoff_max=5)
    await ref.run(iterations=6)
    bases = [0.8, 1.6, 3.2, 5, 5, 5]
    assert len(sleeps) == 6
    assert all(b / 2 <= s <= b for s, b in zip(sleeps, bases, strict=True))


async def test_discovery_falls_back_to_the_beta_an_older_flux_serves() -> None:
    """An older Flux serves HelmRelease only at v2beta2 (and v2beta1): discovery picks v2beta2; a missing group
    is reported as absent (None)."""
    from flux_tenant_exporter.base.kinds import HELMRELEASE, KUSTOMIZATION  # noqa: PLC0415
    from flux_tenant_exporter.ingest.reflector import discover_version  # noqa: PLC0415

    async def group(_: web.Request) -> web.Response:
        return web.json_response({"versions": [{"version": "v2beta1"}, {"version": "v2beta2"}]})

    async def resources(_: web.Request) -> web.Response:
        return web.json_response({"resources": [{"name": "helmreleases"}, {"name": "helmreleases/status"}]})

    app = web.Application()
    app.router.add_get("/apis/helm.toolkit.fluxcd.io", group)
    app.router.add_get("/apis/helm.toolkit.fluxcd.io/{version}", resources)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = KubeClient(host=f"http://127.0.0.1:{port}", ssl_context=False)
    try:
        assert await discover_version(client, HELMRELEASE) == "v2beta2"
        assert await discover_version(client, KUSTOMIZATION) is None
    finally:
        await client.close()
        await runner.cleanup()


def test_api_error_travels_through_context_managers() -> None:
    """An ApiError raised inside a contextlib context manager reaches the caller as itself (a frozen dataclass
    could not take the traceback Python sets on it, and a FrozenInstanceError hid the real error)."""

    @contextlib.contextmanager
    def scope() -> Iterator[None]:
        yield

    with pytest.raises(ApiError) as info, scope():
        raise ApiError(403, "Forbidden", "no", retry_after=None)
    assert (info.value.status, info.value.reason, str(info.value)) == (403, "Forbidden", "403 Forbidden: no")


async def test_a_successful_reconnect_resets_the_backoff(fake: tuple[Script, KubeClient]) -> None:
    """After an outage the first successful list resets the backoff: a second, short outage starts again from
    the initial delay instead of where the first one left off."""
    script, client = fake
    failure: tuple[str, int, Any, dict[str, str]] = ("json", 503, {"kind": "Status", "code": 503}, {})
    script.responses += [failure] * 4 + [listing("5", repo("a", "5")), watch(), failure, failure]
    ref, store, _, sleeps, _ = make(client, backoff_initial=0.8, backoff_max=30)
    await ref.run(iterations=7)
    assert set(store.objects) == {("GitRepository", "ns", "a")}
    assert len(sleeps) == 6
    first_outage, second_outage = sleeps[:4], sleeps[4:]
    assert first_outage[-1] >= 3.2  # 0.8, 1.6, 3.2, 6.4 (each in [base/2, base])
    assert 0.4 <= second_outage[0] <= 0.8
    assert 0.8 <= second_outage[1] <= 1.6


async def test_an_outage_is_visible_as_disconnected_with_the_last_contact_time(
    fake: tuple[Script, KubeClient],
) -> None:
    """While requests fail (5xx, 401, a refused connection), ``kind_connected`` is 0 and ``last_contact`` keeps the
    time of the last answer; ``kind_synced`` stays 1 (the last known state is served). The first answer again sets
    ``kind_connected`` back to 1."""
    script, client = fake
    unauthorized: tuple[str, int, Any, dict[str, str]] = ("json", 401, {"kind": "Status", "code": 401}, {})
    script.responses += [listing("5", repo("a", "5")), watch(), unauthorized, ("json", 500, {}, {})]
    ref, _, metrics, _, sync = make(client)
    sync.disconnected = {"*"}
    before = time.time()
    await ref.run(iterations=2)  # list + watch (closed), then the 401
    assert value(metrics, "fluxtenant_exporter_kind_connected") == 0
    assert value(metrics, "fluxtenant_exporter_kind_synced") == 1
    contact = value(metrics, "fluxtenant_exporter_last_contact_timestamp_seconds")
    assert before <= contact <= time.time()
    assert sync.last_contact == contact
    await ref.run(iterations=1)  # rv is reset by run(): a fresh list, which fails with 500
    assert value(metrics, "fluxtenant_exporter_kind_connected") == 0
    assert value(metrics, "fluxtenant_exporter_last_contact_timestamp_seconds") == contact
    script.responses += [listing("6", repo("a", "6")), watch()]
    await ref.run(iterations=1)
    assert value(metrics, "fluxtenant_exporter_kind_connected") == 1
    assert value(metrics, "fluxtenant_exporter_last_contact_timestamp_seconds") > contact

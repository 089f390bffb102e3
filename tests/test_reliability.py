"""Regression tests of failures found by putting the exporter through faults (issue 13), the fast ones: no API
server needed (the fault matrix on the real control plane is tests/test_fault_matrix.py)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import ssl
import threading
import time
import tracemalloc
import urllib.parse
from asyncio import sslproto
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from flux_tenant_exporter.base import packed
from flux_tenant_exporter.base.config import ServeSettings
from flux_tenant_exporter.base.timefmt import parse_time, timestamp
from flux_tenant_exporter.flux.interning import MAX_MESSAGE, Interner
from flux_tenant_exporter.flux.model import NamespaceInfo
from flux_tenant_exporter.flux.projection import Projector, parse_namespace, parse_object
from flux_tenant_exporter.flux.tenants import TenantMapping
from flux_tenant_exporter.kube.client import TLS_READ_BUFFER, KubeClient, TokenFile, limit_tls_read_buffers
from flux_tenant_exporter.render import documents
from flux_tenant_exporter.render.documents import TenantPieces, resource_doc
from flux_tenant_exporter.render.prometheus.exposition import Exposition
from flux_tenant_exporter.serve.app import Exporter
from flux_tenant_exporter.serve.web import create_app
from flux_tenant_exporter.state.published import View
from flux_tenant_exporter.state.store import CHANGES_KEPT, Store
from flux_tenant_exporter.state.view import ViewCache, build_view
from testbed import fleet


def offline_exporter(**overrides: object) -> Exporter:
    """An Exporter that is never started: its publisher and web app run against its own store."""
    settings = ServeSettings(**{"listen_address": "127.0.0.1", "port": 0, "publish_interval": 0.0} | overrides)  # type: ignore[arg-type]
    return Exporter(settings, KubeClient(host="https://127.0.0.1:1", ssl_context=False))


async def test_cancelling_the_publisher_while_changes_are_pending_always_ends_it() -> None:
    """A cancellation that arrives while the store's change event is already set (a list or churn in progress)
    ends the publisher at once. ``asyncio.wait_for`` on Python 3.11 swallowed exactly this one, and SIGTERM then
    hung until the pod's grace period ran out. Every early point of the publisher's loop is tried."""
    for steps in range(8):
        exporter = offline_exporter()
        exporter.store.changed.set()
        task = asyncio.create_task(exporter._publisher())
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        assert task in done, f"the publisher ignored a cancellation {steps} loop steps after starting"
        assert task.cancelled()


async def test_an_empty_token_file_keeps_the_last_good_token(tmp_path: Path) -> None:
    """``kubectl create token ... > file`` leaves the file empty for a moment: requests meanwhile use the last good
    token (no exception reaches the watchers), and the new token is used as soon as it is written."""
    path = tmp_path / "token"
    path.write_text("first-token\n")
    source = TokenFile(path)
    assert await source.get_api_key_with_prefix("BearerToken") == "Bearer first-token"
    path.write_text("")
    assert await source.get_api_key_with_prefix("BearerToken") == "Bearer first-token"
    path.unlink()
    assert await source.get_api_key_with_prefix("BearerToken") == "Bearer first-token"
    path.write_text("second-token")
    assert await source.get_api_key_with_prefix("BearerToken") == "Bearer second-token"


async def test_a_kubelet_style_symlink_swap_is_followed(tmp_path: Path) -> None:
    """The kubelet writes a new ``..timestamp`` directory and swaps the ``..data`` symlink; ``token`` is a symlink
    to ``..data/token``. The new token is read even if it has the same size and modification time."""
    root = tmp_path / "sa"
    root.mkdir()
    first, second = root / "..2026_01_01_a", root / "..2026_01_01_b"
    for folder, token in ((first, "token-aaaa"), (second, "token-bbbb")):
        folder.mkdir()
        (folder / "token").write_text(token)
    stat = (first / "token").stat()
    os.utime(second / "token", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (root / "..data").symlink_to(first.name)
    (root / "token").symlink_to("..data/token")
    source = TokenFile(root / "token")
    assert await source.get_api_key_with_prefix("x") == "Bearer token-aaaa"
    (root / "..data_tmp").symlink_to(second.name)
    (root / "..data_tmp").replace(root / "..data")
    assert await source.get_api_key_with_prefix("x") == "Bearer token-bbbb"


@pytest.fixture
async def served() -> AsyncIterator[tuple[Exporter, str]]:
    exporter = offline_exporter()
    runner = web.AppRunner(create_app(exporter))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield exporter, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_every_tenant_listed_by_tenants_can_be_fetched(served: tuple[Exporter, str]) -> None:
    """Tenant names come from label values (``Team_A.x``), mapping keys (``Team A``) and namespace names: whatever
    /tenants lists, /tenants/{name} (percent-encoded) answers 200 with that tenant; an unknown one is a 404."""
    exporter, base = served
    store = exporter.store
    store.resolver = type(store.resolver)(mapping=TenantMapping.parse({"tenants": {"Team A": {"namespaces": ["a"]}}}))
    store.upsert_namespace(parse_object_ns("b", "Team_A.x"))
    for namespace in ("a", "b", "c"):
        store.upsert(parse_object(fleet.gitrepository(namespace, "repo")))
    exporter.publish()
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/tenants") as resp:
            listed = [t["name"] for t in (await resp.json())["tenants"]]
        assert sorted(listed) == ["Team A", "Team_A.x", "c"]
        for name in listed:
            async with session.get(base + "/tenants/" + urllib.parse.quote(name, safe="")) as resp:
                assert resp.status == 200, name
                assert (await resp.json())["name"] == name
        async with session.get(base + "/tenants/nobody") as resp:
            assert resp.status == 404


async def test_a_gzip_scrape_compresses_off_the_event_loop(
    served: tuple[Exporter, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a gzip /metrics compresses the exposition (16 MiB at 100k objects, ~130 ms), the exporter goes on
    answering: the compression runs in a worker thread, and the scrape then gets the whole text."""
    exporter, base = served
    exporter.store.upsert(parse_object(fleet.gitrepository("a", "repo")))
    exporter.publish()
    loop = asyncio.get_running_loop()
    started, release, order = asyncio.Event(), threading.Event(), []
    compress = Exposition.gzipped

    def held(self: Exposition) -> bytes:
        order.append("compressing")
        loop.call_soon_threadsafe(started.set)
        release.wait(timeout=30)  # on the event loop's thread, nothing below could run before this gives up
        order.append("compressed")
        return compress(self)

    monkeypatch.setattr(Exposition, "gzipped", held)
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def scrape() -> bytes:
            async with session.get(base + "/metrics", headers={"Accept-Encoding": "gzip"}) as resp:
                return await resp.read()

        scraping = asyncio.create_task(scrape())
        await started.wait()
        async with session.get(base + "/tenants") as resp:
            assert resp.status == 200
            order.append("answered /tenants")
        release.set()
        body = gzip.decompress(await scraping).decode()
    assert order == ["compressing", "answered /tenants", "compressed"]
    assert 'kind="GitRepository",namespace="a",name="repo"' in body


async def test_the_publish_that_makes_the_exporter_ready_does_not_wait_out_a_batch() -> None:
    """During the first list publishes are batched (an hour apart here); when the last kind settles, the exporter
    publishes and turns ready at once, not a batch later (at 100k objects a batch is ~0.3 s of the cold start)."""
    exporter = offline_exporter(publish_interval=3600.0)
    *first, last = exporter._telemetry.values()
    for kind in first:
        kind.scope_status("*", "synced")
    exporter.store.upsert(parse_object(fleet.gitrepository("a", "repo")))
    publisher = asyncio.create_task(exporter._publisher())
    try:
        await exporter.wait_for(lambda e: e.view_cache.serial > 0, timeout=5)  # the first, unexposed publish
        assert not exporter.ready()
        last.scope_status("*", "synced")
        await exporter.wait_for(lambda e: e.ready(), timeout=5)
        assert [r.name for r in exporter.view.resources] == ["repo"]
    finally:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher


def test_the_kept_tenants_pieces_hold_about_their_length() -> None:
    """Each tenant's /tenants JSON is kept between publishes, compressed; what is kept is about its compressed
    length, not the buffer orjson wrote it into (32 KiB per tenant, found at 20,000 objects as 6 MiB held), and the
    document joined from the pieces is the one written whole."""
    exporter = offline_exporter()
    for i in range(500):  # 100 tenants with 5 failures each: ~3.5 KiB of JSON each
        raw = fleet.kustomization(f"ns-{i // 5}", f"app-{i % 5}")
        raw["status"] = fleet.failed_status("BuildFailed", f"kustomize build failed: {i}")
        exporter.store.upsert(parse_object(raw))
    tracemalloc.start()
    try:
        exporter.publish()
        kept = [tracemalloc.Filter(inclusive=True, filename_pattern=str(m.__file__)) for m in (documents, packed)]
        held = tracemalloc.take_snapshot().filter_traces(kept)
    finally:
        tracemalloc.stop()
    length = exporter.tenant_pieces.size
    view = exporter.view
    body = exporter.tenant_pieces.body(view, view.tenants)
    assert orjson.loads(body) == orjson.loads(orjson.dumps(documents.tenants_doc(view)))
    assert 100 * 100 < length < len(body) / 2
    traced = sum(stat.size for stat in held.statistics("filename"))
    assert traced < 2 * length + 16 * 1024, (traced, length)


def parse_object_ns(name: str, tenant: str) -> NamespaceInfo:
    return parse_namespace(fleet.namespace(name, tenant=tenant), "toolkit.fluxcd.io/tenant")


async def test_tls_connections_read_into_a_small_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve limits what each TLS connection reads into (asyncio's is 256 KiB, resident, per watch connection)."""
    monkeypatch.setattr(sslproto.SSLProtocol, "max_size", sslproto.SSLProtocol.max_size)  # restored afterwards
    loop = asyncio.get_running_loop()

    def read_buffer() -> int:
        proto = sslproto.SSLProtocol(loop, asyncio.Protocol(), ssl.create_default_context(), loop.create_future(),
                                     server_hostname="kubernetes.default")
        return len(proto.get_buffer(-1))

    assert read_buffer() == 256 * 1024
    limit_tls_read_buffers()
    assert read_buffer() == TLS_READ_BUFFER == 64 * 1024


def test_year_one_timestamps_are_rfc3339(store: Store) -> None:
    """Go's zero time (year 1), which a status may carry, is served as 0001-01-01T00:00:00Z."""
    assert timestamp(parse_time("0001-01-01T00:00:00Z")) == "0001-01-01T00:00:00Z"
    assert timestamp(parse_time("2026-03-04T05:06:07Z")) == "2026-03-04T05:06:07Z"
    raw = fleet.kustomization("t", "app")
    raw["status"] = fleet.failed_status("ArtifactFailed", "Source artifact not found")
    raw["status"]["conditions"][0]["lastTransitionTime"] = "0001-01-01T00:00:00Z"
    store.upsert(parse_object(raw))
    doc = resource_doc(build_view(store, now=time.time()).resources[0])
    assert doc["since"] == "0001-01-01T00:00:00Z"


def test_a_never_reconciled_object_has_no_generation_lag_of_two(store: Store) -> None:
    """observedGeneration -1 (what the controllers write before the first success) is one unobserved generation
    for generation 1, not two; a current object has none."""
    for name, generation, observed in (("new", 1, -1), ("current", 3, 3), ("behind", 5, 3)):
        raw = fleet.kustomization("t", name)
        raw["metadata"]["generation"] = generation
        raw["status"] = fleet.failed_status("ArtifactFailed", "Source artifact not found", generation=generation)
        raw["status"]["observedGeneration"] = observed
        store.upsert(parse_object(raw))
    lags = {r.name: r.generation_lag for r in build_view(store, now=time.time()).resources}
    assert lags == {"new": 1, "current": 0, "behind": 2}


def test_the_change_log_is_trimmed_to_what_the_publisher_has_not_read(store: Store) -> None:
    """Under churn the store's change log holds only changes the publisher has not derived yet, not up to
    CHANGES_KEPT keys; the next publish is still incremental and correct."""
    cache = ViewCache()
    for round_ in range(3):
        for i in range(1000):
            raw = fleet.gitrepository("t", f"repo-{i}")
            raw["status"] = fleet.failed_status("GitOperationFailed", f"round {round_}")
            store.upsert(parse_object(raw))
        view = build_view(store, now=time.time(), cache=cache)
        store.forget_changes(cache.seen_changes)
        assert len(store.changes) == 0
        assert {r.message for r in view.resources} == {f"round {round_}"}
    derived_before = cache.derived
    raw = fleet.gitrepository("t", "repo-7")
    store.upsert(parse_object(raw))
    build_view(store, now=time.time(), cache=cache)
    assert cache.derived - derived_before == 1  # incremental: only the changed object
    assert CHANGES_KEPT > 1000  # so the emptied log above is the trimming's doing, not the cap's


def test_churn_of_distinct_long_messages_keeps_the_string_caches_bounded(store: Store) -> None:
    """Every status write carrying a new 4 KiB message (the worst case for the sharing and redaction tables) holds
    at most the interner's message budget of characters in them, however long the churn; messages are still served
    whole. (The budget is lowered to 256 Ki characters so a few hundred writes cross it several times.)"""
    interner = Interner(message_chars=256 * 1024)
    projector = Projector(interner)
    resets = 0
    for i in range(300):
        raw = fleet.kustomization("t", f"app-{i % 50}")
        message = f"health check {i} failed: " + "x" * 4000
        raw["status"] = fleet.failed_status("HealthCheckFailed", message)
        obj = parse_object(raw, projector=projector)
        assert obj.signals is not None
        assert obj.signals.conditions[0].message == message
        store.upsert(obj)
        assert interner.chars <= interner.message_chars + 2 * MAX_MESSAGE
        resets += interner.messages == 1  # the tables started again with this message
    assert resets >= 3


def test_the_tenants_pieces_follow_the_views_they_are_given() -> None:
    """After each publish the kept /tenants pieces are exactly those a fresh writing of the View gives: a tenant
    changed, added or gone is written or dropped, whether the View follows the last one seen or not."""
    store = Store()
    cache = ViewCache()
    pieces = TenantPieces()

    def publish() -> View:
        view = build_view(store, now=1e9, cache=cache)
        pieces.update(view)
        return view

    def check(view: View) -> None:
        fresh = TenantPieces()
        fresh.update(build_view(store, now=1e9))
        assert pieces.body(view, view.tenants)[30:] == fresh.body(view, view.tenants)[30:]
        assert pieces.size == fresh.size

    for i in range(5):
        store.upsert(parse_object(fleet.kustomization(f"ns-{i}", "app") | {
            "status": fleet.failed_status("BuildFailed", f"kustomize build failed: {i}")}))
    check(publish())
    store.upsert(parse_object(fleet.kustomization("ns-1", "app") | {"status": fleet.ready_status("Kustomization")}))
    store.delete("Kustomization", "ns-2", "app")
    store.upsert(parse_object(fleet.kustomization("ns-9", "app")))
    check(publish())
    build_view(store, now=1e9, cache=cache)  # a build that is not shown: the next one does not follow it
    store.delete("Kustomization", "ns-3", "app")
    check(publish())

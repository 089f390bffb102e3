"""Reflector semantics on the real API server: resume, 410 relist after compaction, deletions while
disconnected, connection errors retried without relisting, a CRD installed after start.

The only test double is ``GatedClient``: the real client, with a gate in front of watch requests so a test
can hold the exporter "disconnected" while it changes the cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from flux_tenant_exporter.base.config import WatchSettings
from flux_tenant_exporter.base.kinds import BUCKET, GITREPOSITORY
from flux_tenant_exporter.flux.projection import Projector
from flux_tenant_exporter.ingest.reflector import Reflector, watch_kind
from flux_tenant_exporter.ingest.sinks import FluxSink
from flux_tenant_exporter.kube.client import KubeClient, OversizedLine
from flux_tenant_exporter.state.store import Store
from flux_tenant_exporter.telemetry.selfmetrics import SelfMetrics
from flux_tenant_exporter.telemetry.sync import KindSync, KindTelemetry
from testbed import fleet
from testbed.controlplane import ControlPlane, find_assets


class GatedClient(KubeClient):
    """The real client; watch requests wait while ``hold`` is set, and may be told to fail once."""

    def __init__(self, inner: KubeClient) -> None:
        super().__init__(host=inner.host, ssl_context=inner._ssl, token_source=inner._token_source)
        self.hold = False
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        self.fail_next: BaseException | None = None
        self.watch_params: list[dict[str, str]] = []

    @asynccontextmanager
    async def stream(
        self, path: str, *, params: Mapping[str, str], inactivity_timeout: float
    ) -> AsyncIterator[AsyncIterator[bytes | OversizedLine]]:
        if self.hold:
            self.waiting.set()
            await self.gate.wait()
        self.watch_params.append(dict(params))
        if self.fail_next is not None:
            err, self.fail_next = self.fail_next, None
            raise err
        async with super().stream(path, params=params, inactivity_timeout=inactivity_timeout) as lines:
            yield lines


async def until(store: Store, predicate: Callable[[], bool], limit: float = 20) -> None:
    """Wait for store writes until ``predicate`` holds."""
    async with asyncio.timeout(limit):
        while not predicate():
            store.changed.clear()
            await store.changed.wait()


@pytest.fixture
async def gated(control_plane: ControlPlane) -> AsyncIterator[GatedClient]:
    inner = await KubeClient.from_kubeconfig(control_plane.kubeconfig)
    client = GatedClient(inner)
    yield client
    await client.close()
    await inner.close()


def reflector(client: KubeClient, store: Store, namespace: str, **watch: Any) -> tuple[Reflector, SelfMetrics]:
    metrics = SelfMetrics(CollectorRegistry())
    settings = WatchSettings(backoff_initial=0.01, backoff_max=0.05, **watch)
    ref = Reflector(client=client, kind=GITREPOSITORY, version="v1", namespace=namespace,
                    sink=FluxSink(GITREPOSITORY, store, Projector()),
                    observer=KindTelemetry(KindSync("GitRepository"), metrics), settings=settings)
    return ref, metrics


def names(store: Store, namespace: str) -> set[str]:
    return {k[2] for k in store.objects if k[1] == namespace}


async def test_deleted_while_disconnected_is_gone_after_the_410_relist(
    admin: KubeClient, control_plane: ControlPlane, gated: GatedClient, namespace: str, store: Store
) -> None:
    """Disconnected across a deletion and an etcd compaction, the resumed watch gets 410, relists, and the
    deleted object disappears: no ghost."""
    for name in ("keep", "drop"):
        await fleet.create(admin, fleet.gitrepository(namespace, name))
    ref, metrics = reflector(gated, store, namespace, server_timeout=(1, 1))
    task = asyncio.create_task(ref.run())
    try:
        await until(store, lambda: names(store, namespace) == {"keep", "drop"})
        gated.hold = True  # the next watch (after the 1 s server timeout) waits at the gate
        async with asyncio.timeout(20):  # not wait_for: it can swallow a cancellation on Python 3.11
            await gated.waiting.wait()
        await fleet.delete(admin, fleet.gitrepository(namespace, "drop"))
        await fleet.create(admin, fleet.gitrepository(namespace, "new"))
        await asyncio.to_thread(control_plane.compact)
        gated.gate.set()
        await until(store, lambda: names(store, namespace) == {"keep", "new"})
    finally:
        task.cancel()
    assert metrics.registry.get_sample_value("fluxtenant_exporter_relists_total",
                                             {"kind": "GitRepository", "reason": "gone"}) == 1
    assert metrics.registry.get_sample_value("fluxtenant_exporter_watch_requests_total",
                                             {"kind": "GitRepository", "result": "gone"}) == 1


async def test_connection_error_retries_the_watch_from_the_same_resource_version(
    admin: KubeClient, gated: GatedClient, namespace: str, store: Store
) -> None:
    """A refused connection retries the watch from the same resourceVersion, without a relist, and events
    made meanwhile still arrive."""
    await fleet.create(admin, fleet.gitrepository(namespace, "one"))
    ref, metrics = reflector(gated, store, namespace)
    gated.fail_next = aiohttp.ClientConnectionError("connection refused")
    task = asyncio.create_task(ref.run())
    try:
        await until(store, lambda: names(store, namespace) == {"one"})
        await fleet.create(admin, fleet.gitrepository(namespace, "two"))
        await until(store, lambda: names(store, namespace) == {"one", "two"})
    finally:
        task.cancel()
    first, second = gated.watch_params[:2]
    assert first["resourceVersion"] == second["resourceVersion"]
    assert first["allowWatchBookmarks"] == "true"
    assert 300 <= int(first["timeoutSeconds"]) <= 600
    assert metrics.registry.get_sample_value("fluxtenant_exporter_relists_total",
                                             {"kind": "GitRepository", "reason": "initial"}) == 1
    assert metrics.registry.get_sample_value("fluxtenant_exporter_relists_total",
                                             {"kind": "GitRepository", "reason": "gone"}) == 0  # no relist


@pytest.fixture(scope="module")
def control_plane_without_buckets() -> Iterator[ControlPlane]:
    """A second control plane whose Bucket CRD is not installed at start."""
    cp = ControlPlane()
    cp.assets = type(cp.assets)(cp.assets.kube_apiserver, cp.assets.etcd,
                                tuple(c for c in cp.assets.crds if "buckets" not in c.name), cp.assets.versions)
    with cp:
        yield cp


async def test_a_crd_installed_after_start_is_discovered_and_watched(
    control_plane_without_buckets: ControlPlane, store: Store
) -> None:
    """A missing CRD is reported absent (the other kinds are unaffected), then found and watched once installed."""
    cp = control_plane_without_buckets
    client = await KubeClient.from_kubeconfig(cp.kubeconfig)
    health = KindSync("Bucket")
    metrics = SelfMetrics(CollectorRegistry())
    settled = asyncio.Event()
    task = asyncio.create_task(watch_kind(
        client=client, kind=BUCKET, sink=FluxSink(BUCKET, store, Projector()),
        observer=KindTelemetry(health, metrics, settled.set), settings=WatchSettings(rediscover_interval=0.2),
    ))
    try:
        async with asyncio.timeout(20):
            await settled.wait()
        assert health.status == "absent"
        assert metrics.registry.get_sample_value("fluxtenant_exporter_kind_absent", {"kind": "Bucket"}) == 1
        bucket_crd = [c for c in find_assets().crds if "buckets" in c.name]
        await asyncio.to_thread(cp.install_crds, bucket_crd)
        await fleet.create(client, fleet.namespace("late"), exist_ok=True)
        await fleet.create(client, fleet.bucket("late", "assets"))
        await until(store, lambda: ("Bucket", "late", "assets") in store.objects)
        assert str(health.status) == "synced"
        assert health.version == "v1"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


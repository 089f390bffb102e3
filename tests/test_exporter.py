"""The exporter end to end on the real control plane: readiness, /metrics, /tenants, live updates, RBAC."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from flux_tenant_exporter.base.config import WatchSettings
from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.render.documents import tenants_doc
from flux_tenant_exporter.serve.app import Exporter
from testbed import fleet
from testbed.controlplane import ControlPlane
from testbed.identities import restricted_identity
from testbed.running import StartExporter, exporter_settings


async def get(exporter: Exporter, path: str, **headers: str) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession(auto_decompress=False) as session, session.get(
        f"http://127.0.0.1:{exporter.port}{path}", headers={"Accept-Encoding": "identity", **headers}
    ) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def head(exporter: Exporter, path: str) -> bytes:
    """The whole answer to a HEAD request, read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", exporter.port)
    writer.write(f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    return answer


async def get_json(exporter: Exporter, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{exporter.port}{path}") as resp:
        return resp.status, await resp.json()


def sample_lines(body: bytes, namespace: str) -> list[str]:
    return [line for line in body.decode().splitlines() if f'namespace="{namespace}"' in line]


async def test_serves_the_fleet_as_metrics_and_tenants(
    admin: KubeClient, namespace: str, start_exporter: StartExporter
) -> None:
    """After the initial lists, /readyz is 200 and /metrics and /tenants/{name} describe the namespace's objects."""
    await fleet.create(admin, fleet.gitrepository(namespace, "repo"),
                       status=fleet.failed_status("GitOperationFailed", "authentication required",
                                                  since=fleet.ago(hours=1)))
    await fleet.create(admin, fleet.kustomization(namespace, "app"),
                       status=fleet.failed_status("ArtifactFailed", "Source artifact not found, retrying in 30s",
                                                  since=fleet.ago(hours=1)))
    await fleet.create(admin, fleet.kustomization(namespace, "ok", service_account=None),
                       status=fleet.ready_status("Kustomization"))
    exporter = await start_exporter()

    status, body, _ = await get(exporter, "/readyz")
    assert status == 200
    status, body, headers = await get(exporter, "/metrics")
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = sample_lines(body, namespace)
    ident = f'tenant="{namespace}",kind="Kustomization",namespace="{namespace}",name="app"'
    assert f'fluxtenant_resource_state{{{ident},state="failing"}} 1' in lines
    assert (f'fluxtenant_resource_failure{{{ident},category="source_not_ready",owner="tenant",'
            f'root_category="source_auth_failed"}} 1') in lines
    assert not [line for line in lines if line.startswith(f"fluxtenant_resource_root_cause{{{ident}}}")]
    assert f"fluxtenant_resource_stuck{{{ident}}} 1" in lines
    text = body.decode()
    assert f'fluxtenant_tenant_policy_violations{{tenant="{namespace}",rule="missing_service_account"}} 1' in text
    assert 'fluxtenant_exporter_kind_synced{kind="Kustomization"} 1' in text

    status, doc = await get_json(exporter, f"/tenants/{namespace}")
    assert status == 200
    assert doc["status"] == "failing"
    assert doc["counts"]["failing"] == 2
    first = doc["failures"][0]
    assert (first["kind"], first["name"], first["category"], first["root_cause"]) == (
        "GitRepository", "repo", "source_auth_failed", None)
    app = next(r for r in doc["resources"] if r["name"] == "app")
    assert app["root_cause"] == {"kind": "GitRepository", "namespace": namespace, "name": "repo"}
    assert app["root_category"] == "source_auth_failed"
    assert app["since"].endswith("Z")
    assert [v["rule"] for v in doc["violations"]] == ["missing_service_account"]


async def test_a_status_change_and_a_deletion_reach_metrics(
    admin: KubeClient, namespace: str, start_exporter: StartExporter
) -> None:
    """A status written by a controller shows up in /metrics after the watch event; a deletion removes the series."""
    obj = await fleet.create(admin, fleet.kustomization(namespace, "app"), status=fleet.ready_status("Kustomization"))
    exporter = await start_exporter()
    await fleet.write_status(admin, obj, fleet.failed_status("HealthCheckFailed", "health check failed after 5m"))

    def failing(e: Exporter) -> bool:
        return any(r.namespace == namespace and r.state == "failing" for r in e.view.resources)

    await exporter.wait_for(failing)
    _, body, _ = await get(exporter, "/metrics")
    assert any('category="health_check_failed"' in line for line in sample_lines(body, namespace))
    await fleet.delete(admin, obj)
    await exporter.wait_for(lambda e: not any(r.namespace == namespace for r in e.view.resources))
    _, body, _ = await get(exporter, "/metrics")
    assert not [line for line in sample_lines(body, namespace) if line.startswith("fluxtenant_resource_")]


async def test_a_read_sees_every_event_received_before_it_without_waiting_for_the_publisher(
    admin: KubeClient, namespace: str, start_exporter: StartExporter
) -> None:
    """With the publisher asleep for an hour after a publish, a status change the watch has received is on the
    next /metrics and /tenants read anyway: a read publishes the few waiting changes first."""
    obj = await fleet.create(admin, fleet.kustomization(namespace, "app"), status=fleet.ready_status("Kustomization"))
    exporter = await start_exporter()
    exporter.settings = replace(exporter.settings, publish_interval=3600)
    await fleet.write_status(admin, obj, fleet.failed_status("BuildFailed", "kustomize build failed: one"))

    def state_is(category: str) -> Callable[[Exporter], bool]:
        return lambda e: any(r.namespace == namespace and r.category == category for r in e.view.resources)

    await exporter.wait_for(state_is("build_failed"))  # published by the publisher, which now sleeps an hour
    published = exporter.published
    await fleet.write_status(admin, obj, fleet.failed_status("HealthCheckFailed", "health check failed after 5m"))
    key = ("Kustomization", namespace, "app")
    while exporter.store.objects[key].verdict.category != "health_check_failed":  # the watch event arrived
        await exporter.store.changed.wait()
        await asyncio.sleep(0)  # let the watch task apply what set the event
    assert exporter.published == published  # the publisher did not run
    _, body, _ = await get(exporter, "/metrics")
    assert any('category="health_check_failed"' in line for line in sample_lines(body, namespace))
    status, doc = await get_json(exporter, f"/tenants/{namespace}")
    assert status == 200
    assert {r["category"] for r in doc["resources"]} == {"health_check_failed"}
    assert exporter.published == published + 1
    # and a wait_for() caller hears of that publish at once, not at the publisher's next round an hour away
    await fleet.write_status(admin, obj, fleet.failed_status("BuildFailed", "kustomize build failed: two"))
    while exporter.store.objects[key].verdict.category != "build_failed":
        await exporter.store.changed.wait()
        await asyncio.sleep(0)
    waiting = asyncio.create_task(exporter.wait_for(state_is("build_failed"), timeout=10))
    await asyncio.sleep(0)  # the waiter is parked on the condition
    _, body, _ = await get(exporter, "/metrics")
    await waiting


async def test_paged_list_reads_every_page(admin: KubeClient, namespace: str, start_exporter: StartExporter) -> None:
    """With a page size of 2, five objects take three list requests and all five are served."""
    await asyncio.gather(*(fleet.create(admin, fleet.gitrepository(namespace, f"repo-{i}")) for i in range(5)))
    exporter = await start_exporter(namespaces=(namespace,), kinds=("gitrepository",),
                                    watch=WatchSettings(page_size=2))
    pages = exporter.metrics.registry.get_sample_value(
        "fluxtenant_exporter_list_requests_total", {"kind": "GitRepository", "result": "success"})
    assert pages == 3
    assert sum(1 for r in exporter.view.resources if r.namespace == namespace) == 5


async def test_label_selector_follows_flux_sharding(
    admin: KubeClient, namespace: str, start_exporter: StartExporter
) -> None:
    """--label-selector keeps only the objects of one shard."""
    mine = fleet.kustomization(namespace, "shard1")
    mine["metadata"]["labels"] = {"sharding.fluxcd.io/key": "shard1"}
    await fleet.create(admin, mine)
    await fleet.create(admin, fleet.kustomization(namespace, "other"))
    exporter = await start_exporter(kinds=("kustomization",),
                                    watch=WatchSettings(label_selector="sharding.fluxcd.io/key=shard1"))
    names = {r.name for r in exporter.view.resources if r.namespace == namespace}
    assert names == {"shard1"}


async def test_http_api_errors_filters_and_gzip(
    admin: KubeClient, namespace: str, start_exporter: StartExporter
) -> None:
    """Filters narrow the resources; bad filters and overlong names are 400 and unknown tenants 404, as JSON; gzip
    when asked; the streamed /metrics has an exact Content-Length and no body for HEAD."""
    await fleet.create(admin, fleet.kustomization(namespace, "bad"),
                       status=fleet.failed_status("BuildFailed", "kustomize build failed: yaml: line 1"))
    await fleet.create(admin, fleet.kustomization(namespace, "good"), status=fleet.ready_status("Kustomization"))
    exporter = await start_exporter(kinds=("kustomization",))

    status, doc = await get_json(exporter, f"/tenants/{namespace}?state=failing")
    assert status == 200
    assert [r["name"] for r in doc["resources"]] == ["bad"]
    status, doc = await get_json(exporter, f"/tenants/{namespace}?category=build_failed&owner=tenant&stuck=false")
    assert [r["name"] for r in doc["resources"]] == ["bad"]
    status, doc = await get_json(exporter, "/tenants?state=sleeping")
    assert status == 400
    assert "state='sleeping' is not one of" in doc["error"]["message"]
    status, doc = await get_json(exporter, "/tenants/no-such-tenant")
    assert status == 404
    status, doc = await get_json(exporter, "/tenants/Not_A_Name")
    assert status == 404  # any name may be a tenant's (label values, mapping keys): unknown, not invalid
    status, doc = await get_json(exporter, "/tenants/" + "x" * 254)
    assert status == 400
    status, doc = await get_json(exporter, "/nothing-here")
    assert status == 404
    assert doc["error"]["status"] == 404
    status, doc = await get_json(exporter, "/tenants")
    assert doc == tenants_doc(exporter.view)  # the per-tenant cached body is the same document
    status, raw, headers = await get(exporter, "/tenants", **{"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(raw)) == doc
    status, raw, headers = await get(exporter, "/tenants")
    assert int(headers["Content-Length"]) == len(raw)
    assert headers["Content-Type"] == "application/json"
    status, doc = await get_json(exporter, "/tenants?state=failing")
    assert namespace in [t["name"] for t in doc["tenants"]]
    assert all(any(f["state"] == "failing" for f in t["failures"]) for t in doc["tenants"])

    status, raw, headers = await get(exporter, "/metrics", **{"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    plain = gzip.decompress(raw).decode()
    assert f'namespace="{namespace}",name="bad"' in plain
    assert "fluxtenant_exporter_build_info" in plain
    status, body, headers = await get(exporter, "/metrics")
    assert int(headers["Content-Length"]) == len(body)
    for path in ("/metrics", "/tenants"):  # both streamed: a HEAD answer is the headers and nothing else
        answer = await head(exporter, path)
        assert answer.startswith(b"HTTP/1.1 200")
        assert answer.endswith(b"\r\n\r\n")
    status, body, _ = await get(exporter, "/healthz")
    assert status == 200
    status, body, _ = await get(exporter, "/openapi.yaml")
    assert b"/tenants/{name}" in body


async def test_restricted_identity_in_namespaced_mode(
    admin: KubeClient, control_plane: ControlPlane, namespace: str, tmp_path: Path, start_exporter: StartExporter
) -> None:
    """With only a Role in one namespace, --namespaces serves that namespace; a kind the Role does not grant is
    reported forbidden and the cluster-wide Namespace watch too, without breaking the others or readiness."""
    rules = [{"apiGroups": ["kustomize.toolkit.fluxcd.io"], "resources": ["kustomizations"],
              "verbs": ["get", "list", "watch"]}]
    kubeconfig = await restricted_identity(admin, control_plane, namespace, rules, tmp_path)
    await fleet.create(admin, fleet.kustomization(namespace, "app"), status=fleet.ready_status("Kustomization"))
    exporter = await start_exporter(kubeconfig, namespaces=(namespace,), kinds=("kustomization", "gitrepository"))

    status, doc = await get_json(exporter, "/readyz")
    assert status == 200
    assert doc["kinds"]["kustomization"]["status"] == "synced"
    assert doc["kinds"]["gitrepository"]["status"] == "forbidden"
    assert doc["kinds"]["namespace"]["status"] == "forbidden"
    assert {(r.kind, r.name) for r in exporter.view.resources} == {("Kustomization", "app")}
    registry = exporter.metrics.registry
    assert registry.get_sample_value("fluxtenant_exporter_kind_forbidden", {"kind": "GitRepository"}) == 1
    assert registry.get_sample_value("fluxtenant_exporter_kind_synced", {"kind": "Kustomization"}) == 1


async def test_cyclic_gc_is_paused_only_during_the_first_list(
    admin: KubeClient, namespace: str, start_exporter: StartExporter, control_plane: ControlPlane
) -> None:
    """The GC is off while the first list runs, on again with the synced fleet frozen once it is served, and on
    again if the exporter stops before it got there."""
    await fleet.create(admin, fleet.kustomization(namespace, "app"), status=fleet.ready_status("Kustomization"))
    gc.unfreeze()
    early = Exporter(exporter_settings(), await KubeClient.from_kubeconfig(control_plane.kubeconfig))
    await early.start()
    assert not gc.isenabled()
    await early.stop()
    assert gc.isenabled()
    gc.unfreeze()
    await start_exporter()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0

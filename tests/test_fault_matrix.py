"""The fault matrix (marker ``faults``): what production does to the exporter, on the real control plane.

Each test breaks something real (the API server process, etcd history, a CRD, RBAC, the token file, the network
path through a loopback TCP proxy, the process itself) and then compares what the exporter serves with what the
API server holds. The control plane is this module's own: the faults would disturb the other tests'.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flux_tenant_exporter.base.config import AccessSettings, WatchSettings
from flux_tenant_exporter.base.kinds import GITREPOSITORY
from flux_tenant_exporter.kube.client import ApiError, KubeClient
from flux_tenant_exporter.serve.app import Exporter
from testbed import fleet, identities
from testbed.controlplane import ControlPlane, find_assets, free_port
from testbed.proxy import FaultProxy
from testbed.running import StartExporter

pytestmark = pytest.mark.faults

@pytest.fixture(scope="module")
def control_plane() -> Iterator[ControlPlane]:
    """This module's own control plane (the faults below would disturb other tests'); the conftest's admin,
    namespace and start_exporter fixtures use it."""
    with ControlPlane() as plane:
        yield plane


@pytest.fixture
def start(start_exporter: StartExporter) -> StartExporter:
    """Starts exporters watching GitRepositories (unless told otherwise)."""

    async def start(kubeconfig: Path | None = None, **overrides: Any) -> Exporter:
        return await start_exporter(kubeconfig, **{"kinds": ("gitrepository",), **overrides})

    return start


async def until(predicate: Callable[[], bool], limit: float = 30, what: str = "") -> None:
    """Poll ``predicate`` every 20 ms until it holds; fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {limit} s: {what or predicate}")
        await asyncio.sleep(0.02)


async def truth(admin: KubeClient, kind_path: str) -> dict[str, str]:
    """What the API server holds: name -> Ready message."""
    listed = await admin.request("GET", kind_path)
    out = {}
    for item in listed["items"]:
        ready = [c for c in (item.get("status") or {}).get("conditions", []) if c["type"] == "Ready"]
        out[item["metadata"]["name"]] = ready[0]["message"] if ready else ""
    return out


def served(exporter: Exporter, namespace: str, kind: str = "GitRepository") -> dict[str, str]:
    """What the exporter publishes: name -> message."""
    return {r.name: r.message for r in exporter.view.resources if r.namespace == namespace and r.kind == kind}


def sample(exporter: Exporter, name: str, **labels: str) -> float | None:
    return exporter.metrics.registry.get_sample_value(name, labels)


async def get(exporter: Exporter, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{exporter.port}{path}") as resp:
        body = await resp.read()
        return resp.status, json.loads(body) if resp.content_type == "application/json" else body.decode()


def repos_path(namespace: str) -> str:
    return GITREPOSITORY.collection_path("v1", namespace)


async def converged(exporter: Exporter, admin: KubeClient, namespace: str, limit: float = 30) -> dict[str, str]:
    """Wait until the exporter serves exactly what the API server holds (no ghost, nothing missing, no stale)."""
    deadline = time.monotonic() + limit
    while True:
        want = await truth(admin, repos_path(namespace))
        if served(exporter, namespace) == want:
            return want
        if time.monotonic() > deadline:
            pytest.fail(f"exporter never converged: served {served(exporter, namespace)} != truth {want}")
        await asyncio.sleep(0.05)


async def test_api_server_sigkill_and_restart_with_writes_during_and_after(
    control_plane: ControlPlane, admin: KubeClient, namespace: str, start: StartExporter
) -> None:
    """kube-apiserver SIGKILLed and restarted on the same port while a writer keeps writing statuses (retrying
    through the outage): during it, /readyz stays 200, ``kind_connected`` drops to 0 and the last state is served;
    afterwards the exporter reconnects by itself and serves exactly the API server's objects and messages."""
    repos = [await fleet.create(admin, fleet.gitrepository(namespace, f"repo-{i}"),
                                status=fleet.failed_status("GitOperationFailed", "write 0")) for i in range(10)]
    exporter = await start()
    await converged(exporter, admin, namespace)
    writes = 0
    stop_writing = asyncio.Event()

    async def writer() -> None:
        nonlocal writes
        while not stop_writing.is_set():
            repo = repos[writes % len(repos)]
            try:
                await fleet.write_status(admin, repo, fleet.failed_status("GitOperationFailed", f"write {writes + 1}"))
                writes += 1
            except (aiohttp.ClientError, OSError, ApiError, TimeoutError):
                await asyncio.sleep(0.05)  # the API server is down: retry, as a controller would
            await asyncio.sleep(0.01)

    writing = asyncio.create_task(writer())
    try:
        await until(lambda: writes >= 10, what="writes before the kill")
        await asyncio.to_thread(control_plane.kill_apiserver)
        before_outage = writes
        health = exporter.kinds["gitrepository"]
        await until(lambda: not health.connected, what="kind_connected = 0")
        assert sample(exporter, "fluxtenant_exporter_kind_connected", kind="GitRepository") == 0
        assert sample(exporter, "fluxtenant_exporter_kind_synced", kind="GitRepository") == 1
        status, ready = await get(exporter, "/readyz")
        assert status == 200
        assert ready["kinds"]["gitrepository"]["connected"] is False
        assert served(exporter, namespace)  # the last known state is still served
        # from this (the main) thread: the child dies with the thread that made it
        control_plane.start_apiserver(wait=False)
        await asyncio.to_thread(control_plane.wait_ready)
        await until(lambda: writes >= before_outage + 20, what="writes after the restart")
    finally:
        stop_writing.set()
        await writing
    await converged(exporter, admin, namespace)
    await until(lambda: health.connected, what="kind_connected = 1 again")
    assert sample(exporter, "fluxtenant_exporter_kind_connected", kind="GitRepository") == 1


async def test_compaction_while_disconnected_relists_without_ghosts(
    control_plane: ControlPlane, admin: KubeClient, namespace: str, start: StartExporter, tmp_path: Path
) -> None:
    """The network path is cut (connections reset, new ones refused) while an object is deleted, another created
    and etcd compacted: on reconnect the watch gets 410, the exporter relists, and serves exactly the API server's
    objects (the deleted one is gone from /metrics too)."""
    for name in ("keep", "drop"):
        await fleet.create(admin, fleet.gitrepository(namespace, name))
    async with FaultProxy(control_plane.apiserver_port) as proxy:
        exporter = await start(control_plane.write_kubeconfig(tmp_path / "proxied", server=proxy.url))
        await converged(exporter, admin, namespace)
        proxy.mode = "refuse"
        assert proxy.cut() >= 1
        health = exporter.kinds["gitrepository"]
        await until(lambda: not health.connected, what="disconnected")
        await fleet.delete(admin, fleet.gitrepository(namespace, "drop"))
        await fleet.create(admin, fleet.gitrepository(namespace, "new"))
        await asyncio.to_thread(control_plane.compact)
        proxy.mode = "pass"
        assert set(await converged(exporter, admin, namespace)) == {"keep", "new"}
    assert (sample(exporter, "fluxtenant_exporter_relists_total", kind="GitRepository", reason="gone") or 0) >= 1
    _, metrics = await get(exporter, "/metrics")
    assert f'namespace="{namespace}",name="drop"' not in metrics
    assert f'namespace="{namespace}",name="new"' in metrics


async def test_a_blackholed_stream_is_abandoned_and_writes_made_meanwhile_arrive(
    control_plane: ControlPlane, admin: KubeClient, namespace: str, start: StartExporter, tmp_path: Path
) -> None:
    """A half-open path (bytes vanish, no reset): the inactivity watchdog ends the silent watch, the kind shows
    disconnected, and once the path works again the writes made meanwhile are served."""
    await fleet.create(admin, fleet.gitrepository(namespace, "repo"), status=fleet.failed_status("X", "before"))
    async with FaultProxy(control_plane.apiserver_port) as proxy:
        watch = WatchSettings(backoff_initial=0.05, backoff_max=0.5, inactivity_timeout=1.0)
        exporter = await start(control_plane.write_kubeconfig(tmp_path / "proxied", server=proxy.url), watch=watch)
        await converged(exporter, admin, namespace)
        proxy.mode = "blackhole"
        repo = await admin.request("GET", fleet.path_of(fleet.gitrepository(namespace, "repo")))
        await fleet.write_status(admin, repo, fleet.failed_status("X", "during"))
        await until(lambda: (sample(exporter, "fluxtenant_exporter_watch_requests_total", kind="GitRepository",
                                    result="timeout") or 0) >= 1, what="the watchdog fired")
        assert not exporter.kinds["gitrepository"].connected
        assert served(exporter, namespace) == {"repo": "before"}
        proxy.mode = "pass"
        proxy.cut()  # the blackholed connections are dropped by the client's timeouts; do it now
        assert await converged(exporter, admin, namespace) == {"repo": "during"}


async def test_crd_deleted_and_reinstalled(
    control_plane: ControlPlane, admin: KubeClient, namespace: str, start: StartExporter
) -> None:
    """Deleting the Bucket CRD (its objects go with it) makes the kind absent with no objects left, and other kinds
    unaffected; reinstalling it brings the kind back, synced, with the objects created since."""
    crd = [c for c in find_assets().crds if "buckets" in c.name]
    await fleet.create(admin, fleet.bucket(namespace, "old"))
    await fleet.create(admin, fleet.gitrepository(namespace, "repo"))
    exporter = await start(kinds=("bucket", "gitrepository"))
    bucket = exporter.kinds["bucket"]
    await until(lambda: served(exporter, namespace, "Bucket") == {"old": ""}, what="bucket listed")
    try:
        await asyncio.to_thread(control_plane.delete_crds, crd)
        await until(lambda: bucket.status == "absent" and not served(exporter, namespace, "Bucket"), what="absent")
        await exporter.wait_for(lambda e: not [r for r in e.view.resources if r.kind == "Bucket"])
        assert sample(exporter, "fluxtenant_exporter_kind_absent", kind="Bucket") == 1
        assert served(exporter, namespace) == {"repo": ""}
        status, _ = await get(exporter, "/readyz")
        assert status == 200
    finally:
        await asyncio.to_thread(control_plane.install_crds, crd)
    await fleet.create(admin, fleet.bucket(namespace, "new"))
    await until(lambda: bucket.status == "synced" and served(exporter, namespace, "Bucket") == {"new": ""},
                what="bucket kind back")
    assert sample(exporter, "fluxtenant_exporter_kind_absent", kind="Bucket") == 0


async def service_account_token(admin: KubeClient, namespace: str, sa: str, bound_secret: str | None = None) -> str:
    """A TokenRequest token of ``sa`` (bound to a Secret, so deleting the Secret revokes it)."""
    spec: dict[str, Any] = {"expirationSeconds": 3600}
    if bound_secret:
        secret = await admin.request("POST", f"/api/v1/namespaces/{namespace}/secrets",
                                     body={"metadata": {"name": bound_secret}})
        spec["boundObjectRef"] = {"kind": "Secret", "apiVersion": "v1", "name": bound_secret,
                                  "uid": secret["metadata"]["uid"]}
    token = await admin.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token",
                                body={"spec": spec})
    return str(token["status"]["token"])


async def grant(admin: KubeClient, namespace: str, sa: str) -> None:
    """A Role and RoleBinding letting ``sa`` read GitRepositories in ``namespace``."""
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    rules = [{"apiGroups": ["source.toolkit.fluxcd.io"], "resources": ["gitrepositories"],
              "verbs": ["get", "list", "watch"]}]
    await admin.request("POST", f"{rbac}/roles", body={"metadata": {"name": sa}, "rules": rules})
    await admin.request("POST", f"{rbac}/rolebindings", body={
        "metadata": {"name": sa},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
    })


async def test_rbac_granted_and_revoked_at_runtime(
    control_plane: ControlPlane, admin: KubeClient, namespace: str, start: StartExporter, tmp_path: Path
) -> None:
    """An identity without rights starts ready with the kind forbidden; a RoleBinding granted at runtime is picked
    up (synced, objects served); revoking it makes the kind forbidden again at the next watch request, and its
    objects leave the metrics (no stale data shown as current)."""
    await fleet.create(admin, fleet.gitrepository(namespace, "repo"))
    await admin.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                        body={"metadata": {"name": "reader"}})
    token = await service_account_token(admin, namespace, "reader")
    kubeconfig = control_plane.token_kubeconfig(token, tmp_path / "reader")
    watch = WatchSettings(backoff_initial=0.05, backoff_max=0.5, server_timeout=(1, 1))
    exporter = await start(kubeconfig, namespaces=(namespace,), watch=watch)
    health = exporter.kinds["gitrepository"]
    assert health.status == "forbidden"
    assert served(exporter, namespace) == {}
    await grant(admin, namespace, "reader")
    await until(lambda: health.status == "synced" and served(exporter, namespace) == {"repo": ""}, what="granted")
    assert sample(exporter, "fluxtenant_exporter_kind_forbidden", kind="GitRepository") == 0
    await admin.request("DELETE", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/reader")
    await until(lambda: health.status == "forbidden" and served(exporter, namespace) == {}, what="revoked")
    assert sample(exporter, "fluxtenant_exporter_kind_forbidden", kind="GitRepository") == 1


async def test_token_rotation_the_kubelet_way_and_an_empty_file_window(
    control_plane: ControlPlane, admin: KubeClient, namespace: str, start: StartExporter, tmp_path: Path
) -> None:
    """The token file is a projected volume: ``token`` -> ``..data/token``, and rotation swaps ``..data`` to a new
    directory; the old token is then revoked. Watches re-authenticate (1 s server timeout) with the new token and
    writes keep arriving. Then the file is rewritten in place and left empty for several reconnects: the exporter
    keeps the last good token, stays alive, and takes the next token once it is written."""
    await admin.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                        body={"metadata": {"name": "reader"}})
    await grant(admin, namespace, "reader")
    volume = tmp_path / "serviceaccount"
    volume.mkdir()

    async def project(generation: int, secret: str) -> Path:
        folder = volume / f"..2026_token_{generation}"
        folder.mkdir()
        (folder / "token").write_text(await service_account_token(admin, namespace, "reader", bound_secret=secret))
        (volume / "..data_tmp").symlink_to(folder.name)
        (volume / "..data_tmp").replace(volume / "..data")  # the atomic swap the kubelet does
        return folder / "token"

    await project(1, "token-1")
    (volume / "token").symlink_to("..data/token")
    kubeconfig = control_plane.write_kubeconfig(tmp_path / "kubeconfig", user={"tokenFile": str(volume / "token")})
    watch = WatchSettings(backoff_initial=0.05, backoff_max=0.5, server_timeout=(1, 1))
    await fleet.create(admin, fleet.gitrepository(namespace, "first"))
    exporter = await start(kubeconfig, namespaces=(namespace,), watch=watch)
    await converged(exporter, admin, namespace)

    current = await project(2, "token-2")
    await admin.request("DELETE", f"/api/v1/namespaces/{namespace}/secrets/token-1")  # revokes the first token
    await fleet.create(admin, fleet.gitrepository(namespace, "after-rotation"))
    await converged(exporter, admin, namespace)
    watches = sample(exporter, "fluxtenant_exporter_watch_requests_total", kind="GitRepository", result="closed")
    assert watches is not None

    current.write_text("")  # `kubectl create token ... > file`: empty until the command finishes
    await fleet.create(admin, fleet.gitrepository(namespace, "during-empty"))
    await until(lambda: (sample(exporter, "fluxtenant_exporter_watch_requests_total", kind="GitRepository",
                                result="closed") or 0) >= watches + 3, what="three reconnects with an empty file")
    await converged(exporter, admin, namespace)
    assert exporter.alive()
    current.write_text(await service_account_token(admin, namespace, "reader", bound_secret="token-3"))
    await admin.request("DELETE", f"/api/v1/namespaces/{namespace}/secrets/token-2")
    await fleet.create(admin, fleet.gitrepository(namespace, "after-refill"))
    assert set(await converged(exporter, admin, namespace)) == {
        "first", "after-rotation", "during-empty", "after-refill"}
    assert exporter.alive()
    status, _ = await get(exporter, "/healthz")
    assert status == 200
    assert exporter.kinds["gitrepository"].connected


LOAD_SCRIPT = r"""
import asyncio, sys, time, aiohttp
from prometheus_client.parser import text_string_to_metric_families
base, seconds, workers = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
stats = {"ok": 0, "bad": 0}
async def worker(session, i):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        path = "/metrics" if i % 2 else "/tenants"
        async with session.get(base + path) as resp:
            body = await resp.text()
            good = resp.status == 200
            if good and path == "/metrics":
                good = any(f.name == "fluxtenant_exporter_kind_connected" for f in text_string_to_metric_families(body))
            stats["ok" if good else "bad"] += 1
async def main():
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session, i) for i in range(workers)))
    print(stats["ok"], stats["bad"])
asyncio.run(main())
"""


async def test_bounded_http_load_with_writes_then_lag_returns_to_baseline(
    admin: KubeClient, namespace: str, start: StartExporter
) -> None:
    """16 concurrent scrapers of /metrics and /tenants for 4 s while statuses are written: every response is a 200
    whose exposition parses, writes keep arriving, and after the load the update lag is back near its baseline."""
    repos = [await fleet.create(admin, fleet.gitrepository(namespace, f"repo-{i}")) for i in range(200)]
    exporter = await start(namespaces=(namespace,))
    await converged(exporter, admin, namespace)
    counter = 0

    async def lag() -> float:
        nonlocal counter
        counter += 1
        message = f"write {counter}"
        repo = repos[counter % len(repos)]
        await fleet.write_status(admin, repo, fleet.failed_status("GitOperationFailed", message))
        written = time.monotonic()
        name = repo["metadata"]["name"]
        await until(lambda: served(exporter, namespace).get(name) == message, limit=20, what=message)
        return time.monotonic() - written

    baseline = [await lag() for _ in range(5)]
    load = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOAD_SCRIPT, f"http://127.0.0.1:{exporter.port}", "4", "16",
        stdout=asyncio.subprocess.PIPE,
    )
    during = []
    while load.returncode is None:
        during.append(await lag())
        if len(during) >= 200:
            break
    out, _ = await load.communicate()
    ok, bad = map(int, out.split())
    after = [await lag() for _ in range(5)]
    assert bad == 0
    assert ok >= 16  # every scraper got answers
    assert during
    assert max(after) <= max(3 * max(baseline), max(baseline) + 0.5), (baseline, during, after)
    await converged(exporter, admin, namespace)
    families = {f.name for f in text_string_to_metric_families((await get(exporter, "/metrics"))[1])}
    assert "fluxtenant_resource_info" in families


LIST_OBJECTS = 5000
TRIALS = 8


async def test_sigterm_at_random_points_of_a_5000_object_list_exits_cleanly_and_fast(
    control_plane: ControlPlane, admin: KubeClient, namespace: str
) -> None:
    """The exporter process gets SIGTERM at a random moment of its first list of 5,000 objects (and once after it
    is ready): every time it exits with status 0 within 2 s. (Last in the module: it leaves the objects behind.)"""
    objects = [fleet.gitrepository(namespace, f"repo-{i:04d}") for i in range(LIST_OBJECTS)]
    await asyncio.to_thread(control_plane.seed, objects, group=GITREPOSITORY.group, plural=GITREPOSITORY.plural)
    listed = await admin.request("GET", repos_path(namespace), params={"limit": "1"})
    assert listed["metadata"]["remainingItemCount"] == LIST_OBJECTS - 1
    rng = random.Random(13)
    list_seconds = 0.0
    exits = []
    for trial in range(TRIALS + 1):
        port = free_port()
        proc = subprocess.Popen(  # noqa: ASYNC220 - one child at a time, read line by line
            [sys.executable, "-m", "flux_tenant_exporter", "serve", "--kubeconfig", str(control_plane.kubeconfig),
             "--listen-address", "127.0.0.1", "--port", str(port), "--kinds", "gitrepository",
             "--namespaces", namespace, "--log-format", "json"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )
        assert proc.stderr is not None
        try:
            started = await asyncio.to_thread(_wait_for_log, proc, "exporter_started")
            if trial == 0:  # measure how long the list takes, then stop after it (the "ready" point)
                await asyncio.to_thread(_wait_for_log, proc, "exporter_ready")
                list_seconds = time.monotonic() - started
            else:
                delay = rng.uniform(0, list_seconds)
                await asyncio.sleep(max(0.0, started + delay - time.monotonic()))  # the fault's random moment
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = await asyncio.to_thread(proc.wait, 10)
            exits.append((rc, time.monotonic() - sent))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert list_seconds > 0
    assert all(rc == 0 for rc, _ in exits), exits
    assert max(seconds for _, seconds in exits) < 2.0, exits


def _wait_for_log(proc: subprocess.Popen[str], event: str) -> float:
    """Read the process's JSON log lines until one has ``event``; returns when (monotonic)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if f'"event": "{event}"' in line or f'"event":"{event}"' in line:
            return time.monotonic()
    pytest.fail(f"the exporter exited (rc {proc.wait()}) before logging {event}")


async def test_access_control_answers_503_never_401_while_the_api_server_is_down(
    control_plane: ControlPlane, admin: KubeClient, namespace: str, start: StartExporter
) -> None:
    """With access control on and the API server killed: a caller whose answers are kept is still served within
    the cache lifetimes; after them it gets 503 with Retry-After (never 401 or 403: it may well be allowed), and
    nothing of the outage is kept: once the API server is back the same token works at the first request."""
    await fleet.create(admin, fleet.gitrepository(namespace, "repo"), status=fleet.ready_status("GitRepository"))
    lifetime = 5.0
    access = AccessSettings(mode="kubernetes", token_ttl=lifetime, allow_ttl=lifetime, deny_ttl=lifetime)
    exporter = await start(access=access, namespaces=(namespace,))
    await identities.service_account(admin, namespace, "viewer")
    role = await identities.cluster_role(admin, "fte-test-flux-view", identities.FLUX_VIEW_RULES)
    await identities.bind(admin, role, [identities.subject(namespace, "viewer")], namespace=namespace)
    token = await identities.token(admin, namespace, "viewer")
    headers = {"Authorization": f"Bearer {token}"}

    async def tenants() -> tuple[int, dict[str, str], Any]:
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{exporter.port}/tenants", headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.json()

    status, _, doc = await tenants()
    assert (status, [t["name"] for t in doc["tenants"]]) == (200, [namespace])
    warmed = time.monotonic()
    await asyncio.to_thread(control_plane.kill_apiserver)
    try:
        if time.monotonic() - warmed < lifetime - 1:  # (the kill is quick; the bound is for a slow machine)
            status, _, doc = await tenants()
            assert (status, [t["name"] for t in doc["tenants"]]) == (200, [namespace])
        answers = []
        deadline = time.monotonic() + lifetime + 5
        while time.monotonic() < deadline:
            status, answer_headers, doc = await tenants()
            answers.append(status)
            if status == 503:
                break
            await asyncio.sleep(0.1)
        assert answers[-1] == 503, answers
        assert set(answers) <= {200, 503}, answers
        assert answer_headers["Retry-After"] == "5"
        assert "try again" in doc["error"]["message"]
        assert exporter.metrics.reviews.labels("token", "error").value >= 1
    finally:
        control_plane.start_apiserver(wait=False)  # from this (the main) thread: the child dies with it
        await asyncio.to_thread(control_plane.wait_ready)
    status, _, doc = await tenants()
    assert (status, [t["name"] for t in doc["tenants"]]) == (200, [namespace])

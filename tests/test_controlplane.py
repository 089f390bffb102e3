"""The test harness itself: the real API server serves the real Flux CRDs and behaves like a cluster."""

from __future__ import annotations

import asyncio
import os
import select
from pathlib import Path

import orjson
import pytest

from flux_tenant_exporter.base.kinds import CORE_KINDS, FLUX_KINDS, STATUSLESS_KINDS, WatchedKind
from flux_tenant_exporter.kube.client import ApiError, KubeClient
from testbed import fleet
from testbed.controlplane import ControlPlane
from testbed.identities import restricted_identity

SAMPLES = {
    "Kustomization": lambda ns: fleet.kustomization(ns, "obj"),
    "HelmRelease": lambda ns: fleet.helmrelease(ns, "obj"),
    "GitRepository": lambda ns: fleet.gitrepository(ns, "obj"),
    "OCIRepository": lambda ns: fleet.ocirepository(ns, "obj"),
    "HelmRepository": lambda ns: fleet.helmrepository(ns, "obj"),
    "HelmChart": lambda ns: fleet.helmchart(ns, "obj"),
    "Bucket": lambda ns: fleet.bucket(ns, "obj"),
}


def test_control_plane_reports_pinned_versions(control_plane: ControlPlane) -> None:
    """The API server runs the pinned Kubernetes release and the CRDs come from the pinned Flux release."""
    version = control_plane.request("GET", "/version")
    assert version["gitVersion"] == control_plane.assets.versions["kubernetes"]
    assert control_plane.assets.versions["flux"].startswith("v2.")


@pytest.mark.parametrize("kind", FLUX_KINDS, ids=lambda k: k.kind)
def test_each_flux_kind_is_served_at_its_ga_version(control_plane: ControlPlane, kind: WatchedKind) -> None:
    """Discovery lists every known Flux kind (the toolkit's, image automation's, notification's, source-watcher's,
    flux-operator's) at its first version, with the status subresource where the kind has a status."""
    resources = control_plane.request("GET", f"/apis/{kind.group}/{kind.versions[0]}")["resources"]
    names = {r["name"] for r in resources}
    assert kind.plural in names
    assert (f"{kind.plural}/status" in names) == (kind.kind not in STATUSLESS_KINDS)  # Alerts, Providers: no status


@pytest.mark.parametrize("kind", CORE_KINDS, ids=lambda k: k.kind)
async def test_schema_rejects_an_invalid_object(admin: KubeClient, namespace: str, kind: WatchedKind) -> None:
    """The CRD's OpenAPI schema is enforced: a bad interval (pattern) is rejected with 422, a good object is not."""
    good = SAMPLES[kind.kind](namespace)
    created = await fleet.create(admin, good)
    assert created["metadata"]["uid"]
    bad = SAMPLES[kind.kind](namespace)
    bad["metadata"]["name"] = "bad"
    bad["spec"]["interval"] = "every five minutes"
    with pytest.raises(ApiError) as info:
        await fleet.create(admin, bad)
    assert info.value.status == 422
    assert "spec.interval" in info.value.message


async def test_status_write_is_seen_by_list_and_watch(admin: KubeClient, namespace: str) -> None:
    """A status written through the subresource shows in a list and arrives as a MODIFIED watch event."""
    obj = await fleet.create(admin, fleet.kustomization(namespace, "app"))
    listed = await admin.request("GET", f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{namespace}/kustomizations")
    rv = listed["metadata"]["resourceVersion"]
    params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "30"}
    path = f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{namespace}/kustomizations"
    async with admin.stream(path, params=params, inactivity_timeout=30) as lines:
        await fleet.write_status(admin, obj, fleet.failed_status("BuildFailed", "kustomize build failed"))
        async for line in lines:
            assert isinstance(line, bytes)
            event = orjson.loads(line)
            if event["type"] == "MODIFIED":
                break
    assert event["object"]["status"]["conditions"][0]["reason"] == "BuildFailed"
    again = await admin.request("GET", fleet.path_of(obj))
    assert again["status"]["conditions"][0]["message"] == "kustomize build failed"


async def test_tenant_identity_is_denied_cluster_list_but_reads_its_namespace(
    admin: KubeClient, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """RBAC is real: a Role-bound service account may list Kustomizations in its namespace only."""
    rules = [{"apiGroups": ["kustomize.toolkit.fluxcd.io"], "resources": ["kustomizations"], "verbs": ["list"]}]
    kubeconfig = await restricted_identity(admin, control_plane, namespace, rules, tmp_path)
    tenant = await KubeClient.from_kubeconfig(kubeconfig)
    try:
        with pytest.raises(ApiError) as info:
            await tenant.request("GET", "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations")
        assert info.value.status == 403
        assert info.value.reason == "Forbidden"
        own = await tenant.request("GET", f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{namespace}/kustomizations")
        assert own["items"] == []
    finally:
        await tenant.close()


async def test_watch_resumed_after_compaction_gets_410(
    admin: KubeClient, control_plane: ControlPlane, namespace: str
) -> None:
    """After etcd compaction, a watch from an older resourceVersion ends with an ERROR 410 event."""
    path = f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{namespace}/gitrepositories"
    old_rv = (await admin.request("GET", path))["metadata"]["resourceVersion"]
    for i in range(3):
        await fleet.create(admin, fleet.gitrepository(namespace, f"repo-{i}"))
    await asyncio.to_thread(control_plane.compact)
    params = {"watch": "1", "resourceVersion": old_rv, "timeoutSeconds": "10"}
    async with admin.stream(path, params=params, inactivity_timeout=10) as lines:
        events = [orjson.loads(line) async for line in lines if isinstance(line, bytes)]
    assert events[-1]["type"] == "ERROR"
    assert events[-1]["object"]["code"] == 410


def test_a_killed_run_leaves_no_processes_and_its_directory_is_reclaimed() -> None:
    """SIGKILL of the process that started a control plane takes etcd and kube-apiserver down with it (Linux
    parent-death signal), and the next control plane removes the leftover work directory."""
    import signal  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from testbed.controlplane import WORKDIR_PREFIX  # noqa: PLC0415
    from testbed.service import remove_stale_workdirs  # noqa: PLC0415

    script = (
        "from testbed.controlplane import ControlPlane\n"
        "cp = ControlPlane(); cp.start()\n"
        "print(cp.workdir, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    workdir = proc.stdout.readline().strip()
    assert workdir
    children = subprocess.run(["pgrep", "-f", workdir], capture_output=True, text=True, check=False).stdout.split()
    assert len(children) >= 2  # etcd and kube-apiserver run with their files in the work directory
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for pid in children:  # not our children: wait for their exit through a pidfd, without polling
        try:
            fd = os.pidfd_open(int(pid))
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], 20)
            assert ready, f"control-plane process {pid} outlived its parent"
        finally:
            os.close(fd)
    assert Path(workdir).exists()
    assert Path(workdir) in remove_stale_workdirs(WORKDIR_PREFIX)
    assert not Path(workdir).exists()

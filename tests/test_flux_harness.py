"""The real-Flux harness itself: the controllers come up, fetch from the local servers and apply a tenant's objects."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from flux_tenant_exporter.kube.client import KubeClient
from testbed import scenario
from testbed.controllers import NAMES, WORKDIR_PREFIX, create_tenant, tenant_objects
from testbed.gitserver import GitServerError
from testbed.realflux import GIT_CREDENTIALS, RealFlux
from testbed.service import remove_stale_workdirs

REPO_ROOT = Path(__file__).resolve().parents[1]


def _pin(name: str) -> str:
    text = (REPO_ROOT / "tools" / "fluxcontrollers" / name / "go.mod").read_text()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"github.com/fluxcd/{name} v"))
    return line.split()[1]


CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  colour: blue
"""


def test_controllers_are_ready_and_report_the_pinned_versions(flux: RealFlux) -> None:
    """Each controller answers /readyz and /metrics on its loopback ports, and the build's versions are the
    wrapper modules' pins (the Flux v2.9.5 releases)."""
    assert flux.controllers.alive() == dict.fromkeys(NAMES, True)
    for name, controller in flux.controllers.controllers.items():
        assert flux.controllers.versions[name] == _pin(name)
        with urllib.request.urlopen(f"http://127.0.0.1:{controller.health_port}/readyz", timeout=5) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{controller.metrics_port}/metrics", timeout=5) as resp:
            assert b"controller_runtime_" in resp.read()
        assert 0 < controller.startup_seconds < 60
    assert flux.controllers.versions["flux"] == "v2.9.5"


def test_git_server_creates_a_repository_on_push_and_enforces_basic_auth(flux: RealFlux) -> None:
    """A push to a new path creates the repository; the private server refuses a client without credentials
    (401) and accepts the right ones."""
    sha = flux.git.push("harness/new-repo", {"README": "hi\n"})
    heads = subprocess.run(["git", "ls-remote", flux.git.url("harness/new-repo")],
                           capture_output=True, text=True, check=True).stdout
    assert f"{sha}\trefs/heads/main" in heads
    with pytest.raises(GitServerError, match=r"401|Authentication failed|could not read Username"):
        flux.git_private.push("harness/private", {"README": "x\n"}, credentials=("intruder", "wrong"))
    assert flux.git_private.push("harness/private", {"README": "x\n"}, credentials=GIT_CREDENTIALS)


async def test_tenant_objects_are_what_flux_create_tenant_makes(flux_admin: KubeClient) -> None:
    """The tenant helper makes a labelled namespace, a ServiceAccount named after the tenant and a RoleBinding to
    cluster-admin in that namespace, and running it twice is fine."""
    ns = await create_tenant(flux_admin, "harness-team", "harness-apps")
    assert await create_tenant(flux_admin, "harness-team", "harness-apps") == ns
    namespace = await flux_admin.request("GET", f"/api/v1/namespaces/{ns}")
    assert namespace["metadata"]["labels"]["toolkit.fluxcd.io/tenant"] == "harness-team"
    await flux_admin.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/harness-team")
    binding = await flux_admin.request(
        "GET", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/harness-team-reconciler")
    assert binding["roleRef"]["name"] == "cluster-admin"
    assert {(s["kind"], s["name"]) for s in binding["subjects"]} == {
        ("User", f"gotk:{ns}:reconciler"), ("ServiceAccount", "harness-team")}
    assert [o["kind"] for o in tenant_objects("t")] == ["Namespace", "ServiceAccount", "RoleBinding"]


async def test_git_repository_becomes_ready_and_a_tenant_kustomization_applies_a_configmap(
    flux: RealFlux, flux_admin: KubeClient
) -> None:
    """A GitRepository at the local Git server gets Ready=True with the pushed commit as its artifact revision
    (served by source-controller on loopback), and a tenant Kustomization, impersonating the tenant's
    ServiceAccount, applies the repository's ConfigMap into its target namespace."""
    ns = await create_tenant(flux_admin, "harness-apply")
    sha = flux.git.push("harness-apply/app", {"deploy/settings.yaml": CONFIGMAP})
    repo = await scenario.apply(flux_admin, scenario.git_repository(ns, "app", flux.git.url("harness-apply/app")))
    ready = await scenario.wait_for(flux_admin, repo, scenario.is_ready, timeout=60)
    assert ready["status"]["artifact"]["revision"] == f"main@sha1:{sha}"
    assert ready["status"]["artifact"]["url"].startswith(f"http://{flux.controllers.storage_addr}/")

    ks = await scenario.apply(flux_admin, scenario.kustomization(
        ns, "app", source=("GitRepository", "app"), path="./deploy", service_account="harness-apply",
        target_namespace=ns))
    applied = await scenario.wait_for(flux_admin, ks, scenario.is_ready, timeout=60)
    assert applied["status"]["lastAppliedRevision"] == f"main@sha1:{sha}"
    cm = await flux_admin.request("GET", f"/api/v1/namespaces/{ns}/configmaps/settings")
    assert cm["data"] == {"colour": "blue"}
    assert cm["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] == "app"


async def test_private_repository_needs_the_secret(flux: RealFlux, flux_admin: KubeClient) -> None:
    """A GitRepository at the private Git server becomes Ready with the basic-auth Secret."""
    ns = await create_tenant(flux_admin, "harness-private")
    sha = flux.git_private.push("harness-private/app", {"deploy/settings.yaml": CONFIGMAP})
    await scenario.apply(flux_admin, scenario.basic_auth_secret(ns, "git-auth", *GIT_CREDENTIALS))
    repo = await scenario.apply(flux_admin, scenario.git_repository(
        ns, "app", flux.git_private.url("harness-private/app"), secret="git-auth"))
    ready = await scenario.wait_for(flux_admin, repo, scenario.is_ready, timeout=60)
    assert ready["status"]["artifact"]["revision"] == f"main@sha1:{sha}"


async def test_helm_release_installs_a_chart_from_the_local_repository(
    flux: RealFlux, flux_admin: KubeClient
) -> None:
    """A chart packaged by the harness and served from the static Helm repository is installed by the real
    helm-controller as the tenant: the HelmRelease is Ready and the chart's ConfigMap exists."""
    ns = await create_tenant(flux_admin, "harness-helm")
    flux.helm.add_chart("harness-good", "1.0.0", {
        "configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
                          "data:\n  colour: {{ .Values.colour | quote }}\n"}, values={"colour": "green"})
    await scenario.apply(flux_admin, scenario.helm_repository(ns, "charts", flux.helm.url))
    hr = await scenario.apply(flux_admin, scenario.helm_release(
        ns, "web", chart="harness-good", version="1.0.0", repository="charts", service_account="harness-helm",
        target_namespace=ns))
    await scenario.wait_for(flux_admin, hr, scenario.is_ready, timeout=90)
    # With targetNamespace set, the Helm release is named <targetNamespace>-<name>.
    cm = await flux_admin.request("GET", f"/api/v1/namespaces/{ns}/configmaps/{ns}-web-cm")
    assert cm["data"] == {"colour": "green"}


def test_a_killed_run_leaves_no_controller_processes() -> None:
    """SIGKILL of the process that started the controllers takes them (and its control plane) down with it, and
    the next run removes the leftover work directory."""
    script = (
        "from testbed.controlplane import ControlPlane\n"
        "from testbed.controllers import FluxControllers\n"
        "cp = ControlPlane(); cp.start()\n"
        "fc = FluxControllers(cp); fc.start()\n"
        "print(fc.workdir, flush=True)\n"
        "print(' '.join(str(c.proc.pid) for c in fc.controllers.values()), flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    workdir = proc.stdout.readline().strip()
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert workdir
    assert len(pids) == len(NAMES)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for pid in pids:  # not our children: wait for their exit through a pidfd, without polling
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], 20)
            assert ready, f"controller process {pid} outlived its parent"
        finally:
            os.close(fd)
    assert Path(workdir) in remove_stale_workdirs(WORKDIR_PREFIX)


"""Fixtures: one real control plane per test session, a fresh namespace per test, API clients."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.kubeapi import KubeClient
from testbed import fleet
from testbed.controllers import ControllersError
from testbed.controlplane import ControlPlane, ControlPlaneError
from testbed.realflux import RealFlux, real_flux


def _sigterm_to_interrupt(_signum: int, _frame: Any) -> None:
    """A SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so fixtures stop the control plane."""
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, _sigterm_to_interrupt)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """The session's real kube-apiserver + etcd with the Flux CRDs installed."""
    try:
        cp = ControlPlane()
    except ControlPlaneError as err:
        # Never skip: in CI (and locally) the real-API tests must run or the run fails loudly.
        pytest.fail(f"the real control plane is not available: {err}", pytrace=False)
    with cp:
        yield cp


@pytest.fixture(scope="session")
def flux() -> Iterator[RealFlux]:
    """source-, kustomize- and helm-controller on a control plane of their own (so they never reconcile the
    hand-written statuses of the other tests), with a Git server, a private one and a Helm repository."""
    try:
        env = real_flux()
        started = env.__enter__()
    except (ControllersError, ControlPlaneError) as err:
        # Never skip: in CI the real-Flux tests must run or the run fails loudly.
        pytest.fail(f"the real Flux controllers are not available: {err}", pytrace=False)
    try:
        yield started
    finally:
        env.__exit__(None, None, None)


@pytest.fixture
async def flux_admin(flux: RealFlux) -> AsyncIterator[KubeClient]:
    """An admin client of the real controllers' control plane."""
    client = await KubeClient.from_kubeconfig(flux.control_plane.kubeconfig)
    yield client
    await client.close()


_counter = itertools.count()


@pytest.fixture
def ns_name(request: pytest.FixtureRequest) -> str:
    """A namespace name unique to this test (there is no namespace controller: nothing is deleted)."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    return f"{base}-{os.getpid() % 1000}-{next(_counter)}"


@pytest.fixture
async def admin(control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    """An admin (system:masters) client of the real API server."""
    client = await KubeClient.from_kubeconfig(control_plane.kubeconfig)
    yield client
    await client.close()


@pytest.fixture
async def namespace(admin: KubeClient, ns_name: str) -> str:
    """A fresh namespace for this test, labelled as a tenant's (tenant = the namespace name)."""
    await fleet.create(admin, fleet.namespace(ns_name, tenant=ns_name))
    return ns_name


async def restricted_identity(
    admin: KubeClient, control_plane: ControlPlane, namespace: str, rules: list[dict[str, Any]], tmp_path: Path
) -> Path:
    """A ServiceAccount in ``namespace`` bound by a Role with ``rules``; returns a kubeconfig with its token."""
    name = "restricted"
    await admin.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", body={"metadata": {"name": name}})
    await admin.request(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
        body={"metadata": {"name": name}, "rules": rules},
    )
    await admin.request(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        body={
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    token = await admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        body={"spec": {"expirationSeconds": 3600}},
    )
    return control_plane.token_kubeconfig(token["status"]["token"], tmp_path / "restricted.kubeconfig")


@pytest.fixture(scope="module")
def stack_dir() -> Iterator[Path]:
    """A scratch directory for one monitoring test module's Prometheus and Alertmanager files."""
    path = Path(tempfile.mkdtemp(prefix="fte-monitoring-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)

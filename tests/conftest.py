"""Fixtures: one real control plane per test session, a fresh namespace per test, API clients, a store, exporters.

A test's needs beyond Python are markers (``pyproject.toml``), set here from the fixtures it uses (the control plane,
the Flux controllers, Go tools, Debian tools) or by its module; ``make unit`` deselects every one of them. Under
``CI=true`` a skipped test fails the run.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.serve.app import Exporter
from flux_tenant_exporter.state.store import Store
from testbed import fleet
from testbed.controllers import ControllersError
from testbed.controlplane import ControlPlane, ControlPlaneError
from testbed.operator import FluxOperator, OperatorError
from testbed.realflux import RealFlux, real_flux
from testbed.running import StartExporter, exporter_settings, running_exporter

#: what a fixture needs beyond Python: its markers (they reach every test that uses the fixture, even indirectly)
FIXTURE_NEEDS: dict[str, tuple[str, ...]] = {
    "control_plane": ("apiserver",),
    "flux": ("apiserver", "flux"),
    "flux_operator": ("apiserver", "flux"),
    "helm": ("gotools",),  # test_chart: the pinned helm
    "monitoring_crds": ("gotools",),  # the prometheus-operator CRDs, fetched by tools/gotool.sh
    "tmux": ("ui",),  # test_get: a real terminal
    "browser": ("ui",),  # test_statuspage: headless Chromium
}


def _sigterm_to_interrupt(_signum: int, _frame: Any) -> None:
    """A SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so fixtures stop the control plane."""
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, _sigterm_to_interrupt)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with what its fixtures need."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, markers in FIXTURE_NEEDS.items():
            if fixture in names:
                for marker in markers:
                    item.add_marker(marker)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true a skipped test is a failure: `make test` runs everything, or the run is red."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} skipped under CI=true ({call.when}): {report.longrepr}"


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


@pytest.fixture(scope="session")
def flux_operator(flux: RealFlux) -> Iterator[FluxOperator]:
    """The real flux-operator on the real controllers' control plane (its CRDs are installed with the others)."""
    try:
        operator = FluxOperator(flux.control_plane)
        operator.__enter__()
    except OperatorError as err:
        pytest.fail(f"flux-operator is not available: {err}", pytrace=False)
    try:
        yield operator
    finally:
        operator.__exit__(None, None, None)


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


@pytest.fixture
def store() -> Store:
    """An empty store with the default tenancy (a namespace's label, else its own name; flux-system: platform)."""
    return Store()


@pytest.fixture
async def start_exporter(request: pytest.FixtureRequest) -> AsyncIterator[StartExporter]:
    """Starts exporters, ready on return, stopped after the test: on the session's control plane, or on the one
    ``kubeconfig`` names (another identity, the real controllers' control plane); keyword arguments override
    ``testbed.running.exporter_settings``."""
    async with contextlib.AsyncExitStack() as running:

        async def start(kubeconfig: Path | None = None, **overrides: Any) -> Exporter:
            if kubeconfig is None:
                kubeconfig = request.getfixturevalue("control_plane").kubeconfig
            return await running.enter_async_context(running_exporter(exporter_settings(**overrides), kubeconfig))

        yield start


@pytest.fixture(scope="module")
def stack_dir() -> Iterator[Path]:
    """A scratch directory for one monitoring test module's Prometheus and Alertmanager files."""
    path = Path(tempfile.mkdtemp(prefix="fte-monitoring-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)

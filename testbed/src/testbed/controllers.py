"""The real Flux controllers (source-, kustomize-, helm-controller) running against a ``ControlPlane``.

The binaries come from ``tools/fluxcontrollers/build.sh`` (built from the Go module proxy into the pinned
cache), or from ``FTE_FLUX_CONTROLLERS`` (a folder with ``bin/<name>``). ``FluxControllers`` is a context
manager: it starts the three controllers with the flags of a multi-tenant production install
(``--no-cross-namespace-refs=true``, ``--default-service-account=default``, no leader election, all
namespaces), with ``KUBECONFIG`` in their environment (they have no ``--kubeconfig`` flag), metrics and
health probes on free loopback ports and source-controller's artifact storage served on loopback; waits until
each answers ``/readyz``; and stops them (their process groups) on exit, also after an error or Ctrl-C.
Each child also gets ``PR_SET_PDEATHSIG``, so none outlives a killed test run.

``create_tenant`` makes a tenant the way ``flux create tenant`` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from flux_tenant_exporter.kube.client import ApiError, KubeClient
from testbed.controlplane import REPO_ROOT, ControlPlane, _die_with_parent, _terminate, free_port
from testbed.fleet import TENANT_LABEL
from testbed.service import Service, built, wait_healthy, work_directory

BUILD_SCRIPT = REPO_ROOT / "tools" / "fluxcontrollers" / "build.sh"
NAMES: Final = ("source-controller", "kustomize-controller", "helm-controller")
#: Where the controllers think they run (events and their own objects; nothing else needs it to exist).
RUNTIME_NAMESPACE: Final = "flux-system"
WORKDIR_PREFIX: Final = "fte-flux-"
#: Flux's sharding label; the controllers here ignore objects that carry it (see ``FluxControllers._flags``).
SHARD_KEY_LABEL: Final = "sharding.fluxcd.io/key"


class ControllersError(RuntimeError):
    """The controllers could not be built or started; the message says why."""


@dataclass(frozen=True)
class ControllerAssets:
    """Where the controller binaries are, and which versions they are."""

    bin_dir: Path
    versions: dict[str, str]

    def binary(self, name: str) -> Path:
        """The executable of controller ``name``."""
        return self.bin_dir / name


def find_controllers(*, build: bool = True) -> ControllerAssets:
    """Locate (building them if needed, unless ``build`` is false) the Flux controllers."""
    root = built(BUILD_SCRIPT, "FTE_FLUX_CONTROLLERS", build=build, error=ControllersError)
    versions_file = root / "versions.json"
    versions = json.loads(versions_file.read_text()) if versions_file.exists() else {}
    assets = ControllerAssets(root / "bin", versions)
    for name in NAMES:
        if not os.access(assets.binary(name), os.X_OK):
            msg = f"{assets.binary(name)} is missing or not executable"
            raise ControllersError(msg)
    return assets


@dataclass
class Controller:
    """One running controller process."""

    name: str
    health_port: int
    metrics_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    #: seconds from spawn to the first 200 on /readyz
    startup_seconds: float = 0.0
    extra_flags: list[str] = field(default_factory=list)

    def log(self) -> str:
        """Everything the controller logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class FluxControllers(Service):
    """source-, kustomize- and helm-controller against a control plane; use as a context manager."""

    def __init__(
        self,
        control_plane: ControlPlane,
        assets: ControllerAssets | None = None,
        *,
        names: tuple[str, ...] = NAMES,
        log_level: str = "info",
        requeue_dependency: str = "5s",
    ) -> None:
        """Prepare (not start) the controllers.

        ``requeue_dependency``: how soon kustomize-/helm-controller retry an object whose ``dependsOn`` or
        source is not ready (production default 30s; short here so tests settle quickly).
        """
        self.control_plane = control_plane
        self.assets = assets or find_controllers()
        self.workdir = work_directory(WORKDIR_PREFIX)
        self.storage_port = 0
        self.log_level = log_level
        self.requeue_dependency = requeue_dependency
        self.controllers: dict[str, Controller] = {}
        self._names = names
        self.startup_seconds = 0.0

    @property
    def storage_addr(self) -> str:
        """source-controller's artifact server (host:port on loopback)."""
        return f"127.0.0.1:{self.storage_port}"

    @property
    def versions(self) -> dict[str, str]:
        """Controller name -> version (and ``flux``, ``go``), from the build."""
        return dict(self.assets.versions)

    def start(self, *, timeout: float = 60) -> None:
        """Spawn the controllers and wait until each is ready; raises ControllersError on failure."""
        started = time.monotonic()
        self.storage_port = free_port()
        for name in self._names:
            controller = Controller(name, free_port(), free_port(), self.workdir / f"{name}.log")
            self._spawn(controller)
            self.controllers[name] = controller
        deadline = time.monotonic() + timeout
        for controller in self.controllers.values():
            self._wait_ready(controller, deadline=deadline)
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop every controller (their process groups) and remove the work directory. Idempotent."""
        for controller in reversed(self.controllers.values()):
            if controller.proc is not None:
                _terminate(controller.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def kill(self, name: str) -> None:
        """SIGKILL one controller's process group, as the OOM killer ends a controller mid-reconcile.

        Nothing it was doing gets written. ``restart`` starts it again.
        """
        controller = self.controllers[name]
        assert controller.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(controller.proc.pid, signal.SIGKILL)
        controller.proc.wait()

    def restart(self, name: str, *, timeout: float = 60) -> None:
        """Start a killed (or stopped) controller again, on its ports and log, and wait until it is ready.

        Call it from the thread that lives as long as the controllers (the main one): a controller gets
        PR_SET_PDEATHSIG, so it dies with the thread that started it (a worker thread of ``asyncio.to_thread`` too).
        """
        controller = self.controllers[name]
        if controller.proc is not None and controller.proc.poll() is None:
            msg = f"{name} is still running"
            raise ControllersError(msg)
        self._spawn(controller)
        self._wait_ready(controller, deadline=time.monotonic() + timeout)

    def alive(self) -> dict[str, bool]:
        """Which controllers are still running."""
        return {n: c.proc is not None and c.proc.poll() is None for n, c in self.controllers.items()}

    def logs(self) -> dict[str, str]:
        """Each controller's log so far (for a failing test's report)."""
        return {n: c.log() for n, c in self.controllers.items()}

    def _flags(self, controller: Controller) -> list[str]:
        flags = [
            "--enable-leader-election=false",
            "--watch-all-namespaces=true",
            f"--metrics-addr=127.0.0.1:{controller.metrics_port}",
            f"--health-addr=127.0.0.1:{controller.health_port}",
            f"--log-level={self.log_level}",
            "--log-encoding=json",
            # The main shard of a sharded install (Flux's sharding guide): objects labelled with a shard key are
            # left to that shard's controllers. None runs here, so such objects keep hand-written statuses.
            f"--watch-label-selector=!{SHARD_KEY_LABEL}",
        ]
        if controller.name == "source-controller":
            storage = self.workdir / "storage"
            storage.mkdir(exist_ok=True)
            flags += [
                f"--storage-path={storage}",
                f"--storage-addr={self.storage_addr}",
                f"--storage-adv-addr={self.storage_addr}",
            ]
        else:
            flags += [
                "--no-cross-namespace-refs=true",
                "--default-service-account=default",
                f"--requeue-dependency={self.requeue_dependency}",
            ]
        return flags + controller.extra_flags

    def _spawn(self, controller: Controller) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "TMPDIR": str(self.workdir),
            "KUBECONFIG": str(self.control_plane.kubeconfig),
            "RUNTIME_NAMESPACE": RUNTIME_NAMESPACE,
        }
        log = controller.log_path.open("ab")  # a restarted controller appends to its log
        controller.proc = subprocess.Popen(  # noqa: S603 - our own binaries
            [str(self.assets.binary(controller.name)), *self._flags(controller)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets PR_SET_PDEATHSIG
        )
        log.close()

    def _wait_ready(self, controller: Controller, *, deadline: float) -> None:
        assert controller.proc is not None
        controller.startup_seconds = wait_healthy(
            controller.proc, f"http://127.0.0.1:{controller.health_port}/readyz", name=controller.name,
            deadline=deadline, log=controller.log, error=ControllersError)


# -- tenants --------------------------------------------------------------------------------------


def tenant_objects(tenant: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """What ``flux create tenant <tenant> --with-namespace=<namespace>`` applies.

    The namespace labelled ``toolkit.fluxcd.io/tenant``, a ServiceAccount named after the tenant, and a
    RoleBinding ``<tenant>-reconciler`` of ``cluster-admin`` *in that namespace* to the ServiceAccount and to the
    user ``gotk:<namespace>:reconciler``.
    """
    ns = namespace or tenant
    labels = {TENANT_LABEL: tenant}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": tenant, "namespace": ns, "labels": labels}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{tenant}-reconciler", "namespace": ns, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"gotk:{ns}:reconciler"},
                {"kind": "ServiceAccount", "name": tenant, "namespace": ns},
            ],
        },
    ]


_COLLECTIONS: Final = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
}


async def create_tenant(client: KubeClient, tenant: str, namespace: str | None = None) -> str:
    """Create a tenant as ``flux create tenant`` does (see ``tenant_objects``); returns its namespace."""
    ns = namespace or tenant
    for obj in tenant_objects(tenant, ns):
        path = _COLLECTIONS[obj["kind"]].format(ns=ns)
        try:
            await client.request("POST", path, body=obj)
        except ApiError as err:
            if err.status != 409:  # noqa: PLR2004 - already there: `flux create tenant` is idempotent too
                raise
    return ns

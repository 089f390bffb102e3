"""The real flux-operator (FluxInstance, ResourceSet, ResourceSetInputProvider, FluxReport) against a ``ControlPlane``.

The binary comes from ``tools/fluxoperator/build.sh`` (built from the Go module proxy into the pinned cache), or
from ``FTE_FLUX_OPERATOR`` (a folder with ``bin/flux-operator``). ``FluxOperator`` is a context manager: it runs
the operator out of cluster (``KUBECONFIG``, ``RUNTIME_NAMESPACE``), without leader election or web UI, with
metrics and health on free loopback ports, waits for ``/readyz`` and stops it (its process group) on exit. Its
CRDs come with the control plane's (``tools/controlplane/build.sh``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from testbed.controlplane import REPO_ROOT, ControlPlane, _die_with_parent, _terminate, free_port
from testbed.service import Service, built, wait_healthy, work_directory

BUILD_SCRIPT = REPO_ROOT / "tools" / "fluxoperator" / "build.sh"
#: where the operator thinks it runs (its FluxReport lives there)
RUNTIME_NAMESPACE: Final = "flux-system"


class OperatorError(RuntimeError):
    """flux-operator could not be built or started; the message says why."""


@dataclass(frozen=True)
class OperatorAssets:
    """Where the flux-operator binary is, and its version."""

    binary: Path
    versions: dict[str, str]


def find_operator(*, build: bool = True) -> OperatorAssets:
    """Locate (building it if needed, unless ``build`` is false) flux-operator."""
    root = built(BUILD_SCRIPT, "FTE_FLUX_OPERATOR", build=build, error=OperatorError)
    binary = root / "bin" / "flux-operator"
    if not os.access(binary, os.X_OK):
        msg = f"{binary} is missing or not executable"
        raise OperatorError(msg)
    versions_file = root / "versions.json"
    return OperatorAssets(binary, json.loads(versions_file.read_text()) if versions_file.exists() else {})


class FluxOperator(Service):
    """flux-operator against a control plane; use as a context manager."""

    def __init__(self, control_plane: ControlPlane, assets: OperatorAssets | None = None, *,
                 requeue_dependency: str = "5s") -> None:
        """Prepare (not start) the operator; ``requeue_dependency`` is short so tests settle quickly."""
        self.control_plane = control_plane
        self.assets = assets or find_operator()
        self.workdir = work_directory("fte-flux-operator-")
        self.requeue_dependency = requeue_dependency
        self.health_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "flux-operator.log"

    def log(self) -> str:
        """Everything the operator logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, *, timeout: float = 60) -> None:
        """Spawn the operator and wait until it is ready; raises OperatorError on failure."""
        with contextlib.suppress(urllib.error.HTTPError):  # 409: it exists
            self.control_plane.request("POST", "/api/v1/namespaces", {"metadata": {"name": RUNTIME_NAMESPACE}})
        self.health_port = free_port()
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        argv = [str(self.assets.binary), "--enable-leader-election=false", f"--metrics-addr=127.0.0.1:{free_port()}",
                f"--health-addr=127.0.0.1:{self.health_port}", "--web-server-port=0", f"--storage-path={storage}",
                "--log-level=info", f"--requeue-dependency={self.requeue_dependency}"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir), "TMPDIR": str(self.workdir),
               "KUBECONFIG": str(self.control_plane.kubeconfig), "RUNTIME_NAMESPACE": RUNTIME_NAMESPACE}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own binary
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=self.workdir,
                start_new_session=True, preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets PR_SET_PDEATHSIG
            )
        wait_healthy(self.proc, f"http://127.0.0.1:{self.health_port}/readyz", name="flux-operator",
                     deadline=time.monotonic() + timeout, log=self.log, error=OperatorError)

    def stop(self) -> None:
        """Stop the operator (its process group) and remove the work directory. Idempotent."""
        if self.proc is not None:
            _terminate(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)

"""``make cluster``: the demo's real local cluster without the exporter, for exploring and for scripts.

A control plane, source-, kustomize- and helm-controller (the flags of the tests), a Git smart-HTTP server and a
Helm repository, all on loopback, until Ctrl-C or SIGTERM. Once ready it prints exactly four lines on stdout::

    KUBECONFIG=<path of an admin kubeconfig>
    GIT_URL=http://127.0.0.1:<port>
    HELM_REPO_URL=http://127.0.0.1:<port>
    HELM_CHARTS_DIR=<folder; a chart .tgz dropped here is served after the index is regenerated>

``git push $GIT_URL/<any>/<path>.git`` creates a repository there. The folder is looked at every second; when
its ``.tgz`` files change, ``index.yaml`` is regenerated. ``--demo-fleet`` also seeds the demo's tenants and
repositories (their working copies and fixes go to stderr, so stdout stays the four lines).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from flux_tenant_exporter.base.errors import UserError
from flux_tenant_exporter.kube.client import KubeClient
from testbed import demofleet
from testbed.controllers import ControllersError, find_controllers
from testbed.demo import NOT_BUILT
from testbed.realflux import RealFlux, real_flux

EXIT_USAGE = 2


def lines(env: RealFlux) -> list[str]:
    """The four lines ``make cluster`` prints once ready."""
    return [
        f"KUBECONFIG={env.control_plane.kubeconfig}",
        f"GIT_URL={env.git.base_url}",
        f"HELM_REPO_URL={env.helm.url.rstrip('/')}",
        f"HELM_CHARTS_DIR={env.helm.root}",
    ]


def _charts_state(folder: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in folder.glob("*.tgz")))


async def _seed(env: RealFlux, workdir: Path) -> None:
    admin = await KubeClient.from_kubeconfig(env.control_plane.kubeconfig)
    try:
        fleet = await demofleet.seed(admin, env, workdir)
    finally:
        await admin.close()
    for fix in fleet.fixes:
        sys.stderr.write(f"# {fix.tenant}: {fix.what}\n{fix.command}\n")


def run(*, demo_fleet: bool = False, stop: threading.Event | None = None) -> int:
    """Start the cluster, print the four lines, serve until ``stop`` is set (by SIGINT/SIGTERM)."""
    stop = stop or threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        assets = find_controllers(build=False)
    except ControllersError as err:
        raise UserError(NOT_BUILT) from err
    with tempfile.TemporaryDirectory(prefix="fte-cluster-") as tmp, real_flux(assets) as env:
        if demo_fleet:
            asyncio.run(_seed(env, Path(tmp)))
        print("\n".join(lines(env)), flush=True)
        seen = _charts_state(env.helm.root)
        while not stop.wait(1.0):
            now = _charts_state(env.helm.root)
            if now != seen:
                env.helm.reindex()
                seen = now
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m testbed.cluster [--demo-fleet]``: a user error is one line and exit 2."""
    parser = argparse.ArgumentParser(prog="make cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-fleet", action="store_true", help="also seed the demo's tenants and repositories")
    args = parser.parse_args(argv)
    try:
        return run(demo_fleet=args.demo_fleet)
    except UserError as err:
        sys.stderr.write(f"make cluster: error: {' '.join(str(err).split())}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

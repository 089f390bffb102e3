"""``demo``: a local control plane, the real Flux controllers, a multi-tenant fleet, and the exporter serving it.

The control plane, source-, kustomize- and helm-controller, a Git server and a Helm repository start on
loopback (``testbed.realflux``); ``testbed.demofleet`` pushes a platform repo and one repo per tenant whose
manifests make the controllers fail in real ways. Once the exporter reports every object's settled verdict the
demo prints the URLs, the tenant summary, the working copies and one-line ``git`` commands that fix a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux_tenant_exporter.base.config import DemoSettings, ServeSettings
from flux_tenant_exporter.base.errors import UserError
from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.render.documents import tenants_doc
from flux_tenant_exporter.serve.app import Exporter
from testbed import demofleet
from testbed.controllers import ControllersError, find_controllers
from testbed.demofleet import EXPECTED, DemoFleet
from testbed.realflux import RealFlux, real_flux

NOT_BUILT = ("the real Flux controllers are not built: run `make demo` (or `make controllers` first; about 12 "
             "minutes of 2 cores the first time), or set FTE_FLUX_CONTROLLERS to a folder with bin/")
#: How long the demo waits for every object's settled verdict before it prints what it has.
SETTLE_TIMEOUT = 90.0


def settled(exporter: Exporter) -> bool:
    """The exporter reports the category ``EXPECTED`` names for every demo object."""
    return not unsettled(exporter)


def unsettled(exporter: Exporter) -> list[str]:
    """The demo objects whose verdict is not (yet) the expected one."""
    got = {(r.namespace, r.kind, r.name): r.category or "" for r in exporter.view.resources}
    return [f"{ns}/{kind}/{name}: {got.get((ns, kind, name))!r} (want {' or '.join(sorted(want))})"
            for (ns, kind, name), want in EXPECTED.items() if got.get((ns, kind, name)) not in want]


@dataclass(frozen=True)
class RunningDemo:
    """A running demo: the real-Flux environment, the fleet and the exporter serving it."""

    env: RealFlux
    fleet: DemoFleet
    exporter: Exporter
    #: seconds from start to the exporter reporting every settled verdict
    ready_seconds: float

    @property
    def base_url(self) -> str:
        """The exporter's ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.exporter.port}"


@contextlib.asynccontextmanager
async def running_demo(settings: ServeSettings, stop: asyncio.Event) -> AsyncIterator[RunningDemo]:
    """Start everything, seed the fleet and wait until the exporter shows it settled; stop it all on exit.

    Raises UserError when the controllers are not built (one line, no build started unasked).
    """
    started = time.monotonic()
    try:
        assets = find_controllers(build=False)
    except ControllersError as err:
        raise UserError(NOT_BUILT) from err
    workdir = Path(tempfile.mkdtemp(prefix="fte-demo-"))
    try:
        with real_flux(assets) as env:
            admin = await KubeClient.from_kubeconfig(env.control_plane.kubeconfig)
            try:
                fleet = await demofleet.seed(admin, env, workdir)
            finally:
                await admin.close()
            exporter = Exporter(settings, await KubeClient.from_kubeconfig(env.control_plane.kubeconfig))
            runner = asyncio.create_task(exporter.run(stop))
            try:
                await exporter.wait_for(lambda e: e.ready(), timeout=60)
                with contextlib.suppress(TimeoutError):  # the summary shows what has not settled
                    await exporter.wait_for(settled, timeout=SETTLE_TIMEOUT)
                yield RunningDemo(env, fleet, exporter, time.monotonic() - started)
            finally:
                stop.set()
                await runner
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def run_demo(settings: DemoSettings) -> int:
    """The ``demo`` command: run the demo and print where everything is; until Ctrl-C (or ready, if asked)."""
    print("Starting a local control plane, the Flux controllers (source, kustomize, helm) and Git/Helm servers ...",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_demo(settings.serve, stop) as demo:
        print(describe(demo), flush=True)
        if settings.exit_after_ready:
            return 0
        print("Press Ctrl-C to stop.", flush=True)
        await stop.wait()
    return 0


def describe(demo: RunningDemo) -> str:
    """What the demo prints once ready: URLs, the tenant summary, working copies and fixes."""
    env, base = demo.env, demo.base_url
    versions = ", ".join(f"{n} {v}" for n, v in sorted(env.controllers.versions.items()) if n.endswith("controller"))
    pending = unsettled(demo.exporter)
    lines = [
        (f"Ready in {demo.ready_seconds:.1f} s (control plane {env.control_plane.startup_seconds:.1f} s, "
         f"controllers {env.controllers.startup_seconds:.1f} s): {versions or 'Flux controllers'}."),
        *([f"Not settled yet ({len(pending)}): " + "; ".join(pending)] if pending else []),
        f"  {base}/  (status page)\n  {base}/tenants\n  {base}/tenants/team-a\n  {base}/metrics",
        f"  KUBECONFIG={env.control_plane.kubeconfig}  (admin; kubectl works against it)",
        f"  Git server {env.git.base_url}, Helm repository {env.helm.url}",
        "Tenants:",
        summary(tenants_doc(demo.exporter.view)),
        (f"Working copies (push to fix; GitRepositories poll every {demofleet.GIT_INTERVAL}, failing "
         "Kustomizations retry every 10s):"),
        *(f"  {tenant:<9} {path}" for tenant, path in demo.fleet.working_copies.items()),
        "Fixes (one line each):",
        *(f"  # {fix.tenant}: {fix.what}\n  {fix.command}" for fix in demo.fleet.fixes),
    ]
    return "\n".join(lines)


def summary(doc: dict[str, Any]) -> str:
    """One line per tenant: status, counts and its root causes."""
    lines = []
    for t in doc["tenants"]:
        roots = [f for f in t["failures"] if f["root_cause"] is None]
        lines.append(f"  {t['name']:<10} {t['status']:<12} failing={t['counts']['failing']} "
                     f"stuck={t['counts']['stuck']} roots: "
                     + (", ".join(f"{r['kind']}/{r['name']}={r['category']}" for r in roots) or "-"))
    return "\n".join(lines)

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
from flux_tenant_exporter.cli.flags import PROG
from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.render.documents import tenants_doc
from flux_tenant_exporter.serve.app import Exporter
from testbed import demofleet, identities
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
        if settings.serve.access.mode == "kubernetes":
            print(await describe_access(demo, ACCESS_TENANT), flush=True)
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


#: the tenant whose token the demo prints when access control is on
ACCESS_TENANT = "team-a"


async def tenant_token(demo: RunningDemo, tenant: str) -> tuple[str, str]:
    """A ServiceAccount ``status-reader`` of the tenant: its name and a token (the exporter's audiences, 24 h).

    It lives in the tenant's first namespace, bound to the shipped viewer ClusterRole in each of its namespaces
    (as a platform team grants a tenant's CI).
    """
    namespaces = demo.exporter.view.tenants[tenant].namespaces
    home = namespaces[0]
    viewer = identities.shipped(identities.ACCESS_CONTROL / "viewer.yaml", "ClusterRole")
    admin = await KubeClient.from_kubeconfig(demo.env.control_plane.kubeconfig)
    try:
        role = await identities.cluster_role(admin, viewer["metadata"]["name"], viewer["rules"])
        await identities.service_account(admin, home, "status-reader")
        for namespace in namespaces:
            await identities.bind(admin, role, [identities.subject(home, "status-reader")], namespace=namespace)
        token = await identities.token(admin, home, "status-reader",
                                       audiences=demo.exporter.settings.access.token_audiences, seconds=86400)
    finally:
        await admin.close()
    return f"{home}/status-reader", token


async def describe_access(demo: RunningDemo, tenant: str) -> str:
    """What the demo prints with access control on: a tenant's token and the commands that use it."""
    who, token = await tenant_token(demo, tenant)
    base = demo.base_url
    return "\n".join([
        (f"Access control is on: every request needs a token, and shows only what its identity may see. "
         f"{tenant}'s token (ServiceAccount {who}, bound to flux-tenant-exporter-viewer in {tenant}'s namespaces):"),
        f"  TOKEN={token}",
        f"  {PROG} get tenants --url {base} --token {token}",
        f'  curl -H "Authorization: Bearer $TOKEN" {base}/tenants',
        ("  (a browser sends no token: the status page answers 401 here; in a cluster an OIDC proxy in front "
         "passes the user's, see the README's Access control)"),
    ])


def summary(doc: dict[str, Any]) -> str:
    """One line per tenant: status, counts and its root causes."""
    lines = []
    for t in doc["tenants"]:
        roots = [f for f in t["failures"] if f["root_cause"] is None]
        lines.append(f"  {t['name']:<10} {t['status']:<12} failing={t['counts']['failing']} "
                     f"stuck={t['counts']['stuck']} roots: "
                     + (", ".join(f"{r['kind']}/{r['name']}={r['category']}" for r in roots) or "-"))
    return "\n".join(lines)

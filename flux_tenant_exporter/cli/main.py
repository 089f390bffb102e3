"""The entry point: ``serve`` (default), ``get``, ``report``, ``demo``; and the one error boundary.

A mistake of the user's (any ``UserError``: a flag, a kubeconfig, a context, a mapping file, a port, a report
input) is one line on stderr and exit code 2; ``--log-level debug`` adds the traceback. With no cluster
configured, ``serve`` says how to configure one and exits: a production binary never starts a demo by itself.
The ``demo`` command lives in the development harness, found through the ``flux_tenant_exporter.commands``
entry point; without the harness it says how to get it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import structlog

from flux_tenant_exporter.base.config import DemoSettings, GetSettings, ReportSettings, ServeSettings
from flux_tenant_exporter.base.errors import UserError
from flux_tenant_exporter.base.logs import configure_logging
from flux_tenant_exporter.cli.flags import PROG, parse
from flux_tenant_exporter.kube.client import SERVICE_ACCOUNT_DIR, KubeClient, limit_tls_read_buffers

log = structlog.get_logger("flux_tenant_exporter.cli")

SERVICE_ACCOUNT_TOKEN = SERVICE_ACCOUNT_DIR / "token"
#: Entry-point group of commands that other distributions (the development harness) add.
PLUGIN_GROUP = "flux_tenant_exporter.commands"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
NO_CLUSTER = (
    "no cluster configured: pass --kubeconfig (or FTE_KUBECONFIG, KUBECONFIG), create ~/.kube/config, or run in a "
    "pod with a service account token; for a local demo cluster, run `make demo` in a repository checkout"
)


def _in_pod() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


async def make_client(settings: ServeSettings) -> KubeClient:
    """An API client from --kubeconfig/$KUBECONFIG, else in-cluster, else ~/.kube/config; else a UserError."""
    if settings.kubeconfig:
        client = await KubeClient.from_kubeconfig(settings.kubeconfig, settings.context)
    elif _in_pod() and SERVICE_ACCOUNT_TOKEN.exists():
        client = KubeClient.in_cluster()
    elif (Path.home() / ".kube" / "config").exists():
        client = await KubeClient.from_kubeconfig(None, settings.context)
    elif _in_pod():
        msg = (f"running in a pod without a service account token ({SERVICE_ACCOUNT_TOKEN} is missing: is "
               "automountServiceAccountToken false?); mount one or pass --kubeconfig")
        raise UserError(msg)
    else:
        raise UserError(NO_CLUSTER)
    client.compression = settings.api_compression
    return client


async def serve(settings: ServeSettings) -> int:
    """Run the exporter until SIGTERM/SIGINT."""
    from flux_tenant_exporter.serve.app import Exporter  # noqa: PLC0415 - `report` and `--help` need none of it

    limit_tls_read_buffers()  # before the first connection
    client = await make_client(settings)
    try:
        exporter = Exporter(settings, client)
    except BaseException:
        await client.close()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await exporter.run(stop)
    log.info("exporter_stopped")
    return 0


def plugin_command(name: str) -> Callable[[DemoSettings], Coroutine[Any, Any, int]]:
    """A command that lives outside the product (the demo is in the development harness, ``testbed``)."""
    found = [ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name == name]
    if not found:
        msg = (f"the {name} command is part of the development harness, which is not installed: in a checkout of "
               f"the repository, run `make {name}`")
        raise UserError(msg)
    command: Callable[[DemoSettings], Coroutine[Any, Any, int]] = found[0].load()
    return command


def run(settings: ServeSettings | GetSettings | ReportSettings | DemoSettings, *,
        configure: Callable[..., None] = configure_logging) -> int:
    """Run the parsed command (``configure`` sets up logging, once the command knows how it wants it)."""
    if isinstance(settings, GetSettings):
        from flux_tenant_exporter.cli.get import run_get  # noqa: PLC0415 - the terminal view

        return run_get(settings, configure=configure)
    if isinstance(settings, ReportSettings):
        from flux_tenant_exporter.cli.report import run_report  # noqa: PLC0415 - keeps `report` start-up light

        return run_report(settings)
    if isinstance(settings, DemoSettings):
        return asyncio.run(plugin_command("demo")(settings))
    return asyncio.run(serve(settings))


def main(argv: Sequence[str] | None = None, *, configure: Callable[..., None] = configure_logging) -> int:
    """Entry point of the ``flux-tenant-exporter`` command: the one place user errors become exit code 2.

    ``configure`` sets up logging (a test passes one that leaves its own logging as it is).
    """
    debug = False
    try:
        settings = parse(argv)
        debug = settings.log.level == "debug"
        if not isinstance(settings, GetSettings):  # `get` configures its own (warnings only: the table is on stdout)
            configure(log_format=settings.log.format, level=settings.log.level)
        return run(settings, configure=configure)
    except UserError as err:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"{PROG}: error: {' '.join(str(err).split())}\n")  # one line, whatever the message
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED

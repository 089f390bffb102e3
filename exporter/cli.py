"""Command line: ``serve`` (default), ``report``, ``demo``.

With no command and no cluster configured (no --kubeconfig, $KUBECONFIG, ~/.kube/config, nor an in-cluster
service account), the exporter runs the local demo cluster instead of failing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path

import structlog

from exporter.kubeapi import SERVICE_ACCOUNT_DIR, KubeClient
from exporter.logs import configure_logging
from exporter.settings import Settings, from_args

log = structlog.get_logger("exporter.cli")

SERVICE_ACCOUNT_TOKEN = SERVICE_ACCOUNT_DIR / "token"
#: Entry-point group of commands that other distributions (the development harness) add.
PLUGIN_GROUP = "flux_tenant_exporter.commands"


class UserError(Exception):
    """A mistake of the user's: one line on stderr, exit code 2."""


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and SERVICE_ACCOUNT_TOKEN.exists()


def cluster_configured(settings: Settings) -> bool:
    """Whether any cluster configuration is available."""
    return bool(settings.kubeconfig) or _in_cluster() or (Path.home() / ".kube" / "config").exists()


async def make_client(settings: Settings) -> KubeClient:
    """An API client from --kubeconfig, else in-cluster, else ~/.kube/config."""
    if settings.kubeconfig:
        client = await KubeClient.from_kubeconfig(settings.kubeconfig, settings.context)
    elif _in_cluster():
        client = KubeClient.in_cluster()
    else:
        client = await KubeClient.from_kubeconfig(None, settings.context)
    client.compression = settings.api_compression
    return client


async def serve(settings: Settings) -> int:
    """Run the exporter until SIGTERM/SIGINT."""
    from exporter.app import Exporter  # noqa: PLC0415 - keeps `report` start-up light

    client = await make_client(settings)
    exporter = Exporter(settings, client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await exporter.run(stop)
    log.info("exporter_stopped")
    return 0


def _plugin_command(name: str) -> Callable[[Settings], Awaitable[int]]:
    """A command that lives outside the product (the demo is in the development harness, ``testbed``)."""
    found = [ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name == name]
    if not found:
        msg = f"the {name} command is part of the development harness: in a repository checkout, run `make {name}`"
        raise UserError(msg)
    command: Callable[[Settings], Awaitable[int]] = found[0].load()
    return command


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flux-tenant-exporter`` command."""
    settings = from_args(argv)
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    explicit = argv if argv is not None else sys.argv[1:]
    if settings.command == "report":
        from exporter.report import run_report  # noqa: PLC0415

        return run_report(settings)
    if settings.command == "serve" and "serve" not in explicit and not cluster_configured(settings):
        log.warning("no_cluster_configured", hint="running the local demo cluster; pass --kubeconfig for a real one")
        settings = Settings(**{**settings.__dict__, "command": "demo"})
    log.info("starting", **settings.summary())
    try:
        if settings.command == "demo":
            from testbed.demo import run_demo  # noqa: PLC0415

            return asyncio.run(run_demo(settings))
        return asyncio.run(serve(settings))
    except KeyboardInterrupt:
        return 130

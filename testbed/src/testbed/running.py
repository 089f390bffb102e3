"""An exporter running in the test's event loop: started, ready, and stopped again whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from exporter.app import Exporter
from exporter.kubeapi import KubeClient
from exporter.settings import Settings


@contextlib.asynccontextmanager
async def running_exporter(settings: Settings, kubeconfig: Path | str) -> AsyncIterator[Exporter]:
    """An Exporter with ``settings`` against ``kubeconfig``, ready (every kind settled and published) on entry."""
    exporter = Exporter(settings, await KubeClient.from_kubeconfig(kubeconfig))
    stop = asyncio.Event()
    task = asyncio.create_task(exporter.run(stop), name="exporter")
    try:
        await exporter.wait_for(lambda e: e.ready())
        yield exporter
    finally:
        stop.set()
        await task

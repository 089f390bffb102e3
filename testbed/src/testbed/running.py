"""An exporter running in the test's event loop: started, ready, and stopped again whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from flux_tenant_exporter.base.config import ServeSettings, WatchSettings
from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.serve.app import Exporter

#: backoffs short enough for tests that break the API server on purpose
FAST_WATCH = WatchSettings(backoff_initial=0.05, backoff_max=0.5, rediscover_interval=0.2)
#: how long a stopped exporter may take to finish (it takes well under 2 s)
STOP_TIMEOUT = 30.0
#: the tests' ``start_exporter`` fixture: ``await start_exporter(kubeconfig=None, **overrides)``
StartExporter = Callable[..., Awaitable[Exporter]]


def exporter_settings(**overrides: Any) -> ServeSettings:
    """Serve settings for a test: loopback, an ephemeral port, publishes every 10 ms, short backoffs."""
    values: dict[str, Any] = {"listen_address": "127.0.0.1", "port": 0, "publish_interval": 0.01,
                              "watch": FAST_WATCH, **overrides}
    return ServeSettings(**values)


@contextlib.asynccontextmanager
async def running_exporter(settings: ServeSettings, kubeconfig: Path | str) -> AsyncIterator[Exporter]:
    """An Exporter with ``settings`` against ``kubeconfig``, ready (every kind settled and published) on entry."""
    exporter = Exporter(settings, await KubeClient.from_kubeconfig(kubeconfig))
    stop = asyncio.Event()
    task = asyncio.create_task(exporter.run(stop), name="exporter")
    try:
        await exporter.wait_for(lambda e: e.ready())
        yield exporter
    finally:
        stop.set()
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT)  # (asyncio.wait does not cancel it)
        if not done:  # show where the exporter's tasks wait, then let it go
            where = "\n".join(f"{t.get_name()}: {t.get_coro()!r} at {t.get_stack(limit=4)}"
                              for t in asyncio.all_tasks() if t is not asyncio.current_task())
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            msg = f"the exporter did not stop within {STOP_TIMEOUT:.0f} s of the stop event; tasks:\n{where}"
            raise AssertionError(msg)
        task.result()

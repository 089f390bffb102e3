"""Shared by the monitoring end-to-end tests: fast alert durations, the webhook receiver Alertmanager sends to,
polling an external process, and starting one with its output in a log file."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exporter.mixin.alerts import AlertDurations

#: The shipped rules with every ``for:`` shortened; the expressions stay the committed ones.
FAST = replace(AlertDurations(), stuck_for="1s", stalled_for="1s", tenant_failing_for="1s", policy_for="1s",
               source_failing_for="1s", helm_failing_for="1s", suspended_for="1s", drift_seconds=60, drift_for="1s",
               exporter_down_for="2m", kind_not_synced_for="1s")


@dataclass
class Receiver:
    """The webhook receiver: Alertmanager's notifications by receiver path."""

    notifications: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def alerts(self, receiver: str | None = None, status: str = "firing") -> list[dict[str, Any]]:
        found = []
        for name, payloads in self.notifications.items():
            if receiver in {None, name}:
                found += [a | {"receiver": name} for p in payloads for a in p["alerts"] if a["status"] == status]
        return found


RECEIVER = web.AppKey("receiver", Receiver)


async def receive(request: web.Request) -> web.Response:
    receiver = request.app[RECEIVER]
    receiver.notifications.setdefault(request.match_info["name"], []).append(await request.json())
    receiver.arrived.set()
    return web.Response(text="ok")


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit: float = 60) -> None:
    """Poll an external process (Prometheus, Alertmanager) until ``check`` holds."""
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)




def substitute(expr: str) -> str:
    return (expr.replace("$cluster", ".*").replace("$tenant", ".+").replace("$__rate_interval", "1m"))

"""Shared by the monitoring end-to-end tests: fast alert durations, the webhook receiver Alertmanager sends to,
the running Alertmanager and Prometheus (scraping given exporters, with the shipped rules), queries, polling an
external process, and starting one with its output in a log file."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
import yaml
from aiohttp import web

from fte_mixin.alerts import AlertDurations, rule_groups
from testbed.controlplane import free_port

ROOT = Path(__file__).parent.parent

#: The shipped rules with every ``for:`` shortened; the expressions stay the committed ones.
FAST = replace(AlertDurations(), stuck_for="1s", stalled_for="1s", tenant_failing_for="1s", policy_for="1s",
               automation_failing_for="1s",
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




def on_job(expr: str, job: str) -> str:
    """``expr`` with every fluxtenant_ and process_ selector restricted to one scrape job."""
    def restrict(match: re.Match[str]) -> str:
        inner = match[3]
        return f'{match[1]}{{job="{job}"{"," + inner if inner else ""}}}'
    return re.sub(r"\b((?:fluxtenant|process)_[a-z_]+)(\{([^}]*)\})?", restrict, expr)


def substitute(expr: str) -> str:
    return (expr.replace("$cluster", ".*").replace("$tenant", ".+").replace("$__rate_interval", "1m"))


@dataclass(frozen=True)
class Monitoring:
    """A running Prometheus and Alertmanager, and the receiver Alertmanager notifies."""

    prometheus: str
    alertmanager: str
    receiver: Receiver


@contextlib.asynccontextmanager
async def monitoring(
    stack_dir: Path, jobs: Mapping[str, int | Sequence[int]],
    amend: Callable[[dict[str, Any], str], None] = lambda _a, _u: None,
) -> AsyncIterator[Monitoring]:
    """Alertmanager with ``alerts/alertmanager.example.yml`` (its receivers pointed at our webhook receiver, groups
    sent after 1 s; ``amend(config, receiver_url)`` changes it further) and Prometheus scraping each job's
    exporter port(s) every second with the shipped rules at FAST durations."""
    for binary in ("prometheus", "prometheus-alertmanager"):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} is not installed: run `make debian-tools`")
    receiver = Receiver()
    app = web.Application()
    app[RECEIVER] = receiver
    app.router.add_post("/{name}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    hook = f"http://127.0.0.1:{hook_port}"

    am_port, prom_port = free_port(), free_port()
    am_config = (ROOT / "alerts" / "alertmanager.example.yml").read_text()
    am_data = yaml.safe_load(am_config.replace("http://alert-receiver.example:8080", hook))
    am_data["route"] |= {"group_wait": "1s", "group_interval": "1s"}
    amend(am_data, hook)
    (stack_dir / "alertmanager.yml").write_text(yaml.safe_dump(am_data))
    (stack_dir / "rules.yaml").write_text(yaml.safe_dump(rule_groups(FAST)))
    (stack_dir / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(stack_dir / "rules.yaml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [
            f"127.0.0.1:{port}" for port in ([ports] if isinstance(ports, int) else ports)]}]}
            for job, ports in jobs.items()],
    }))
    am = spawn(["prometheus-alertmanager", f"--config.file={stack_dir / 'alertmanager.yml'}",
                f"--storage.path={stack_dir / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address="], stack_dir / "alertmanager.log")
    prom = spawn(["prometheus", f"--config.file={stack_dir / 'prometheus.yml'}",
                  f"--storage.tsdb.path={stack_dir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}",
                  # resend at once what fired before Alertmanager was discovered (the watchdog), not after 1m
                  "--rules.alert.resend-delay=2s"],
                 stack_dir / "prometheus.log")
    try:
        yield Monitoring(f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}", receiver)
    finally:
        for proc in (prom, am):
            proc.terminate()
            proc.wait(10)
        await runner.cleanup()


class HasPrometheus(Protocol):
    """A test's stack: anything with the Prometheus URL."""

    @property
    def prometheus(self) -> str:
        """``http://127.0.0.1:<port>``."""


async def query(stack: HasPrometheus, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant PromQL query's result vector (asserting the query succeeded), now or ``at`` (Unix time)."""
    params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
    async with aiohttp.ClientSession() as session, session.get(
        f"{stack.prometheus}/api/v1/query", params=params
    ) as resp:
        body = await resp.json()
    assert body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result

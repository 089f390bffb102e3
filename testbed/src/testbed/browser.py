"""A headless Chromium (Debian's ``chromium``) driven over the DevTools protocol, for the status page tests.

Only what those tests need: open a page, wait for its load, evaluate JavaScript, click a link and wait for the
navigation, collect console errors and uncaught exceptions, emulate the dark colour scheme, take a screenshot.
The browser gets a fresh profile and no network beyond what the page asks for (the page asks for loopback only).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
)


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or a DevTools command failed."""


@dataclass
class Page:
    """One tab, attached over a flat DevTools session."""

    browser: Browser
    session: str
    #: console errors and uncaught exceptions, as text
    errors: list[str] = field(default_factory=list)
    loads: int = 0
    loaded: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """A DevTools command in this tab's session."""
        return await self.browser.send(method, session=self.session, **params)

    async def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Page.loadEventFired":
            async with self.loaded:
                self.loads += 1
                self.loaded.notify_all()
        elif method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "assert"}:
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())

    async def _until_load(self, after: int, timeout: float) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout), self.loaded:
            await self.loaded.wait_for(lambda: self.loads > after)

    async def goto(self, url: str, timeout: float = 20) -> None:  # noqa: ASYNC109
        """Navigate and wait for the load event."""
        before = self.loads
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            msg = f"navigating to {url}: {result['errorText']}"
            raise BrowserError(msg)
        await self._until_load(before, timeout)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            msg = f"{expression}: {result['exceptionDetails']}"
            raise BrowserError(msg)
        return result["result"].get("value")

    async def click(self, selector: str, timeout: float = 20) -> None:  # noqa: ASYNC109
        """Click the first element matching ``selector`` (a link) and wait for the page it opens to load."""
        before = self.loads
        found = await self.evaluate(
            f"(() => {{ const e = document.querySelector({_js(selector)}); if (!e) return false; e.click(); "
            "return true; })()")
        if not found:
            msg = f"no element matches {selector}"
            raise BrowserError(msg)
        await self._until_load(before, timeout)

    async def url(self) -> str:
        """The page's current address."""
        return str(await self.evaluate("location.href"))

    async def dark(self, *, on: bool) -> None:
        """Emulate ``prefers-color-scheme: dark`` (or light)."""
        await self.send("Emulation.setEmulatedMedia", features=[
            {"name": "prefers-color-scheme", "value": "dark" if on else "light"}])

    async def screenshot(self, path: Path, width: int = 1400) -> None:
        """A PNG of the whole page at ``width`` CSS pixels."""
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=200, deviceScaleFactor=1,
                        mobile=False)  # a short viewport first: the height measured next is the content's
        height = int(await self.evaluate("Math.ceil(document.documentElement.getBoundingClientRect().height)"))
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=max(height + 24, 200),
                        deviceScaleFactor=1, mobile=False)
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


def _js(text: str) -> str:
    return json.dumps(text)


class Browser:
    """A Chromium process and its DevTools websocket."""

    def __init__(self) -> None:
        """Nothing runs before ``start``."""
        self.proc: subprocess.Popen[bytes] | None = None
        self.profile = Path(tempfile.mkdtemp(prefix="fte-chromium-"))
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.pages: dict[str, Page] = {}
        self.reader: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 30) -> None:  # noqa: ASYNC109
        """Launch Chromium with a fresh profile and connect to its DevTools endpoint."""
        binary = shutil.which("chromium")
        if binary is None:
            raise BrowserError("chromium is not installed: run `make ui-tools` (Debian's chromium package)")
        log = (self.profile / "chromium.log").open("wb")
        self.proc = subprocess.Popen(  # noqa: ASYNC220, S603 - our own browser binary; nothing waits on it here
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", "about:blank"], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):  # noqa: PLR2004
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.profile / "chromium.log").read_text(errors="replace")[-2000:]
                msg = f"chromium did not open its DevTools port: {tail}"
                raise BrowserError(msg)
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = msg.json()
            if "id" in data:
                future = self.pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif (page := self.pages.get(data.get("sessionId", ""))) is not None:
                await page._event(data["method"], data.get("params", {}))  # noqa: SLF001
        for future in self.pending.values():
            if not future.done():
                future.set_exception(BrowserError("the DevTools connection closed"))

    async def send(self, method: str, *, session: str | None = None, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result, or BrowserError."""
        assert self.ws is not None
        ident = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send_json(message)
        async with asyncio.timeout(30):
            answer = await future
        if "error" in answer:
            msg = f"{method}: {answer['error']}"
            raise BrowserError(msg)
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def new_page(self) -> Page:
        """A new tab with page, runtime and log events on."""
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        page = Page(self, attached["sessionId"])
        self.pages[page.session] = page
        for domain in ("Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        return page

    async def close(self) -> None:
        """Stop Chromium and remove its profile."""
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.send("Browser.close")
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        if self.http is not None:
            await self.http.close()
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A started Browser, closed afterwards."""
    browser = Browser()
    try:
        await browser.start()
        yield browser
    finally:
        await browser.close()

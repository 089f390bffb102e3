"""The status page (``/``, ``/tenant/{name}``) in a real headless Chromium, on the demo fleet of the real control plane.

The page loads with no console error, shows a failing tenant's root cause with its owner, its links and filter
links work (directly and behind a proxy that serves it under a path prefix), untrusted text (a ``<script>`` in a
condition message) is shown as text and never run, and the dark scheme follows the browser's preference.
Screenshots of the overview and a tenant page are taken on the way (``make screenshots`` writes them to docs/).
"""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.serve.app import Exporter
from testbed import fleet
from testbed.browser import Browser, Page, chromium
from testbed.controlplane import free_port
from testbed.running import StartExporter
from testbed.synthetic import load_synthetic_fleet

ROOT = Path(__file__).parent.parent
DEMO_NAMESPACES = ("flux-system", "team-a", "team-a-web", "team-b", "team-c", "team-d")
XSS_NS = "team-x"
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.fixture
async def exporter(admin: KubeClient, start_exporter: StartExporter) -> Exporter:
    """The exporter on the demo fleet plus a tenant whose failure message carries markup."""
    await load_synthetic_fleet(admin)
    await fleet.create(admin, fleet.namespace(XSS_NS, XSS_NS), exist_ok=True)
    await fleet.create(admin, fleet.kustomization(XSS_NS, "evil"), exist_ok=True,
                       status=fleet.failed_status("BuildFailed", f"kustomize build failed: {XSS}",
                                                  since=fleet.ago(minutes=30)))
    return await start_exporter(namespaces=(*DEMO_NAMESPACES, XSS_NS))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


@pytest.fixture
async def prefix_proxy(exporter: Exporter) -> AsyncIterator[str]:
    """A reverse proxy serving the exporter under /flux/ (the prefix is stripped, as an ingress rewrite does)."""
    upstream = f"http://127.0.0.1:{exporter.port}"
    session = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        async with session.get(upstream + path, params=request.query) as resp:  # no prefix header: none is needed
            body = await resp.read()
            headers = {k: v for k, v in resp.headers.items()
                       if k.lower() in {"content-type", "content-encoding", "content-security-policy"}}
            return web.Response(body=body, status=resp.status, headers=headers)

    app = web.Application()
    app.router.add_get("/flux/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/flux/"
    await runner.cleanup()
    await session.close()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def links_resolve(page: Page) -> dict[str, int]:
    """The HTTP status of every link target on the page (fragments dropped)."""
    hrefs: list[str] = await page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
    targets = sorted({h.split("#")[0] for h in hrefs})
    async with aiohttp.ClientSession() as session:
        statuses = {}
        for url in targets:
            async with session.get(url) as resp:
                statuses[url] = resp.status
    return statuses


async def text(page: Page, selector: str = "body") -> Any:
    return await page.evaluate(f"document.querySelector({selector!r}).innerText")


async def test_status_page_in_chromium(exporter: Exporter, browser: Browser, tmp_path: Path) -> None:  # noqa: PLR0915
    """The overview lists every tenant worst first with its worst root cause and owner; the tenant link opens the
    tenant page with its root causes first; filter links narrow the objects; every link resolves; markup in a
    message is shown as text and never runs; no console errors; dark mode follows the browser."""
    base = f"http://127.0.0.1:{exporter.port}/"
    shots = Path(os.environ.get("FTE_SCREENSHOT_DIR") or tmp_path)
    page = await browser.new_page()
    await page.goto(base)
    assert await page.evaluate("document.title") == "Flux tenants"
    tenants = await page.evaluate("[...document.querySelectorAll('tr[data-tenant]')].map(r => r.dataset.tenant)")
    assert set(tenants) >= {"team-a", "team-b", "team-c", "team-d", "platform", XSS_NS}
    statuses = await page.evaluate(
        "[...document.querySelectorAll('tr[data-tenant]')].map(r => r.querySelector('.st').innerText)")
    assert statuses == sorted(statuses, key=["failing", "progressing", "degraded", "suspended", "healthy"].index)
    team_b = await text(page, 'tr[data-tenant="team-b"]')
    assert "failing" in team_b
    assert "GitRepository/team-b/repo" in team_b  # the stuck root, not the Kustomization it blocks
    assert "source_auth_failed" in team_b
    assert "owner: tenant" in team_b
    assert "healthy" in await text(page, 'tr[data-tenant="team-d"]')
    assert await page.evaluate("document.querySelector('meta[http-equiv=refresh]').content") == "15"
    # untrusted text: shown literally, never executed, no element made of it
    assert XSS in await text(page, f'tr[data-tenant="{XSS_NS}"]')
    assert await page.evaluate("window.__pwned === undefined")
    assert await page.evaluate("document.querySelectorAll('script, img').length") == 0
    assert set((await links_resolve(page)).values()) == {200}
    await page.screenshot(shots / "status-overview.png")

    await page.click('tr[data-tenant="team-b"] td:first-child a')
    assert (await page.url()) == base + "tenant/team-b"
    causes = await text(page, ".cause")  # the first root cause box
    assert "GitRepository/team-b/repo" in causes
    assert "unable to authenticate" in causes
    assert "owner tenant" in causes
    rows = await page.evaluate("[...document.querySelectorAll('tbody tr[id]')].map(r => r.id)")
    assert rows[0] in {"GitRepository-team-b-repo", "HelmChart-team-b-team-b-web"}  # roots first
    blocked = await text(page, "tr#Kustomization-team-b-app")
    assert "GitRepository/team-b/repo" in blocked
    assert set((await links_resolve(page)).values()) == {200}
    await page.screenshot(shots / "status-tenant.png")

    await page.click('nav.filters a[href="?state=failing"]')
    assert (await page.url()).endswith("/tenant/team-b?state=failing")
    states = await page.evaluate("[...document.querySelectorAll('tbody tr[id] .st')].map(s => s.innerText)")
    assert states
    assert set(states) == {"failing"}
    await page.click('a[href=".."]')
    assert (await page.url()) == base

    await page.dark(on=True)
    await page.goto(base + "tenant/team-c")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"
    await page.screenshot(shots / "status-tenant-dark.png")
    await page.dark(on=False)
    await page.goto(base + "tenant/no-such-tenant")
    assert "no tenant 'no-such-tenant'" in await text(page)
    assert page.errors == ["network: Failed to load resource: the server responded with a status of 404 (Not Found) "
                           f"{base}tenant/no-such-tenant"]
    page.errors.clear()
    await page.goto(base + "?state=sleeping")
    assert "state='sleeping' is not one of" in await text(page)
    for shot in ("status-overview.png", "status-tenant.png", "status-tenant-dark.png"):
        width, height = png_size(shots / shot)
        assert width >= 1400
        assert height > 250


async def test_status_page_behind_a_path_prefix(browser: Browser, prefix_proxy: str) -> None:
    """Served under /flux/ by a proxy, every link of the overview and of a tenant page stays under the prefix and
    loads; the page needs no configuration for it (all links are relative)."""
    page = await browser.new_page()
    await page.goto(prefix_proxy)
    assert await page.evaluate("document.title") == "Flux tenants"
    statuses = await links_resolve(page)
    assert all(url.startswith(prefix_proxy) for url in statuses), statuses
    assert set(statuses.values()) == {200}
    await page.click('tr[data-tenant="team-a"] td:first-child a')
    assert (await page.url()) == prefix_proxy + "tenant/team-a"
    assert "Kustomization/team-a/namespaces" in await text(page, ".cause")
    statuses = await links_resolve(page)
    assert all(url.startswith(prefix_proxy) for url in statuses), statuses
    assert set(statuses.values()) == {200}
    await page.click('a[href=".."]')
    assert (await page.url()) == prefix_proxy
    assert page.errors == []

"""`get tenants|tenant NAME|resources`: tables, JSON and YAML, --watch, both sources (--url and the in-process
watcher), and user errors; in a real terminal (tmux send-keys / capture-pane) on the demo fleet."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from flux_tenant_exporter.base.config import GetQuery
from flux_tenant_exporter.base.timefmt import human_age
from flux_tenant_exporter.cli.get import Printer
from flux_tenant_exporter.cli.main import main
from flux_tenant_exporter.flux.model import NamespaceInfo
from flux_tenant_exporter.flux.projection import parse_object
from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.render.documents import Filters, tenant_doc, tenants_doc
from flux_tenant_exporter.render.tables import resources_table, tenants_table
from flux_tenant_exporter.serve.app import Exporter
from flux_tenant_exporter.state.store import Store
from flux_tenant_exporter.state.view import build_view
from testbed import fleet
from testbed.controlplane import ControlPlane
from testbed.running import StartExporter
from testbed.synthetic import load_synthetic_fleet

BIN = Path(sys.executable).parent
EXE = BIN / "flux-tenant-exporter"
DEMO_NAMESPACES = ("flux-system", "team-a", "team-a-web", "team-b", "team-c", "team-d")


# -- without a cluster --------------------------------------------------------------------------------


def small_fleet(app_status: dict[str, Any] | None = None) -> dict[str, Any]:
    """A tenant whose failing source blocks a Kustomization, beside a ready one: the /tenants document."""
    store = Store()
    store.upsert_namespace(NamespaceInfo("shop", "shop"))
    for raw, status in (
        (fleet.gitrepository("shop", "repo"),
         fleet.failed_status("GitOperationFailed", "ssh: handshake failed: unable to authenticate",
                             since=fleet.ago(hours=2))),
        (fleet.kustomization("shop", "app"), app_status or fleet.failed_status(
            "ArtifactFailed", "Source artifact not found, retrying in 30s", since=fleet.ago(hours=2))),
        (fleet.kustomization("shop", "web"), fleet.ready_status("Kustomization", since=fleet.ago(minutes=5))),
    ):
        raw["metadata"]["generation"] = 1
        raw["status"] = status
        store.upsert(parse_object(raw))
    return tenants_doc(build_view(store, now=time.time()), with_resources=True)


def test_ages_are_printed_like_kubectl() -> None:
    """Seconds below 2 minutes, minutes and seconds below 10, hours and minutes below 8 h, days and hours below 8 d."""
    assert [human_age(s) for s in (0, 59, 119, 125, 600, 3 * 3600 + 60, 20 * 3600, 2 * 86400 + 3600, 30 * 86400)] == [
        "0s", "59s", "119s", "2m5s", "10m", "3h1m", "20h", "2d1h", "30d"]


def test_tables_put_root_causes_first_and_name_the_blocker() -> None:
    """The tenants table shows the worst root cause with its category and owner; the resources table lists the
    root first and, for the object it blocks, what blocks it."""
    doc = small_fleet()
    now = time.time()
    (tenant,) = tenants_table(doc, now).rows
    assert tenant.cells[:5] == ("shop", "failing", "3", "2", "2")
    assert tenant.cells[6:9] == ("GitRepository/shop/repo", "source_auth_failed", "tenant")
    assert tenant.cells[9] == "120m"  # kubectl prints minutes up to 3 h
    rows = resources_table(doc["tenants"][0]["resources"], now).rows
    assert [r.key[2] for r in rows] == ["repo", "app", "web"]
    assert rows[1].cells[8] == "GitRepository/shop/repo"
    assert rows[0].cells[10] == "ssh: handshake failed: unable to authenticate"
    text = resources_table(doc["tenants"][0]["resources"], now).render(colour=True)
    assert "\x1b[31mfailing" in text  # coloured only when asked
    assert "\x1b[" not in resources_table(doc["tenants"][0]["resources"], now).render(colour=False)


def test_watch_off_a_terminal_prints_only_the_changed_rows() -> None:
    """Piped, --watch prints the table once, then only rows that changed (no header); an unchanged snapshot prints
    nothing; JSON under --watch is one document per line, printed only when it changed."""
    query = GetQuery(what="resources", tenant="shop", watch=True)
    out = io.StringIO()
    printer = Printer(query, out, terminal=False)
    printer.show(small_fleet())
    first = out.getvalue()
    assert first.splitlines()[0].startswith("KIND")
    assert len(first.splitlines()) == 4
    printer.show(small_fleet())
    assert out.getvalue() == first
    printer.show(small_fleet(fleet.ready_status("Kustomization")))
    (changed,) = out.getvalue()[len(first):].splitlines()
    assert changed.split()[:4] == ["Kustomization", "shop", "app", "ready"]

    out = io.StringIO()
    printer = Printer(GetQuery(what="tenants", output="json", watch=True), out, terminal=False)
    printer.show(small_fleet())
    printer.show(small_fleet())
    printer.show(small_fleet(fleet.ready_status("Kustomization")))
    docs = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [d["tenants"][0]["counts"]["failing"] for d in docs] == [2, 1]


@pytest.mark.parametrize(("argv", "message"), [
    (["get", "tenant"], "`get tenant` needs the tenant's name"),
    (["get", "tenants", "extra"], "`get tenants` takes no name"),
    (["get", "resources", "--state", "sleeping"], "argument --state: invalid choice: 'sleeping'"),
    (["get", "widgets"], "argument what: invalid choice: 'widgets'"),
    (["get", "tenants", "--url", "ftp://example"], "want http://host:port"),
    (["get", "tenants", "--url", "http://127.0.0.1:9"], "cannot read http://127.0.0.1:9/tenants"),
    (["get", "tenants", "--kubeconfig", "/nonexistent/kubeconfig"], "kubeconfig"),
])
def test_user_errors_are_one_line_and_exit_2(argv: list[str], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A bad command, filter, URL or kubeconfig is one line on stderr and exit code 2, never a traceback."""
    try:
        code = main(argv, configure=lambda **_: None)  # the tests' logging stays off the captured (later closed) stderr
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err


# -- on the demo fleet, in a terminal -----------------------------------------------------------------


@pytest.fixture
async def exporter(admin: KubeClient, namespace: str, start_exporter: StartExporter) -> Exporter:
    """The exporter on the demo fleet and this test's namespace."""
    await load_synthetic_fleet(admin)
    return await start_exporter(namespaces=(*DEMO_NAMESPACES, namespace))


class Tmux:
    """A private tmux server (its own socket); one window per command, read back with capture-pane."""

    def __init__(self, name: str) -> None:
        self.binary = shutil.which("tmux")
        if self.binary is None:
            pytest.fail("tmux is not installed: run `make ui-tools`")
        self.socket = name
        self.windows = 0

    def run(self, *args: str) -> str:
        assert self.binary is not None
        return subprocess.run([self.binary, "-L", self.socket, *args], capture_output=True, text=True,
                              check=True).stdout

    def start(self) -> None:
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "get", "-x", "250", "-y", "60",
                 "env -u NO_COLOR bash --norc --noprofile")
        self.run("set-option", "-g", "history-limit", "5000")

    def type(self, command: str) -> str:
        """Open a new window, type ``command`` and Enter; return the window's target."""
        self.windows += 1
        target = f"get:{self.windows}"
        self.run("new-window", "-t", target, "env -u NO_COLOR bash --norc --noprofile")
        self.run("send-keys", "-t", target, "-l", command)
        self.run("send-keys", "-t", target, "Enter")
        return target

    def screen(self, target: str, *, escapes: bool = False) -> str:
        return self.run("capture-pane", "-p", "-J", *(("-e",) if escapes else ()), "-t", target)

    async def wait_for(self, target: str, check: Callable[[str], bool], what: str, limit: float = 45) -> str:
        deadline = time.monotonic() + limit
        while True:
            screen = self.screen(target)
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; the screen:\n{screen}")
            await asyncio.sleep(0.2)

    def close(self) -> None:
        subprocess.run([self.binary or "tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    term = Tmux(f"fte-get-{os.getpid()}")
    term.start()
    yield term
    term.close()


def at_prompt(screen: str) -> bool:
    """Whether the shell prompt is back (the command ended)."""
    return screen.rstrip().endswith(("$", "#"))


def row(screen: str, *words: str) -> str | None:
    """The first screen line holding every word."""
    return next((line for line in screen.splitlines() if all(w in line.split() for w in words)), None)


async def test_get_in_a_terminal_on_the_demo_fleet(
    exporter: Exporter, tmux: Tmux, admin: KubeClient, namespace: str, control_plane: ControlPlane
) -> None:
    """In tmux: `get tenants --url` shows each tenant's status and worst root cause with its owner; `get tenant`
    from the in-process watcher shows the roots first; `get resources --watch` redraws when a status changes."""
    url = f"http://127.0.0.1:{exporter.port}"
    target = tmux.type(f"{EXE} get tenants --url {url}")
    screen = await tmux.wait_for(target, lambda s: row(s, "team-d") is not None, "the tenants table")
    assert row(screen, "TENANT", "STATUS", "OBJECTS", "FAILING", "STUCK") is not None
    team_b = row(screen, "team-b")
    assert team_b is not None
    assert team_b.split()[:2] == ["team-b", "failing"]
    assert {"GitRepository/team-b/repo", "source_auth_failed", "tenant"} <= set(team_b.split())
    assert row(screen, "team-d", "healthy") is not None
    assert "\x1b[31mfailing" in tmux.screen(target, escapes=True)  # coloured on a terminal

    kubeconfig = control_plane.kubeconfig
    target = tmux.type(f"{EXE} get tenant team-a --kubeconfig {kubeconfig}")
    screen = await tmux.wait_for(target, lambda s: "Tenant team-a" in s and at_prompt(s),
                                 "the in-process get tenant to finish")
    lines = [line for line in screen.splitlines() if line.startswith(("Kustomization", "HelmRelease", "GitRep",
                                                                        "HelmChart", "HelmRepository"))]
    assert lines[0].split()[:4] == ["Kustomization", "team-a", "namespaces", "failing"]  # the root comes first
    web = row(screen, "web", "failing")
    assert web is not None
    assert "Kustomization/team-a/namespaces" in web
    assert "Policy violations:" in screen

    obj = await fleet.create(admin, fleet.kustomization(namespace, "app"), status=fleet.ready_status("Kustomization"))
    target = tmux.type(f"{EXE} get resources -t {namespace} --watch --kubeconfig {kubeconfig} "
                       f"--namespaces {namespace} --kinds kustomization")
    await tmux.wait_for(target, lambda s: row(s, "app", "ready") is not None, "the watched object, ready")
    await fleet.write_status(admin, obj, fleet.failed_status("HealthCheckFailed", "health check failed after 5m0s"))
    screen = await tmux.wait_for(target, lambda s: row(s, "app", "failing") is not None, "the status change")
    assert row(screen, "app", "ready") is None  # redrawn, not appended
    assert "health_check_failed" in (row(screen, "app", "failing") or "")
    tmux.run("send-keys", "-t", target, "C-c")
    await tmux.wait_for(target, at_prompt, "--watch to stop on Ctrl-C")


async def test_json_yaml_and_watch_through_a_pipe(exporter: Exporter, admin: KubeClient, namespace: str) -> None:
    """-o json is the /tenants document (and /tenants/{name} for one tenant), -o yaml the same data; an unknown
    tenant is one line and exit 2; piped, `--watch --url` prints a changed row without a header."""
    url = f"http://127.0.0.1:{exporter.port}"
    exe = str(EXE)

    async def get(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(exe, "get", *args, "--url", url, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await get("tenants", "-o", "json")
    assert code == 0, err
    tenants = orjson.loads(out)
    code, out, _ = await get("tenants")
    assert "failing" in out
    assert "\x1b[" not in out  # no colour through a pipe
    expected = tenants_doc(exporter.view)
    assert tenants["tenants"] == expected["tenants"]
    one = yaml.safe_load((await get("tenant", "team-b", "-o", "yaml"))[1])
    assert {k: v for k, v in one.items() if k != "generated_at"} == tenant_doc(
        exporter.view.tenants["team-b"], Filters(), with_resources=True)
    failing = orjson.loads((await get("resources", "--state", "failing", "--owner", "platform", "-o", "json"))[1])
    assert failing["resources"]
    assert {(r["state"], r["owner"]) for r in failing["resources"]} == {("failing", "platform")}
    code, _, err = await get("tenant", "no-such-tenant")
    assert code == 2
    assert err == (f"flux-tenant-exporter: error: get: {url}/tenants/no-such-tenant: no tenant 'no-such-tenant'; "
                   "GET /tenants lists them\n")

    obj = await fleet.create(admin, fleet.kustomization(namespace, "app"), status=fleet.ready_status("Kustomization"))
    await exporter.wait_for(lambda e: any(r.namespace == namespace for r in e.view.resources))
    proc = await asyncio.create_subprocess_exec(exe, "get", "resources", "-t", namespace, "--watch", "--url", url,
                                                "--interval", "200ms", stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            header = (await proc.stdout.readline()).decode()
            first = (await proc.stdout.readline()).decode()
            assert header.split()[:3] == ["KIND", "NAMESPACE", "NAME"]
            assert first.split()[:4] == ["Kustomization", namespace, "app", "ready"]
            await fleet.write_status(admin, obj, fleet.failed_status("BuildFailed", "kustomize build failed: x"))
            changed = (await proc.stdout.readline()).decode()
        assert changed.split()[:6] == ["Kustomization", namespace, "app", "failing", "build_failed", "tenant"]
    finally:
        proc.terminate()
        await proc.wait()

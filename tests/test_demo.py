"""`make demo` and `make cluster` as a user runs them: real processes, real controllers, real git pushes.

The demo test runs ``flux-tenant-exporter demo`` (the command `make demo` runs), reads what it prints, runs the
printed one-line fix for team-a in a shell and polls /tenants until team-a is healthy. The cluster test runs
``python -m testbed.cluster`` (what `make cluster` runs), reads its four lines, pushes a new repository over
HTTP, has the real source-controller fetch it, and serves a chart dropped into HELM_CHARTS_DIR.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from contract import check_every_body, check_get_outputs

from flux_tenant_exporter.kube.client import KubeClient
from testbed import scenario
from testbed.controlplane import free_port
from testbed.gitserver import GIT

BIN = Path(sys.executable).parent


@contextlib.asynccontextmanager
async def process(*argv: str, stderr: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child process with piped stdout (stderr to a file); SIGTERM at the end, and it must exit 0 within 60 s."""
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=err)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
    log = await asyncio.to_thread(stderr.read_text)
    assert code == 0, f"{argv[0]} exited {code}: {log[-3000:]}"


async def read_until(proc: asyncio.subprocess.Process, last: str, *, timeout: float) -> list[str]:  # noqa: ASYNC109
    """stdout lines up to and including the first that starts with ``last``."""
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                pytest.fail(f"exited before printing {last!r}: {''.join(lines)}")
            lines.append(raw.decode())
            if lines[-1].startswith(last):
                return lines


async def poll(check: Any, what: str, *, limit: float) -> Any:
    """Poll ``check()`` (a coroutine function) until it returns something truthy, or fail after ``limit`` s."""
    deadline = time.monotonic() + limit
    while not (result := await check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)
    return result


@pytest.mark.timeout(240)
@pytest.mark.apiserver
@pytest.mark.flux
async def test_demo_prints_real_failures_and_a_pushed_fix_makes_the_tenant_healthy(tmp_path: Path) -> None:
    """`flux-tenant-exporter demo` prints the URLs, a summary with real failures in at least 12 categories over
    4 tenants (team-d healthy), the working copies and one-line fixes; running team-a's printed fix (a git push
    that drops its ClusterRole) turns team-a healthy on /tenants; before the fix every JSON body it serves and every
    `get -o json` validates against openapi.yaml; SIGTERM stops it with exit 0."""
    port = free_port()
    async with process(str(BIN / "flux-tenant-exporter"), "demo", "--port", str(port), "--listen-address",
                       "127.0.0.1", "--log-level", "warning", stderr=tmp_path / "demo.log") as demo:
        out = "".join(await read_until(demo, "Press Ctrl-C", timeout=150))
        assert re.search(r"^Ready in \d+\.\d s", out, re.MULTILINE), out
        assert "Not settled yet" not in out, out
        assert f"http://127.0.0.1:{port}/tenants" in out
        tenants = dict(re.findall(r"^  (team-[a-d]|platform)\s+(\w+)\s+failing=", out, re.MULTILINE))
        assert tenants == {"platform": "healthy", "team-a": "failing", "team-b": "failing", "team-c": "failing",
                           "team-d": "healthy"}, out
        assert "Kustomization/rbac=cluster_scoped_in_tenant" in out
        fix = next(line.strip() for line in out.splitlines() if "git rm -q rbac/clusterrole.yaml" in line)

        async with aiohttp.ClientSession() as session:
            async def tenant(name: str) -> dict[str, Any]:
                async with session.get(f"http://127.0.0.1:{port}/tenants/{name}") as resp:
                    assert resp.status == 200
                    doc: dict[str, Any] = await resp.json()
                    return doc

            categories = {f["category"] for t in ("team-a", "team-b", "team-c") for f in (await tenant(t))["failures"]}
            assert len(categories) >= 12, categories
            before = await tenant("team-a")
            assert {(f["kind"], f["name"], f["category"]) for f in before["failures"]} == {
                ("Kustomization", "rbac", "cluster_scoped_in_tenant"), ("Kustomization", "web", "dependency_not_ready")}
            assert "ClusterRole/team-a-reader dry-run failed (Forbidden)" in next(
                f["message"] for f in before["failures"] if f["name"] == "rbac")

            # the JSON contract on what the real controllers wrote: every body and every `get -o json`
            base = f"http://127.0.0.1:{port}"
            checked, errors = await check_every_body(base)
            assert errors == [], errors[:20]
            assert checked > 20
            checked, errors = await check_get_outputs(base, "team-b")
            assert errors == [], errors
            assert checked == 4

            await asyncio.to_thread(subprocess.run, ["bash", "-c", fix], check=True, capture_output=True, timeout=60)
            pushed = time.monotonic()

            async def healthy() -> bool:
                return bool((await tenant("team-a"))["status"] == "healthy")

            await poll(healthy, "team-a to turn healthy after the pushed fix", limit=60)
            # GitRepository poll (5s) + the rbac apply + the dependent's dependency requeue (5s)
            assert time.monotonic() - pushed < 40
            assert (await tenant("team-b"))["status"] == "failing"


@pytest.mark.timeout(180)
@pytest.mark.apiserver
@pytest.mark.flux
async def test_make_cluster_prints_four_lines_serves_pushes_and_charts(tmp_path: Path) -> None:
    """`make cluster` prints exactly KUBECONFIG=, GIT_URL=, HELM_REPO_URL=, HELM_CHARTS_DIR=; a `git push` to a new
    path creates the repository, and the real source-controller fetches it (GitRepository Ready with that
    commit); a chart .tgz dropped into HELM_CHARTS_DIR is listed in the served index.yaml; SIGTERM stops it
    with exit 0 and removes the control plane's folder."""
    async with process(str(BIN / "python"), "-m", "testbed.cluster", stderr=tmp_path / "cluster.log") as cluster:
        out = await read_until(cluster, "HELM_CHARTS_DIR=", timeout=120)
        assert [line.split("=", 1)[0] for line in out] == ["KUBECONFIG", "GIT_URL", "HELM_REPO_URL",
                                                           "HELM_CHARTS_DIR"], out
        values = dict(line.rstrip("\n").split("=", 1) for line in out)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", values["GIT_URL"])
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", values["HELM_REPO_URL"])

        work = tmp_path / "repo"
        (work / "deploy").mkdir(parents=True)
        (work / "deploy" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
        git_env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                   "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
        url = f"{values['GIT_URL']}/explore/team/app.git"
        def git(*argv: str) -> str:
            return subprocess.run([GIT, "-C", str(work), *argv], check=True, env=git_env,
                                  capture_output=True, text=True, timeout=60).stdout.strip()

        for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "first"],
                     ["push", "-q", url, "main"]):
            await asyncio.to_thread(git, *argv)
        sha = await asyncio.to_thread(git, "rev-parse", "HEAD")

        client = await KubeClient.from_kubeconfig(values["KUBECONFIG"])
        try:
            await client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "explore"}})
            repo = scenario.git_repository("explore", "app", url)
            await scenario.apply(client, repo)
            ready = await scenario.wait_for(client, repo, scenario.is_ready, timeout=60)
            assert ready["status"]["artifact"]["revision"] == f"main@sha1:{sha}"
        finally:
            await client.close()

        chart = {"apiVersion": "v2", "name": "dropped", "version": "0.3.0"}
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            data = yaml.safe_dump(chart).encode()
            info = tarfile.TarInfo("dropped/Chart.yaml")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        await asyncio.to_thread((Path(values["HELM_CHARTS_DIR"]) / "dropped-0.3.0.tgz").write_bytes, buf.getvalue())

        async with aiohttp.ClientSession() as session:
            async def listed() -> bool:
                async with session.get(f"{values['HELM_REPO_URL']}/index.yaml") as resp:
                    index = yaml.safe_load(await resp.text())
                return [e["version"] for e in (index.get("entries") or {}).get("dropped", [])] == ["0.3.0"]

            await poll(listed, "the dropped chart in index.yaml", limit=20)
    assert not await asyncio.to_thread(Path(values["KUBECONFIG"]).exists)


def test_demo_without_the_controllers_built_says_how_to_build_them(tmp_path: Path) -> None:
    """With no controller build in the cache, `flux-tenant-exporter demo` starts nothing and builds nothing: one
    line naming `make demo` / `make controllers`, exit code 2."""
    env = {k: v for k, v in os.environ.items() if k != "FTE_FLUX_CONTROLLERS"} | {"FTE_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([str(BIN / "flux-tenant-exporter"), "demo", "--port", "0"], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.startswith("Starting")
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(
        "flux-tenant-exporter: error: the real Flux controllers are not built: run `make demo`")
    assert "make controllers" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(240)
@pytest.mark.apiserver
@pytest.mark.flux
async def test_demo_with_access_control_prints_a_tenant_token_that_shows_only_that_tenant(tmp_path: Path) -> None:
    """`demo --auth=kubernetes` listens on loopback, prints team-a's token and a `get tenants --url ... --token`
    line; that line, run as printed, shows team-a alone; without the token /tenants is 401."""
    port = free_port()
    async with process(str(BIN / "flux-tenant-exporter"), "demo", "--auth=kubernetes", "--port", str(port),
                       "--log-level", "warning", stderr=tmp_path / "demo.log") as demo:
        out = "".join(await read_until(demo, "Press Ctrl-C", timeout=150))
        assert "Access control is on" in out, out
        line = next(line.strip() for line in out.splitlines() if " get tenants --url " in line)
        assert f"--url http://127.0.0.1:{port} --token " in line
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
        shown = await asyncio.to_thread(subprocess.run, ["bash", "-c", line], capture_output=True, text=True,
                                        timeout=60, check=False, env=env)
        assert shown.returncode == 0, shown.stderr
        rows = [r.split()[0] for r in shown.stdout.splitlines()[1:] if r.strip()]
        assert rows == ["team-a"], shown.stdout
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/tenants") as resp:
            assert resp.status == 401

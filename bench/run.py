"""Benchmark flux-tenant-exporter against kube-state-metrics on the same real API server and the same objects.

    python bench/run.py                      # 1k, 5k, 20k objects (the documented full run)
    python bench/run.py --sizes 300 --quick  # the CI smoke run

KSM (built from the Go module proxy by tools/gotool.sh) runs with a CustomResourceState config for the seven
Flux kinds with the label set of Flux's official monitoring example (gotk_resource_info) plus a Ready StateSet.
Per size, ours and KSM run one after the other against the same fleet (who goes first alternates from size to
size); printed as a table with ratios (ours / KSM: below 1 is better for us) and written to
bench/results/results.{json,csv}. Cold starts and bare lists are the median of three; update lag is measured
from the API server's acceptance of each write to the first 10 Hz /metrics poll that shows it, next to a bare
watch's receipt of the same write (the floor: what the API server's watch delivery alone takes).

Ours runs from a venv holding only the product's pinned runtime dependencies (requirements.lock, what the image
installs; made once into the cache), not from the development venv: test tools there change what the product
imports (structlog imports rich when it is installed). ``--runtime dev`` runs it from this Python instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gzip
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flux_tenant_exporter.base.config import ServeSettings  # noqa: E402
from flux_tenant_exporter.base.kinds import FLUX_KINDS  # noqa: E402
from flux_tenant_exporter.kube.client import KubeClient  # noqa: E402
from testbed import fleet  # noqa: E402
from testbed.controlplane import ControlPlane, find_assets, free_port  # noqa: E402

FAILURES = [
    ("ReconciliationFailed", 'Namespace/x dry-run failed (Forbidden): namespaces "x" is forbidden: User '
     '"system:serviceaccount:t:flux" cannot patch resource "namespaces" in API group "" at the cluster scope'),
    ("HealthCheckFailed", "health check failed after 5m0s: timeout waiting for: [Deployment/t/api status: "
     "'InProgress']"),
    ("BuildFailed", "kustomize build failed: accumulating resources: accumulation err='accumulating resources from "
     "'base': must build at directory: not a valid directory'"),
    ("DependencyNotReady", "dependency 't/infra' is not ready"),
    ("ArtifactFailed", "Source artifact not found, retrying in 30s"),
]
KSM_KINDS = {  # kind -> (version, extra labelsFromPath), as in flux2-monitoring-example
    "Kustomization": ("v1", {"revision": ["status", "lastAppliedRevision"],
                             "source_name": ["spec", "sourceRef", "name"]}),
    "HelmRelease": ("v2", {"revision": ["status", "lastAppliedRevision"],
                           "chart_name": ["spec", "chart", "spec", "chart"],
                           "chart_source_name": ["spec", "chart", "spec", "sourceRef", "name"]}),
    "GitRepository": ("v1", {"revision": ["status", "artifact", "revision"], "url": ["spec", "url"]}),
    "OCIRepository": ("v1", {"revision": ["status", "artifact", "revision"], "url": ["spec", "url"]}),
    "HelmRepository": ("v1", {"revision": ["status", "artifact", "revision"], "url": ["spec", "url"]}),
    "HelmChart": ("v1", {"revision": ["status", "artifact", "revision"], "chart_name": ["spec", "chart"],
                         "chart_version": ["spec", "version"]}),
    "Bucket": ("v1", {"revision": ["status", "artifact", "revision"], "endpoint": ["spec", "endpoint"],
                      "bucket_name": ["spec", "bucketName"]}),
}
GROUPS = {k.kind: k.group for k in FLUX_KINDS}
#: /metrics is polled at most this often in the update-lag scenario (a 16 MiB body at 20,000 objects: polling
#: back to back would make the poller the largest load on the machine, for KSM above all)
POLL_INTERVAL = 0.1


def ksm_config() -> dict[str, Any]:
    resources = []
    for kind, (version, extra) in KSM_KINDS.items():
        labels = {"exported_namespace": ["metadata", "namespace"], "ready": ["status", "conditions", "[type=Ready]",
                                                                               "status"],
                  "suspended": ["spec", "suspend"], **extra}
        resources.append({
            "groupVersionKind": {"group": GROUPS[kind], "version": version, "kind": kind},
            "metricNamePrefix": "gotk",
            "metrics": [
                {"name": "resource_info", "help": "The current state of a Flux resource.",
                 "each": {"type": "Info", "info": {"labelsFromPath": {"name": ["metadata", "name"]}}},
                 "labelsFromPath": labels},
                {"name": "resource_ready", "help": "Ready condition of a Flux resource.",
                 "each": {"type": "StateSet", "stateSet": {"labelName": "status",
                                                           "path": ["status", "conditions", "[type=Ready]", "status"],
                                                           "list": ["True", "False", "Unknown"]}},
                 "labelsFromPath": {"exported_namespace": ["metadata", "namespace"], "name": ["metadata", "name"]}},
            ],
        })
    return {"kind": "CustomResourceStateMetrics", "spec": {"resources": resources}}


# -- the fleet ----------------------------------------------------------------------------------------------


def fleet_objects(start: int, end: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Objects start..end-1 with realistic statuses; N/10 namespaces, N/40 tenants (namespaces keep their index)."""
    rng = random.Random(start)
    out = []
    for i in range(start, end):
        ns = f"ns-{i // 10:05d}"
        slot = i % 40
        rev = fleet.revision(seed=str(i % 97))
        failing = rng.random() < 0.10
        if slot < 16:  # Kustomizations dominate
            obj = fleet.kustomization(ns, f"ks-{i}", source=("GitRepository", f"repo-{i // 10 * 10}"),
                                      depends_on=[f"ks-{i - 1}"] if slot % 4 == 1 else [])
            inventory = [(ns, f"app-{j}", "apps", "Deployment") for j in range(40)]
            status = fleet.ready_status("Kustomization", rev=rev, inventory_entries=inventory)
        elif slot < 28:
            obj = fleet.helmrelease(ns, f"hr-{i}", repository=("HelmRepository", f"charts-{i // 10 * 10}"))
            status = fleet.ready_status("HelmRelease")
        elif slot < 32:
            obj = fleet.gitrepository(ns, f"repo-{i}")
            status = fleet.ready_status("GitRepository", rev=rev)
        elif slot < 34:
            obj = fleet.ocirepository(ns, f"oci-{i}")
            status = fleet.ready_status("OCIRepository", rev=rev)
        elif slot < 36:
            obj = fleet.helmrepository(ns, f"charts-{i}")
            status = fleet.ready_status("HelmRepository", rev="sha256:1")
        elif slot < 39:
            obj = fleet.helmchart(ns, f"{ns}-hr-{i}")
            status = fleet.ready_status("HelmChart", rev="6.5.4")
        else:
            obj = fleet.bucket(ns, f"bucket-{i}")
            status = fleet.ready_status("Bucket", rev=rev)
        if failing:
            reason, message = FAILURES[i % len(FAILURES)]
            status = fleet.failed_status(reason, message, since=fleet.ago(minutes=i % 120))
        out.append((obj, status))
    return out


async def grow_fleet(client: KubeClient, have: int, want: int) -> float:
    """Create objects have..want-1 (and their namespaces), 64 requests at a time; returns seconds taken."""
    started = time.monotonic()
    limit = asyncio.Semaphore(64)

    async def one(obj: dict[str, Any], status: dict[str, Any] | None = None) -> None:
        async with limit:
            await fleet.create(client, obj, status=status, exist_ok=True)

    namespaces = sorted({f"ns-{i // 10:05d}" for i in range(have, want)})
    await asyncio.gather(*(one(fleet.namespace(ns, f"tenant-{int(ns[3:]) // 4:04d}")) for ns in namespaces))
    await asyncio.gather(*(one(obj, status) for obj, status in fleet_objects(have, want)))
    return time.monotonic() - started


# -- measuring a process ------------------------------------------------------------------------------------


def proc_stats(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return {"rss_mib": rss, "peak_rss_mib": hwm, "cpu_s": cpu}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def fetch(session: aiohttp.ClientSession, url: str, *, gzip_ok: bool = False) -> bytes:
    headers = {"Accept-Encoding": "gzip" if gzip_ok else "identity"}
    async with session.get(url, headers=headers) as resp:
        return await resp.read()


class Target:
    """One exporter process under test."""

    def __init__(self, name: str, argv: list[str], port: int, counter: re.Pattern[bytes],
                 env: dict[str, str] | None = None) -> None:
        """``counter`` finds the samples that count the objects a /metrics body holds (each match adds its value)."""
        self.name, self.argv, self.port, self.counter, self.env = name, argv, port, counter, env
        self.proc: subprocess.Popen[bytes] | None = None

    def objects(self, body: bytes) -> int:
        """How many objects ``body`` shows."""
        return sum(int(float(value)) for value in self.counter.findall(body))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log: Path) -> float:
        self.proc = subprocess.Popen(self.argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=self.env)
        return time.monotonic()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def cold_start(target: Target, session: aiohttp.ClientSession, n: int, log: Path) -> float:
    """Seconds from process start until /metrics holds all ``n`` objects (polled every 0.1 s)."""
    started = target.start(log)
    while True:
        with contextlib.suppress(aiohttp.ClientError):  # not listening yet
            body = await fetch(session, f"{target.url}/metrics")
            if target.objects(body) >= n:
                return time.monotonic() - started
        if time.monotonic() - started > 600:
            msg = f"{target.name} did not show {n} objects within 10 minutes"
            raise RuntimeError(msg)
        await asyncio.sleep(0.1)


async def measure(target: Target, n: int, kubeconfig: Path, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        # 1. cold start to complete, the median of a few starts (the last process stays for the other scenarios)
        # Each start is paired with a bare list taken just before it: the API server's pace drifts between
        # minutes (a run saw both exporters start 1.6x slower than the bare list taken a minute earlier).
        starts, cpus, floors = [], [], []
        admin = await KubeClient.from_kubeconfig(kubeconfig)
        try:
            for attempt in range(args.cold_starts):
                if attempt:
                    target.stop()
                floors.append(await bare_list(admin))
                starts.append(await cold_start(target, session, n, log))
                cpus.append(proc_stats(target.pid)["cpu_s"])
        finally:
            await admin.close()
        result["cold_start_s"] = statistics.median(starts)
        result["cold_start_runs_s"] = starts
        result["paired_floor_runs_s"] = floors
        result["cold_start_over_floor"] = statistics.median(s / f for s, f in zip(starts, floors, strict=True))
        result["sync_cpu_s"] = statistics.median(cpus)
        result["sync_rss_mib"] = proc_stats(target.pid)["rss_mib"]
        # 3. scrape latency and size
        latencies = []
        for _ in range(args.scrapes):
            t0 = time.perf_counter()
            body = await fetch(session, f"{target.url}/metrics")
            latencies.append(time.perf_counter() - t0)
        zipped = await fetch(session, f"{target.url}/metrics", gzip_ok=True)
        result |= {"scrape_p50_ms": pct(latencies, 0.5) * 1000, "scrape_p99_ms": pct(latencies, 0.99) * 1000,
                   "body_mib": len(body) / 2**20,
                   "body_gzip_mib": len(zipped if zipped[:2] == b"\x1f\x8b" else gzip.compress(body)) / 2**20,
                   "scrapes_rss_mib": proc_stats(target.pid)["rss_mib"]}
        # 4. update lag at steady rates
        for rate in args.rates:
            cpu_before = proc_stats(target.pid)["cpu_s"]
            lags, floor_lags, achieved = await update_lag(target, session, kubeconfig, n, rate, args.update_seconds)
            # the exporter's CPU over the window (its handling of the writes and of the 10 Hz polls) per write
            result[f"cpu_ms_per_write@{rate}"] = ((proc_stats(target.pid)["cpu_s"] - cpu_before) * 1000
                                                 / max(1, len(lags)))
            result[f"achieved_writes_per_s@{rate}"] = achieved
            result[f"watch_floor_p50_ms@{rate}"] = pct(floor_lags, 0.5) * 1000 if floor_lags else float("nan")
            result[f"watch_floor_p99_ms@{rate}"] = pct(floor_lags, 0.99) * 1000 if floor_lags else float("nan")
            result[f"lag_p50_ms@{rate}"] = pct(lags, 0.5) * 1000 if lags else float("nan")
            result[f"lag_p99_ms@{rate}"] = pct(lags, 0.99) * 1000 if lags else float("nan")
            result[f"rss_mib@{rate}"] = proc_stats(target.pid)["rss_mib"]
        # 5. ours only: /tenants
        if target.name == "ours":
            for path in ("/tenants", "/tenants/tenant-0000"):
                times = []
                for _ in range(args.scrapes):
                    t0 = time.perf_counter()
                    await fetch(session, target.url + path)
                    times.append(time.perf_counter() - t0)
                result[f"{path.split('/')[-1].replace('tenant-0000', 'tenant')}_p99_ms"] = pct(times, 0.99) * 1000
        # 2. steady memory: idle for a while, then the median of a few samples (both runtimes return freed memory
        # lazily: Go's scavenger, glibc's trim after a publish)
        await asyncio.sleep(args.settle)
        samples = []
        for _ in range(5):
            samples.append(proc_stats(target.pid))
            await asyncio.sleep(1)
        result |= {"steady_rss_mib": statistics.median(s["rss_mib"] for s in samples),
                   "peak_rss_mib": samples[-1]["peak_rss_mib"]}
    target.stop()
    return result


async def update_lag(target: Target, session: aiohttp.ClientSession, kubeconfig: Path, n: int, rate: int,
                     seconds: float) -> tuple[list[float], list[float], float]:
    """Write status revisions at ``rate``/s for ``seconds``; per update, the time until /metrics shows it.

    The writes come from a separate process (``--write-loop``), so polling /metrics never delays them; it
    reports each revision with the CLOCK_MONOTONIC time the API server accepted it and the time its bare watch
    saw it. Returns the lags, the bare watch's lags (the floor) and the achieved write rate.
    """
    tag = f"{target.name}{rate}x{random.randrange(10**6)}"
    writer = await start_writer(kubeconfig, n, rate, seconds, tag, asyncio.subprocess.PIPE)
    assert writer.stdout is not None
    sent: dict[bytes, float] = {}
    seen: dict[bytes, float] = {}
    needle = f"main@sha1:{tag}-".encode()

    window: list[float] = []

    watched: dict[bytes, float] = {}

    async def read_sent() -> None:
        assert writer.stdout is not None
        async for line in writer.stdout:
            fields = line.split()
            if fields[0] == b"start":
                window.append(float(fields[1]))
            elif fields[0] == b"watched":
                watched[fields[1]] = float(fields[2])
            else:
                sent[fields[0]] = float(fields[1])

    async def poll() -> None:
        deadline = None
        while True:
            tick = time.monotonic()
            body = await fetch(session, f"{target.url}/metrics")
            now = time.monotonic()  # conservative: when the whole body has arrived
            await asyncio.sleep(max(0.0, tick + POLL_INTERVAL - now))
            at = body.find(needle)
            while at >= 0:
                end = body.find(b'"', at)
                seen.setdefault(body[at + len(needle):end], now)
                at = body.find(needle, end)
            if writer.returncode is not None:
                deadline = deadline or now + 10
                if all(r in seen for r in sent) or now > deadline:
                    return

    reader = asyncio.create_task(read_sent())
    poller = asyncio.create_task(poll())
    await writer.wait()
    await reader
    await poller
    if writer.returncode or not window or not sent:
        msg = f"the writer process failed ({writer.returncode})"
        raise RuntimeError(msg)
    lags = [seen[r] - t for r, t in sent.items() if r in seen]
    floor_lags = [watched[r] - t for r, t in sent.items() if r in watched]
    return lags, floor_lags, len(sent) / (max(sent.values()) - window[0])


async def start_writer(kubeconfig: Path, n: int, rate: int, seconds: float, tag: str,
                       stdout: int) -> asyncio.subprocess.Process:
    """The writer process (``write_loop``): status writes at ``rate``/s for ``seconds``, revisions tagged ``tag``."""
    return await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--write-loop", "--kubeconfig", str(kubeconfig), "--sizes", str(n),
        "--rates", str(rate), "--update-seconds", str(seconds), "--tag", tag, stdout=stdout,
    )


async def warm_up(kubeconfig: Path, n: int, rate: int, seconds: float) -> None:
    """Writes at ``rate`` for ``seconds`` with no exporter running, before any measured update."""
    writer = await start_writer(kubeconfig, n, rate, seconds, f"warmup{random.randrange(10**6)}",
                                asyncio.subprocess.DEVNULL)
    if await writer.wait():
        msg = f"the warm-up writer failed ({writer.returncode})"
        raise RuntimeError(msg)


async def write_loop(args: argparse.Namespace) -> None:
    """The writer process: status patches to Kustomizations at a steady rate, and a bare watch of them.

    Prints "<i> <accepted at>" per write and "watched <i> <at>" when the bare watch (orjson, no processing)
    receives it: the floor of the update lag, what the API server's watch delivery alone takes.
    """
    admin = await KubeClient.from_kubeconfig(args.kubeconfig)
    # The failing Kustomizations, retried with a new revision each time: every --detail level but `tenants` keeps
    # their series, and a failing object's reconcile is what Flux repeats most (every retryInterval).
    kustomizations = [(obj, status) for obj, status in fleet_objects(0, args.sizes[0])
                      if obj["kind"] == "Kustomization" and status["conditions"][0]["status"] == "False"]
    rate, interval = args.rates[0], 1 / args.rates[0]
    collection = fleet.path_of(kustomizations[0][0], collection=True).split("/namespaces/")[0] + "/kustomizations"
    total = int(rate * args.update_seconds)
    needle = f"sha1:{args.tag}-".encode()

    async def watch(ready: asyncio.Event) -> None:
        listed = await admin.request("GET", collection, params={"limit": "1"})
        params = {"watch": "1", "resourceVersion": listed["metadata"]["resourceVersion"]}
        seen = 0
        async with admin.stream(collection, params=params, inactivity_timeout=120) as lines:
            ready.set()
            async for line in lines:
                if not isinstance(line, bytes):
                    continue
                at = line.find(needle)
                if at >= 0 and orjson.loads(line)["type"] == "MODIFIED":
                    end = line.index(b'"', at)
                    print("watched", int(line[at + len(needle) : end]), time.monotonic(), flush=True)
                    seen += 1
                    if seen >= total:
                        return

    async def write(target: tuple[dict[str, Any], dict[str, Any]], i: int) -> None:
        obj, failing = target
        revision = f"main@sha1:{args.tag}-{i}"
        status = failing | {"lastAppliedRevision": revision, "lastAttemptedRevision": revision}
        await admin.request("PATCH", fleet.path_of(obj) + "/status", body={"status": status},
                            content_type="application/merge-patch+json")
        print(i, time.monotonic(), flush=True)  # accepted by the API server: lag counts from here

    watching = asyncio.Event()
    watcher = asyncio.create_task(watch(watching))
    await watching.wait()
    t0 = time.monotonic()
    print("start", t0, flush=True)
    tasks = []
    for i in range(total):
        await asyncio.sleep(max(0.0, t0 + i * interval - time.monotonic()))
        tasks.append(asyncio.create_task(write(kustomizations[i % len(kustomizations)], i)))
    await asyncio.gather(*tasks)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(watcher, 15)
    await admin.close()


async def floor(admin: KubeClient, runs: int) -> float:
    """A bare paged list of every Flux kind with orjson, no processing (the median of ``runs``)."""
    return statistics.median([await bare_list(admin) for _ in range(runs)])


async def bare_list(admin: KubeClient) -> float:
    t0 = time.monotonic()
    for kind in FLUX_KINDS:
        params = {"limit": "500"}
        while True:
            page = await admin.request("GET", kind.collection_path(kind.versions[0]), params=params)
            cont = page["metadata"].get("continue")
            if not cont:
                break
            params["continue"] = cont
    return time.monotonic() - t0


def kubectl_items(listed: dict[str, Any], kind: str, api_version: str) -> list[dict[str, Any]]:
    """A list's items as ``kubectl get -o json`` prints them.

    Each with its apiVersion and kind (a core list's items have none), without managedFields (kubectl leaves them
    out unless --show-managed-fields).
    """
    items = []
    for item in listed["items"]:
        metadata = {k: v for k, v in item["metadata"].items() if k != "managedFields"}
        items.append({"apiVersion": api_version, "kind": kind} | item | {"metadata": metadata})
    return items


async def report_seconds(admin: KubeClient, work: Path, python: str, env: dict[str, str]) -> float:
    """Seconds ``report`` takes on a dump of the cluster's namespaces and Flux objects (with ours' Python).

    The dump is what ``kubectl get namespaces,<every Flux kind> -A -o json`` writes, the input ``report`` documents.
    """
    items = kubectl_items(await admin.request("GET", "/api/v1/namespaces"), "Namespace", "v1")
    for kind in FLUX_KINDS:
        version = kind.versions[0]
        items += kubectl_items(await admin.request("GET", kind.collection_path(version)), kind.kind,
                               f"{kind.group}/{version}")
    dump = work / "dump.json"
    dump.write_text(json.dumps({"apiVersion": "v1", "items": items, "kind": "List",
                                "metadata": {"resourceVersion": ""}}, indent=4))
    t0 = time.monotonic()
    subprocess.run([python, "-m", "flux_tenant_exporter", "report", "--input", str(dump),
                    "--log-level", "error"], check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
    return time.monotonic() - t0


def product_python() -> Path:
    """A Python whose venv holds exactly the product's pinned runtime dependencies (made once per requirements.lock)."""
    lock = ROOT / "requirements.lock"
    cache = Path(os.environ.get("FTE_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                 / "flux-tenant-exporter")
    venv = cache / f"bench-runtime-{hashlib.sha256(lock.read_bytes()).hexdigest()[:12]}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(lock)],
                       check=True)
        (venv / ".complete").touch()
    return python


async def run(args: argparse.Namespace) -> dict[str, Any]:
    python = str(product_python()) if args.runtime == "product" else sys.executable
    ours_env = os.environ | {"PYTHONPATH": str(ROOT)}  # the checkout's product package, without installing it
    ksm = subprocess.run(["bash", str(ROOT / "tools" / "gotool.sh"), "kube-state-metrics"], capture_output=True,
                         text=True, check=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="fte-bench-"))
    (work / "ksm.yaml").write_text(yaml.safe_dump(ksm_config()))
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                           "platform": platform.platform()}, "sizes": {}}
    with contextlib.ExitStack() as stack:
        if args.kubeconfig:  # a cluster that already holds the fleet (e.g. kept from an earlier run)
            kubeconfig, versions = Path(args.kubeconfig), find_assets().versions
        else:
            cp = stack.enter_context(ControlPlane(watch_cache=True))
            kubeconfig, versions = cp.kubeconfig, cp.assets.versions
        results["versions"] = versions | {"kube-state-metrics": "v2.15.0"}
        results["ours_detail"] = args.detail or ServeSettings().detail
        results["ours_runtime"] = args.runtime
        admin = await KubeClient.from_kubeconfig(kubeconfig)
        have = max(args.sizes) if args.kubeconfig else 0
        for n in args.sizes:
            create_s = await grow_fleet(admin, have, n) if n > have else 0.0
            have = max(have, n)
            size: dict[str, Any] = {"create_fleet_s": create_s,
                                    "floor_list_s": await floor(admin, args.cold_starts)}
            ours_port, ksm_port = free_port(), free_port()
            ours = Target("ours", [python, "-m", "flux_tenant_exporter", "serve", "--kubeconfig", str(kubeconfig),
                                   "--listen-address", "127.0.0.1", "--port", str(ours_port), "--log-level",
                                   "warning", "--log-format", "json",
                                   *(["--detail", args.detail] if args.detail else [])],
                          # the tenant totals count every object at every --detail level
                          ours_port, re.compile(rb"\nfluxtenant_tenant_resources\{[^}]*\} ([0-9.e+]+)"), ours_env)
            theirs = Target("ksm", [ksm, "--kubeconfig", str(kubeconfig), "--custom-resource-state-only",
                                    f"--custom-resource-state-config-file={work / 'ksm.yaml'}", "--host=127.0.0.1",
                                    f"--port={ksm_port}", f"--telemetry-port={free_port()}",
                                    "--telemetry-host=127.0.0.1"],
                            ksm_port, re.compile(rb"\ngotk_resource_info\{[^}]*\} (1)"))
            if args.warmup:  # the API server's first burst of writes on a fresh fleet is slow: not anyone's turn
                await warm_up(kubeconfig, n, max(args.rates), args.warmup)
            order = (ours, theirs) if len(results["sizes"]) % 2 == 0 else (theirs, ours)  # alternate who goes first
            for target in order if not args.only else [t for t in order if t.name == args.only]:
                size[target.name] = await measure(target, n, kubeconfig, args, work / f"{target.name}-{n}.log")
            if "ours" in size and not args.quick_report:
                size["ours"]["report_s"] = await report_seconds(admin, work, python, ours_env)
            results["sizes"][str(n)] = size
            print_table(n, size)
        await admin.close()
    shutil.rmtree(work, ignore_errors=True)
    return results


ROWS = [
    ("cold start to complete (s)", "cold_start_s"), ("sync CPU (s)", "sync_cpu_s"),
    ("RSS after sync (MiB)", "sync_rss_mib"),
    ("steady RSS (MiB)", "steady_rss_mib"), ("peak RSS (MiB)", "peak_rss_mib"),
    ("/metrics p50 (ms)", "scrape_p50_ms"), ("/metrics p99 (ms)", "scrape_p99_ms"),
    ("/metrics body (MiB)", "body_mib"), ("/metrics gzip (MiB)", "body_gzip_mib"),
]


def print_table(n: int, size: dict[str, Any]) -> None:
    ours, ksm = size.get("ours", {}), size.get("ksm", {})
    rates = sorted({int(k.split("@")[1]) for k in ours or ksm if k.startswith("lag_")})
    rows = list(ROWS)
    for rate in rates:
        rows += [(f"writes accepted @{rate}/s (per s)", f"achieved_writes_per_s@{rate}"),
                 (f"update lag p50 @{rate}/s (ms)", f"lag_p50_ms@{rate}"),
                 (f"update lag p99 @{rate}/s (ms)", f"lag_p99_ms@{rate}"),
                 (f"  bare watch p50 @{rate}/s (ms)", f"watch_floor_p50_ms@{rate}"),
                 (f"  bare watch p99 @{rate}/s (ms)", f"watch_floor_p99_ms@{rate}"),
                 (f"  exporter CPU per write @{rate}/s (ms)", f"cpu_ms_per_write@{rate}")]
    print(f"\n== {n} Flux objects (fleet created in {size['create_fleet_s']:.1f} s; bare paged list "
          f"{size['floor_list_s']:.2f} s) ==")
    print(f"{'':38} {'ours':>10} {'KSM':>10} {'ours/KSM':>9}")
    for label, key in rows:
        a, b = ours.get(key, float("nan")), ksm.get(key, float("nan"))
        ratio = a / b if b else float("nan")
        print(f"{label:38} {a:10.2f} {b:10.2f} {ratio:9.2f}")
    print(f"{'cold start / bare list floor':38} {ours.get('cold_start_s', float('nan')) / size['floor_list_s']:10.2f}"
          f" {ksm.get('cold_start_s', float('nan')) / size['floor_list_s']:10.2f}")
    print(f"{'  each start / the list just before it':38} {ours.get('cold_start_over_floor', float('nan')):10.2f}"
          f" {ksm.get('cold_start_over_floor', float('nan')):10.2f}")
    for key in ("tenants_p99_ms", "tenant_p99_ms", "report_s"):
        print(f"{key:38} {ours.get(key, float('nan')):10.2f}")
    sys.stdout.flush()


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["size", "metric", "ours", "ksm", "ratio"])
        for n, size in results["sizes"].items():
            ours, ksm = size.get("ours", {}), size.get("ksm", {})
            for key in sorted(set(ours) | set(ksm)):
                a, b = ours.get(key), ksm.get(key)
                numbers = isinstance(a, int | float) and isinstance(b, int | float) and b
                writer.writerow([n, key, a, b, a / b if numbers else ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000,20000", help="comma-separated fleet sizes")
    parser.add_argument("--rates", default="50,200", help="update rates per second for the lag test")
    parser.add_argument("--update-seconds", type=float, default=30, help="seconds of updates per rate")
    parser.add_argument("--scrapes", type=int, default=30, help="scrapes for the latency percentiles")
    parser.add_argument("--warmup", type=float, default=15, help="seconds of writes at the highest rate before "
                        "each size's measurements (the API server's first burst is slow)")
    parser.add_argument("--settle", type=float, default=10, help="idle seconds before sampling steady RSS")
    parser.add_argument("--cold-starts", type=int, default=3, help="cold starts (and bare lists) per exporter; "
                        "the median is reported")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s of updates at 20/s, 5 scrapes")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--kubeconfig", help="use this cluster, which already holds the fleet of the largest size "
                        "(creates nothing; for iterating on one scenario)")
    parser.add_argument("--only", choices=["ours", "ksm"], help="measure one exporter only")
    parser.add_argument("--detail", choices=["all", "failing", "tenants"],
                        help="our exporter's --detail level (default: the exporter's default)")
    parser.add_argument("--runtime", choices=["product", "dev"], default="product",
                        help="run ours from a venv of only the product's pinned dependencies (default), or this Python")
    parser.add_argument("--quick-report", action="store_true", help="skip the report scenario")
    parser.add_argument("--write-loop", action="store_true", help=argparse.SUPPRESS)  # the writer process
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.rates = [int(r) for r in args.rates.split(",")]
    if args.quick:
        args.rates, args.update_seconds, args.scrapes = [20], 2.0, 5
        args.cold_starts, args.settle, args.warmup = 1, 0.0, 0.0
    if args.write_loop:
        asyncio.run(write_loop(args))
        return 0
    results = asyncio.run(run(args))
    write(results, Path(args.out))
    print(f"\nwritten: {args.out}/results.json, results.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())

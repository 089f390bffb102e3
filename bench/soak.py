"""Soak: the exporter's memory under steady churn on a real API server (not in CI).

    python bench/soak.py --minutes 60            # the documented run: 2,000 objects, 30 ops/s
    python bench/soak.py --minutes 2 --objects 200 --plot ''   # a quick look

Starts a control plane, creates ``--objects`` Flux objects with realistic statuses (bench/run.py's fleet), runs
the exporter as its own process, then churns at ``--rate`` operations per second for ``--minutes``:
85% status writes with a new revision and a new message every time (every write is a distinct string: the
worst case for the string and redaction caches), 15% deletions and re-creations of objects (the change log and
the per-object caches). A Prometheus-like scraper reads /metrics every 15 s and /tenants every 30 s. The
exporter's RSS (VmRSS) is sampled every ``--sample-seconds``; the script prints the samples, the least-squares
slope in MiB per minute over the whole run and over its second half (after warm-up), writes them to
``bench/measured/soak-<date>.json`` and, with matplotlib installed (``pip install matplotlib``), a plot.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import fleet_objects, grow_fleet  # noqa: E402

from flux_tenant_exporter.kube.client import ApiError, KubeClient  # noqa: E402
from testbed import fleet  # noqa: E402
from testbed.controlplane import ControlPlane, free_port  # noqa: E402


def rss_mib(pid: int) -> float:
    """The process's resident set size in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    msg = f"no VmRSS for {pid}"
    raise RuntimeError(msg)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minute, MiB) points, in MiB per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


async def churn(  # noqa: PLR0915 - one loop with its three operations inline
    admin: KubeClient, objects: list[tuple[dict[str, Any], dict[str, Any]]], rate: float, until: float,
    counts: dict[str, int],
) -> None:
    """``rate`` operations per second until ``until``: unique status writes, deletions and re-creations."""
    rng = random.Random(7)
    deleted: list[tuple[dict[str, Any], dict[str, Any]]] = []
    live = list(objects)
    interval = 1 / rate
    next_at = time.monotonic()
    pending: set[asyncio.Task[None]] = set()
    serial = 0

    async def write(obj: dict[str, Any], status: dict[str, Any]) -> None:
        try:
            await fleet.write_status(admin, obj, status)
            counts["writes"] += 1
        except ApiError:
            counts["errors"] += 1

    async def delete(obj: dict[str, Any]) -> None:
        try:
            await fleet.delete(admin, obj)
            counts["deletes"] += 1
        except ApiError:
            counts["errors"] += 1

    async def create(obj: dict[str, Any], status: dict[str, Any]) -> None:
        try:
            await fleet.create(admin, obj, status=status, exist_ok=True)
            counts["creates"] += 1
        except ApiError:
            counts["errors"] += 1

    while time.monotonic() < until:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval
        serial += 1
        roll = rng.random()
        if roll < 0.075 and len(live) > len(objects) * 0.9:
            victim = live.pop(rng.randrange(len(live)))
            deleted.append(victim)
            coro = delete(victim[0])
        elif roll < 0.15 and deleted:
            obj, status = deleted.pop(0)
            live.append((obj, status))
            coro = create(obj, status)
        else:
            obj, _ = rng.choice(live)
            rev = f"main@sha1:{serial:040x}"
            if rng.random() < 0.3:
                status = fleet.failed_status("HealthCheckFailed", f"health check failed after {serial}s: timeout "
                                             f"waiting for: [Deployment/{obj['metadata']['namespace']}/app-{serial}]")
            else:
                status = fleet.ready_status(obj["kind"], rev=rev)
                status.pop("inventory", None)
            coro = write(obj, status)
        task = asyncio.create_task(coro)
        pending.add(task)
        task.add_done_callback(pending.discard)
        if len(pending) > 64:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*pending)


async def scrape(base: str, until: float, counts: dict[str, int]) -> None:
    """A Prometheus-like scraper: /metrics every 15 s, /tenants every 30 s."""
    async with aiohttp.ClientSession() as session:
        tick = 0
        while time.monotonic() < until:
            for path in ("/metrics", "/tenants") if tick % 2 == 0 else ("/metrics",):
                async with session.get(base + path) as resp:
                    await resp.read()
                    counts["scrapes" if resp.status == 200 else "scrape_errors"] += 1
            tick += 1
            await asyncio.sleep(15)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak; returns the samples and slopes."""
    with ControlPlane() as cp:
        admin = await KubeClient.from_kubeconfig(cp.kubeconfig)
        objects = fleet_objects(0, args.objects)
        print(f"creating {args.objects} objects ...", flush=True)
        print(f"  {await grow_fleet(admin, 0, args.objects):.1f} s", flush=True)
        port = free_port()
        proc = subprocess.Popen(  # noqa: ASYNC220 - the exporter runs for the whole soak
            [sys.executable, "-m", "flux_tenant_exporter", "serve", "--kubeconfig", str(cp.kubeconfig),
             "--listen-address", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                deadline = time.monotonic() + 120
                while True:
                    try:
                        async with session.get(base + "/readyz") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline or proc.poll() is not None:
                        msg = "the exporter did not become ready"
                        raise RuntimeError(msg)
                    await asyncio.sleep(0.2)
            start = time.monotonic()
            until = start + args.minutes * 60
            counts = dict.fromkeys(("writes", "deletes", "creates", "errors", "scrapes", "scrape_errors"), 0)
            samples: list[tuple[float, float]] = [(0.0, rss_mib(proc.pid))]
            print(f"ready; RSS {samples[0][1]:.1f} MiB; churning {args.rate}/s for {args.minutes} min", flush=True)
            work = asyncio.gather(churn(admin, objects, args.rate, until, counts), scrape(base, until, counts))
            while time.monotonic() < until:
                await asyncio.sleep(min(args.sample_seconds, max(0.0, until - time.monotonic())))
                if proc.poll() is not None:
                    msg = f"the exporter exited with {proc.returncode}"
                    raise RuntimeError(msg)
                minute = (time.monotonic() - start) / 60
                samples.append((minute, rss_mib(proc.pid)))
                print(f"{minute:6.1f} min  RSS {samples[-1][1]:6.1f} MiB  {counts}", flush=True)
            await work
        finally:
            proc.terminate()
            proc.wait(10)
            await admin.close()
    half = [p for p in samples if p[0] >= args.minutes / 2]
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "objects": args.objects, "rate": args.rate, "minutes": args.minutes,
        "samples": [{"minute": round(m, 2), "rss_mib": round(r, 2)} for m, r in samples],
        "slope_mib_per_minute": round(slope(samples), 4),
        "slope_second_half_mib_per_minute": round(slope(half), 4),
        "rss_start_mib": round(samples[0][1], 1), "rss_end_mib": round(samples[-1][1], 1),
        "rss_max_mib": round(max(r for _, r in samples), 1),
        "operations": counts,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """The RSS curve with its slope, as a PNG."""
    import matplotlib as mpl  # noqa: PLC0415 - optional: only for the plot

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    minutes = [s["minute"] for s in result["samples"]]
    rss = [s["rss_mib"] for s in result["samples"]]
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=110)
    ax.plot(minutes, rss, marker=".", label="exporter RSS")
    ax.set_xlabel("minutes of churn")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(0, max(rss) * 1.25)
    ax.grid(alpha=0.3)
    ax.set_title(f"Soak: {result['objects']} objects, {result['rate']:g} ops/s for {result['minutes']:g} min; slope "
                 f"{result['slope_mib_per_minute']:+.3f} MiB/min (second half "
                 f"{result['slope_second_half_mib_per_minute']:+.3f})", fontsize=9)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    """Parse flags, soak, print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=60, help="how long to churn")
    parser.add_argument("--objects", type=int, default=2000, help="fleet size")
    parser.add_argument("--rate", type=float, default=30, help="operations per second")
    parser.add_argument("--sample-seconds", type=float, default=60, help="RSS sampling period")
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default bench/measured/soak-<date>.json)")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "soak-rss.png"), help="PNG path ('' for none)")
    args = parser.parse_args(argv)
    result = asyncio.run(soak(args))
    out = args.out or ROOT / "bench" / "measured" / f"soak-{result['date'][:10]}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    if args.plot:
        plot(result, Path(args.plot))
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

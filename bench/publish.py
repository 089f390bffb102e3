"""Micro-benchmark of the exporter's hot path, without an API server: parse, store, derive, render, serve.

    python bench/publish.py --objects 20000
    python bench/publish.py --objects 100000,300000,1000000 --out bench/measured/publish-scaling.json

Each size runs in a process of its own. Printed per size: the time to parse the fleet into the store, the first
publish (derive + render everything), the next one (nothing changed: the exposition's text is compressed), a
publish after one object changed, the exporter's own CPU per watch event
at a steady stream (decoded from the JSON lines the API server sends, applied, published every 100 ms), a /metrics
scrape and an unfiltered /tenants body, and the memory the process holds per object (resident memory after the
build, above the interpreter with the product imported; with --memory also the traced allocations). With several
sizes, a last table gives each figure per object relative to the smallest size: 1.0 is linear.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import orjson  # noqa: E402
from run import fleet_objects  # noqa: E402

from flux_tenant_exporter.base.config import ServeSettings  # noqa: E402
from flux_tenant_exporter.base.kinds import KUSTOMIZATION  # noqa: E402
from flux_tenant_exporter.flux.model import NamespaceInfo  # noqa: E402
from flux_tenant_exporter.flux.projection import Projector, parse_object  # noqa: E402
from flux_tenant_exporter.ingest.sinks import FluxSink  # noqa: E402
from flux_tenant_exporter.kube import codec  # noqa: E402
from flux_tenant_exporter.render.documents import TenantPieces  # noqa: E402
from flux_tenant_exporter.render.prometheus.renderer import Renderer, RenderOptions  # noqa: E402
from flux_tenant_exporter.serve.memory import release_free_memory  # noqa: E402
from flux_tenant_exporter.state.store import Store  # noqa: E402
from flux_tenant_exporter.state.view import ViewCache, build_view  # noqa: E402
from flux_tenant_exporter.telemetry.selfmetrics import SelfMetrics  # noqa: E402
from testbed import fleet  # noqa: E402

#: objects generated (and parsed into the store) at a time: the raw documents are never all in memory
CHUNK = 10_000
PAGE = 4096


def rss_bytes() -> int:
    """The process's resident memory now."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


def event_stream(kustomizations: list[dict[str, Any]], store: Store, projector: Projector, cache: ViewCache,
                 renderer: Renderer, pieces: TenantPieces, count: int, rate: int) -> tuple[float, int]:
    """CPU seconds for ``count`` watch events, and the batch size.

    The events are status changes of Kustomizations as the JSON lines the API server sends, decoded and applied
    by the watcher's sink and published in 100 ms batches, as the exporter does under load.
    """
    sink = FluxSink(KUSTOMIZATION, store, projector)
    events = []
    for i in range(count):
        raw = dict(kustomizations[i % len(kustomizations)])
        raw["status"] = fleet.ready_status("Kustomization", rev=f"main@sha1:stream{i}")
        events.append(orjson.dumps({"type": "MODIFIED", "object": raw}))
    batch = max(1, rate // 10)
    t0 = time.process_time()
    gc.disable()
    for start in range(0, len(events), batch):
        for line in events[start : start + batch]:
            event = codec.EVENTS.decode(line)
            sink.apply(event.type, event.object)
        view = build_view(store, now=time.time(), cache=cache)
        renderer.render(view)
        pieces.update(view)
    gc.enable()
    return time.process_time() - t0, batch


def measure(objects: int, args: argparse.Namespace) -> dict[str, Any]:  # noqa: PLR0915 - one scenario, in order
    """Every figure for one fleet size, in this process."""
    gc.collect()
    base_rss = rss_bytes()
    if args.memory:
        tracemalloc.start()
    store = Store()
    projector = Projector()  # one per exporter: the records share their strings
    parse_s = 0.0
    gc.disable()  # as the exporter's first list does
    for start in range(0, objects, CHUNK):
        for obj, status in fleet_objects(start, min(objects, start + CHUNK)):
            obj["metadata"] |= {"generation": 1, "uid": "u", "resourceVersion": "1"}
            obj["status"] = status
            t0 = time.perf_counter()
            store.upsert(parse_object(obj, projector=projector))
            parse_s += time.perf_counter() - t0
    for i in range(objects // 10 + 1):
        store.upsert_namespace(NamespaceInfo(f"ns-{i:05d}", f"tenant-{i // 4:04d}"))
    renderer = Renderer(RenderOptions(detail=args.detail))
    cache = ViewCache()
    pieces = TenantPieces()
    t0 = time.perf_counter()
    view = build_view(store, now=time.time(), cache=cache)
    exposition = renderer.render(view)
    t1 = time.perf_counter()
    pieces.update(view)  # each tenant's /tenants JSON, as the exporter keeps it from its first publish
    first_s = time.perf_counter() - t0
    pieces_first_s = time.perf_counter() - t1
    t0 = time.perf_counter()
    view = build_view(store, now=time.time(), cache=cache)  # the next publish, with no change: the text settles
    exposition = renderer.render(view)
    settle_s = time.perf_counter() - t0
    gc.collect()
    gc.freeze()  # as the exporter does once synced
    gc.enable()
    release_free_memory()  # as the exporter does after a publish
    held_rss = rss_bytes() - base_rss
    traced = tracemalloc.get_traced_memory()[0] if args.memory else 0
    tracemalloc.stop()  # the timings below run untraced
    kustomizations: list[dict[str, Any]] = []  # the documents of the event stream and of the single changes
    for obj, status in fleet_objects(0, CHUNK):
        obj["metadata"] |= {"generation": 1, "uid": "u", "resourceVersion": "1"}
        obj["status"] = status
        if obj["kind"] == "Kustomization" and len(kustomizations) < args.events:
            kustomizations.append(obj)
    samples = kustomizations[:5]
    times = []
    for i, changed in enumerate(samples):
        changed["status"] = fleet.failed_status("BuildFailed", f"kustomize build failed: yaml: line {i}")
        store.upsert(parse_object(changed, projector=projector))
        t0 = time.perf_counter()
        gc.disable()  # as the exporter's publish does
        view = build_view(store, now=time.time(), cache=cache)
        exposition = renderer.render(view)
        pieces.update(view)
        gc.enable()
        times.append(time.perf_counter() - t0)
    metrics = SelfMetrics()
    scrapes = []
    for _ in range(5):
        t0 = time.perf_counter()
        size = sum(map(len, exposition.pieces())) + len(metrics.render())
        scrapes.append(time.perf_counter() - t0)
    tenants = []
    for _ in range(5):
        t0 = time.perf_counter()
        body = pieces.body(view, view.tenants)
        tenants.append(time.perf_counter() - t0)
    stream_s, batch = event_stream(kustomizations, store, projector, cache, renderer, pieces, args.events,
                                   args.event_rate)
    return {
        "objects": objects, "detail": args.detail, "parse_s": parse_s, "first_publish_s": first_s,
        "settling_publish_s": settle_s,
        "publish_after_one_change_s": min(times), "publish_after_one_change_worst_s": max(times),
        "exposition_mib": size / 2**20, "rendered_objects": renderer.rendered_objects,
        "scrape_s": min(scrapes), "tenants_body_s": min(tenants), "tenants_body_first_s": pieces_first_s,
        "tenants_body_mib": len(body) / 2**20,
        "cpu_per_event_us": stream_s / args.events * 1e6, "event_batch": batch,
        "held_rss_mib": held_rss / 2**20, "rss_bytes_per_object": held_rss / objects,
        "traced_mib": traced / 2**20, "traced_bytes_per_object": traced / objects if traced else 0.0,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def print_one(r: dict[str, Any]) -> None:
    n = r["objects"]
    print(f"objects: {n}, --detail={r['detail']}")
    print(f"parse into the store: {r['parse_s'] * 1000:.0f} ms ({r['parse_s'] / n * 1e6:.1f} us/object)")
    print(f"first publish (derive + render all, each tenant's /tenants JSON included): "
          f"{r['first_publish_s'] * 1000:.0f} ms")
    print(f"the next publish, without changes (compresses the exposition's text): "
          f"{r['settling_publish_s'] * 1000:.0f} ms")
    print(f"publish after one change: {r['publish_after_one_change_s'] * 1000:.1f} ms best, "
          f"{r['publish_after_one_change_worst_s'] * 1000:.1f} ms worst of 5")
    print(f"exposition: {r['exposition_mib']:.1f} MiB; rendered objects: {r['rendered_objects']}; "
          f"a /metrics body: {r['scrape_s'] * 1000:.1f} ms")
    print(f"/tenants body: {r['tenants_body_s'] * 1000:.1f} ms ({r['tenants_body_mib']:.1f} MiB; writing every "
          f"tenant's piece at the first publish: {r['tenants_body_first_s'] * 1000:.1f} ms)")
    print(f"watch events (decode, apply, publish every {r['event_batch']}): {r['cpu_per_event_us']:.0f} us CPU "
          "per event")
    if r["traced_mib"]:
        print(f"memory held (store, view, exposition): {r['traced_mib']:.1f} MiB traced "
              f"({r['traced_bytes_per_object']:.0f} B/object)")
    print(f"resident memory above the interpreter: {r['held_rss_mib']:.1f} MiB ({r['rss_bytes_per_object']:.0f} "
          f"B/object; with what generating the fleet's Python documents left in the heap); peak {r['peak_rss_mib']:.0f}"
          " MiB")


#: figures compared per object across sizes (1.0: linear)
SCALING = (("parse_s", "parse"), ("first_publish_s", "first publish"), ("exposition_mib", "exposition"),
           ("scrape_s", "/metrics body"), ("tenants_body_s", "/tenants body"), ("traced_mib", "memory"))


def print_scaling(results: list[dict[str, Any]]) -> None:
    base = results[0]
    print(f"\nper object, relative to {base['objects']} objects (1.0 = linear):")
    print(f"{'':>16}" + "".join(f"{r['objects']:>12}" for r in results))
    for key, label in SCALING:
        if not base[key]:
            continue
        cells = "".join(f"{(r[key] / r['objects']) / (base[key] / base['objects']):>12.2f}" for r in results)
        print(f"{label:>16}{cells}")
    print(f"{'after one change':>16}" + "".join(f"{r['publish_after_one_change_s'] * 1000:>10.1f}ms" for r in results))
    print(f"{'CPU per event':>16}" + "".join(f"{r['cpu_per_event_us']:>10.0f}us" for r in results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", default="20000", help="fleet size, or comma-separated sizes (one process each)")
    parser.add_argument("--events", type=int, default=4000, help="watch events in the stream")
    parser.add_argument("--event-rate", type=int, default=200, help="events per second the stream stands for")
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="do not trace allocations (they slow the build ~2x; the timings after it are untraced)")
    parser.add_argument("--detail", choices=["all", "failing", "tenants"], default=ServeSettings().detail,
                        help="the --detail level rendered (default: the exporter's default)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one size, figures on stdout
    args = parser.parse_args()
    sizes = [int(s) for s in args.objects.split(",")]
    if args.json:
        sys.stdout.write(json.dumps(measure(sizes[0], args)) + "\n")
        return 0
    results = []
    for n in sizes:
        argv = [sys.executable, __file__, "--objects", str(n), "--events", str(args.events), "--event-rate",
                str(args.event_rate), "--detail", args.detail, "--json", *([] if args.memory else ["--no-memory"])]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.splitlines()[-1]))
        print_one(results[-1])
        print()
    if len(results) > 1:
        print_scaling(results)
    if args.out:
        args.out.write_text(json.dumps({"python": sys.version.split()[0], "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

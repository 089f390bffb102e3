"""Micro-benchmark of the exporter's hot path, without an API server: parse, store, derive, render.

    python bench/publish.py --objects 20000

Prints the time to parse the fleet into the store, the first publish (derive + render everything), a publish
after one object changed, the exporter's own CPU per second at a steady stream of watch events (decoded from
the JSON lines the API server sends, applied, published every 100 ms), and the memory the store and snapshot
hold.
"""

from __future__ import annotations

import argparse
import gc
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
from flux_tenant_exporter.kube import codec as wire  # noqa: E402
from flux_tenant_exporter.render.prometheus.renderer import Renderer, RenderOptions  # noqa: E402
from flux_tenant_exporter.state.store import Store  # noqa: E402
from flux_tenant_exporter.state.view import ViewCache, build_view  # noqa: E402
from testbed import fleet  # noqa: E402


def event_stream(raws: list[dict[str, Any]], store: Store, projector: Projector, cache: ViewCache,
                 renderer: Renderer, count: int, rate: int) -> tuple[float, int]:
    """CPU seconds for ``count`` watch events, and the batch size.

    The events are status changes of Kustomizations as the JSON lines the API server sends, decoded and applied
    by the watcher's sink and published in 100 ms batches, as the exporter does under load.
    """
    sink = FluxSink(KUSTOMIZATION, store, projector)
    kustomizations = [raw for raw in raws if raw["kind"] == "Kustomization"]
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
            event = wire.EVENTS.decode(line)
            sink.apply(event.type, event.object)
        renderer.render(build_view(store, now=time.time(), cache=cache))
    gc.enable()
    return time.process_time() - t0, batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--events", type=int, default=4000, help="watch events in the stream")
    parser.add_argument("--event-rate", type=int, default=200, help="events per second the stream stands for")
    parser.add_argument("--memory", action="store_true", help="trace allocations (slows everything ~2x)")
    parser.add_argument("--detail", choices=["all", "failing", "tenants"], default=ServeSettings().detail,
                        help="the --detail level rendered (default: the exporter's default)")
    args = parser.parse_args()
    raws = []
    for obj, status in fleet_objects(0, args.objects):
        obj["metadata"] |= {"generation": 1, "uid": "u", "resourceVersion": "1"}
        obj["status"] = status
        raws.append(obj)
    gc.collect()
    if args.memory:
        tracemalloc.start()
    store = Store()
    projector = Projector()  # one per exporter: the records share their strings
    t0 = time.perf_counter()
    for raw in raws:
        store.upsert(parse_object(raw, projector=projector))
    for i in range(args.objects // 10 + 1):
        store.upsert_namespace(NamespaceInfo(f"ns-{i:05d}", f"tenant-{i // 4:04d}"))
    parse_s = time.perf_counter() - t0
    renderer = Renderer(RenderOptions(detail=args.detail))
    cache = ViewCache()
    t0 = time.perf_counter()
    view = build_view(store, now=time.time(), cache=cache)
    body = renderer.render(view)
    first_s = time.perf_counter() - t0
    times = []
    gc.collect()
    gc.freeze()  # as the exporter does once synced
    for i in range(5):
        changed = raws[i * 997 % len(raws)]
        changed["status"] = fleet.failed_status("BuildFailed", f"kustomize build failed: yaml: line {i}")
        store.upsert(parse_object(changed, projector=projector))
        t0 = time.perf_counter()
        gc.disable()  # as the exporter's publish does
        view = build_view(store, now=time.time(), cache=cache)
        body = renderer.render(view)
        gc.enable()
        times.append(time.perf_counter() - t0)
    stream_s, batch = event_stream(raws, store, projector, cache, renderer, args.events, args.event_rate)
    del raws
    gc.collect()
    current = tracemalloc.get_traced_memory()[0] if args.memory else 0
    print(f"objects: {args.objects}, --detail={args.detail}")
    print(f"parse into the store: {parse_s * 1000:.0f} ms ({parse_s / args.objects * 1e6:.1f} us/object)")
    print(f"first publish (derive + render all): {first_s * 1000:.0f} ms")
    print(f"publish after one change: {min(times) * 1000:.0f} ms best, {max(times) * 1000:.0f} ms worst of 5")
    print(f"exposition: {body.size / 2**20:.1f} MiB; rendered objects: {renderer.rendered_objects}")
    print(f"{args.events} watch events at {args.event_rate}/s (decode, apply, publish every {batch}): "
          f"{stream_s / args.events * 1e6:.0f} us CPU per event, "
          f"{stream_s / args.events * args.event_rate * 100:.1f}% of one core")
    if args.memory:
        print(f"memory held (store + snapshot + exposition): {current / 2**20:.1f} MiB "
              f"({current / args.objects / 1024:.1f} KiB/object)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

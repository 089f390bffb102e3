"""Micro-benchmark of the exporter's hot path, without an API server: parse, store, derive, render.

    python bench/publish.py --objects 20000

Prints the time to parse the fleet into the store, the first publish (derive + render everything), a publish
after one object changed (what every watch event costs), and the memory the store and snapshot hold.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import fleet_objects  # noqa: E402

from exporter import fleet  # noqa: E402
from exporter.exposition import Renderer  # noqa: E402
from exporter.model import NamespaceInfo, parse_object  # noqa: E402
from exporter.store import Store  # noqa: E402
from exporter.tenants import TenantResolver  # noqa: E402
from exporter.view import ViewCache, build_view  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--memory", action="store_true", help="trace allocations (slows everything ~2x)")
    args = parser.parse_args()
    raws = []
    for obj, status in fleet_objects(0, args.objects):
        obj["metadata"] |= {"generation": 1, "uid": "u", "resourceVersion": "1"}
        obj["status"] = status
        raws.append(obj)
    gc.collect()
    if args.memory:
        tracemalloc.start()
    store = Store(resolver=TenantResolver())
    t0 = time.perf_counter()
    for raw in raws:
        store.upsert(parse_object(raw))
    for i in range(args.objects // 10 + 1):
        store.upsert_namespace(NamespaceInfo(f"ns-{i:05d}", f"tenant-{i // 4:04d}"))
    parse_s = time.perf_counter() - t0
    renderer = Renderer()
    cache = ViewCache()
    t0 = time.perf_counter()
    view = build_view(store, now=time.time(), cache=cache)
    body = renderer.render(view, store)
    first_s = time.perf_counter() - t0
    times = []
    gc.collect()
    gc.freeze()  # as the exporter does once synced
    for i in range(5):
        changed = raws[i * 997 % len(raws)]
        changed["status"] = fleet.failed_status("BuildFailed", f"kustomize build failed: yaml: line {i}")
        store.upsert(parse_object(changed))
        t0 = time.perf_counter()
        gc.disable()  # as the exporter's publish does
        view = build_view(store, now=time.time(), cache=cache)
        body = renderer.render(view, store)
        gc.enable()
        times.append(time.perf_counter() - t0)
    del raws
    gc.collect()
    current = tracemalloc.get_traced_memory()[0] if args.memory else 0
    print(f"objects: {args.objects}")
    print(f"parse into the store: {parse_s * 1000:.0f} ms ({parse_s / args.objects * 1e6:.1f} us/object)")
    print(f"first publish (derive + render all): {first_s * 1000:.0f} ms")
    print(f"publish after one change: {min(times) * 1000:.0f} ms best, {max(times) * 1000:.0f} ms worst of 5")
    print(f"exposition: {body.size / 2**20:.1f} MiB; rendered objects: {renderer.rendered_objects}")
    if args.memory:
        print(f"memory held (store + snapshot + exposition): {current / 2**20:.1f} MiB "
              f"({current / args.objects / 1024:.1f} KiB/object)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

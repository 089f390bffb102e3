"""The /metrics body at each cardinality level, on the benchmark's generated fleet (no API server needed).

    python bench/sizes.py --objects 20000

The fleet is ``bench/run.py``'s (10% of objects failing, N/10 namespaces, N/40 tenants), every object labelled
``team`` and ``app.kubernetes.io/part-of``. For each setting it prints the body size (plain and gzip), the number
of samples, the samples per object (all of the exporter's object and tenant families; the exporter's own
``fluxtenant_exporter_*`` and ``process_*`` series, about 120, come on top), and the per-object samples of a
healthy object (Ready, nothing to alert on) and of the others.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import fleet_objects  # noqa: E402

from flux_tenant_exporter.base.textformat import escape  # noqa: E402
from flux_tenant_exporter.flux.model import NamespaceInfo  # noqa: E402
from flux_tenant_exporter.flux.projection import Projector  # noqa: E402
from flux_tenant_exporter.flux.schema import FLUX  # noqa: E402
from flux_tenant_exporter.render.prometheus.renderer import Renderer, RenderOptions, needs_attention  # noqa: E402
from flux_tenant_exporter.state.published import ResourceView  # noqa: E402
from flux_tenant_exporter.state.store import Store  # noqa: E402
from flux_tenant_exporter.state.view import build_view  # noqa: E402

#: a per-object sample (the transition counters are per tenant)
PER_OBJECT = re.compile(rb"fluxtenant_resource_(?!failures_total|recoveries_total)")
IDENTITY = re.compile(rb'\{(tenant="[^"]*",kind="[^"]*",namespace="[^"]*",name="[^"]*")')
LABELS = ("team", "app.kubernetes.io/part-of")
SETTINGS = {
    "all": RenderOptions(),
    "all, --drop-info-labels=revision,url": RenderOptions(drop_info_labels=("revision", "url")),
    "all, --resource-labels=team,app.kubernetes.io/part-of": RenderOptions(resource_labels=LABELS),
    "failing": RenderOptions(detail="failing"),
    "failing, --drop-info-labels=revision,url": RenderOptions(detail="failing", drop_info_labels=("revision", "url")),
    "tenants": RenderOptions(detail="tenants"),
}


def identity(res: ResourceView) -> str:
    """The leading labels of an object's samples."""
    return f'tenant="{escape(res.tenant)}",kind="{res.kind}",namespace="{res.namespace}",name="{escape(res.name)}"'


def object_of(line: bytes) -> bytes:
    """The leading labels of a per-object sample."""
    found = IDENTITY.search(line)
    return found[1] if found else b""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=20000)
    args = parser.parse_args()
    store = Store()
    projector = Projector(keep_labels=LABELS)
    for i, (obj, status) in enumerate(fleet_objects(0, args.objects)):
        obj["metadata"] |= {"generation": 1, "uid": "u", "resourceVersion": "1",
                            "labels": {"team": f"team-{i // 400}", "app.kubernetes.io/part-of": f"app-{i // 40}"}}
        obj["status"] = status
        store.upsert(projector.project(FLUX.one(obj)))
    for i in range(args.objects // 10 + 1):
        store.upsert_namespace(NamespaceInfo(f"ns-{i:05d}", f"tenant-{i // 4:04d}"))
    view = build_view(store, now=time.time())
    failing = sum(1 for r in view.resources if r.state != "ready")
    print(f"{args.objects} objects ({failing} not ready), {len(view.tenants)} tenants")
    healthy_views = [r for r in view.resources if not needs_attention(r)]
    healthy = len(healthy_views)
    healthy_ids = {identity(r).encode() for r in healthy_views}
    print(f"{'setting':<58} {'body MiB':>9} {'gzip MiB':>9} {'samples':>8} {'/object':>8} {'/healthy':>9} "
          f"{'/other':>7}")
    for name, options in SETTINGS.items():
        body = Renderer(options).render(view).body
        lines = [line for line in body.splitlines() if line and not line.startswith(b"#")]
        per_object = [line for line in lines if PER_OBJECT.match(line)]
        healthy_samples = sum(1 for line in per_object if object_of(line) in healthy_ids)
        packed = len(zlib.compress(body, 6))
        others = args.objects - healthy
        print(f"{name:<58} {len(body) / 2**20:>9.2f} {packed / 2**20:>9.2f} {len(lines):>8} "
              f"{len(lines) / args.objects:>8.2f} {healthy_samples / healthy:>9.2f} "
              f"{(len(per_object) - healthy_samples) / others:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The incremental renderer: whatever the sequence of changes, its body equals a full render from scratch."""

from __future__ import annotations

import dataclasses
import gzip
import random
import time

import pytest

from flux_tenant_exporter.base.packed import PACK_MIN, Packed, held, size_of
from flux_tenant_exporter.base.vocabulary import METRIC_FAMILIES
from flux_tenant_exporter.flux.model import NamespaceInfo
from flux_tenant_exporter.flux.projection import parse_object
from flux_tenant_exporter.render.prometheus.renderer import BLOCK, Renderer, RenderOptions
from flux_tenant_exporter.state.store import Store
from flux_tenant_exporter.state.view import ViewCache, build_view
from testbed import fleet

FAILURES = [
    ("ArtifactFailed", "Source artifact not found, retrying in 30s"),
    ("HealthCheckFailed", "health check failed after 5m0s: timeout waiting for: [Deployment/t/api status: 'Failed']"),
    ("GitOperationFailed", "failed to checkout and determine revision: unable to clone: authentication required"),
]


def _random_object(rng: random.Random, i: int) -> dict[str, object]:
    ns = f"ns-{i % 7}"
    kind = rng.choice(["ks", "repo", "hr"])
    if kind == "ks":
        raw = fleet.kustomization(ns, f"ks-{i}", depends_on=[f"ks-{i - 1}"] if i % 3 == 0 else [])
        if i % 17 == 5 and rng.random() < 0.5:  # an info series longer than 64 KiB: a block's lengths take 4 bytes
            raw["spec"]["path"] = "./" + "deep/" * 14000
    elif kind == "repo":
        raw = fleet.gitrepository(ns, "repo")
    else:
        raw = fleet.helmrelease(ns, f"hr-{i}", repository=("HelmRepository", "charts"))
    raw["metadata"]["generation"] = 1
    if rng.random() < 0.3:
        reason, message = rng.choice(FAILURES)
        raw["status"] = fleet.failed_status(reason, message, since=fleet.ago(minutes=rng.randrange(1, 90)))
    else:
        raw["status"] = fleet.ready_status(str(raw["kind"]), rev=f"main@sha1:{rng.randrange(5)}")
    if rng.random() < 0.1:
        raw["spec"]["suspend"] = True
    return raw


OPTIONS = {
    "default": RenderOptions(),
    "gotk": RenderOptions(gotk_compat=True),
    "failing": RenderOptions(detail="failing"),
    "failing-limited": RenderOptions(gotk_compat=True, detail="failing", object_limit=11),
    "limited": RenderOptions(object_limit=23),
    "trimmed": RenderOptions(drop_info_labels=("revision", "url"), resource_labels=("team",),
                             families=frozenset(METRIC_FAMILIES) - {"fluxtenant_resource_state"}),
}


@pytest.mark.parametrize("block", [3, BLOCK])
@pytest.mark.parametrize("options", list(OPTIONS.values()), ids=list(OPTIONS))
@pytest.mark.parametrize("seed", range(6))
def test_incremental_body_equals_a_full_render_after_any_changes(
    seed: int, block: int, options: RenderOptions, store: Store
) -> None:
    """Updates, deletes, new objects (which shift the order) and tenant relabels, in random batches: after each
    publish the body is byte-for-byte what a fresh renderer produces (with blocks so small that they split and
    empty), and only the objects whose view changed are rendered again; with every cardinality option too (the
    object limit cuts inside a block)."""
    options = dataclasses.replace(options, block=block, tenant_block=block)
    rng = random.Random(seed)
    for i in range(60):
        store.upsert(parse_object(_random_object(rng, i)))
    renderer, cache = Renderer(options), ViewCache()
    renderer.render(build_view(store, now=time.time(), cache=cache))
    for _ in range(25):
        for _ in range(rng.choice([0, 1, 1, 2, 5, 20])):
            action = rng.random()
            if action < 0.6:
                store.upsert(parse_object(_random_object(rng, rng.randrange(90))))
            elif action < 0.85 and store.objects:
                store.delete(*rng.choice(sorted(store.objects)))
            else:
                ns = f"ns-{rng.randrange(7)}"
                store.upsert_namespace(NamespaceInfo(ns, rng.choice([None, "team-a", "team-b"])))
        before = renderer.rendered_objects
        view = build_view(store, now=time.time(), cache=cache)
        body = renderer.render(view).body
        expected = Renderer(options).render(view).body
        assert body == expected
        if view.parent >= 0:
            assert renderer.rendered_objects - before <= len(view.changed)


def test_the_exposition_keeps_its_settled_texts_compressed_and_writes_them_whole(store: Store) -> None:
    """A block's text (objects' or tenants') is compressed at the first render that leaves it unchanged, and then
    held as a fraction of its length; the one a change touches is held as it is until then. The body written in
    pieces, at once and gzipped is the same text, and its size is counted from what is held."""
    rng = random.Random(5)
    for i in range(400):
        meta = {"name": f"o-{i}", "namespace": f"ns-{i % 40}"}
        store.upsert(parse_object(_random_object(rng, i) | {"metadata": meta}))
    for n in range(40):
        store.upsert_namespace(NamespaceInfo(f"ns-{n}", f"team-{n // 2}"))
    renderer, cache = Renderer(), ViewCache()
    first = renderer.render(build_view(store, now=time.time(), cache=cache))
    assert not any(isinstance(part, Packed) for part in first.parts)  # just written: nothing settled yet
    exposition = renderer.render(build_view(store, now=time.time(), cache=cache))
    packed = [part for part in exposition.parts if isinstance(part, Packed)]
    body = exposition.body
    assert body == first.body
    assert packed
    assert sum(len(p.data) for p in packed) < sum(p.size for p in packed) / 4
    assert sum(map(held, exposition.parts)) < len(body) / 3
    assert b"".join(exposition.pieces(size=1000)) == body
    assert gzip.decompress(exposition.gzipped()) == body
    assert exposition.size == len(body) == sum(map(size_of, exposition.parts))
    changed = _random_object(random.Random(9), 7) | {"metadata": {"name": "o-7", "namespace": "ns-7"}}
    changed["status"] = fleet.failed_status(*FAILURES[0], since=fleet.ago(minutes=3))
    store.upsert(parse_object(changed))
    touched = renderer.render(build_view(store, now=time.time(), cache=cache))
    plain = [part for part in touched.parts if isinstance(part, bytes) and len(part) >= PACK_MIN]
    assert plain  # the changed object's block, in the families whose text changed
    assert sum(map(len, plain)) < len(body) / 4
    settled = renderer.render(build_view(store, now=time.time(), cache=cache))
    assert not [part for part in settled.parts if isinstance(part, bytes) and len(part) >= PACK_MIN]
    assert settled.body == touched.body == Renderer().render(build_view(store, now=time.time(), cache=ViewCache())).body


def test_a_publish_without_changes_renders_nothing_and_keeps_the_body(store: Store) -> None:
    """No change: no object is rendered again and the body is identical."""
    rng = random.Random(1)
    for i in range(30):
        store.upsert(parse_object(_random_object(rng, i)))
    renderer, cache = Renderer(), ViewCache()
    first = renderer.render(build_view(store, now=time.time(), cache=cache)).body
    rendered = renderer.rendered_objects
    assert renderer.render(build_view(store, now=time.time(), cache=cache)).body == first
    assert renderer.rendered_objects == rendered


def test_a_view_from_another_cache_is_rendered_in_full() -> None:
    """A renderer given a View that does not follow the last one it rendered renders it from scratch (its change
    list is relative to a build the renderer never saw)."""
    rng = random.Random(3)
    stores = [Store(), Store()]
    for store in stores:
        for i in range(20):
            store.upsert(parse_object(_random_object(rng, i)))
    caches = [ViewCache(), ViewCache()]
    build_view(stores[1], now=time.time(), cache=caches[1])
    stores[1].upsert(parse_object(_random_object(rng, 50)))
    other = build_view(stores[1], now=time.time(), cache=caches[1])  # follows a build this renderer never saw
    renderer = Renderer()
    renderer.render(build_view(stores[0], now=time.time(), cache=caches[0]))
    assert renderer.render(other).body == Renderer().render(other).body


def test_a_retried_failure_reuses_its_tenants_samples_until_the_totals_change(store: Store) -> None:
    """A failing Kustomization retried with a new revision and message derives a new tenant view with the same
    totals: the tenant's samples are not formatted again. A recovery changes the totals and they are."""
    ks = fleet.kustomization("team-a", "apps")
    ks["metadata"]["generation"] = 1
    ks["status"] = fleet.failed_status(*FAILURES[1], since=fleet.ago(minutes=5))
    store.upsert(parse_object(ks))
    store.upsert(parse_object(fleet.kustomization("team-b", "apps") | {"status": fleet.ready_status("Kustomization")}))
    renderer, cache = Renderer(), ViewCache()
    renderer.render(build_view(store, now=time.time(), cache=cache))
    tenants = renderer.rendered_tenants
    for attempt in range(3):
        reason, message = FAILURES[1]
        status = fleet.failed_status(reason, f"{message} (attempt {attempt})", since=fleet.ago(minutes=1))
        store.upsert(parse_object(ks | {"status": status | {"lastAttemptedRevision": f"main@sha1:{attempt}"}}))
        view = build_view(store, now=time.time(), cache=cache)
        assert view.changed_tenants == {"team-a"}
        assert renderer.render(view).body == Renderer().render(view).body
    assert renderer.rendered_tenants == tenants
    store.upsert(parse_object(ks | {"status": fleet.ready_status("Kustomization")}))
    view = build_view(store, now=time.time(), cache=cache)
    body = renderer.render(view).body
    assert renderer.rendered_tenants == tenants + 1
    assert body == Renderer().render(view).body
    assert b'fluxtenant_tenant_status{tenant="team-a",status="healthy"} 1\n' in body


def test_a_sharded_exporter_puts_its_shard_on_every_series(store: Store) -> None:
    """With a shard, every series of every family (objects, tenants, counters, gotk_resource_info) carries
    shard="<name>", so queries can count a shard's replicas once and add the shards up; without one, none does."""
    rng = random.Random(3)
    for i in range(40):
        store.upsert(parse_object(_random_object(rng, i)))
    raw = fleet.kustomization("ns-1", "flips")
    raw["metadata"]["generation"] = 1
    raw["status"] = fleet.ready_status("Kustomization")
    store.upsert(parse_object(raw))
    raw["status"] = fleet.failed_status("HealthCheckFailed", "health check failed")
    store.upsert(parse_object(raw))  # a transition: the failures counter has a series
    view = build_view(store, now=time.time())
    body = Renderer(RenderOptions(gotk_compat=True, shard="shard-1")).render(view).body.decode()
    samples = [line for line in body.splitlines() if not line.startswith("#")]
    assert {line.split("{", 1)[0] for line in samples} >= {
        "fluxtenant_resource_state", "fluxtenant_tenant_status", "fluxtenant_resource_failures_total",
        "gotk_resource_info"}
    assert all(line.split("{", 1)[1].startswith('shard="shard-1",') for line in samples)
    plain = Renderer(RenderOptions(gotk_compat=True)).render(view).body.decode()
    assert "shard=" not in plain
    assert plain.count("\n") == body.count("\n")

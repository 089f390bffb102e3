"""The incremental renderer: whatever the sequence of changes, its body equals a full render from scratch."""

from __future__ import annotations

import random
import time

import pytest

from exporter import fleet
from exporter.exposition import Renderer
from exporter.model import NamespaceInfo, parse_object
from exporter.store import Store
from exporter.tenants import TenantResolver
from exporter.view import ViewCache, build_view

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


@pytest.mark.parametrize("gotk", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_incremental_body_equals_a_full_render_after_any_changes(seed: int, *, gotk: bool) -> None:
    """Updates, deletes, new objects (which shift the order) and tenant relabels, in random batches: after each
    publish the body is byte-for-byte what a fresh renderer produces, and unchanged objects are not rendered."""
    rng = random.Random(seed)
    store = Store(resolver=TenantResolver())
    for i in range(60):
        store.upsert(parse_object(_random_object(rng, i)))
    renderer, cache = Renderer(gotk_compat=gotk), ViewCache()
    renderer.render(build_view(store, now=time.time(), cache=cache), store)
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
        body = renderer.render(view, store)
        expected = Renderer(gotk_compat=gotk).render(view, store)
        assert body == expected
        assert renderer.rendered_objects - before <= len(view.resources)


def test_a_publish_without_changes_renders_nothing_and_keeps_the_body() -> None:
    """No change: no object is rendered again and the body is identical."""
    store = Store(resolver=TenantResolver())
    rng = random.Random(1)
    for i in range(30):
        store.upsert(parse_object(_random_object(rng, i)))
    renderer, cache = Renderer(), ViewCache()
    first = renderer.render(build_view(store, now=time.time(), cache=cache), store)
    rendered = renderer.rendered_objects
    assert renderer.render(build_view(store, now=time.time(), cache=cache), store) == first
    assert renderer.rendered_objects == rendered

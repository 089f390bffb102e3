"""Cross-object facts derived at publish time: tenants, root causes, stuck, drift, policy, roll-ups."""

from __future__ import annotations

import datetime
import random
import time
from typing import Any

import pytest

from flux_tenant_exporter.flux.model import NamespaceInfo
from flux_tenant_exporter.flux.projection import parse_object
from flux_tenant_exporter.flux.tenants import TenantMapping, TenantResolver
from flux_tenant_exporter.state.rules.rootcause import RootResolver
from flux_tenant_exporter.state.store import Store
from flux_tenant_exporter.state.view import ViewCache, build_view
from testbed import fleet


def make_store(**resolver: Any) -> Store:
    return Store(resolver=TenantResolver(**resolver))


def put(store: Store, raw: dict[str, Any], status: dict[str, Any] | None = None) -> None:
    raw["metadata"].setdefault("generation", 1)
    if status is not None:
        raw["status"] = status
    store.upsert(parse_object(raw))


def view_of(store: Store, when: float | None = None) -> Any:
    return build_view(store, now=when or time.time())


def res(view: Any, kind: str, ns: str, name: str) -> Any:
    return next(r for r in view.resources if (r.kind, r.namespace, r.name) == (kind, ns, name))


def test_tenant_comes_from_label_then_mapping_then_platform_then_namespace() -> None:
    """Tenant resolution order: the namespace label, the mapping file, platform namespaces, the namespace name."""
    mapping = TenantMapping.parse({"tenants": {"team-x": {"namespaces": ["legacy"], "patterns": ["^x-.*"]}}})
    resolver = TenantResolver(frozenset({"flux-system"}), mapping)
    assert resolver.tenant_of("anything", "team-a") == "team-a"
    assert resolver.tenant_of("legacy", None) == "team-x"
    assert resolver.tenant_of("x-web", None) == "team-x"
    assert resolver.tenant_of("flux-system", None) == "platform"
    assert resolver.tenant_of("solo", None) == "solo"


def test_dependency_chain_points_at_the_root_and_inherits_its_category_and_owner() -> None:
    """A blocked dependent's root_cause is the first failing object up the dependsOn chain, transitively."""
    store = make_store()
    store.upsert_namespace(NamespaceInfo("team-a", "team-a"))
    put(store, fleet.kustomization("team-a", "crds"),
        fleet.failed_status("ReconciliationFailed", 'CRD/x dry-run failed: no matches for kind "X" in version "v1"'))
    put(store, fleet.kustomization("team-a", "infra", depends_on=["crds"]),
        fleet.failed_status("DependencyNotReady", "dependency 'team-a/crds' is not ready"))
    put(store, fleet.kustomization("team-a", "apps", depends_on=["infra"]),
        fleet.failed_status("DependencyNotReady", "dependency 'team-a/infra' is not ready"))
    view = view_of(store)
    apps = res(view, "Kustomization", "team-a", "apps")
    assert apps.category == "dependency_not_ready"
    assert (apps.root_cause.kind, apps.root_cause.name) == ("Kustomization", "crds")
    assert apps.root_category == "crd_missing"
    assert apps.owner == "platform"
    crds = res(view, "Kustomization", "team-a", "crds")
    assert crds.is_root
    assert not apps.is_root
    assert view.tenants["team-a"].failures[0].name == "crds"


def test_helmrelease_blocked_by_its_helmchart_has_the_chart_as_root() -> None:
    """HelmRelease -> HelmChart (<ns>-<name> in the source namespace) -> its failure category."""
    store = make_store()
    put(store, fleet.helmchart("team-b", "team-b-web", chart="web"),
        fleet.failed_status("InvalidChartReference", "invalid chart reference: no 'web' chart with version "
                            "matching '9.9.9' found", stalled=True))
    put(store, fleet.helmrelease("team-b", "web", chart="web"),
        fleet.failed_status("SourceNotReady", "HelmChart 'team-b/team-b-web' is not ready"))
    release = res(view_of(store), "HelmRelease", "team-b", "web")
    assert release.root_cause.kind == "HelmChart"
    assert release.root_category == "chart_failed"
    assert release.owner == "tenant"


def test_dependency_cycle_terminates_and_names_a_root() -> None:
    """A dependsOn cycle does not loop forever; its smallest key is the root, whichever object the walk starts from
    (so an incremental derivation, which starts from the changed objects, agrees with a full one)."""
    store = make_store()
    put(store, fleet.kustomization("t", "a", depends_on=["b"]),
        fleet.failed_status("DependencyNotReady", "dependency 't/b' is not ready"))
    put(store, fleet.kustomization("t", "b", depends_on=["a"]),
        fleet.failed_status("DependencyNotReady", "dependency 't/a' is not ready"))
    put(store, fleet.kustomization("t", "x", depends_on=["b"]),
        fleet.failed_status("DependencyNotReady", "dependency 't/b' is not ready"))
    view = view_of(store)
    assert [r.name for r in view.resources if r.is_root] == ["a"]  # the cycle's smallest key
    assert {r.name: r.root_cause.name for r in view.resources if r.root_cause} == {"b": "a", "x": "a"}
    for start in (["a", "b", "x"], ["b", "a", "x"], ["x", "b", "a"]):  # whatever the walk starts from
        resolver = RootResolver(store.objects)
        assert {name: resolver.root(("Kustomization", "t", name))[2] for name in start} == dict.fromkeys(start, "a")


def test_blocked_by_a_ready_source_is_its_own_root() -> None:
    """A stale 'source not ready' message while the source is Ready: no other object to blame."""
    store = make_store()
    put(store, fleet.gitrepository("t", "repo"), fleet.ready_status("GitRepository"))
    put(store, fleet.kustomization("t", "app", source=("GitRepository", "repo")),
        fleet.failed_status("ArtifactFailed", "Source artifact not found, retrying in 30s"))
    app = res(view_of(store), "Kustomization", "t", "app")
    assert app.root_cause is None
    assert app.owner == "unknown"


def test_stuck_turns_on_when_time_passes_without_an_event() -> None:
    """Stuck is re-evaluated at publish time from lastTransitionTime, not from event arrival."""
    store = make_store()
    put(store, fleet.kustomization("t", "app"),
        fleet.failed_status("BuildFailed", "kustomize build failed: yaml: line 2", since=fleet.ago(minutes=10)))
    now = time.time()
    assert not res(view_of(store, now), "Kustomization", "t", "app").stuck
    later = res(view_of(store, now + 6 * 60), "Kustomization", "t", "app")
    assert later.stuck
    assert later.stuck_reason == "not_ready"


def test_drift_against_source_and_failed_roll_forward() -> None:
    """Applied != the source's artifact revision is source drift; attempted != applied is attempt drift."""
    store = make_store()
    put(store, fleet.gitrepository("t", "repo"), fleet.ready_status("GitRepository", rev="main@sha1:2"))
    status = fleet.ready_status("Kustomization", rev="main@sha1:1")
    status["lastAttemptedRevision"] = "main@sha1:2"
    put(store, fleet.kustomization("t", "app", source=("GitRepository", "repo")), status)
    app = res(view_of(store), "Kustomization", "t", "app")
    assert app.source_drift_since is not None
    assert app.attempt_drift_since is not None
    assert view_of(store).tenants["t"].status == "degraded"


def test_drift_since_comes_from_the_status_times() -> None:
    """Source drift counts from the artifact's update time (without one, from when the source became ready);
    attempt drift from the applier's Ready transition. Both are times the status says, not when the exporter
    happened to read it."""
    store = make_store()
    source_ready, artifact_at, app_ready = (fleet.ago(hours=h).replace(microsecond=0) for h in (3, 2, 1))
    repo = fleet.ready_status("GitRepository", rev="main@sha1:2", since=source_ready)
    repo["artifact"]["lastUpdateTime"] = artifact_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    put(store, fleet.gitrepository("t", "repo"), repo)
    status = fleet.ready_status("Kustomization", rev="main@sha1:1", since=app_ready)
    status["lastAttemptedRevision"] = "main@sha1:2"
    put(store, fleet.kustomization("t", "app", source=("GitRepository", "repo")), status)
    app = res(view_of(store), "Kustomization", "t", "app")
    assert (app.source_drift_since, app.attempt_drift_since) == (artifact_at.timestamp(), app_ready.timestamp())

    del repo["artifact"]["lastUpdateTime"]
    put(store, fleet.gitrepository("t", "repo"), repo)
    assert res(view_of(store), "Kustomization", "t", "app").source_drift_since == source_ready.timestamp()


def test_policy_violations_of_a_tenant_object() -> None:
    """No serviceAccountName, targetNamespace of another tenant, cross-namespace source and dependency,
    cluster-scoped inventory are each reported as a rule id."""
    store = make_store()
    for ns, tenant in (("team-a", "team-a"), ("team-b", "team-b")):
        store.upsert_namespace(NamespaceInfo(ns, tenant))
    put(store, fleet.kustomization("team-a", "bad", source=("GitRepository", "repo", "flux-system"),
                                   service_account=None, target_namespace="team-b",
                                   depends_on=[("team-b", "other")]),
        fleet.ready_status("Kustomization", inventory_entries=[("", "admin", "rbac.authorization.k8s.io",
                                                                 "ClusterRole"), ("team-b", "x", "", "ConfigMap")]))
    view = view_of(store)
    rules = {v.rule for v in res(view, "Kustomization", "team-a", "bad").violations}
    assert rules == {"missing_service_account", "target_namespace_outside_tenant", "cross_namespace_source",
                     "cross_namespace_dependency", "cluster_scoped_in_inventory"}
    assert view.tenants["team-a"].status == "degraded"
    assert {v.rule for v in view.tenants["team-a"].violations} == rules


def test_platform_objects_are_not_audited() -> None:
    """The platform's own Kustomizations may be cluster-scoped and run without a service account."""
    store = make_store(platform_namespaces=frozenset({"flux-system"}))
    put(store, fleet.kustomization("flux-system", "infra", service_account=None),
        fleet.ready_status("Kustomization", inventory_entries=[("", "x", "", "Namespace")]))
    view = view_of(store)
    assert res(view, "Kustomization", "flux-system", "infra").violations == ()
    assert view.tenants["platform"].status == "healthy"


def test_tenant_status_precedence() -> None:
    """failing > progressing > degraded > suspended > healthy."""
    store = make_store()
    put(store, fleet.kustomization("s", "a", suspend=True), fleet.ready_status("Kustomization"))
    put(store, fleet.kustomization("p", "a"), fleet.progressing_status())
    put(store, fleet.kustomization("h", "a"), fleet.ready_status("Kustomization"))
    put(store, fleet.kustomization("f", "a"), fleet.failed_status("BuildFailed", "kustomize build failed"))
    put(store, fleet.kustomization("f", "b"), fleet.progressing_status())
    statuses = {name: t.status for name, t in view_of(store).tenants.items()}
    assert statuses == {"s": "suspended", "p": "progressing", "h": "healthy", "f": "failing"}


def test_unchanged_projection_does_no_work_and_transitions_are_counted() -> None:
    """An update with the same projected fields changes nothing; entering failing and recovering are counted."""
    store = make_store()
    raw = fleet.kustomization("t", "app")
    raw["metadata"]["generation"] = 1
    raw["status"] = fleet.ready_status("Kustomization")
    assert store.upsert(parse_object(raw))
    version = store.version
    raw["metadata"]["resourceVersion"] = "999"
    raw["metadata"]["managedFields"] = [{"manager": "kustomize-controller"}]
    assert not store.upsert(parse_object(raw))
    assert store.version == version
    raw["status"] = fleet.failed_status("BuildFailed", "kustomize build failed")
    store.upsert(parse_object(raw))
    raw["status"] = fleet.ready_status("Kustomization")
    store.upsert(parse_object(raw))
    assert store.failures_total[("t", "Kustomization", "build_failed")] == 1
    assert store.recoveries_total[("t", "Kustomization")] == 1


def test_a_fix_that_passes_through_progressing_is_one_recovery() -> None:
    """A pushed fix goes failing -> progressing (the controller applying it) -> ready: one recovery; a new
    commit that fails again after progressing is not a second entry into failing; a new object that starts
    progressing and fails is one."""
    store = make_store()
    raw = fleet.kustomization("t", "app")
    raw["metadata"]["generation"] = 1
    for status in (fleet.failed_status("BuildFailed", "kustomize build failed"),
                   fleet.progressing_status(observed_generation=1),
                   fleet.failed_status("BuildFailed", "kustomize build failed: again"),
                   fleet.progressing_status("Running health checks", observed_generation=1),
                   fleet.ready_status("Kustomization")):
        raw["status"] = status
        store.upsert(parse_object(raw))
    fresh = fleet.kustomization("t", "new")
    fresh["metadata"]["generation"] = 1
    for status in (fleet.progressing_status(observed_generation=1), fleet.failed_status("BuildFailed", "x")):
        fresh["status"] = status
        store.upsert(parse_object(fresh))
    assert store.recoveries_total[("t", "Kustomization")] == 1
    assert store.failures_total[("t", "Kustomization", "build_failed")] == 1


def test_relist_replaces_only_its_scope() -> None:
    """replace() drops objects of that kind (and namespace) missing from the list, and nothing else."""
    store = make_store()
    for ns, name in (("a", "one"), ("a", "two"), ("b", "three")):
        put(store, fleet.kustomization(ns, name), fleet.ready_status("Kustomization"))
    put(store, fleet.gitrepository("a", "repo"), fleet.ready_status("GitRepository"))
    keep = fleet.kustomization("a", "one")
    keep["metadata"]["generation"] = 1
    keep["status"] = fleet.ready_status("Kustomization")
    store.replace("Kustomization", "a", [parse_object(keep)])
    assert sorted(store.objects) == [("GitRepository", "a", "repo"), ("Kustomization", "a", "one"),
                                     ("Kustomization", "b", "three")]


def test_the_store_keeps_no_signals_and_still_sees_every_status_change_that_matters() -> None:
    """The stored object drops its conditions (classified once, on write): an identical status is no change, a new
    message or a new transition time of a condition is one, and a stored object cannot be classified again."""
    store = make_store()
    raw = fleet.kustomization("a", "app")
    raw["metadata"]["generation"] = 1
    raw["status"] = fleet.failed_status("HealthCheckFailed", "health check failed: deployment web")
    assert store.upsert(parse_object(raw)) is True
    entry = store.objects[("Kustomization", "a", "app")]
    assert not hasattr(entry.obj, "signals")
    fresh = parse_object(raw)
    assert entry.obj == fresh.to_store(fresh.ref, fresh.source, fresh.chart, fresh.depends_on)  # all else kept
    assert store.upsert(parse_object(raw)) is False  # a relist delivers the same object again
    assert store.objects[("Kustomization", "a", "app")] is entry  # its stuck timer did not restart
    raw["status"]["conditions"][0]["message"] = "health check failed: deployment api"
    assert store.upsert(parse_object(raw)) is True
    assert store.objects[("Kustomization", "a", "app")].obj.ref is entry.obj.ref  # one key tuple, however many updates
    assert store.objects[("Kustomization", "a", "app")].verdict.message == "health check failed: deployment api"
    raw["status"]["conditions"][0]["lastTransitionTime"] = "2026-01-01T00:00:00Z"
    assert store.upsert(parse_object(raw)) is True
    with pytest.raises(TypeError, match="has no signals"):
        store.upsert(store.objects[("Kustomization", "a", "app")].obj)  # type: ignore[arg-type]
    put(store, fleet.gitrepository("a", "repo"), fleet.ready_status("GitRepository"))
    raw["status"]["conditions"][0]["message"] = "health check failed: deployment db"
    assert store.upsert(parse_object(raw)) is True
    repo = store.objects[("GitRepository", "a", "repo")]
    assert store.objects[("Kustomization", "a", "app")].obj.source is repo.obj.ref  # a stored source's key, not a copy


def test_a_retried_failure_keeps_one_pending_stuck_deadline() -> None:
    """Each retry of a failing object (a new revision, the same first failure) keeps its stuck deadline: the view
    holds one pending deadline for it, not one per retry, and the object still turns stuck when it comes."""
    store, cache = make_store(), ViewCache()
    now = time.time()
    since = datetime.datetime.fromtimestamp(now - 60, tz=datetime.UTC)
    for attempt in range(20):
        raw = fleet.kustomization("a", "app")
        raw["metadata"]["generation"] = 1
        raw["status"] = fleet.failed_status("BuildFailed", f"kustomize build failed (attempt {attempt})", since=since)
        put(store, raw)
        build_view(store, now=now + attempt, cache=cache)
    assert len(cache.pending_stuck) == 1
    later = build_view(store, now=now + 3600, cache=cache)
    assert res(later, "Kustomization", "a", "app").stuck


def test_stuck_root_pages_once_per_root_cause() -> None:
    """Only the root of a blocked chain carries stuck_root, also when only its dependent is stuck yet."""
    store = make_store()
    put(store, fleet.gitrepository("t", "repo"),
        fleet.failed_status("GitOperationFailed", "authentication required", since=fleet.ago(minutes=20)))
    for name in ("a", "b"):
        put(store, fleet.kustomization("t", name, source=("GitRepository", "repo")),
            fleet.failed_status("ArtifactFailed", "Source artifact not found", since=fleet.ago(minutes=20)))
    view = view_of(store)
    flagged = [(r.name, r.stuck, r.stuck_reason) for r in view.resources if r.stuck_root]
    assert flagged == [("repo", False, "dependent_stuck")]  # the source is not stuck yet (30 min), a and b are
    assert all(r.stuck for r in view.resources if r.kind == "Kustomization")
    later = view_of(store, time.time() + 20 * 60)
    assert [(r.name, r.stuck_reason) for r in later.resources if r.stuck_root] == [("repo", "not_ready")]


def _chain_fleet_object(rng: random.Random, i: int, now: float) -> dict[str, Any]:
    """Sources and appliers in 6 namespaces, with dependsOn chains and sources that fail, at random."""
    ns = f"ns-{i % 6}"
    since = datetime.datetime.fromtimestamp(now - rng.choice([30, 300, 1200, 3600]), tz=datetime.UTC)
    failing = rng.random() < 0.35
    if i % 4 == 0:
        raw = fleet.gitrepository(ns, f"repo-{i % 3}")
        raw["status"] = fleet.failed_status("GitOperationFailed", "authentication required", since=since) \
            if failing else fleet.ready_status("GitRepository", rev=f"main@sha1:{rng.randrange(3)}")
    else:
        raw = fleet.kustomization(ns, f"ks-{i}", source=("GitRepository", f"repo-{i % 3}"),
                                  depends_on=[f"ks-{i + rng.choice([-1, 6])}"] if i % 3 else [])  # +6: cycles
        reason, message = rng.choice([("DependencyNotReady", f"dependency '{ns}/ks-{i - 1}' is not ready"),
                                      ("ArtifactFailed", "Source artifact not found, retrying in 30s"),
                                      ("HealthCheckFailed", "health check failed after 5m0s: timeout")])
        raw["status"] = fleet.failed_status(reason, message, since=since) if failing else fleet.ready_status(
            "Kustomization", rev=f"main@sha1:{rng.randrange(3)}")
    raw["metadata"]["generation"] = 1
    return raw


@pytest.mark.parametrize("seed", range(8))
def test_incremental_view_equals_a_full_derivation_after_any_changes(seed: int) -> None:
    """Updates, deletes, relabelled namespaces and time passing (objects turning stuck), in random batches: the
    incrementally derived View equals one derived from scratch, and one change re-derives few objects."""
    rng = random.Random(seed)
    now = time.time()
    store = make_store()
    for i in range(80):
        store.upsert(parse_object(_chain_fleet_object(rng, i, now)))
    cache = ViewCache()
    build_view(store, now=now, cache=cache)
    for _ in range(40):
        now += rng.choice([0, 1, 60, 300, 600])
        for _ in range(rng.choice([0, 1, 1, 3, 10])):
            action = rng.random()
            if action < 0.7:
                store.upsert(parse_object(_chain_fleet_object(rng, rng.randrange(100), now)))
            elif action < 0.9 and store.objects:
                store.delete(*rng.choice(sorted(store.objects)))
            else:
                name = rng.choice(["a", *(f"ns-{k}" for k in range(7))])  # "a": a namespace named like a tenant
                store.upsert_namespace(NamespaceInfo(name, rng.choice([None, "a", "b"])))
        incremental = build_view(store, now=now, cache=cache)
        full = build_view(store, now=now)
        assert incremental.resources == full.resources
        assert list(incremental.tenants.items()) == list(full.tenants.items())  # in name order too
        assert incremental.objects_by_kind == full.objects_by_kind
    derived = cache.derived
    store.upsert(parse_object(_chain_fleet_object(rng, 1, now)))  # ks-1: nothing depends on it but ks-2
    build_view(store, now=now, cache=cache)
    assert cache.derived - derived <= 40  # its dependents only (ks-2 -> ks-3 ...), not all 80

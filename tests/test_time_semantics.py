"""Time semantics on status sequences shaped as the real Flux v2.9.5 controllers write them
(shared/reference/real-flux-semantics.md; the real-controller tests prove the same on live controllers):
Ready flips to Unknown at every attempt and its lastTransitionTime moves on every retry, observedGeneration
stays -1 until a first success, and the first failure survives only in Kustomization ``history`` or a
HelmRelease's ``Released`` condition."""

from __future__ import annotations

import datetime
from typing import Any

from flux_tenant_exporter.base.config import StuckThresholds
from flux_tenant_exporter.flux.projection import parse_object
from flux_tenant_exporter.flux.tenants import TenantResolver
from flux_tenant_exporter.state.store import Store
from flux_tenant_exporter.state.view import build_view
from testbed import fleet

T0 = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
FORBIDDEN = ('ClusterRole/reader dry-run failed (Forbidden): clusterroles.rbac.authorization.k8s.io "reader" is '
             'forbidden: User "system:serviceaccount:team-a:flux" cannot patch resource "clusterroles" in API group '
             '"rbac.authorization.k8s.io" at the cluster scope')
KEY = ("Kustomization", "team-a", "apps")


class Clock:
    """A settable clock for the store (epoch seconds)."""

    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now

    def at(self, seconds: float) -> float:
        self.now = T0.timestamp() + seconds
        return self.now


def _at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def _kustomization(conditions: list[dict[str, Any]], *, observed: int = -1, generation: int = 1,
                   history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    raw = fleet.kustomization("team-a", "apps", target_namespace="team-a")
    raw["metadata"]["generation"] = generation
    raw["status"] = {"observedGeneration": observed, "conditions": conditions}
    if history is not None:
        raw["status"]["history"] = history
    return raw


def _failed(at: float, **kw: Any) -> dict[str, Any]:
    """Ready=False with the cause, Reconciling=True (ProgressingWithRetry): the end of a failed attempt."""
    return _kustomization([fleet.condition("Ready", "False", "ReconciliationFailed", FORBIDDEN, since=_at(at)),
                           fleet.condition("Reconciling", "True", "ProgressingWithRetry", FORBIDDEN, since=_at(at))],
                          **kw)


def _attempt(at: float, **kw: Any) -> dict[str, Any]:
    """Ready=Unknown (Progressing) with Reconciling=True: the start of every attempt."""
    return _kustomization([fleet.condition("Ready", "Unknown", "Progressing", "Reconciliation in progress",
                                           since=_at(at)),
                           fleet.condition("Reconciling", "True", "Progressing", "Reconciliation in progress",
                                           since=_at(at))], **kw)


def _healthy(at: float, **kw: Any) -> dict[str, Any]:
    return _kustomization([fleet.condition("Ready", "True", "ReconciliationSucceeded", "Applied revision: main@sha1:1",
                                           since=_at(at))], observed=1, **kw)


def _store(clock: Clock) -> Store:
    return Store(resolver=TenantResolver(), thresholds=StuckThresholds(not_ready=600), clock=clock)


def test_a_failure_that_keeps_retrying_keeps_its_first_failure_and_gets_stuck_as_not_ready() -> None:
    """Across many retries (Ready False -> Unknown -> False every 10 s, each moving lastTransitionTime), the
    object stays failing with the same category and Ready status, its since is the first failure, and it is
    stuck as not_ready once the threshold has passed since then; observedGeneration -1 never makes it
    generation_not_observed."""
    clock = Clock()
    store = _store(clock)
    clock.at(2)
    store.upsert(parse_object(_failed(2)))
    for retry in range(1, 80):
        t = 2 + 10 * retry
        clock.at(t)
        store.upsert(parse_object(_attempt(t)))
        blip = store.objects[KEY].verdict
        assert (blip.state, blip.category, blip.ready, blip.since) == ("failing", "cluster_scoped_in_tenant",
                                                                     "False", _at(2).timestamp())
        clock.at(t + 1)
        store.upsert(parse_object(_failed(t + 1)))
        verdict = store.objects[KEY].verdict
        assert verdict.state == "failing"
        assert verdict.since == _at(2).timestamp()
    assert verdict.since_source == "observed"  # only the exporter saw it begin: no history in this status
    assert verdict.stuck_at == _at(2 + 600).timestamp()
    assert verdict.stuck_reason == "not_ready"


def test_a_fixed_object_leaves_stuck_at_once() -> None:
    """The first Ready=True after a long failure is ready, not stuck, since the success."""
    clock = Clock()
    store = _store(clock)
    store.upsert(parse_object(_failed(0)))
    clock.at(3600)
    store.upsert(parse_object(_attempt(3600)))
    clock.at(3601)
    store.upsert(parse_object(_healthy(3601)))
    verdict = store.objects[KEY].verdict
    assert (verdict.state, verdict.stuck_at, verdict.since) == ("ready", None, _at(3601).timestamp())


def test_a_healthy_object_keeps_its_state_through_every_periodic_reconcile() -> None:
    """True -> Unknown -> True on every interval: stays ready (Ready True) with the time it became ready."""
    clock = Clock()
    store = _store(clock)
    store.upsert(parse_object(_healthy(0)))
    for n in range(1, 5):
        clock.at(60 * n)
        store.upsert(parse_object(_attempt(60 * n, observed=1)))
        assert (store.objects[KEY].verdict.state, store.objects[KEY].verdict.ready) == ("ready", "True")
        clock.at(60 * n + 1)
        store.upsert(parse_object(_healthy(60 * n + 1)))
    verdict = store.objects[KEY].verdict
    assert (verdict.state, verdict.since) == ("ready", _at(0).timestamp())


def test_a_new_generation_of_a_healthy_object_is_progress() -> None:
    """Ready=Unknown for a generation the controller has not observed yet is real progress, not a blip."""
    clock = Clock()
    store = _store(clock)
    store.upsert(parse_object(_healthy(0)))
    clock.at(30)
    store.upsert(parse_object(_attempt(30, observed=1, generation=2)))
    assert store.objects[KEY].verdict.state == "progressing"


def test_after_a_restart_the_kustomization_history_gives_the_first_failure() -> None:
    """A fresh exporter (no previous verdict) reads the first failure from status.history: the entry of the
    manifests last reconciled, whose last reconcile failed."""
    clock = Clock()
    clock.at(400)
    store = _store(clock)
    history = [{"digest": "sha256:1", "firstReconciled": fleet.rfc3339(_at(5)),
                "lastReconciled": fleet.rfc3339(_at(391)), "lastReconciledDuration": "1s",
                "lastReconciledStatus": "ReconciliationFailed", "totalReconciliations": 40}]
    store.upsert(parse_object(_failed(391, history=history)))
    verdict = store.objects[KEY].verdict
    assert (verdict.since, verdict.since_source) == (_at(5).timestamp(), "history")
    assert verdict.stuck_at == _at(605).timestamp()


def test_history_of_a_successful_reconcile_is_no_failure_evidence() -> None:
    """A history entry whose last reconcile succeeded says nothing about when a later failure began."""
    clock = Clock()
    store = _store(clock)
    history = [{"digest": "sha256:1", "firstReconciled": fleet.rfc3339(_at(5)), "lastReconciled": fleet.rfc3339(_at(9)),
                "lastReconciledStatus": "ReconciliationSucceeded", "totalReconciliations": 2}]
    store.upsert(parse_object(_failed(90, history=history)))
    assert store.objects[KEY].verdict.since == _at(90).timestamp()


def test_after_a_restart_a_helmrelease_keeps_its_first_failure_from_released() -> None:
    """A HelmRelease's Released=False keeps its first-failure transition while Ready flips: since is that."""
    clock = Clock()
    clock.at(100)
    store = _store(clock)
    raw = fleet.helmrelease("team-a", "web")
    raw["metadata"]["generation"] = 1
    message = "Helm install failed for release team-a/web with chart web@1.0.0: unable to continue with install"
    raw["status"] = {"observedGeneration": -1, "lastAttemptedGeneration": 1, "failures": 8, "conditions": [
        fleet.condition("Ready", "False", "InstallFailed", message, since=_at(96)),
        fleet.condition("Reconciling", "True", "ProgressingWithRetry", message, since=_at(96)),
        fleet.condition("Released", "False", "InstallFailed", message, since=_at(3)),
    ]}
    store.upsert(parse_object(raw))
    verdict = store.objects[("HelmRelease", "team-a", "web")].verdict
    assert (verdict.state, verdict.since, verdict.since_source) == ("failing", _at(3).timestamp(), "history")


def test_a_failure_that_does_not_retry_is_timed_by_its_condition() -> None:
    """DependencyNotReady is not retried through "progressing": its lastTransitionTime stays, source condition."""
    clock = Clock()
    clock.at(500)
    store = _store(clock)
    raw = _kustomization([fleet.condition("Ready", "False", "DependencyNotReady",
                                          "dependency 'team-a/infra' is not ready", since=_at(7))])
    store.upsert(parse_object(raw))
    verdict = store.objects[KEY].verdict
    assert (verdict.category, verdict.since, verdict.since_source) == ("dependency_not_ready", _at(7).timestamp(),
                                                                       "condition")
    assert verdict.stuck_reason == "not_ready"


# -- holds are bounded: a controller that dies mid-reconcile leaves Ready=Unknown behind for ever ------------------


def _timed(raw: dict[str, Any], timeout: str = "30s") -> dict[str, Any]:
    raw["spec"]["timeout"] = timeout
    return raw


def _holding_store(clock: Clock) -> Store:
    return Store(thresholds=StuckThresholds(not_ready=600, progressing_margin=15), clock=clock)


def _attempt_begun(started: int) -> tuple[Clock, Store]:
    """A store that saw the Kustomization ready at 0, then a routine reconcile begin at ``started``."""
    clock = Clock()
    store = _holding_store(clock)
    store.upsert(parse_object(_timed(_healthy(0))))
    clock.at(started)
    store.upsert(parse_object(_timed(_attempt(started, observed=1))))
    return clock, store


def test_a_routine_reconcile_that_never_finishes_turns_progressing_and_stuck_after_timeout_and_margin() -> None:
    """A ready Kustomization rewritten to Ready=Unknown + Reconciling=True (same generation and revision) and left
    there is held ready for its spec.timeout (30 s) plus the margin (15 s) from the start of the attempt; then it is
    progressing and stuck (progressing_timeout) since that start. Rewrites of the same attempt do not restart the
    budget; a later Ready=True makes it ready again."""
    clock, store = _attempt_begun(100)
    held = store.objects[KEY].verdict
    assert (held.state, held.ready, held.stuck_at) == ("ready", "True", None)
    assert held.hold is not None
    assert held.hold.until == _at(145).timestamp()
    clock.at(120)  # the controller rewrites its progress message: the same attempt
    raw = _timed(_attempt(100, observed=1))
    raw["status"]["conditions"][1]["message"] = "Running health checks for revision main@sha1:1 with a timeout of 30s"
    store.upsert(parse_object(raw))
    assert store.expire(_at(144).timestamp()) == 0
    assert store.objects[KEY].verdict.state == "ready"
    assert store.expire(_at(145).timestamp()) == 1
    verdict = store.objects[KEY].verdict
    assert (verdict.state, verdict.since, verdict.since_source) == ("progressing", _at(100).timestamp(), "condition")
    assert (verdict.stuck_at, verdict.stuck_reason) == (_at(145).timestamp(), "progressing_timeout")
    assert verdict.hold is None
    assert store.expire(_at(1000).timestamp()) == 0  # expired once
    clock.at(2000)
    store.upsert(parse_object(_timed(_healthy(2000))))
    assert store.objects[KEY].verdict.state == "ready"
    assert store.recoveries_total == {}  # ready, progressing, ready: no failure was ever counted


def test_an_attempt_marked_again_a_second_later_keeps_its_start() -> None:
    """kustomize-controller marks Reconciling again when the health checks begin, with a transition time a second
    on (found on the real controller, tests/test_real_stuck.py). The attempt's budget and its start stay where
    they were: the stuck verdict's since is the attempt's first sign, its budget ending at since + timeout +
    margin."""
    clock, store = _attempt_begun(100)
    clock.at(101)
    store.upsert(parse_object(_timed(_attempt(101, observed=1))))
    assert store.expire(_at(145).timestamp()) == 1
    verdict = store.objects[KEY].verdict
    assert (verdict.state, verdict.since, verdict.stuck_at) == ("progressing", _at(100).timestamp(),
                                                                _at(145).timestamp())


def test_the_hold_of_a_finished_reconcile_is_forgotten() -> None:
    """An attempt that ends in time leaves no hold behind: its expiry time passing changes nothing."""
    clock, store = _attempt_begun(60)
    clock.at(62)
    store.upsert(parse_object(_timed(_healthy(62))))
    assert store.expire(_at(10_000).timestamp()) == 0
    assert store.objects[KEY].verdict.state == "ready"


def test_a_new_revision_being_applied_is_progress_not_a_blip() -> None:
    """Attempted revision != applied revision while Ready=Unknown: the rollout of a new revision is progressing at
    once (with that revision shown), not a held ready."""
    clock = Clock()
    store = _holding_store(clock)
    healthy = _timed(_healthy(0))
    healthy["status"] |= {"lastAppliedRevision": "main@sha1:1", "lastAttemptedRevision": "main@sha1:1"}
    store.upsert(parse_object(healthy))
    clock.at(30)
    rolling = _timed(_attempt(30, observed=1))
    rolling["status"] |= {"lastAppliedRevision": "main@sha1:1", "lastAttemptedRevision": "main@sha1:2"}
    store.upsert(parse_object(rolling))
    verdict = store.objects[KEY].verdict
    assert (verdict.state, verdict.hold, verdict.stuck_at) == ("progressing", None, _at(75).timestamp())
    view = build_view(store, now=_at(31).timestamp())
    assert view.resources[0].revision == "main@sha1:2"


def test_a_retry_that_never_finishes_stays_failing_with_its_cause_and_is_stuck_at_the_attempts_budget() -> None:
    """A failing object whose retry hangs keeps its failing verdict and category, and is stuck
    (progressing_timeout) when the attempt's budget ends, if that is before its own not_ready deadline."""
    clock = Clock()
    store = _holding_store(clock)
    store.upsert(parse_object(_timed(_failed(0))))
    assert store.objects[KEY].verdict.stuck_at == _at(600).timestamp()  # not_ready
    clock.at(20)
    store.upsert(parse_object(_timed(_attempt(20))))
    verdict = store.objects[KEY].verdict
    assert (verdict.state, verdict.category) == ("failing", "cluster_scoped_in_tenant")
    assert (verdict.stuck_at, verdict.stuck_reason) == (_at(65).timestamp(), "progressing_timeout")
    clock.at(25)
    store.upsert(parse_object(_timed(_failed(25))))  # the retry ended: its budget no longer applies
    verdict = store.objects[KEY].verdict
    assert (verdict.stuck_at, verdict.stuck_reason) == (_at(600).timestamp(), "not_ready")


def test_an_attempt_after_a_blocked_failure_is_progress() -> None:
    """A blocked object (its source not ready yet: the first status of every Kustomization) does not retry through
    "progressing": the attempt that follows means the blocker cleared, so it is progressing (and stuck if the
    attempt never ends), not the old failure held."""
    clock = Clock()
    store = _holding_store(clock)
    blocked = _timed(_kustomization([fleet.condition("Ready", "False", "ArtifactFailed",
                                                     "Source artifact not found, retrying in 10s", since=_at(0))]))
    store.upsert(parse_object(blocked))
    assert store.objects[KEY].verdict.category == "source_not_ready"
    clock.at(3)
    store.upsert(parse_object(_timed(_attempt(3))))
    verdict = store.objects[KEY].verdict
    assert (verdict.state, verdict.since, verdict.stuck_at) == ("progressing", _at(3).timestamp(), _at(48).timestamp())

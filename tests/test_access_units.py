"""Access control without an API server: the answer cache, the bearer header, the identity key, the settings'
refusals, and a tenant projected onto the namespaces a caller sees."""

from __future__ import annotations

import asyncio

import pytest

from flux_tenant_exporter.base.answers import Answers
from flux_tenant_exporter.base.config import AccessSettings, ServeSettings, TlsSettings
from flux_tenant_exporter.base.errors import UserError
from flux_tenant_exporter.cli.flags import parse
from flux_tenant_exporter.flux.model import NamespaceInfo
from flux_tenant_exporter.flux.projection import parse_object
from flux_tenant_exporter.kube.reviews import Access, Identity
from flux_tenant_exporter.render.documents import Filters
from flux_tenant_exporter.render.statuspage import overview
from flux_tenant_exporter.serve.access import bearer_token
from flux_tenant_exporter.state.rules.rollup import project
from flux_tenant_exporter.state.store import Store
from flux_tenant_exporter.state.view import build_view
from testbed import fleet


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_answers_are_kept_for_their_lifetime_and_one_fetch_serves_concurrent_callers() -> None:
    """Ten concurrent callers of one key share one fetch; the answer is kept for the lifetime its value decides
    (allowed 20 s, denied 10 s), then fetched again."""
    clock = Clock()
    fetches = 0
    release = asyncio.Event()

    async def fetch() -> bool:
        nonlocal fetches
        fetches += 1
        await release.wait()
        return fetches == 1

    answers: Answers[str, bool] = Answers(10, lambda allowed: 20.0 if allowed else 10.0, clock)
    waiting = [asyncio.create_task(answers.get("k", fetch)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiting)
    assert fetches == 1
    assert results == [(True, False)] * 10
    assert await answers.get("k", fetch) == (True, True)
    clock.now = 19.9
    assert await answers.get("k", fetch) == (True, True)
    clock.now = 20.0
    assert await answers.get("k", fetch) == (False, False)  # expired: fetched again (a deny this time)
    assert fetches == 2
    clock.now = 29.9
    assert await answers.get("k", fetch) == (False, True)
    clock.now = 30.0
    await answers.get("k", fetch)
    assert fetches == 3


async def test_an_error_is_shared_by_the_callers_waiting_but_never_kept() -> None:
    """A fetch that raises raises for every concurrent caller; the next call fetches again."""
    calls = 0

    async def failing() -> bool:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise ConnectionError("down")

    answers: Answers[str, bool] = Answers(10, lambda _: 60.0)
    results = await asyncio.gather(*(answers.get("k", failing) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert calls == 1
    assert len(answers) == 0

    async def fine() -> bool:
        return True

    assert await answers.get("k", fine) == (True, False)


async def test_answers_are_bounded_least_recently_used_first_out() -> None:
    """At most ``size`` answers: the one not asked for longest goes first."""
    answers: Answers[int, int] = Answers(3, lambda _: 60.0)

    async def value(i: int) -> int:
        return i

    for i in range(3):
        await answers.get(i, lambda i=i: value(i))  # type: ignore[misc]
    await answers.get(0, lambda: value(0))  # 0 is recent again
    await answers.get(3, lambda: value(3))
    assert len(answers) == 3
    assert answers.cached(1) is None
    assert answers.cached(0) == (0,)


async def test_a_fetch_outlives_a_caller_that_goes_away() -> None:
    """A caller cancelled while waiting (a client that disconnects) does not cancel the fetch for the others."""
    release = asyncio.Event()

    async def slow() -> int:
        await release.wait()
        return 7

    answers: Answers[str, int] = Answers(10, lambda _: 60.0)
    first = asyncio.create_task(answers.get("k", slow))
    second = asyncio.create_task(answers.get("k", slow))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == (7, False)
    assert answers.cached("k") == (7,)


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc.def", "abc.def"), ("bearer  abc ", "abc"), ("BEARER abc", "abc"), ("Basic abc", None),
    ("Bearer", None), ("Bearer ", None), ("", None), (None, None), ("abc", None)])
def test_only_a_bearer_header_carries_a_token(header: str | None, token: str | None) -> None:
    """The scheme in any case, the token trimmed; anything else is no token."""
    assert bearer_token(header) == token


def test_an_identity_is_the_same_key_whatever_order_its_groups_come_in() -> None:
    """Groups and extra are sorted: one identity is one cache key; other groups make another identity."""
    one = Identity.of({"username": "u", "uid": "1", "groups": ["b", "a"], "extra": {"y": ["2"], "x": ["1"]}})
    two = Identity.of({"username": "u", "uid": "1", "groups": ["a", "b"], "extra": {"x": ["1"], "y": ["2"]}})
    other = Identity.of({"username": "u", "uid": "1", "groups": ["a"]})
    assert one == two
    assert hash(one) == hash(two)
    assert one != other
    assert one.spec() == {"user": "u", "uid": "1", "groups": ["a", "b"], "extra": {"x": ["1"], "y": ["2"]}}


def test_what_is_asked_reads_as_kubectl_auth_can_i() -> None:
    """The attributes of a SubjectAccessReview, and how a denial names them."""
    ns = Access(verb="list", group="kustomize.toolkit.fluxcd.io", resource="kustomizations", namespace="team-a")
    assert ns.attributes() == {"resourceAttributes": {"namespace": "team-a", "verb": "list",
                                                      "group": "kustomize.toolkit.fluxcd.io",
                                                      "resource": "kustomizations"}}
    assert str(ns) == "list kustomizations.kustomize.toolkit.fluxcd.io in team-a"
    metrics = Access(verb="get", path="/metrics")
    assert metrics.attributes() == {"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}
    assert str(metrics) == "get /metrics"


def test_bearer_tokens_never_reach_a_network_port_over_plain_http() -> None:
    """--auth=kubernetes on a non-loopback address needs TLS or a TLS-terminating proxy in front; on loopback
    it runs as it is; half a TLS pair is refused."""
    on = AccessSettings(mode="kubernetes")
    with pytest.raises(UserError, match="sends bearer tokens"):
        ServeSettings(access=on)
    ServeSettings(access=on, listen_address="127.0.0.1")
    ServeSettings(access=on, listen_address="::1")
    ServeSettings(access=on, tls=TlsSettings(terminated_upstream=True))
    ServeSettings(access=on, tls=TlsSettings(cert_file=__file__, key_file=__file__))  # type: ignore[arg-type]
    with pytest.raises(UserError, match="go together"):
        TlsSettings(cert_file=__file__)  # type: ignore[arg-type]


def test_auth_flags_build_the_access_settings() -> None:
    """The flags, with their defaults: the delegating authenticator's lifetimes, list on Kustomizations."""
    settings = parse(["--auth=kubernetes", "--listen-address=127.0.0.1", "--auth-token-audiences=a,b",
                      "--auth-allow-cache-ttl=30s", "--auth-namespace-verb=get",
                      "--auth-namespace-resource=helmreleases.helm.toolkit.fluxcd.io"])
    assert isinstance(settings, ServeSettings)
    assert settings.access == AccessSettings(mode="kubernetes", token_audiences=("a", "b"), allow_ttl=30.0,
                                             verb="get", resource="helmreleases", group="helm.toolkit.fluxcd.io")
    assert AccessSettings().mode == "none"
    assert (AccessSettings().token_ttl, AccessSettings().allow_ttl, AccessSettings().deny_ttl) == (10, 20, 10)


def test_a_tenant_is_projected_onto_the_namespaces_its_caller_sees() -> None:
    """All of its namespaces: the tenant itself (the cached document serves); some: a partial roll-up of those
    namespaces' objects, its counts, failures and status theirs; none: hidden."""
    store = Store()
    for ns in ("b1", "b2", "b3"):
        store.upsert_namespace(NamespaceInfo(ns, "beta"))
    store.upsert(parse_object(fleet.kustomization("b1", "web", source=("GitRepository", "shared", "b3")) | {
        "status": fleet.failed_status("ArtifactFailed", "GitRepository 'b3/shared' is not ready")}))
    store.upsert(parse_object(fleet.gitrepository("b2", "repo") | {"status": fleet.ready_status("GitRepository")}))
    store.upsert(parse_object(fleet.gitrepository("b3", "shared") | {"status": fleet.failed_status(
        "GitOperationFailed", "unable to clone 'hidden'")}))
    beta = build_view(store, now=1e9).tenants["beta"]
    assert project(beta, {"b1", "b2", "b3", "other"}) is beta
    assert project(beta, {"other"}) is None
    part = project(beta, {"b1", "b2"})
    assert part is not None
    assert part.partial is True
    assert part.namespaces == ("b1", "b2")
    assert part.counts["total"] == 2
    assert [(r.namespace, r.name) for r in part.failures] == [("b1", "web")]
    assert part.failures[0].root_cause is not None
    assert part.failures[0].root_cause.namespace == "b3"
    assert part.status == "failing"
    only_ready = project(beta, {"b2"})
    assert only_ready is not None
    assert only_ready.status == "healthy"


def test_the_page_of_a_caller_who_sees_nothing_says_which_permission_shows_more() -> None:
    """An empty projection is not an error: the overview says how to see a tenant, counts nothing hidden."""
    store = Store()
    store.upsert_namespace(NamespaceInfo("team-a", "team-a"))
    store.upsert(parse_object(fleet.gitrepository("team-a", "repo") | {"status": fleet.ready_status("GitRepository")}))
    view = build_view(store, now=1e9)
    page = overview(view, Filters(), {}, visible={}, limited=True)
    assert "You can see no tenant" in page
    assert "list Kustomizations" in page
    assert "team-a" not in page
    assert "0 tenants, 0 failing, 0 Flux objects" in page
    assert "You can see no tenant" not in overview(view, Filters(), {})

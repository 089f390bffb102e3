"""Access control on the real API server: real ServiceAccount tokens (TokenRequest), real RoleBindings, and the
exporter running as its own ServiceAccount with exactly the shipped RBAC (the deploy ClusterRole and the
access-control overlay's system:auth-delegator binding).

The fleet: tenant alpha (one namespace), tenant beta (three: b1 holds a Kustomization whose GitRepository is in
b3 and failing, b2 a ready source, b3 the failing root), and the exporter's own namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from contract import check_every_body
from cryptography import x509
from monitoring_stack import eventually, query, spawn

from flux_tenant_exporter.base.config import AccessSettings, TlsSettings
from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.render.documents import tenants_doc
from flux_tenant_exporter.serve.app import Exporter
from testbed import fleet, identities
from testbed.controlplane import ControlPlane, free_port
from testbed.identities import bind, subject
from testbed.running import StartExporter
from testbed.tls import Pki

pytestmark = pytest.mark.apiserver

AUDIENCE = "flux-tenant-exporter"
#: short cache lifetimes, so revocation is observable in a test
ACCESS = AccessSettings(mode="kubernetes", token_audiences=(AUDIENCE,), token_ttl=1.0, allow_ttl=2.0, deny_ttl=1.0)
HIDDEN_MESSAGE = "beta-b3-hidden-detail"
#: kube-apiserver keeps a successful token authentication this long (its own token cache, TokenSuccessCacheTTL)
APISERVER_TOKEN_CACHE = 10.0


@dataclass
class Tenancy:
    """The fleet's names, the exporter's kubeconfig, and the flux-view ClusterRole tenants are bound to."""

    prefix: str
    alpha: str
    beta: str
    a: str
    b1: str
    b2: str
    b3: str
    system: str
    exporter_kubeconfig: Path
    flux_view: str
    metrics_reader: str

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.a, self.b1, self.b2, self.b3, self.system)

    async def identity(self, admin: KubeClient, name: str, *, bindings: tuple[str, ...] = (),
                       cluster_roles: tuple[str, ...] = (), audiences: tuple[str, ...] = (AUDIENCE,)) -> str:
        """A ServiceAccount in the system namespace, bound to flux-view in ``bindings`` and to ``cluster_roles``
        cluster-wide; its token for ``audiences``."""
        await identities.service_account(admin, self.system, name)
        for namespace in bindings:
            await bind(admin, self.flux_view, [subject(self.system, name)], namespace=namespace,
                       name=f"view-{name}")
        for role in cluster_roles:
            await bind(admin, role, [subject(self.system, name)], name=f"{role}-{self.prefix}-{name}")
        return await identities.token(admin, self.system, name, audiences=audiences)


@pytest.fixture
async def tenancy(admin: KubeClient, control_plane: ControlPlane, ns_name: str, tmp_path: Path) -> Tenancy:
    p = ns_name[:48]
    t = Tenancy(prefix=p, alpha=f"{p}-alpha", beta=f"{p}-beta", a=f"{p}-a", b1=f"{p}-b1", b2=f"{p}-b2",
                b3=f"{p}-b3", system=f"{p}-sys", exporter_kubeconfig=Path(), flux_view="fte-test-flux-view",
                metrics_reader="")
    for namespace, tenant in ((t.a, t.alpha), (t.b1, t.beta), (t.b2, t.beta), (t.b3, t.beta), (t.system, None)):
        await fleet.create(admin, fleet.namespace(namespace, tenant))
    await fleet.create(admin, fleet.gitrepository(t.a, "repo"), status=fleet.ready_status("GitRepository"))
    await fleet.create(admin, fleet.kustomization(t.a, "app"), status=fleet.failed_status(
        "BuildFailed", "kustomize build failed: accumulating resources from './': alpha-own-detail"))
    await fleet.create(admin, fleet.gitrepository(t.b3, "shared"), status=fleet.failed_status(
        "GitOperationFailed", f"failed to checkout and determine revision: unable to clone '{HIDDEN_MESSAGE}'"))
    await fleet.create(admin, fleet.kustomization(t.b1, "web", source=("GitRepository", "shared", t.b3)),
                       status=fleet.failed_status("ArtifactFailed", f"GitRepository '{t.b3}/shared' is not ready"))
    await fleet.create(admin, fleet.gitrepository(t.b2, "repo"), status=fleet.ready_status("GitRepository"))
    await identities.cluster_role(admin, t.flux_view, identities.FLUX_VIEW_RULES)
    reader = identities.shipped(identities.ACCESS_CONTROL / "metrics-reader.yaml", "ClusterRole")
    t.metrics_reader = await identities.cluster_role(admin, reader["metadata"]["name"], reader["rules"])
    t.exporter_kubeconfig = await identities.exporter_identity(admin, control_plane, t.system, tmp_path,
                                                               suffix=p)
    return t


@pytest.fixture
async def start(start_exporter: StartExporter, tenancy: Tenancy) -> Callable[..., Awaitable[Exporter]]:
    """An exporter as the exporter's ServiceAccount, watching the fleet's namespaces, with access control on."""

    async def start(**overrides: Any) -> Exporter:
        return await start_exporter(tenancy.exporter_kubeconfig, **{
            "namespaces": tenancy.namespaces, "access": ACCESS, **overrides})

    return start


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def fetch(exporter: Exporter, path: str, token: str | None = None, *, authorization: str | None = None,
                method: str = "GET", scheme: str = "http", ssl: Any = None) -> Answer:
    headers = {"Authorization": authorization or f"Bearer {token}"} if (token or authorization) else {}
    async with aiohttp.ClientSession() as session, session.request(
            method, f"{scheme}://127.0.0.1:{exporter.port}{path}", headers=headers, ssl=ssl) as resp:
        return Answer(resp.status, dict(resp.headers), await resp.read())


def names(answer: Answer) -> list[str]:
    return [t["name"] for t in answer.json()["tenants"]]


async def test_without_a_valid_token_every_private_route_is_401_and_the_probes_stay_open(
        admin: KubeClient, control_plane: ControlPlane, tenancy: Tenancy, start: Callable[..., Awaitable[Exporter]],
        caplog: pytest.LogCaptureFixture) -> None:
    """No token, another scheme, an empty bearer, garbage, an expired token, and a token for the API server's
    audience (the exporter asks for its own): 401 with WWW-Authenticate: Bearer on /tenants, a tenant, the status
    pages and /metrics, never a body. /healthz, /readyz and /openapi.yaml answer without a token."""
    exporter = await start()
    wrong_audience = await tenancy.identity(admin, "apiaudience", bindings=(tenancy.a,), audiences=())
    expired = identities.expired_token(control_plane, tenancy.system, "apiaudience", AUDIENCE)
    attempts: list[dict[str, str | None]] = [
        {}, {"authorization": "Basic YWRtaW46YWRtaW4="}, {"authorization": "Bearer "}, {"token": "garbage"},
        {"token": expired}, {"token": wrong_audience}]
    for path in ("/tenants", f"/tenants/{tenancy.alpha}", "/", f"/tenant/{tenancy.alpha}", "/metrics"):
        for attempt in attempts:
            answer = await fetch(exporter, path, **attempt)  # type: ignore[arg-type]
            assert answer.status == 401, (path, attempt, answer)
            assert answer.headers["WWW-Authenticate"] == 'Bearer realm="flux-tenant-exporter"'
            assert b"data-tenant" not in answer.body
            assert b'"tenants"' not in answer.body
            assert answer.headers["Cache-Control"] == "private, no-store"
    for path in ("/healthz", "/readyz", "/openapi.yaml"):
        assert (await fetch(exporter, path)).status == 200
    assert exporter.metrics.auth_requests.labels("denied").value >= 30
    for token in (expired, wrong_audience):  # no token in any log line, at any level
        assert token not in caplog.text


async def test_a_tenant_sees_its_tenant_only_and_a_hidden_tenant_answers_as_a_missing_one(
        admin: KubeClient, control_plane: ControlPlane, tenancy: Tenancy, start: Callable[..., Awaitable[Exporter]],
        tmp_path: Path) -> None:
    """A ServiceAccount bound to flux-view in alpha's namespace (as `flux create tenant` binds its own): /tenants
    lists alpha alone, exactly as the exporter without access control writes it; /tenants/<beta> and the status
    page of beta are the same 404 as a tenant that does not exist; the overview names no other tenant; `get
    tenants --url --token-file` prints one row; /metrics is 403."""
    exporter = await start()
    token = await tenancy.identity(admin, "alpha-ci", bindings=(tenancy.a,))
    listed = await fetch(exporter, "/tenants", token)
    assert listed.status == 200
    assert names(listed) == [tenancy.alpha]
    unfiltered = tenants_doc(exporter.view)
    assert listed.json()["tenants"] == [t for t in unfiltered["tenants"] if t["name"] == tenancy.alpha]
    assert listed.headers["Cache-Control"] == "private, no-store"
    assert "Authorization" in listed.headers["Vary"]
    alpha = await fetch(exporter, f"/tenants/{tenancy.alpha}", token)
    assert alpha.status == 200
    assert alpha.json()["partial"] is False
    assert {r["name"] for r in alpha.json()["resources"]} == {"repo", "app"}

    hidden = await fetch(exporter, f"/tenants/{tenancy.beta}", token)
    missing = await fetch(exporter, f"/tenants/{tenancy.prefix}-nobody", token)
    assert hidden.status == missing.status == 404
    assert hidden.body.replace(tenancy.beta.encode(), b"X") == missing.body.replace(
        f"{tenancy.prefix}-nobody".encode(), b"X")
    assert {k for k in hidden.headers if k not in {"Date", "Content-Length"}} == {
        k for k in missing.headers if k not in {"Date", "Content-Length"}}
    page_hidden = await fetch(exporter, f"/tenant/{tenancy.beta}", token)
    page_missing = await fetch(exporter, f"/tenant/{tenancy.prefix}-nobody", token)
    assert page_hidden.status == page_missing.status == 404
    assert page_hidden.body.replace(tenancy.beta.encode(), b"X") == page_missing.body.replace(
        f"{tenancy.prefix}-nobody".encode(), b"X")

    overview = (await fetch(exporter, "/", token)).body.decode()
    assert f'data-tenant="{tenancy.alpha}"' in overview
    assert tenancy.beta not in overview
    assert tenancy.system not in overview
    assert "alpha-own-detail" in overview
    assert (await fetch(exporter, "/metrics", token)).status == 403

    # every JSON body, and the refusals, as the spec describes them
    checked, errors = await check_every_body(f"http://127.0.0.1:{exporter.port}", token=token)
    assert errors == []
    assert checked > 10

    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    base = [sys.executable, "-m", "flux_tenant_exporter", "get", "tenants", "--url",
            f"http://127.0.0.1:{exporter.port}"]
    out = await asyncio.to_thread(subprocess.run, [*base, "--token-file", str(token_file)], capture_output=True,
                                  text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 1
    assert rows[0].startswith(tenancy.alpha)
    # no --token: the kubeconfig context's token, sent once the exporter asks for one (as kubectl would)
    kubeconfig = control_plane.token_kubeconfig(token, tmp_path / "tenant.kubeconfig")
    from_kubeconfig = await asyncio.to_thread(subprocess.run, base, capture_output=True, text=True, timeout=60,
                                              check=False, env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(kubeconfig)})
    assert from_kubeconfig.returncode == 0, from_kubeconfig.stderr
    assert [r.split()[0] for r in from_kubeconfig.stdout.splitlines()[1:] if r.strip()] == [tenancy.alpha]
    refused = await asyncio.to_thread(subprocess.run, base, capture_output=True, text=True, timeout=60,
                                      check=False, env={"PATH": "/usr/bin:/bin", "KUBECONFIG": "/nonexistent"})
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1
    assert "needs a bearer token (401)" in refused.stderr
    assert token not in out.stdout + out.stderr


async def test_a_tenant_bound_in_two_of_three_namespaces_sees_a_partial_tenant(
        admin: KubeClient, tenancy: Tenancy, start: Callable[..., Awaitable[Exporter]]) -> None:
    """Bound in b1 and b2 of beta's three namespaces: beta is listed as partial with those two namespaces, counts
    and failures of their objects only; the Kustomization blocked by b3's GitRepository still names its root cause
    and the root's category, but nothing of b3's own status (its message) appears, in JSON or on the page."""
    exporter = await start()
    token = await tenancy.identity(admin, "beta-dev", bindings=(tenancy.b1, tenancy.b2))
    listed = await fetch(exporter, "/tenants", token)
    [beta] = listed.json()["tenants"]
    assert beta["name"] == tenancy.beta
    assert beta["partial"] is True
    assert beta["namespaces"] == [tenancy.b1, tenancy.b2]
    assert beta["counts"]["total"] == 2
    assert beta["counts"]["failing"] == 1
    assert [(f["namespace"], f["name"]) for f in beta["failures"]] == [(tenancy.b1, "web")]
    web = beta["failures"][0]
    assert web["root_cause"] == {"kind": "GitRepository", "namespace": tenancy.b3, "name": "shared"}
    root = next(r for r in exporter.view.resources if (r.namespace, r.name) == (tenancy.b3, "shared"))
    assert root.category is not None
    assert web["root_category"] == root.category
    detail = await fetch(exporter, f"/tenants/{tenancy.beta}", token)
    assert {(r["namespace"], r["name"]) for r in detail.json()["resources"]} == {(tenancy.b1, "web"),
                                                                                 (tenancy.b2, "repo")}
    page = await fetch(exporter, f"/tenant/{tenancy.beta}", token)
    for body in (listed.body, detail.body, page.body):
        assert HIDDEN_MESSAGE.encode() not in body
    assert b"only those you may see" in page.body
    # the same tenant whole, for one who sees all three
    everything = await tenancy.identity(admin, "beta-lead", bindings=(tenancy.b1, tenancy.b2, tenancy.b3))
    whole = (await fetch(exporter, f"/tenants/{tenancy.beta}", everything)).json()
    assert whole["partial"] is False
    assert whole["counts"]["total"] == 3
    assert HIDDEN_MESSAGE in orjson.dumps(whole).decode()


async def test_the_platform_sees_everything_and_metrics_needs_get_on_metrics(
        admin: KubeClient, tenancy: Tenancy, start: Callable[..., Awaitable[Exporter]]) -> None:
    """A ClusterRoleBinding to flux-view: /tenants is the whole document, as without access control, after one
    review for the identity (list in every namespace), then none within the cache lifetime. Scraping needs the
    metrics-reader ClusterRole: a scraper with it gets /metrics (GET and HEAD), the platform without it 403."""
    exporter = await start()
    platform = await tenancy.identity(admin, "platform", cluster_roles=(tenancy.flux_view,))
    scraper = await tenancy.identity(admin, "scraper", cluster_roles=(tenancy.metrics_reader,))
    before = exporter.metrics.reviews.labels("access", "allowed").value
    listed = await fetch(exporter, "/tenants", platform)
    assert listed.json()["tenants"] == tenants_doc(exporter.view)["tenants"]
    assert exporter.metrics.reviews.labels("access", "allowed").value == before + 1
    for _ in range(5):
        await fetch(exporter, "/tenants", platform)
    assert exporter.metrics.reviews.labels("access", "allowed").value == before + 1
    assert (await fetch(exporter, "/metrics", platform)).status == 403
    scrape = await fetch(exporter, "/metrics", scraper)
    assert scrape.status == 200
    assert b"fluxtenant_tenant_status" in scrape.body
    assert b"fluxtenant_exporter_auth_reviews_total" in scrape.body
    assert (await fetch(exporter, "/metrics", scraper, method="HEAD")).status == 200
    assert (await fetch(exporter, "/tenants", scraper)).json()["tenants"] == []


async def poll(check: Callable[[], Awaitable[bool]], limit: float) -> float:
    """Seconds until ``check()`` holds, polling every 50 ms; fails after ``limit``."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > limit:
            pytest.fail(f"not within {limit} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_removed_and_added_bindings_take_effect_within_the_cache_lifetimes(
        admin: KubeClient, tenancy: Tenancy, start: Callable[..., Awaitable[Exporter]]) -> None:
    """Deleting the RoleBinding hides the tenant within the allow lifetime plus a second; creating it again shows
    it within the deny lifetime plus a second; deleting the ServiceAccount refuses its token within the token
    lifetime plus the API server's own token cache plus a second (its bound token is then invalid)."""
    exporter = await start()
    token = await tenancy.identity(admin, "revoked", bindings=(tenancy.a,))
    assert names(await fetch(exporter, "/tenants", token)) == [tenancy.alpha]

    await identities.unbind(admin, "view-revoked", namespace=tenancy.a)

    async def hidden() -> bool:
        return names(await fetch(exporter, "/tenants", token)) == []

    took = await poll(hidden, ACCESS.allow_ttl + 1)
    print(f"hidden {took:.2f} s after the RoleBinding was deleted (allow lifetime {ACCESS.allow_ttl} s)")

    await bind(admin, tenancy.flux_view, [subject(tenancy.system, "revoked")], namespace=tenancy.a,
               name="view-revoked")

    async def shown() -> bool:
        return names(await fetch(exporter, "/tenants", token)) == [tenancy.alpha]

    took = await poll(shown, ACCESS.deny_ttl + 1)
    print(f"shown {took:.2f} s after the RoleBinding was created (deny lifetime {ACCESS.deny_ttl} s)")

    await admin.request("DELETE", f"/api/v1/namespaces/{tenancy.system}/serviceaccounts/revoked")

    async def refused() -> bool:
        return (await fetch(exporter, "/tenants", token)).status == 401

    # the API server keeps a token's authentication for 10 s itself (its token cache), then refuses it
    took = await poll(refused, ACCESS.token_ttl + APISERVER_TOKEN_CACHE + 1)
    print(f"refused {took:.2f} s after the ServiceAccount was deleted (token lifetime {ACCESS.token_ttl} s, "
          f"the API server's own {APISERVER_TOKEN_CACHE:.0f} s)")


async def apiserver_reviews(admin: KubeClient) -> dict[str, float]:
    """The API server's own count of created TokenReviews and SubjectAccessReviews (apiserver_request_total)."""
    text = (await admin.request_bytes("GET", "/metrics")).decode()
    counts = {"tokenreviews": 0.0, "subjectaccessreviews": 0.0}
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{") and 'verb="POST"' in line:
            found = re.search(r'resource="(tokenreviews|subjectaccessreviews)"', line)
            if found:
                counts[found[1]] += float(line.rsplit(" ", 1)[1])
    return counts


async def test_reviews_stay_within_what_the_cache_lifetimes_allow_under_load(
        admin: KubeClient, tenancy: Tenancy, start: Callable[..., Awaitable[Exporter]],
        start_exporter: StartExporter) -> None:
    """50 concurrent clients with 20 identities (tenants of alpha, of part of beta, the platform) read /tenants
    for 30 s at the default lifetimes: the reviews the API server counted stay within one per key per lifetime
    (plus the first), and every answer is right for its caller. Printed: the reviews, and /tenants' p99 with
    access control on against off, measured in the same run on the same fleet."""
    settings = AccessSettings(mode="kubernetes", token_audiences=(AUDIENCE,))
    exporter = await start(access=settings)
    plain = await start_exporter(tenancy.exporter_kubeconfig, namespaces=tenancy.namespaces)
    roles = ([("alpha", (tenancy.a,), ())] * 8 + [("beta", (tenancy.b1, tenancy.b2), ())] * 8
             + [("platform", (), (tenancy.flux_view,))] * 4)
    tokens = []
    for i, (kind, bindings, cluster_roles) in enumerate(roles):
        tokens.append((kind, await tenancy.identity(admin, f"load-{i}", bindings=bindings,
                                                    cluster_roles=cluster_roles)))
    expected = {"alpha": [tenancy.alpha], "beta": [tenancy.beta],
                "platform": [t["name"] for t in tenants_doc(exporter.view)["tenants"]]}
    duration = 30.0
    before = await apiserver_reviews(admin)
    latencies: dict[str, list[float]] = {"on": [], "off": []}
    wrong: list[str] = []

    async def client(i: int, session: aiohttp.ClientSession, deadline: float) -> None:
        kind, token = tokens[i % len(tokens)]
        while time.monotonic() < deadline:
            for mode, target, headers in (("on", exporter, {"Authorization": f"Bearer {token}"}),
                                          ("off", plain, {})):
                started = time.perf_counter()
                async with session.get(f"http://127.0.0.1:{target.port}/tenants", headers=headers) as resp:
                    body = await resp.read()
                latencies[mode].append(time.perf_counter() - started)
                if mode == "on" and [t["name"] for t in orjson.loads(body)["tenants"]] != expected[kind]:
                    wrong.append(kind)

    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        await asyncio.gather(*(client(i, session, started + duration) for i in range(50)))
    elapsed = time.monotonic() - started
    after = await apiserver_reviews(admin)
    assert wrong == []

    def at_most(keys: int, ttl: float) -> int:
        return keys * (math.ceil(elapsed / ttl) + 1)

    namespaces = len({ns for t in exporter.view.tenants.values() for ns in t.namespaces})
    # every identity: one token key, one cluster-wide access key; the non-platform ones one key per namespace
    token_bound = at_most(20, settings.token_ttl)
    access_bound = at_most(20, min(settings.allow_ttl, settings.deny_ttl)) + at_most(
        16 * namespaces, min(settings.allow_ttl, settings.deny_ttl))
    token_reviews = after["tokenreviews"] - before["tokenreviews"]
    access_reviews = after["subjectaccessreviews"] - before["subjectaccessreviews"]

    def p99(values: list[float]) -> float:
        return sorted(values)[int(len(values) * 0.99)] * 1000

    print(f"{len(latencies['on'])} requests with access control in {elapsed:.1f} s: {token_reviews:.0f} "
          f"TokenReviews (at most {token_bound}), {access_reviews:.0f} SubjectAccessReviews (at most "
          f"{access_bound}); /tenants p99 {p99(latencies['on']):.1f} ms with access control, "
          f"{p99(latencies['off']):.1f} ms without")
    assert 0 < token_reviews <= token_bound
    assert 0 < access_reviews <= access_bound


@pytest.fixture
def serving(tmp_path: Path) -> tuple[Pki, Path, Path]:
    pki = Pki.create(tmp_path / "pki")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    pki.issue(cert, key)
    return pki, cert, key


async def test_https_serves_the_certificate_and_reloads_it_when_the_files_change(
        admin: KubeClient, tenancy: Tenancy, start: Callable[..., Awaitable[Exporter]],
        serving: tuple[Pki, Path, Path]) -> None:
    """With --tls-cert-file and --tls-private-key-file the port speaks HTTPS (a client verifying against the CA
    connects; `get --url https://... --certificate-authority` reads it with a token); when the files are replaced
    (as cert-manager renews a Secret) new connections get the new certificate, without a restart; a broken pair
    is logged and the previous certificate keeps serving."""
    pki, cert_file, key_file = serving
    exporter = await start(listen_address="0.0.0.0", tls=TlsSettings(cert_file=cert_file, key_file=key_file,
                                                                      reload_interval=0.1))
    token = await tenancy.identity(admin, "tls-ci", bindings=(tenancy.a,))
    context = ssl.create_default_context(cafile=str(pki.ca_file))

    async def served_serial() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", exporter.port, ssl=context,
                                                       server_hostname="localhost")
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        await writer.wait_closed()
        del reader
        return int(x509.load_der_x509_certificate(der).serial_number)

    first = await served_serial()
    answer = await fetch(exporter, "/tenants", token, scheme="https", ssl=context)
    assert names(answer) == [tenancy.alpha]
    out = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "flux_tenant_exporter", "get", "tenants", "-o", "json", "--url",
        f"https://localhost:{exporter.port}", "--token", token, "--certificate-authority", str(pki.ca_file)],
        capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert [t["name"] for t in orjson.loads(out.stdout)["tenants"]] == [tenancy.alpha]

    renewed = pki.issue(cert_file, key_file)

    async def reloaded() -> bool:
        return await served_serial() == renewed.serial_number

    await poll(reloaded, 10)
    assert renewed.serial_number != first
    certificate = exporter.certificate
    assert certificate is not None
    loads = certificate.loads
    key_file.write_text("not a key")  # a half-written renewal: the previous certificate keeps serving

    async def refused() -> bool:
        return certificate.failures > 0

    await poll(refused, 5)
    assert certificate.loads == loads
    assert await served_serial() == renewed.serial_number


@pytest.mark.prometheus
async def test_a_real_prometheus_scrapes_over_https_with_its_bearer_token(
        admin: KubeClient, tenancy: Tenancy, start: Callable[..., Awaitable[Exporter]],
        serving: tuple[Pki, Path, Path], tmp_path: Path) -> None:
    """Prometheus with `scheme: https`, the CA, and `authorization: credentials_file` (a token of a ServiceAccount
    bound to the shipped metrics-reader ClusterRole) scrapes the exporter: up is 1 and the tenant series arrive.
    The same scrape with a token lacking get /metrics is refused (up 0)."""
    pki, cert_file, key_file = serving
    exporter = await start(tls=TlsSettings(cert_file=cert_file, key_file=key_file))
    (tmp_path / "reader.token").write_text(await tenancy.identity(admin, "prometheus",
                                                                  cluster_roles=(tenancy.metrics_reader,)))
    (tmp_path / "viewer.token").write_text(await tenancy.identity(admin, "not-a-reader", bindings=(tenancy.a,)))
    port = free_port()

    def job(name: str, token: str) -> dict[str, Any]:
        return {"job_name": name, "scheme": "https", "honor_labels": True,
                "tls_config": {"ca_file": str(pki.ca_file), "server_name": "localhost"},
                "authorization": {"type": "Bearer", "credentials_file": str(tmp_path / token)},
                "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}]}

    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [job("reader", "reader.token"), job("viewer", "viewer.token")]}))
    prometheus = spawn(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                        f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                       tmp_path / "prometheus.log")
    stack = SimpleNamespace(prometheus=f"http://127.0.0.1:{port}")
    try:
        async def scraped() -> bool:
            with contextlib.suppress(aiohttp.ClientError, AssertionError):
                up = {r["metric"]["job"]: r["value"][1] for r in await query(stack, "up")}
                series = await query(stack, f'fluxtenant_tenant_resources{{tenant="{tenancy.alpha}"}}')
                return up == {"reader": "1", "viewer": "0"} and bool(series)
            return False

        await eventually(scraped, "Prometheus scraping the HTTPS port with its token", limit=60)
    finally:
        prometheus.terminate()
        prometheus.wait(10)
    assert exporter.metrics.auth_requests.labels("denied").value >= 1

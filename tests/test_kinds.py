"""Every Flux kind, found by discovery: the image, notification and source-watcher kinds with their verdicts, owners
and root causes; Alerts and Providers, which have no status, judged from their references; a Flux-group kind
the exporter does not know, watched and reported generically; the API versions a manifest asks for against those
the cluster serves.

The Go module proxy refuses image-reflector-, image-automation-, notification-controller and source-watcher, so
their statuses here are written from their code (the reasons and message formats of the files named; the CRDs
are the real ones, generated from their API modules). flux-operator's kinds have real statuses
(tests/test_real_operator.py), as OCIRepository and the API-version cases do (tests/test_real_kinds.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from contract import check_every_body

from flux_tenant_exporter.base.config import ReportSettings
from flux_tenant_exporter.base.kinds import FLUX_KINDS, by_kind, discovered_kind, is_flux_group
from flux_tenant_exporter.cli.report import build_report
from flux_tenant_exporter.flux.classify import Verdict, served_versions
from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.kube.discovery import ServedApis, ServedKind, discover
from flux_tenant_exporter.serve.app import Exporter
from testbed import fleet
from testbed.controlplane import ControlPlane
from testbed.running import StartExporter

Obj = dict[str, Any]


def obj(kind: str, namespace: str, name: str, **spec: Any) -> Obj:
    found = by_kind(kind)
    assert found is not None
    return fleet.meta(found, namespace, name, spec=spec)


def ready(reason: str = "Succeeded", message: str = "ok", **status: Any) -> Obj:
    return {"observedGeneration": 1, "conditions": [fleet.condition("Ready", "True", reason, message)], **status}


def failed(reason: str, message: str, *, stalled: bool = False) -> Obj:
    return fleet.failed_status(reason, message, stalled=stalled)


# -- the fast lane: discovery and API versions ----------------------------------------------------------


def test_flux_groups_and_unknown_kinds_by_discovery() -> None:
    """The toolkit's groups, source-watcher's and the operator's are Flux groups; a kind of one the exporter does
    not know gets a generic role by its group, a known one keeps its knowledge."""
    assert all(is_flux_group(k.group) for k in FLUX_KINDS)
    assert not is_flux_group("apps")
    assert not is_flux_group("cert-manager.io")
    assert is_flux_group("future.toolkit.fluxcd.io")
    gizmo = discovered_kind("Gizmo", "future.toolkit.fluxcd.io", "gizmos", ("v1",))
    assert (gizmo.known, gizmo.id, gizmo.role) == (False, "gizmo", "applier")
    assert discovered_kind("Widget", "source.toolkit.fluxcd.io", "widgets", ("v1",)).role == "source"
    assert discovered_kind("ImagePolicy", "image.toolkit.fluxcd.io", "imagepolicies", ("v1",)) is by_kind("ImagePolicy")


def _refused(message: str) -> Verdict:
    return Verdict("failing", "crd_missing", "ReconciliationFailed", message, None, "condition", "False", None, None)


SERVED = ServedApis(
    groups={"helm.toolkit.fluxcd.io": ("v2",), "source.toolkit.fluxcd.io": ("v1",), "cert-manager.io": ("v1",)},
    kinds=(ServedKind("HelmRelease", "helm.toolkit.fluxcd.io", "helmreleases", ("v2",)),
           ServedKind("GitRepository", "source.toolkit.fluxcd.io", "gitrepositories", ("v1",))),
    described=frozenset({"helm.toolkit.fluxcd.io", "source.toolkit.fluxcd.io"}),
)


@pytest.mark.parametrize(("message", "category", "detail"), [
    ('HelmRelease/team-a/web dry-run failed: no matches for kind "HelmRelease" in version '
     '"helm.toolkit.fluxcd.io/v2beta1"', "api_version_not_served",
     "helm.toolkit.fluxcd.io serves HelmRelease at v2, not v2beta1"),
    ('Certificate/team-a/web dry-run failed: no matches for kind "Certificate" in version '
     '"cert-manager.io/v1alpha2"', "api_version_not_served", "cert-manager.io serves Certificate at v1, not v1alpha2"),
    ('Gadget/team-a/one dry-run failed: no matches for kind "Gadget" in version "example.com/v1"',
     "crd_missing", None),
    ('Bucketeer/team-a/x dry-run failed: no matches for kind "Bucketeer" in version "source.toolkit.fluxcd.io/v1beta2"',
     "crd_missing", None),
])
def test_a_manifest_at_a_version_no_longer_served_is_not_a_missing_crd(message: str, category: str,
                                                                        detail: str | None) -> None:
    """A group the cluster serves at other versions: api_version_not_served, the detail naming the served version
    (the kind's own, where the group's kinds are known); a group not served, or a Flux group without that kind:
    crd_missing. Without discovery nothing changes."""
    verdict = served_versions(_refused(message), SERVED)
    assert verdict.category == category
    assert (verdict.detail is None) if detail is None else (detail in (verdict.detail or ""))
    assert served_versions(_refused(message), None).category == "crd_missing"
    if category == "api_version_not_served":  # and back, when the old version is served again (a CRD rollback)
        old = message.split('in version "')[1].split('"', maxsplit=1)[0]
        group, version = old.rsplit("/", 1)
        again = ServedApis({**SERVED.groups, group: (*SERVED.groups[group], version)}, (), frozenset())
        assert served_versions(verdict, again).category == "crd_missing"


# -- on the real API server --------------------------------------------------------------------------------

NS = "kinds-a"
#: (kind, name) -> (state, category, owner, root cause (kind, name) or None)
EXPECTED: dict[tuple[str, str], tuple[str, str | None, str | None, tuple[str, str] | None]] = {
    ("ImageRepository", "app"): ("failing", "source_auth_failed", "tenant", None),
    ("ImagePolicy", "app"): ("failing", "source_not_ready", "tenant", ("ImageRepository", "app")),
    ("ImagePolicy", "orphan"): ("failing", "source_not_found", "tenant", None),
    ("ImageUpdateAutomation", "app"): ("failing", "push_failed", "tenant", None),
    ("Receiver", "github"): ("failing", "reference_not_found", "tenant", None),
    ("Receiver", "ok"): ("ready", None, None, None),
    ("Provider", "slack"): ("ready", None, None, None),
    ("Provider", "commits"): ("failing", "validation_failed", "tenant", None),
    ("Alert", "on-slack"): ("ready", None, None, None),
    ("Alert", "lost"): ("failing", "reference_not_found", "tenant", None),
    ("ArtifactGenerator", "bundle"): ("failing", "build_failed", "tenant", None),
    ("Kustomization", "from-artifact"): ("failing", "source_not_ready", "tenant", ("ArtifactGenerator", "bundle")),
    ("Gizmo", "one"): ("failing", "build_failed", "tenant", None),
}


GIZMO_CRD: Obj = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gizmos.future.toolkit.fluxcd.io"},
    "spec": {"group": "future.toolkit.fluxcd.io", "scope": "Namespaced",
             "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
             "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


async def seed(client: KubeClient) -> None:
    """The kinds' objects with statuses written from their controllers' code (the files named)."""
    await fleet.create(client, fleet.namespace(NS, NS), exist_ok=True)
    # IRC internal/controller/imagerepository_controller.go, scan failure on a registry refusing the credentials
    await fleet.create(client, obj("ImageRepository", NS, "app", image="registry.example.com/team/app",
                                   interval="5m", secretRef={"name": "regcred"}),
                       status=failed("ReadOperationFailed",
                                     "scan failed: GET https://registry.example.com/v2/team/app/tags/list?n=1000: "
                                     "UNAUTHORIZED: authentication required"))
    # IRC imagepolicy_controller.go: its ImageRepository has no tags yet (never scanned), and one that is missing
    await fleet.create(client, obj("ImagePolicy", NS, "app", imageRepositoryRef={"name": "app"},
                                   policy={"semver": {"range": ">=1.0.0"}}),
                       status=failed("DependencyNotReady", "retrying in 30s error: no tags in database"))
    await fleet.create(client, obj("ImagePolicy", NS, "orphan", imageRepositoryRef={"name": "gone"},
                                   policy={"semver": {"range": ">=1.0.0"}}),
                       status=failed("DependencyNotReady", "failed to get the referred ImageRepository: referenced "
                                     'ImageRepository does not exist: imagerepositories.image.toolkit.fluxcd.io "gone" '
                                     "not found"))
    # IAC imageupdateautomation_controller.go + pkg git/gogit/client.go: the push was refused
    await fleet.create(client, fleet.gitrepository(NS, "repo"), status=fleet.ready_status("GitRepository"))
    await fleet.create(client, obj("ImageUpdateAutomation", NS, "app", interval="5m",
                                   sourceRef={"kind": "GitRepository", "name": "repo"},
                                   git={"commit": {"author": {"name": "bot", "email": "bot@example.com"}}},
                                   update={"strategy": "Setters", "path": "./"}),
                       status=failed("GitOperationFailed", "failed to update source: failed to push to remote: "
                                     "command error on refs/heads/main: protected branch hook declined"))
    # NC receiver_controller.go: the token Secret is missing
    await fleet.create(client, obj("Receiver", NS, "github", type="github", secretRef={"name": "webhook-token"},
                                   resources=[{"kind": "GitRepository", "name": "repo"}]),
                       status=failed("TokenNotFound", "unable to read token from secret 'kinds-a/webhook-token' "
                                     'error: secrets "webhook-token" not found'))
    await fleet.create(client, obj("Receiver", NS, "ok", type="generic", secretRef={"name": "token"},
                                   resources=[{"kind": "GitRepository", "name": "repo"}]),
                       status=ready(message="Receiver initialized for path: /hook/0123abcd",
                                    webhookPath="/hook/0123abcd"))
    # Providers and Alerts have no status (NC api/v1beta3): nothing is written
    await fleet.create(client, obj("Provider", NS, "slack", type="slack", secretRef={"name": "slack-url"}))
    await fleet.create(client, obj("Provider", NS, "commits", type="github",
                                   address="https://github.com/team/app"))
    await fleet.create(client, obj("Alert", NS, "on-slack", providerRef={"name": "slack"},
                                   eventSources=[{"kind": "GitRepository", "name": "repo"},
                                                 {"kind": "Kustomization", "name": "*", "matchLabels": {"a": "b"}}]))
    await fleet.create(client, obj("Alert", NS, "lost", providerRef={"name": "teams"},
                                   eventSources=[{"kind": "Kustomization", "name": "nope"}]))
    # SW artifactgenerator_controller.go + internal/builder/builder.go: the build fails; the ExternalArtifact it made
    # earlier has no artifact yet (SW writes it Ready only with one); a Kustomization reads that ExternalArtifact
    await fleet.create(client, obj("ArtifactGenerator", NS, "bundle",
                                   sources=[{"alias": "repo", "kind": "GitRepository", "name": "repo"}],
                                   artifacts=[{"name": "bundle", "copy": [{"from": "@repo/deploy/*",
                                                                           "to": "@artifact/"}]}]),
                       status={"conditions": [fleet.condition("Ready", "False", "BuildFailed", (
                           "bundle build failed: failed to apply copy operations: failed to apply copy operation "
                           "from '@repo/deploy/*' to '@artifact/': no files match pattern 'deploy/*' in source "
                           "'repo'"), generation=1)]})
    await fleet.create(client, obj("ExternalArtifact", NS, "bundle",
                                   sourceRef={"apiVersion": "source.extensions.fluxcd.io/v1beta1",
                                              "kind": "ArtifactGenerator", "name": "bundle"}))
    await fleet.create(client, fleet.kustomization(NS, "from-artifact", source=("ExternalArtifact", "bundle")),
                       status=failed("ArtifactFailed", "ExternalArtifact 'kinds-a/bundle' is not ready"))


async def test_every_kind_gets_its_verdict_owner_and_root_cause(
        admin: KubeClient, control_plane: ControlPlane, start_exporter: StartExporter, tmp_path: Path) -> None:
    """On the real API server with every Flux CRD: each kind's verdict, owner and root cause from the status its
    controller writes (or, for the kinds without one, from its references), an ExternalArtifact passing the blame
    to its generator, and a made-up Flux-group kind (Gizmo) found by discovery after the exporter started, watched
    and classified by its reason like any Flux object; gotk_resource_info carries the monitoring example's labels."""
    await seed(admin)
    crd_file = tmp_path / "gizmo.yaml"
    crd_file.write_text(yaml.safe_dump(GIZMO_CRD))
    exporter = await start_exporter(namespaces=(NS,), gotk_compat=True)
    control_plane.install_crds([crd_file])  # a kind that appears while the exporter runs
    await admin.request("POST", f"/apis/future.toolkit.fluxcd.io/v1/namespaces/{NS}/gizmos", body={
        "apiVersion": "future.toolkit.fluxcd.io/v1", "kind": "Gizmo", "metadata": {"name": "one", "namespace": NS},
        "spec": {}})
    await admin.request("PATCH", f"/apis/future.toolkit.fluxcd.io/v1/namespaces/{NS}/gizmos/one/status",
                        body={"status": failed("BuildFailed", "kustomize build failed: accumulating resources")},
                        content_type="application/merge-patch+json")

    def got(exporter: Exporter) -> dict[tuple[str, str], tuple[Any, ...]]:
        return {(r.kind, r.name): (r.state, r.category, r.owner,
                                   (r.root_cause.kind, r.root_cause.name) if r.root_cause else None)
                for r in exporter.view.resources if r.namespace == NS}

    try:
        await exporter.wait_for(lambda e: all(got(e).get(k) == v for k, v in EXPECTED.items()), timeout=30)
    except TimeoutError:
        pytest.fail(f"not as expected: { {k: got(exporter).get(k) for k in EXPECTED} }")
    assert exporter.kinds["gizmo"].status == "synced"
    lost = next(r for r in exporter.view.resources if (r.kind, r.name) == ("Alert", "lost"))
    assert "Provider kinds-a/teams" in lost.message
    assert "Kustomization kinds-a/nope" in lost.message
    tenant = exporter.view.tenants[NS]
    assert tenant.counts["total"] == len(got(exporter))

    # the Provider appears: the Alert naming it is judged again, and only the missing event source is left
    await fleet.create(admin, obj("Provider", NS, "teams", type="msteams", secretRef={"name": "teams-url"}))
    await exporter.wait_for(lambda e: "Provider" not in next(
        r.message for r in e.view.resources if (r.kind, r.name) == ("Alert", "lost")), timeout=10)

    text = b"".join(exporter.exposition.pieces()).decode()
    gotk = {line for line in text.splitlines() if line.startswith("gotk_resource_info{")}

    def gotk_of(kind: str, name: str) -> str:
        return next(line for line in gotk if f'customresource_kind="{kind}"' in line and f'name="{name}"' in line)

    assert 'source_name="app"' in gotk_of("ImagePolicy", "app")
    assert 'source_name="repo"' in gotk_of("ImageUpdateAutomation", "app")
    assert 'image="registry.example.com/team/app"' in gotk_of("ImageRepository", "app")
    assert 'webhook_path="/hook/0123abcd"' in gotk_of("Receiver", "ok")
    assert "ready=" not in gotk_of("Alert", "on-slack")
    assert 'ready="False"' in gotk_of("Gizmo", "one")

    # the JSON contract holds for every kind's resources (detail, the derived verdicts, an unknown kind)
    checked, errors = await check_every_body(f"http://127.0.0.1:{exporter.port}", tenants=[NS])
    assert errors == []
    assert checked > 10


def test_report_reads_every_flux_kind_of_a_dump_and_judges_alerts_against_what_it_holds() -> None:
    """`report` classifies a Flux-group kind it does not know by its reason, and an Alert whose Provider is not in
    the dump fails only when the dump holds Providers (it cannot tell a missing one from one not dumped)."""
    gizmo = {"apiVersion": "future.toolkit.fluxcd.io/v1", "kind": "Gizmo",
             "metadata": {"name": "one", "namespace": "team-a", "generation": 1},
             "status": failed("BuildFailed", "kustomize build failed: accumulating resources")}
    alert = obj("Alert", "team-a", "ops", providerRef={"name": "teams"})
    slack = obj("Provider", "team-a", "slack", type="slack", secretRef={"name": "url"})

    def verdict(doc: dict[str, Any], kind: str) -> tuple[Any, ...]:
        res = next(r for t in doc["tenants"] for r in t["resources"] if r["kind"] == kind)
        return res["state"], res["category"], res["owner"]

    doc = build_report([gizmo, alert, slack], ReportSettings())
    assert verdict(doc, "Gizmo") == ("failing", "build_failed", "tenant")
    assert verdict(doc, "Alert") == ("failing", "reference_not_found", "tenant")
    assert verdict(build_report([alert], ReportSettings()), "Alert") == ("ready", None, None)


async def test_discovery_reads_the_classic_answer_of_an_api_server_without_aggregated_discovery() -> None:
    """An API server that answers /apis with an APIGroupList (no apidiscovery.k8s.io/v2) is asked per group and
    version, for the chosen groups only; the preferred version comes first; subresources and cluster-scoped
    resources are left out. (The real API server here serves aggregated discovery: tests/test_kinds.py above.)"""
    answers: dict[str, Any] = {
        "/apis": {"kind": "APIGroupList", "groups": [
            {"name": "source.toolkit.fluxcd.io", "preferredVersion": {"version": "v1"},
             "versions": [{"version": "v1beta2"}, {"version": "v1"}]},
            {"name": "apps", "preferredVersion": {"version": "v1"}, "versions": [{"version": "v1"}]}]},
        "/apis/source.toolkit.fluxcd.io/v1": {"resources": [
            {"name": "gitrepositories", "kind": "GitRepository", "namespaced": True},
            {"name": "gitrepositories/status", "kind": "GitRepository", "namespaced": True}]},
        "/apis/source.toolkit.fluxcd.io/v1beta2": {"resources": [
            {"name": "gitrepositories", "kind": "GitRepository", "namespaced": True},
            {"name": "clusterthings", "kind": "ClusterThing", "namespaced": False}]},
    }
    asked: list[str] = []

    class Classic:
        async def request(self, _method: str, path: str, **_: Any) -> Any:
            asked.append(path)
            return answers[path]

    served = await discover(Classic(), is_flux_group)  # type: ignore[arg-type]
    assert served.groups == {"source.toolkit.fluxcd.io": ("v1", "v1beta2"), "apps": ("v1",)}
    assert served.kinds == (
        ServedKind("GitRepository", "source.toolkit.fluxcd.io", "gitrepositories", ("v1", "v1beta2")),)
    assert served.described == frozenset({"source.toolkit.fluxcd.io"})
    assert "/apis/apps/v1" not in asked

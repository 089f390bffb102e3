"""Commands and configuration: settings with env fallbacks, `report`, `demo`, token rotation, golden exposition."""

from __future__ import annotations

import asyncio
import datetime
import io
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from flux_tenant_exporter.base.config import ReportSettings, ServeSettings, WatchSettings
from flux_tenant_exporter.cli.flags import parse_serve
from flux_tenant_exporter.cli.main import main
from flux_tenant_exporter.cli.report import ReportError, build_report, format_table, load_items, run_report
from flux_tenant_exporter.flux.projection import parse_object
from flux_tenant_exporter.kube.client import ApiError, KubeClient
from flux_tenant_exporter.render.prometheus.renderer import Renderer, RenderOptions
from flux_tenant_exporter.serve.app import Exporter
from flux_tenant_exporter.state.store import Store
from flux_tenant_exporter.state.view import build_view
from testbed import fleet
from testbed.controlplane import ControlPlane
from testbed.identities import restricted_identity
from testbed.synthetic import load_synthetic_fleet

# -- settings ---------------------------------------------------------------------------------------


def test_flags_fall_back_to_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every flag has an FTE_* environment fallback; flags win over the environment."""
    monkeypatch.setenv("FTE_PORT", "9999")
    monkeypatch.setenv("FTE_KINDS", "kustomization,helmrelease")
    monkeypatch.setenv("FTE_STUCK_AFTER", "20m")
    monkeypatch.setenv("FTE_NAMESPACES", "a, b")
    settings = parse_serve(["serve", "--port", "1234"])
    assert settings.port == 1234
    assert settings.kinds == ("kustomization", "helmrelease")
    assert settings.thresholds.not_ready == 1200
    assert settings.namespaces == ("a", "b")


def test_bad_flags_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown kind or a bad duration exits with a usage error naming the problem."""
    with pytest.raises(SystemExit) as info:
        parse_serve(["serve", "--kinds", "kustomization,widget"])
    assert info.value.code == 2
    assert "unknown kind(s) widget" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_serve(["serve", "--stuck-after", "soon"])
    assert "is not a duration" in capsys.readouterr().err


# -- report -----------------------------------------------------------------------------------------


async def test_report_of_a_kubectl_dump_matches_the_live_classification(
    admin: KubeClient, namespace: str
) -> None:
    """`report` over `kubectl get ... -o json` output of the real API server gives the same verdicts and root
    causes as the watcher, with every resource listed; YAML input gives the same document."""
    await fleet.create(admin, fleet.gitrepository(namespace, "repo"),
                       status=fleet.failed_status("GitOperationFailed", "authentication required"))
    await fleet.create(admin, fleet.kustomization(namespace, "app"),
                       status=fleet.failed_status("ArtifactFailed", "Source artifact not found, retrying in 30s"))
    items: list[Any] = [await admin.request("GET", f"/api/v1/namespaces/{namespace}")]
    for path in ("/apis/source.toolkit.fluxcd.io/v1/gitrepositories",
                 "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations"):
        items += (await admin.request("GET", path.replace("/v1/", f"/v1/namespaces/{namespace}/")))["items"]
    dump = {"apiVersion": "v1", "kind": "List", "items": items}
    settings = ReportSettings()
    doc = build_report(load_items(orjson.dumps(dump).decode()), settings)
    tenant = next(t for t in doc["tenants"] if t["name"] == namespace)
    app = next(r for r in tenant["resources"] if r["name"] == "app")
    assert app["root_cause"] == {"kind": "GitRepository", "namespace": namespace, "name": "repo"}
    assert app["root_category"] == "source_auth_failed"
    from_yaml = build_report(load_items(yaml.safe_dump(dump)), settings)
    assert [t["name"] for t in from_yaml["tenants"]] == [t["name"] for t in doc["tenants"]]
    table = format_table(doc)
    assert f"Kustomization/{namespace}/app: blocked by GitRepository/{namespace}/repo (source_auth_failed)" in table


def test_report_reads_lists_nested_in_arrays_and_lists_each_item_once() -> None:
    """Lists inside a JSON array and inside Lists (as `kubectl get` output is concatenated), a core list's items
    without a kind, an object that does not decode and one of another kind: every Flux object and namespace is
    read (each item decoded once), the malformed one is named with its place, the others are counted."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a",
                                                                      "labels": {"toolkit.fluxcd.io/tenant": "alpha"}}}
    app = fleet.kustomization("team-a", "app")
    app["status"] = fleet.failed_status("BuildFailed", "kustomize build failed: yaml: line 4")
    repo = fleet.gitrepository("team-a", "repo")
    repo["status"] = fleet.ready_status("GitRepository")
    broken = fleet.kustomization("team-a", "broken")
    broken["status"] = {"conditions": "not a list"}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "team-a"}}
    dump = [{"kind": "List", "items": [namespace, {"kind": "KustomizationList", "metadata": {}, "items": [app]}]},
            [repo, broken], config]
    err = io.StringIO()
    doc = build_report(load_items(orjson.dumps(dump)), ReportSettings(), errors=err)
    assert [t["name"] for t in doc["tenants"]] == ["alpha"]
    assert sorted(r["name"] for r in doc["tenants"][0]["resources"]) == ["app", "repo"]
    lines = err.getvalue().splitlines()
    assert lines[0] == "item 3 (Kustomization): skipped: Expected `array | null`, got `str` - at `$.status.conditions`"
    assert lines[1] == "1 item(s) of other kinds ignored"


def test_report_command_reads_stdin_and_reports_bad_items(tmp_path: Path) -> None:
    """The command prints JSON; an unreadable item is named on stderr and skipped; junk input exits 2."""
    good = fleet.kustomization("team-a", "app")
    good["status"] = fleet.failed_status("BuildFailed", "kustomize build failed: yaml: line 4")
    bad = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "x"}}
    out, err = io.StringIO(), io.StringIO()
    code = run_report(ReportSettings(input="-"),
                      stdin=io.StringIO(orjson.dumps({"items": [good, bad]}).decode()), stdout=out, stderr=err)
    assert code == 0
    doc = orjson.loads(out.getvalue())
    assert doc["tenants"][0]["resources"][0]["category"] == "build_failed"
    assert "item 1 (Kustomization): skipped: metadata.name or metadata.namespace is missing" in err.getvalue()
    junk = tmp_path / "junk.txt"
    junk.write_text("{{{ not: [valid")
    with pytest.raises(ReportError, match="neither JSON nor YAML"):  # the CLI turns it into one line, exit 2
        run_report(ReportSettings(input=str(junk)), stdout=io.StringIO(), stderr=io.StringIO())


def test_report_entry_point_with_table_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`flux-tenant-exporter report --input FILE --format table` prints one line per tenant."""
    obj = fleet.helmrelease("team-c", "api")
    obj["status"] = fleet.failed_status("UpgradeFailed", "upgrade retries exhausted", stalled=True)
    path = tmp_path / "dump.yaml"
    path.write_text(yaml.safe_dump({"kind": "List", "items": [obj]}))
    # (the tests' logging stays as it is)
    assert main(["report", "--input", str(path), "--format", "table", "--log-format", "json"],
                configure=lambda **_: None) == 0
    output = capsys.readouterr().out
    assert "team-c" in output
    assert "helm_release_failed (owner: tenant)" in output
    assert "STUCK" in output


# -- token rotation ---------------------------------------------------------------------------------


async def test_a_rotated_token_file_is_used_without_restart(
    admin: KubeClient, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """In-cluster mode re-reads the service-account token file when it changes: a revoked token fails with
    401, and the rotated one works at once."""
    rules = [{"apiGroups": ["kustomize.toolkit.fluxcd.io"], "resources": ["kustomizations"], "verbs": ["list"]}]
    await restricted_identity(admin, control_plane, namespace, rules, tmp_path)
    token_file = tmp_path / "token"
    path = f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{namespace}/kustomizations"

    async def mint() -> str:
        answer = await admin.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/restricted/token",
                                     body={"spec": {"expirationSeconds": 3600}})
        return str(answer["status"]["token"])

    token_file.write_text(await mint())
    client = KubeClient.in_cluster(token_file=token_file, ca_file=control_plane.ca_file, host=control_plane.server)
    try:
        assert (await client.request("GET", path))["items"] == []
        token_file.write_text("not-a-valid-token-at-all")
        with pytest.raises(ApiError) as info:
            await client.request("GET", path)
        assert info.value.status == 401
        token_file.write_text(await mint())
        assert (await client.request("GET", path))["items"] == []
    finally:
        await client.close()


# -- demo -------------------------------------------------------------------------------------------


async def test_demo_fleet_shows_every_failure_category(control_plane: ControlPlane) -> None:
    """The demo fleet loads into the real API server and the exporter reports each failure category, a
    dependency chain, stuck roots, policy violations, a progressing and a suspended object."""
    admin = await KubeClient.from_kubeconfig(control_plane.kubeconfig)
    try:
        await load_synthetic_fleet(admin)
    finally:
        await admin.close()
    settings = ServeSettings(listen_address="127.0.0.1", port=0, publish_interval=0.01,
                        namespaces=("flux-system", "team-a", "team-a-web", "team-b", "team-c", "team-d"),
                        watch=WatchSettings(backoff_initial=0.05))
    exporter = Exporter(settings, await KubeClient.from_kubeconfig(control_plane.kubeconfig))
    stop = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(exporter.run(stop))
    try:
        await exporter.wait_for(lambda e: e.ready())
        assert time.monotonic() - started < 10
        view = exporter.view
    finally:
        stop.set()
        await task
    categories = {r.category for r in view.resources}
    expected = {
        "cluster_scoped_in_tenant", "cross_namespace_ref_denied", "rbac_forbidden", "source_not_found",
        "source_not_ready", "dependency_not_ready", "crd_missing", "webhook_failed", "validation_failed",
        "health_check_failed", "build_failed", "decryption_failed", "source_auth_failed", "source_ref_not_found",
        "source_unreachable", "chart_failed", "helm_release_failed", "suspended", "progressing",
    }
    assert expected <= categories
    web = next(r for r in view.resources if (r.namespace, r.name) == ("team-a", "web"))
    assert web.root_cause is not None
    assert web.root_cause.name == "namespaces"
    assert view.tenants["team-d"].status == "healthy"
    assert view.tenants["team-a"].status == "failing"
    assert any(v.rule == "missing_service_account" for v in view.tenants["team-c"].violations)


# -- exposition -------------------------------------------------------------------------------------

GOLDEN_DIR = Path(__file__).parent / "data" / "golden"
_WHEN = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _golden_blocked_kustomization() -> list[dict[str, Any]]:
    """A source that cannot authenticate (credentials in its URL) and the Kustomization it blocks."""
    repo = fleet.gitrepository("team-a", "repo", url="https://bot:token@git.example.com/app")
    repo["status"] = fleet.failed_status("GitOperationFailed", "authentication required", since=_WHEN)
    app = fleet.kustomization("team-a", "app")
    app["status"] = fleet.failed_status("ArtifactFailed", "Source artifact not found, retrying in 30s", since=_WHEN)
    return [repo, app]


def _golden_drift_and_policy() -> list[dict[str, Any]]:
    """A healthy Kustomization that has not applied its source's new artifact, applies with the controller's
    account into another tenant's namespace, and a suspended HelmRelease."""
    repo = fleet.gitrepository("team-b", "repo")
    repo["status"] = fleet.ready_status("GitRepository", rev="main@sha1:2", since=_WHEN)
    app = fleet.kustomization("team-b", "app", service_account=None, target_namespace="team-c")
    app["status"] = fleet.ready_status("Kustomization", rev="main@sha1:1", since=_WHEN,
                                       inventory_entries=[("", "reader", "rbac.authorization.k8s.io", "ClusterRole")])
    release = fleet.helmrelease("team-b", "cache", suspend=True)
    release["status"] = fleet.ready_status("HelmRelease", since=_WHEN)
    return [repo, app, release]


GOLDEN_CASES = {"blocked_kustomization": _golden_blocked_kustomization, "drift_and_policy": _golden_drift_and_policy}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_exposition(case: str, store: Store) -> None:
    """The whole exposition of each case is exactly its golden text, compared as sorted lines (as
    kube-state-metrics' compareOutput does); an unchanged object is not rendered again on the next publish.
    `FTE_UPDATE_GOLDEN=1` rewrites the golden files from the code (review the diff)."""
    objects = GOLDEN_CASES[case]()
    for raw in objects:
        raw["metadata"]["generation"] = 1
        store.upsert(parse_object(raw))
    renderer = Renderer()
    body = renderer.render(build_view(store, now=time.time())).body.decode()
    golden = GOLDEN_DIR / f"{case}.prom"
    if os.environ.get("FTE_UPDATE_GOLDEN"):
        golden.write_text(body)
    assert sorted(body.splitlines()) == sorted(golden.read_text().splitlines())
    assert renderer.rendered_objects == len(objects)
    renderer.render(build_view(store, now=time.time()))
    assert renderer.rendered_objects == len(objects)


def test_gotk_resource_info_uses_the_flux_kube_state_metrics_label_set(store: Store) -> None:
    """--gotk-resource-info adds gotk_resource_info with the labels the official Flux dashboards query."""
    raw = fleet.kustomization("apps", "podinfo")
    raw["metadata"]["generation"] = 1
    raw["status"] = fleet.ready_status("Kustomization", rev="main@sha1:abc")
    store.upsert(parse_object(raw))
    body = Renderer(RenderOptions(gotk_compat=True)).render(build_view(store, now=time.time())).body.decode()
    assert ('gotk_resource_info{customresource_group="kustomize.toolkit.fluxcd.io",customresource_kind='
            '"Kustomization",customresource_version="v1",exported_namespace="apps",name="podinfo",ready="True",'
            'suspended="false",revision="main@sha1:abc",source_name="repo"} 1') in body
    assert "gotk_resource_info" not in Renderer().render(build_view(store, now=time.time())).body.decode()


def test_kubeconfig_reading_without_kubernetes_asyncio(tmp_path: Path) -> None:
    """Tokens, token files (re-read on rotation) and KUBECONFIG lists are read directly; exec plugins go to
    kubernetes-asyncio; a missing context is a clear error."""
    from flux_tenant_exporter.kube import kubeconfig  # noqa: PLC0415

    (tmp_path / "token").write_text("from-file")
    first = {"apiVersion": "v1", "kind": "Config", "current-context": "a",
             "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443/",
                                                     "insecure-skip-tls-verify": True}}],
             "users": [{"name": "u", "user": {"tokenFile": "token"}}],
             "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}]}
    second = {"contexts": [{"name": "b", "context": {"cluster": "c", "user": "x"}}],
              "users": [{"name": "x", "user": {"exec": {"command": "aws"}}}]}
    (tmp_path / "one").write_text(yaml.safe_dump(first))
    (tmp_path / "two").write_text(yaml.safe_dump(second))
    conn = kubeconfig.load(tmp_path / "one")
    assert conn is not None
    assert conn.host == "https://127.0.0.1:6443"
    assert conn.token_file == tmp_path / "token"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBECONFIG", f"{tmp_path / 'one'}:{tmp_path / 'two'}")
        assert kubeconfig.load(None, "b") is None  # exec plugin: kubernetes-asyncio's job
        with pytest.raises(kubeconfig.KubeconfigError, match="context 'nope' not found"):
            kubeconfig.load(None, "nope")

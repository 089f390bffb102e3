"""Tenant failure scenarios for the real Flux controllers, and what the exporter must say about each.

Every case runs in its own tenant namespace (made as ``flux create tenant`` does), with
``serviceAccountName`` and ``targetNamespace`` as in the Flux multi-tenancy guides unless the case is about
their absence. ``setup`` pushes the tenant's repository to the local Git server (or charts to the Helm
repository) and creates the Flux objects; ``expect`` is the settled condition the controller writes and the
exporter's verdict on it. The tests (tests/test_real_flux.py) and the corpus recorder (testbed.corpus) share
this table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flux_tenant_exporter.kube.client import KubeClient
from testbed import scenario
from testbed.controllers import create_tenant
from testbed.controlplane import free_port
from testbed.realflux import GIT_CREDENTIALS, RealFlux

Obj = dict[str, Any]

#: Cases needing a second tenant name it ``<namespace>-<suffix>``.
AUX_NAMESPACE_SUFFIXES = ("other", "src")


@dataclass(frozen=True)
class Expect:
    """The object a case is about, the condition the controller settles on, and the exporter's verdict."""

    kind: str
    name: str
    #: the settled Ready condition: reason and a stable substring of its message
    reason: str
    message: str
    category: str
    owner: str | None
    #: (kind, name) of the root cause in the same namespace, or None when the object is its own root
    root: tuple[str, str] | None = None
    root_category: str | None = None
    #: the Ready status the case settles on (False for failures, True for the good ones)
    status: str = "False"


@dataclass(frozen=True)
class Case:
    """One scenario: its id (also the tenant and namespace: ``rf-<id>``) and how to set it up."""

    id: str
    setup: Callable[[KubeClient, RealFlux, str], Awaitable[None]]
    expect: Expect

    @property
    def namespace(self) -> str:
        """The tenant's namespace (and the tenant's name)."""
        return f"rf-{self.id}"


def _cm(name: str, namespace: str | None = None, **data: str) -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    body = "".join(f"\n  {k}: {v!r}" for k, v in (data or {"k": "v"}).items())
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{ns}\ndata:{body}\n"


async def git_app(
    client: KubeClient,
    env: RealFlux,
    ns: str,
    files: Mapping[str, str],
    *,
    name: str = "app",
    path: str = "./deploy",
    service_account: str | None = "",
    target_namespace: str | None = "",
    **ks: Any,
) -> None:
    """Push ``files`` to ``<ns>/<name>``, create GitRepository ``name`` and Kustomization ``name`` for it."""
    env.git.push(f"{ns}/{name}", files)
    await scenario.apply(client, scenario.git_repository(ns, name, env.git.url(f"{ns}/{name}")))
    await scenario.apply(client, scenario.kustomization(
        ns, name, source=("GitRepository", name), path=path,
        service_account=ns if service_account == "" else service_account,
        target_namespace=ns if target_namespace == "" else target_namespace, **ks))


# -- Kustomization cases ------------------------------------------------------------------------


async def _cluster_role(client: KubeClient, env: RealFlux, ns: str) -> None:
    role = ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: tenant-reader\n"
            "rules:\n- apiGroups: ['']\n  resources: ['pods']\n  verbs: ['get']\n")
    await git_app(client, env, ns, {"deploy/role.yaml": role, "deploy/cm.yaml": _cm("settings")})


async def _namespace(client: KubeClient, env: RealFlux, ns: str) -> None:
    await git_app(client, env, ns, {"deploy/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: extra\n"},
                   target_namespace=None)


async def _crd(client: KubeClient, env: RealFlux, ns: str) -> None:
    crd = (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n"
        "  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n"
        "  names: {plural: widgets, singular: widget, kind: Widget}\n"
        "  versions:\n  - name: v1\n    served: true\n    storage: true\n"
        "    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n"
    )
    await git_app(client, env, ns, {"deploy/crd.yaml": crd})


async def _other_namespace(client: KubeClient, env: RealFlux, ns: str) -> None:
    await create_tenant(client, f"{ns}-other")
    await git_app(client, env, ns, {"deploy/cm.yaml": _cm("intruder", f"{ns}-other")}, target_namespace=None)


async def _cross_namespace_source(client: KubeClient, env: RealFlux, ns: str) -> None:
    other = await create_tenant(client, f"{ns}-src")
    env.git.push(f"{other}/shared", {"deploy/cm.yaml": _cm("settings")})
    await scenario.apply(client, scenario.git_repository(other, "shared", env.git.url(f"{other}/shared")))
    await scenario.apply(client, scenario.kustomization(
        ns, "app", source=("GitRepository", "shared", other), path="./deploy", service_account=ns,
        target_namespace=ns))


async def _missing_source(client: KubeClient, _env: RealFlux, ns: str) -> None:
    await scenario.apply(client, scenario.kustomization(
        ns, "app", source=("GitRepository", "nowhere"), path="./deploy", service_account=ns, target_namespace=ns))


async def _missing_path(client: KubeClient, env: RealFlux, ns: str) -> None:
    await git_app(client, env, ns, {"deploy/cm.yaml": _cm("settings")}, path="./no-such-dir")


async def _git_source(client: KubeClient, ns: str, url: str, *, secret: Obj | None = None,
                      branch: str = "main") -> None:
    if secret is not None:
        await scenario.apply(client, secret)
    await scenario.apply(client, scenario.git_repository(
        ns, "app", url, branch=branch, secret=secret["metadata"]["name"] if secret else None))
    await scenario.apply(client, scenario.kustomization(
        ns, "app", source=("GitRepository", "app"), path="./deploy", service_account=ns, target_namespace=ns))


async def _wrong_branch(client: KubeClient, env: RealFlux, ns: str) -> None:
    env.git.push(f"{ns}/app", {"deploy/cm.yaml": _cm("settings")})
    await _git_source(client, ns, env.git.url(f"{ns}/app"), branch="release")


async def _missing_repository(client: KubeClient, env: RealFlux, ns: str) -> None:
    await _git_source(client, ns, env.git.url(f"{ns}/never-pushed"))


async def _unreachable(client: KubeClient, _env: RealFlux, ns: str) -> None:
    await _git_source(client, ns, f"http://127.0.0.1:{free_port()}/{ns}/app.git")


async def _wrong_credentials(client: KubeClient, env: RealFlux, ns: str) -> None:
    env.git_private.push(f"{ns}/app", {"deploy/cm.yaml": _cm("settings")})
    secret = scenario.basic_auth_secret(ns, "git-auth", GIT_CREDENTIALS[0], "not-the-password")
    await _git_source(client, ns, env.git_private.url(f"{ns}/app"), secret=secret)


async def _build_error(client: KubeClient, env: RealFlux, ns: str) -> None:
    kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- missing.yaml\n"
    await git_app(client, env, ns, {"deploy/kustomization.yaml": kustomization, "deploy/cm.yaml": _cm("settings")})


async def _bad_yaml(client: KubeClient, env: RealFlux, ns: str) -> None:
    await git_app(client, env, ns, {"deploy/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n"})


#: A Secret as `sops --encrypt` leaves it (made-up ciphertext: no key decrypts it). It uses `data`: KC v1.9.5
#: normalises a Secret's `stringData` into `data` and drops the `sops` field before its encrypted-Secret check,
#: so a stringData one is applied with the ciphertext as its value and the Kustomization reads Ready=True.
SOPS_ENCRYPTED_MANIFEST = """apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
data:
  password: ENC[AES256_GCM,data:3f4=,iv:aGVsbG8=,tag:dGFn,type:str]
sops:
  age:
  - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
    enc: |
      -----BEGIN AGE ENCRYPTED FILE-----
      YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBsb3JlbQ==
      -----END AGE ENCRYPTED FILE-----
  lastmodified: "2026-01-01T00:00:00Z"
  mac: ENC[AES256_GCM,data:bWFj,iv:aXY=,tag:dGFn,type:str]
  encrypted_regex: ^(data|stringData)$
  version: 3.9.0
"""


async def _sops(client: KubeClient, env: RealFlux, ns: str) -> None:
    await git_app(client, env, ns, {"deploy/secret.yaml": SOPS_ENCRYPTED_MANIFEST})


async def _crd_missing(client: KubeClient, env: RealFlux, ns: str) -> None:
    widget = "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: one\nspec: {}\n"
    await git_app(client, env, ns, {"deploy/gadget.yaml": widget})


async def _webhook(client: KubeClient, env: RealFlux, ns: str) -> None:
    """The platform's admission webhook for ConfigMaps in this namespace points at a port nobody listens on."""
    webhook = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": f"{ns}-policy"},
        "webhooks": [{
            "name": "policy.platform.example.com",
            "clientConfig": {"url": f"https://127.0.0.1:{free_port()}/validate"},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                       "resources": ["configmaps"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 2,
        }],
    }
    await client.request("POST", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", body=webhook)
    await git_app(client, env, ns, {"deploy/cm.yaml": _cm("settings")})


async def _invalid_field(client: KubeClient, env: RealFlux, ns: str) -> None:
    svc = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 99999\n"
           "  selector: {app: web}\n")
    await git_app(client, env, ns, {"deploy/svc.yaml": svc})


async def _no_rights(client: KubeClient, env: RealFlux, ns: str) -> None:
    await client.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", body={"metadata": {"name": "nobody"}})
    await git_app(client, env, ns, {"deploy/cm.yaml": _cm("settings")}, service_account="nobody")


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.invalid/web:1.0
"""


async def _wait_deployment(client: KubeClient, env: RealFlux, ns: str) -> None:
    await git_app(client, env, ns, {"deploy/deploy.yaml": DEPLOYMENT}, wait=True, timeout="15s")


async def _depends_on_failing(client: KubeClient, env: RealFlux, ns: str) -> None:
    await git_app(client, env, ns, {"deploy/cm.yaml": _cm("settings"), "broken/cm.yaml": "a: [\n"},
                   name="base", path="./broken")
    await scenario.apply(client, scenario.kustomization(
        ns, "app", source=("GitRepository", "base"), path="./deploy", service_account=ns, target_namespace=ns,
        depends_on=["base"]))


# -- HelmRelease cases ----------------------------------------------------------------------------


async def _helm(client: KubeClient, env: RealFlux, ns: str, templates: Mapping[str, str], *,
                want: str | None = None, **chart_kw: Any) -> None:
    chart, version = f"{ns}-chart", "1.0.0"
    env.helm.add_chart(chart, version, templates, **chart_kw)
    await scenario.apply(client, scenario.helm_repository(ns, "charts", env.helm.url))
    await scenario.apply(client, scenario.helm_release(
        ns, "web", chart=chart, version=want or version, repository="charts", service_account=ns,
        target_namespace=ns))


_CM_TEMPLATE = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  k: v\n"


async def _helm_good(client: KubeClient, env: RealFlux, ns: str) -> None:
    await _helm(client, env, ns, {"cm.yaml": _CM_TEMPLATE})


async def _helm_cluster_role(client: KubeClient, env: RealFlux, ns: str) -> None:
    role = ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {{ .Release.Name }}-r\n"
            "rules: []\n")
    await _helm(client, env, ns, {"role.yaml": role, "cm.yaml": _CM_TEMPLATE})


async def _helm_missing_version(client: KubeClient, env: RealFlux, ns: str) -> None:
    await _helm(client, env, ns, {"cm.yaml": _CM_TEMPLATE}, want="9.9.9")


async def _helm_render_error(client: KubeClient, env: RealFlux, ns: str) -> None:
    bad = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n"
           '  colour: {{ required "colour is required" .Values.colour }}\n')
    await _helm(client, env, ns, {"cm.yaml": bad})


async def _helm_values_error(client: KubeClient, env: RealFlux, ns: str) -> None:
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
              "properties": {"replicas": {"type": "integer"}}, "required": ["replicas"]}
    await _helm(client, env, ns, {"cm.yaml": _CM_TEMPLATE}, values={"replicas": "two"},
                values_schema=schema)


CASES: tuple[Case, ...] = (
    Case("cluster-role", _cluster_role, Expect(
        "Kustomization", "app", "ReconciliationFailed",
        'ClusterRole/tenant-reader dry-run failed (Forbidden): clusterroles.rbac.authorization.k8s.io "tenant-reader"'
        ' is forbidden', "cluster_scoped_in_tenant", "tenant")),
    Case("namespace", _namespace, Expect(
        "Kustomization", "app", "ReconciliationFailed", 'Namespace/extra dry-run failed (Forbidden): namespaces "extra"'
        ' is forbidden', "cluster_scoped_in_tenant", "tenant")),
    Case("crd", _crd, Expect(
        "Kustomization", "app", "ReconciliationFailed",
        "CustomResourceDefinition/widgets.example.com dry-run failed (Forbidden)", "cluster_scoped_in_tenant",
        "tenant")),
    Case("other-namespace", _other_namespace, Expect(
        "Kustomization", "app", "ReconciliationFailed", 'cannot patch resource "configmaps" in API group "" in the '
        'namespace "rf-other-namespace-other"', "rbac_forbidden", "tenant")),
    Case("cross-ns-source", _cross_namespace_source, Expect(
        "Kustomization", "app", "AccessDenied", "cross-namespace references have been blocked",
        "cross_namespace_ref_denied", "tenant")),
    Case("missing-source", _missing_source, Expect(
        "Kustomization", "app", "ArtifactFailed", 'GitRepository.source.toolkit.fluxcd.io "nowhere" not found',
        "source_not_found", "tenant")),
    Case("missing-path", _missing_path, Expect(
        "Kustomization", "app", "ArtifactFailed", "kustomization path not found", "build_failed", "tenant")),
    Case("wrong-branch", _wrong_branch, Expect(
        "Kustomization", "app", "ArtifactFailed", "Source artifact not found", "source_not_ready", "tenant",
        ("GitRepository", "app"), "source_ref_not_found")),
    Case("missing-repo", _missing_repository, Expect(
        "GitRepository", "app", "GitOperationFailed", "repository not found", "source_ref_not_found", "tenant")),
    Case("unreachable", _unreachable, Expect(
        "GitRepository", "app", "GitOperationFailed", "connect: connection refused", "source_unreachable", "platform")),
    Case("wrong-credentials", _wrong_credentials, Expect(
        "GitRepository", "app", "GitOperationFailed", "authentication required", "source_auth_failed", "tenant")),
    Case("build-error", _build_error, Expect(
        "Kustomization", "app", "BuildFailed", "accumulating resources", "build_failed", "tenant")),
    Case("bad-yaml", _bad_yaml, Expect(
        "Kustomization", "app", "BuildFailed", "yaml: line", "build_failed", "tenant")),
    Case("sops", _sops, Expect(
        "Kustomization", "app", "ReconciliationFailed", "is SOPS encrypted, configuring decryption is required",
        "decryption_failed", "tenant")),
    Case("crd-missing", _crd_missing, Expect(
        "Kustomization", "app", "ReconciliationFailed", 'no matches for kind "Gadget"', "crd_missing", "platform")),
    Case("webhook", _webhook, Expect(
        "Kustomization", "app", "ReconciliationFailed", "failed calling webhook", "webhook_failed", "platform")),
    Case("invalid-field", _invalid_field, Expect(
        "Kustomization", "app", "ReconciliationFailed", "Invalid value", "validation_failed", "tenant")),
    Case("no-rights", _no_rights, Expect(
        "Kustomization", "app", "ReconciliationFailed",
        'User "system:serviceaccount:rf-no-rights:nobody" cannot patch resource "configmaps"', "rbac_forbidden",
        "tenant")),
    Case("wait-deployment", _wait_deployment, Expect(
        "Kustomization", "app", "HealthCheckFailed", "Deployment/rf-wait-deployment/web", "health_check_failed",
        "tenant")),
    Case("depends-on-failing", _depends_on_failing, Expect(
        "Kustomization", "app", "DependencyNotReady", "dependency 'rf-depends-on-failing/base' is not ready",
        "dependency_not_ready", "tenant", ("Kustomization", "base"), "build_failed")),
    Case("helm-good", _helm_good, Expect(
        "HelmRelease", "web", "InstallSucceeded", "Helm install succeeded", "", None, status="True")),
    Case("helm-cluster-role", _helm_cluster_role, Expect(
        "HelmRelease", "web", "InstallFailed",
        'could not get information about the resource ClusterRole "rf-helm-cluster-role-web-r"',
        "cluster_scoped_in_tenant", "tenant")),
    Case("helm-missing-version", _helm_missing_version, Expect(
        "HelmChart", "rf-helm-missing-version-web", "", "9.9.9", "chart_failed", "tenant")),
    Case("helm-missing-version-hr", _helm_missing_version, Expect(
        "HelmRelease", "web", "SourceNotReady", "is not ready: invalid chart reference", "source_not_ready", "tenant",
        ("HelmChart", "rf-helm-missing-version-hr-web"), "chart_failed")),
    Case("helm-render-error", _helm_render_error, Expect(
        "HelmRelease", "web", "InstallFailed", "colour is required", "helm_release_failed", "tenant")),
    Case("helm-values-error", _helm_values_error, Expect(
        "HelmRelease", "web", "InstallFailed", "values don't meet the specifications", "validation_failed", "tenant")),
)

BY_ID: Mapping[str, Case] = {c.id: c for c in CASES}


async def set_up(client: KubeClient, env: RealFlux, case: Case) -> None:
    """Make the case's tenant and run its setup."""
    await create_tenant(client, case.namespace)
    await case.setup(client, env, case.namespace)


def settled(case: Case) -> Callable[[Obj], bool]:
    """A predicate: the case's object shows its settled Ready condition."""
    exp = case.expect

    def check(obj: Obj) -> bool:
        cond = scenario.condition(obj, "Ready")
        if exp.status == "True" and not scenario.is_ready(obj):
            return False
        return (cond is not None and cond.get("status") == exp.status
                and (not exp.reason or cond.get("reason") == exp.reason) and exp.message in (cond.get("message") or ""))

    return check


def subject(case: Case) -> Obj:
    """A reference object (kind, namespace, name) for waiting on the case's object."""
    from testbed.fleet import by_kind_strict, meta  # noqa: PLC0415

    return meta(by_kind_strict(case.expect.kind), case.namespace, case.expect.name)

"""The demo's multi-tenant fleet on the real Flux controllers: a platform repo and one Git repo per tenant.

``seed`` creates the tenants as ``flux create tenant`` does, pushes each repository to the local Git server,
creates the Flux objects (short intervals, so a pushed fix is picked up within ``GIT_INTERVAL``) and clones a
working copy of every repository a user may fix. The manifests make the controllers produce real failures:

- ``team-a``: a ClusterRole in tenant manifests (``rbac``) and a Kustomization that depends on it (``web``), a
  good HelmRelease. One fix (drop the ClusterRole) makes the tenant healthy.
- ``team-b``: wrong Git credentials, a wrong branch, a CRD that is not installed, a cross-namespace
  sourceRef, and a HelmRelease blocked by its chart (a version the Helm repository does not have).
- ``team-c``: a health check that times out (no kubelet), a SOPS file without decryption, a kustomize build
  error, an invalid field, a service account without rights, a missing source, an unreachable Git host, a
  chart that fails to render, the platform's webhook pointing at a closed port, a progressing and a suspended
  Kustomization.
- ``team-d``: healthy.
- ``flux-system`` (the platform): its ``infrastructure`` Kustomization applies the broken webhook.
- ``synthetic``: OCIRepository and Bucket failures with hand-written statuses (testbed.synthetic).

``EXPECTED`` lists the category the exporter must settle on for every object.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from flux_tenant_exporter.kube.client import ApiError, KubeClient
from testbed import scenario
from testbed.controllers import create_tenant
from testbed.controlplane import free_port
from testbed.gitserver import GIT, GitServer
from testbed.realflux import GIT_CREDENTIALS, RealFlux
from testbed.synthetic import load_shard_fleet

Obj = dict[str, Any]

PLATFORM_NS: Final = "flux-system"
PLATFORM_SA: Final = "flux-platform"
#: A team-b service account the platform bound to cluster-admin cluster-wide (a mistake the exporter flags).
TEAM_B_ADMIN: Final = "team-b-admin"
SYNTHETIC_NS: Final = "synthetic"
TENANTS: Final = ("team-a", "team-b", "team-c", "team-d")
#: How often the demo's GitRepositories poll: a pushed fix is fetched within this.
GIT_INTERVAL: Final = "5s"

#: (namespace, kind, name) -> the categories the exporter settles on ("" = ready).
EXPECTED: Final[Mapping[tuple[str, str, str], frozenset[str]]] = {key: frozenset(value.split("|")) for key, value in {
    (PLATFORM_NS, "GitRepository", "platform"): "",
    (PLATFORM_NS, "Kustomization", "infrastructure"): "",
    ("team-a", "GitRepository", "apps"): "",
    ("team-a", "Kustomization", "rbac"): "cluster_scoped_in_tenant",
    ("team-a", "Kustomization", "web"): "dependency_not_ready",
    ("team-a", "HelmRelease", "cache"): "",
    ("team-b", "GitRepository", "deploy"): "source_auth_failed",
    ("team-b", "Kustomization", "deploy"): "source_not_ready",
    ("team-b", "GitRepository", "config"): "source_ref_not_found",
    ("team-b", "Kustomization", "config"): "source_not_ready",
    ("team-b", "GitRepository", "apps"): "",
    ("team-b", "Kustomization", "monitoring"): "crd_missing",
    ("team-b", "Kustomization", "shared"): "cross_namespace_ref_denied",
    # applied by a service account the platform bound to cluster-admin by mistake: Ready, a policy violation
    ("team-b", "Kustomization", "roles"): "",
    ("team-b", "HelmChart", "team-b-web"): "chart_failed",
    ("team-b", "HelmRelease", "web"): "source_not_ready",
    ("team-c", "GitRepository", "apps"): "",
    # progressing while its health checks run (30s, Flux's floor for a timeout), then failing
    ("team-c", "Kustomization", "api"): "progressing|health_check_failed",
    ("team-c", "Kustomization", "secrets"): "decryption_failed",
    ("team-c", "Kustomization", "overlays"): "build_failed",
    ("team-c", "Kustomization", "policies"): "webhook_failed",
    ("team-c", "Kustomization", "jobs"): "validation_failed",
    ("team-c", "Kustomization", "namespaces"): "cluster_scoped_in_tenant",
    # applied once, then a commit changed an immutable field: failing, and drifting from its source
    ("team-c", "Kustomization", "frontend"): "validation_failed",
    ("team-c", "Kustomization", "reports"): "rbac_forbidden",
    ("team-c", "Kustomization", "orphan"): "source_not_found",
    ("team-c", "Kustomization", "rollout"): "progressing",
    ("team-c", "Kustomization", "legacy"): "suspended",
    ("team-c", "GitRepository", "vendor"): "source_unreachable",
    ("team-c", "HelmRelease", "api"): "helm_release_failed",
    ("team-d", "GitRepository", "apps"): "",
    ("team-d", "Kustomization", "apps"): "",
    ("team-d", "HelmRelease", "web"): "",
}.items()}


@dataclass(frozen=True)
class Fix:
    """A one-line shell command that fixes a failure by pushing to Git, and what it fixes."""

    tenant: str
    what: str
    command: str


@dataclass(frozen=True)
class DemoFleet:
    """What ``seed`` made: the working copies (tenant -> folder) and the fixes a user can push."""

    working_copies: Mapping[str, Path]
    fixes: tuple[Fix, ...]


def _cm(name: str, labels: Mapping[str, str] | None = None) -> str:
    meta = f"\n  labels: {dict(labels)}" if labels else ""
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{meta}\ndata:\n  greeting: hello\n"


def _deployment(name: str, app: str | None = None) -> str:
    app = app or name
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n"
            f"  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    metadata: {{labels: {{app: {app}}}}}\n"
            f"    spec:\n      containers:\n      - name: {name}\n        image: registry.invalid/{name}:1.0\n")


_NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-c-sandbox\n"
_AGGREGATE_ROLE = ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: team-b-viewer\n"
                   "rules:\n- apiGroups: ['']\n  resources: ['configmaps']\n  verbs: ['get']\n")
_CLUSTER_ROLE = ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: team-a-reader\n"
                 "rules:\n- apiGroups: ['']\n  resources: ['pods']\n  verbs: ['get', 'list']\n")
_ROLE = ("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: reader\n"
         "rules:\n- apiGroups: ['']\n  resources: ['pods']\n  verbs: ['get', 'list']\n")
_POD_MONITOR = ("apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata:\n  name: app\nspec:\n"
                "  selector: {matchLabels: {app: app}}\n  podMetricsEndpoints: [{port: http}]\n")
_BAD_KUSTOMIZATION = ("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- base.yaml\n"
                      "- missing.yaml\n")
_SERVICE = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: migrate\nspec:\n  ports:\n  - port: 99999\n"
            "  selector: {app: migrate}\n")
#: The label the platform's admission webhook selects (team-c's ConfigMaps carrying it are validated).
POLICY_LABEL: Final = "policy.platform.example.com/validate"


def _webhook(port: int) -> str:
    return f"""apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: platform-policy
webhooks:
- name: policy.platform.example.com
  clientConfig:
    url: https://127.0.0.1:{port}/validate
  rules:
  - apiGroups: [""]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [configmaps]
  namespaceSelector:
    matchLabels: {{kubernetes.io/metadata.name: team-c}}
  objectSelector:
    matchLabels: {{{POLICY_LABEL}: "true"}}
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 2
"""


_CM_TEMPLATE = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n  k: v\n"
_RENDER_ERROR = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n"
                 '  region: {{ required "values.region is required" .Values.region }}\n')


def _repositories(webhook_port: int) -> dict[str, dict[str, str]]:
    """Git path -> files of every demo repository."""
    from testbed.cases import SOPS_ENCRYPTED_MANIFEST  # noqa: PLC0415 - the SOPS case's manifest

    return {
        "platform/fleet": {"infrastructure/webhook.yaml": _webhook(webhook_port),
                           "infrastructure/settings.yaml": _cm("platform-settings")},
        "team-a/apps": {"rbac/role.yaml": _ROLE, "rbac/clusterrole.yaml": _CLUSTER_ROLE,
                        "web/deployment-config.yaml": _cm("web-config")},
        "team-b/deploy": {"deploy/config.yaml": _cm("deploy-config")},
        "team-b/config": {"config/settings.yaml": _cm("settings")},
        "team-b/apps": {"monitoring/podmonitor.yaml": _POD_MONITOR, "shared/config.yaml": _cm("shared"),
                        "roles/viewer.yaml": _AGGREGATE_ROLE},
        "team-c/apps": {
            "api/deployment.yaml": _deployment("api"),
            "rollout/deployment.yaml": _deployment("rollout"),
            "secrets/db.yaml": SOPS_ENCRYPTED_MANIFEST,
            "overlays/kustomization.yaml": _BAD_KUSTOMIZATION,
            "overlays/base.yaml": _cm("overlay-base"),
            "policies/quota.yaml": _cm("quota", {POLICY_LABEL: "true"}),
            "jobs/service.yaml": _SERVICE,
            "reports/config.yaml": _cm("reports"),
            "legacy/config.yaml": _cm("legacy"),
            "namespaces/sandbox.yaml": _NAMESPACE,
            "frontend/deployment.yaml": _deployment("frontend"),
        },
        "team-d/apps": {"apps/config.yaml": _cm("apps-config")},
    }


def _git_repository(env: RealFlux, ns: str, name: str, path: str, **kw: Any) -> Obj:
    obj = scenario.git_repository(ns, name, env.git.url(path), **kw)
    obj["spec"]["interval"] = GIT_INTERVAL
    return obj


def _ks(ns: str, name: str, source: str, *, sa: str | None = None, **kw: Any) -> Obj:
    return scenario.kustomization(ns, name, source=("GitRepository", source), path=f"./{name}",
                                  service_account=sa or ns, target_namespace=ns, **kw)


def _flux_objects(env: RealFlux, unreachable_port: int) -> list[Obj]:
    """Every Flux object of the demo (the webhook, Secrets and ServiceAccounts come before them)."""
    private = scenario.git_repository("team-b", "deploy", env.git_private.url("team-b/deploy"), secret="git-auth")  # noqa: S106 - a Secret's name
    private["spec"]["interval"] = GIT_INTERVAL
    vendor = scenario.git_repository("team-c", "vendor", f"http://127.0.0.1:{unreachable_port}/vendor/manifests.git")
    return [
        _git_repository(env, PLATFORM_NS, "platform", "platform/fleet"),
        _ks(PLATFORM_NS, "infrastructure", "platform", sa=PLATFORM_SA),
        _git_repository(env, "team-a", "apps", "team-a/apps"),
        _ks("team-a", "rbac", "apps"),
        _ks("team-a", "web", "apps", depends_on=["rbac"]),
        scenario.helm_repository("team-a", "charts", env.helm.url),
        scenario.helm_release("team-a", "cache", chart="cache", version="1.0.0", repository="charts",
                              service_account="team-a", target_namespace="team-a"),
        private,
        _ks("team-b", "deploy", "deploy"),
        _git_repository(env, "team-b", "config", "team-b/config", branch="release"),
        _ks("team-b", "config", "config"),
        _git_repository(env, "team-b", "apps", "team-b/apps"),
        _ks("team-b", "monitoring", "apps"),
        _ks("team-b", "roles", "apps", sa=TEAM_B_ADMIN),
        scenario.kustomization("team-b", "shared", source=("GitRepository", "platform", PLATFORM_NS),
                               path="./infrastructure", service_account="team-b", target_namespace="team-b"),
        scenario.helm_repository("team-b", "charts", env.helm.url),
        scenario.helm_release("team-b", "web", chart="web", version="9.9.9", repository="charts",
                              service_account="team-b", target_namespace="team-b"),
        _git_repository(env, "team-c", "apps", "team-c/apps"),
        # Flux's floor for a health check's timeout is 30s: it fails 30s after the apply
        _ks("team-c", "api", "apps", wait=True, timeout="30s"),
        # waits on a Deployment no kubelet runs: progressing for its whole timeout
        _ks("team-c", "rollout", "apps", wait=True, timeout="30m"),
        _ks("team-c", "secrets", "apps"),
        _ks("team-c", "overlays", "apps"),
        _ks("team-c", "policies", "apps"),
        _ks("team-c", "jobs", "apps"),
        _ks("team-c", "frontend", "apps"),
        scenario.kustomization("team-c", "namespaces", source=("GitRepository", "apps"), path="./namespaces",
                               service_account="team-c", target_namespace=None),
        _ks("team-c", "reports", "apps", sa="reports-bot"),
        _ks("team-c", "legacy", "apps", suspend=True),
        scenario.kustomization("team-c", "orphan", source=("GitRepository", "billing"), path="./",
                               service_account="team-c", target_namespace="team-c"),
        vendor,
        scenario.helm_repository("team-c", "charts", env.helm.url),
        scenario.helm_release("team-c", "api", chart="api", version="2.1.0", repository="charts",
                              service_account="team-c", target_namespace="team-c"),
        _git_repository(env, "team-d", "apps", "team-d/apps"),
        _ks("team-d", "apps", "apps"),
        scenario.helm_repository("team-d", "charts", env.helm.url),
        scenario.helm_release("team-d", "web", chart="cache", version="1.0.0", repository="charts",
                              service_account="team-d", target_namespace="team-d"),
    ]


async def _post(client: KubeClient, path: str, body: Obj) -> None:
    try:
        await client.request("POST", path, body=body)
    except ApiError as err:
        if err.status != 409:  # noqa: PLR2004 - already there (seeding twice is harmless)
            raise


async def _platform(client: KubeClient) -> None:
    """The platform's namespace and its reconciler identity (cluster-admin, as ``flux bootstrap`` gives it)."""
    await _post(client, "/api/v1/namespaces", {"metadata": {"name": PLATFORM_NS}})
    await _post(client, f"/api/v1/namespaces/{PLATFORM_NS}/serviceaccounts", {"metadata": {"name": PLATFORM_SA}})
    await _post(client, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
        "metadata": {"name": f"{PLATFORM_SA}-cluster-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": PLATFORM_SA, "namespace": PLATFORM_NS}],
    })


def clone(git: GitServer, path: str, into: Path, *, name: str) -> Path:
    """Clone ``path`` from ``git`` into ``into``/``name``.

    The clone gets a committer identity of its own (the user's global git config may have none).
    """
    target = into / name
    target.parent.mkdir(parents=True, exist_ok=True)
    for argv in ([GIT, "clone", "--quiet", git.url(path), str(target)],
                 [GIT, "-C", str(target), "config", "user.name", f"{name.split('/', maxsplit=1)[0]} developer"],
                 [GIT, "-C", str(target), "config", "user.email", f"dev@{name.split('/', maxsplit=1)[0]}.example"]):
        subprocess.run(argv, check=True, capture_output=True, timeout=60)  # noqa: S603 - git, our arguments
    return target


async def seed(client: KubeClient, env: RealFlux, workdir: Path) -> DemoFleet:
    """Create the demo fleet on the real controllers; clone the working copies under ``workdir``."""
    await _platform(client)
    for tenant in TENANTS:
        await create_tenant(client, tenant)
    webhook_port, unreachable_port = free_port(), free_port()
    repos = _repositories(webhook_port)
    for path, files in repos.items():
        server = env.git_private if path == "team-b/deploy" else env.git
        server.push(path, files, message="Initial manifests")
    env.helm.add_chart("cache", "1.0.0", {"config.yaml": _CM_TEMPLATE})
    env.helm.add_chart("web", "1.0.0", {"config.yaml": _CM_TEMPLATE})
    env.helm.add_chart("api", "2.1.0", {"config.yaml": _RENDER_ERROR})
    await scenario.apply(client, scenario.basic_auth_secret("team-b", "git-auth", GIT_CREDENTIALS[0], "expired"))
    await _post(client, "/api/v1/namespaces/team-c/serviceaccounts", {"metadata": {"name": "reports-bot"}})
    await _post(client, "/api/v1/namespaces/team-b/serviceaccounts", {"metadata": {"name": TEAM_B_ADMIN}})
    await _post(client, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
        "metadata": {"name": f"{TEAM_B_ADMIN}-cluster-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": TEAM_B_ADMIN, "namespace": "team-b"}],
    })
    objects = _flux_objects(env, unreachable_port)
    # Sources and HelmReleases first; the Kustomizations once the good sources have an artifact, as in a real
    # cluster where the sources exist long before (otherwise each first shows "Source artifact not found" and
    # waits a retry interval, and the health-checked ones hold kustomize-controller's workers longer).
    appliers = [o for o in objects if o["kind"] == "Kustomization"]
    await asyncio.gather(*(scenario.apply(client, o) for o in objects if o["kind"] != "Kustomization"))
    await load_shard_fleet(client, SYNTHETIC_NS)
    good = [o for o in objects if o["kind"] == "GitRepository"
            and EXPECTED[(o["metadata"]["namespace"], o["kind"], o["metadata"]["name"])] == {""}]
    await asyncio.gather(*(scenario.wait_for(client, o, scenario.is_ready, timeout=60) for o in good))
    # team-c/policies once the platform's webhook is in place (else it applies fine and fails 30s later).
    policies = next(o for o in appliers if o["metadata"]["name"] == "policies")
    infrastructure = next(o for o in appliers if o["metadata"]["name"] == "infrastructure")
    await asyncio.gather(*(scenario.apply(client, o) for o in appliers if o is not policies))
    await scenario.wait_for(client, infrastructure, scenario.is_ready, timeout=60)
    await scenario.apply(client, policies)
    # team-c/frontend applied once; then a commit changes its Deployment's selector (immutable).
    frontend = next(o for o in appliers if o["metadata"]["name"] == "frontend")
    await scenario.wait_for(client, frontend, scenario.is_ready, timeout=60)
    env.git.push("team-c/apps", {**repos["team-c/apps"],
                                 "frontend/deployment.yaml": _deployment("frontend", app="frontend-v2")},
                 message="frontend: new selector")

    copies = {
        "platform": clone(env.git, "platform/fleet", workdir, name="platform/fleet"),
        "team-a": clone(env.git, "team-a/apps", workdir, name="team-a/apps"),
        "team-b": clone(env.git, "team-b/config", workdir, name="team-b/config"),
        "team-c": clone(env.git, "team-c/apps", workdir, name="team-c/apps"),
        "team-d": clone(env.git, "team-d/apps", workdir, name="team-d/apps"),
    }
    fixes = (
        Fix("team-a", "drop the ClusterRole from rbac/ (team-a/rbac and team-a/web turn Ready; team-a healthy)",
            f"cd {copies['team-a']} && git rm -q rbac/clusterrole.yaml && git commit -qm 'No cluster-scoped "
            "objects in tenant repos' && git push -q"),
        Fix("team-b", "create the branch the GitRepository follows (team-b/config turns Ready)",
            f"cd {copies['team-b']} && git push -q origin main:release"),
        Fix("team-c", "a valid port for the Service (team-c/jobs turns Ready)",
            f"cd {copies['team-c']} && sed -i 's/99999/8080/' jobs/service.yaml && git commit -qam 'Valid port' "
            "&& git push -q"),
        Fix("platform", "remove the webhook that points at a closed port (team-c/policies turns Ready)",
            f"cd {copies['platform']} && git rm -q infrastructure/webhook.yaml && git commit -qm 'Remove the "
            "policy webhook' && git push -q"),
    )
    return DemoFleet(copies, fixes)

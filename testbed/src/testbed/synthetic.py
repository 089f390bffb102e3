"""A multi-tenant Flux fleet with hand-written statuses, for fast tests that need no controller.

It covers every failure category, a dependency chain (a Kustomization blocked by a failing one, a HelmRelease
blocked by a failing HelmChart), stuck reconciliations, drift and tenancy policy violations. The statuses are
written the way the controllers write them; nothing reconciles them (the control plane of these tests runs no
Flux controller). ``make demo`` runs on the real controllers instead (``testbed.demo``); ``load_shard_fleet``
is the demo's small synthetic part for the kinds the local controllers cannot serve.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flux_tenant_exporter.kube.client import KubeClient
from testbed import fleet
from testbed.controllers import SHARD_KEY_LABEL
from testbed.fleet import ago, failed_status, progressing_status, ready_status, revision

_FORBIDDEN_NS = (
    'Namespace/team-a-extra dry-run failed (Forbidden): namespaces "team-a-extra" is forbidden: User '
    '"system:serviceaccount:team-a:flux" cannot patch resource "namespaces" in API group "" at the cluster scope'
)


async def load_synthetic_fleet(client: KubeClient) -> int:
    """Create the namespaces and Flux objects with hand-written statuses; returns how many Flux objects."""
    f = fleet
    for ns, tenant in (("flux-system", None), ("team-a", "team-a"), ("team-a-web", "team-a"), ("team-b", "team-b"),
                       ("team-c", "team-c"), ("team-d", "team-d")):
        await f.create(client, f.namespace(ns, tenant), exist_ok=True)
    rev1, rev2 = revision(seed="1"), revision(seed="2")
    objects: list[tuple[dict[str, Any], dict[str, Any] | None]] = [
        # platform
        (f.gitrepository("flux-system", "flux-system"), ready_status("GitRepository", rev=rev2, since=ago(days=3))),
        (f.kustomization("flux-system", "infrastructure", source=("GitRepository", "flux-system"),
                         service_account=None),
         ready_status("Kustomization", rev=rev2, since=ago(days=3),
                      inventory_entries=[("", "tenants", "rbac.authorization.k8s.io", "ClusterRole")])),
        # team-a: healthy app with drift, a cluster-scoped failure that blocks a dependent
        (f.gitrepository("team-a", "apps"), ready_status("GitRepository", rev=rev2, since=ago(minutes=40))),
        (f.kustomization("team-a", "apps", source=("GitRepository", "apps"), target_namespace="team-a-web"),
         ready_status("Kustomization", rev=rev1, since=ago(days=1),
                      inventory_entries=[("team-a-web", "web", "apps", "Deployment"),
                                         ("", "team-a-reader", "rbac.authorization.k8s.io", "ClusterRole")])),
        (f.kustomization("team-a", "namespaces", source=("GitRepository", "apps")),
         failed_status("ReconciliationFailed", _FORBIDDEN_NS, since=ago(hours=2), reconciling=True)),
        (f.kustomization("team-a", "web", source=("GitRepository", "apps"), depends_on=["namespaces"]),
         failed_status("DependencyNotReady", "dependency 'team-a/namespaces' is not ready", since=ago(hours=2))),
        (f.helmrepository("team-a", "bitnami"), ready_status("HelmRepository", rev="sha256:abc", since=ago(days=2))),
        (f.helmchart("team-a", "team-a-redis", chart="redis", repository="bitnami"),
         ready_status("HelmChart", rev="18.1.0", since=ago(days=2))),
        (f.helmrelease("team-a", "redis", chart="redis", repository=("HelmRepository", "bitnami")),
         ready_status("HelmRelease", rev="18.1.0", since=ago(days=2))),
        # team-b: a source that cannot authenticate blocks its Kustomization; a chart that fails blocks a release
        (f.gitrepository("team-b", "repo", url="ssh://git@github.com/team-b/deploy"),
         failed_status("GitOperationFailed", "failed to checkout and determine revision: unable to clone "
                       "'ssh://git@github.com/team-b/deploy': ssh: handshake failed: ssh: unable to authenticate, "
                       "attempted methods [none publickey], no supported methods remain", since=ago(hours=1))),
        (f.kustomization("team-b", "app", source=("GitRepository", "repo")),
         failed_status("ArtifactFailed", "Source artifact not found, retrying in 30s", since=ago(hours=1))),
        (f.kustomization("team-b", "monitoring", source=("GitRepository", "repo")),
         failed_status("ReconciliationFailed", 'PodMonitor/team-b/app dry-run failed: no matches for kind '
                       '"PodMonitor" in version "monitoring.coreos.com/v1"', since=ago(minutes=50))),
        (f.kustomization("team-b", "shared", source=("GitRepository", "flux-system", "flux-system")),
         failed_status("AccessDenied", "can't access 'GitRepository/flux-system/flux-system', cross-namespace "
                       "references have been blocked", since=ago(hours=3), stalled=True)),
        (f.helmrepository("team-b", "charts"), ready_status("HelmRepository", rev="sha256:def", since=ago(days=1))),
        (f.helmchart("team-b", "team-b-web", chart="web", repository="charts"),
         failed_status("InvalidChartReference", "invalid chart reference: failed to get chart version for remote "
                       "reference: no 'web' chart with version matching '9.9.9' found", since=ago(hours=5),
                       stalled=True)),
        (f.helmrelease("team-b", "web", chart="web", repository=("HelmRepository", "charts")),
         failed_status("SourceNotReady", "HelmChart 'team-b/team-b-web' is not ready: invalid chart reference: "
                       "failed to get chart version for remote reference: no 'web' chart with version matching "
                       "'9.9.9' found", since=ago(hours=5))),
        # team-c: one of most other categories, a progressing and a suspended object
        (f.kustomization("team-c", "apps", source=("GitRepository", "flux-system", "flux-system")),
         failed_status("HealthCheckFailed", "health check failed after 5m0.01s: timeout waiting for: "
                       "[Deployment/team-c/api status: 'InProgress']", since=ago(minutes=4))),
        (f.kustomization("team-c", "secrets", source=("GitRepository", "flux-system", "flux-system")),
         failed_status("BuildFailed", "decryption failed for 'db-credentials': LoadEncryptedFile: sops metadata not "
                       "found", since=ago(minutes=30))),
        (f.kustomization("team-c", "overlays", source=("GitRepository", "flux-system", "flux-system")),
         failed_status("BuildFailed", "kustomize build failed: accumulating resources: accumulation err='accumulating "
                       "resources from 'base': must build at directory: not a valid directory'",
                       since=ago(minutes=20))),
        (f.kustomization("team-c", "policies", source=("GitRepository", "flux-system", "flux-system"),
                         service_account=None),
         failed_status("ReconciliationFailed", 'Deployment/team-c/api dry-run failed (InternalError): Internal error '
                       'occurred: failed calling webhook "validate.kyverno.svc-fail": failed to call webhook: Post '
                       '"https://kyverno-svc.kyverno.svc:443/validate/fail?timeout=10s": context deadline exceeded',
                       since=ago(minutes=25))),
        (f.kustomization("team-c", "jobs", source=("GitRepository", "flux-system", "flux-system")),
         failed_status("ReconciliationFailed", 'Job/team-c/migrate dry-run failed (Invalid): Job.batch "migrate" is '
                       'invalid: spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable',
                       since=ago(minutes=18))),
        (f.kustomization("team-c", "rollout", source=("GitRepository", "flux-system", "flux-system"), timeout="5m"),
         progressing_status("Running health checks for revision main@sha1:2 with a timeout of 5m0s",
                            since=ago(minutes=2))),
        (f.kustomization("team-c", "legacy", source=("GitRepository", "flux-system", "flux-system"), suspend=True),
         ready_status("Kustomization", rev=rev1, since=ago(days=10))),
        (f.kustomization("team-c", "orphan", source=("GitRepository", "missing")),
         failed_status("ArtifactFailed", "unable to get source 'team-c/missing': GitRepository.source.toolkit.fluxcd.io"
                       ' "missing" not found', since=ago(hours=6))),
        (f.helmrelease("team-c", "api", repository=("HelmRepository", "charts", "team-b")),
         failed_status("UpgradeFailed", "Helm upgrade failed for release team-c/api with chart api@1.4.2: pre-upgrade "
                       "hooks failed: 1 error occurred", since=ago(hours=4), stalled=True)),
        (f.helmrelease("team-c", "db", repository=("HelmRepository", "charts", "team-b")),
         failed_status("StateError", "Could not determine release state: failed to retrieve last release from "
                       "storage: query: failed to query with labels: secrets is forbidden: User "
                       '"system:serviceaccount:team-c:flux" cannot list resource "secrets" in API group "" in the '
                       'namespace "team-c"', since=ago(minutes=45))),
        (f.helmrelease("team-c", "cache", repository=("HelmRepository", "charts", "team-b")),
         failed_status("UpgradeFailed", "Helm upgrade failed for release team-c/cache with chart cache@2.0.0: "
                       "context deadline exceeded", since=ago(minutes=35))),
        (f.ocirepository("team-c", "manifests"),
         failed_status("OCIArtifactPullFailed", "failed to determine artifact digest: GET https://ghcr.io/v2/example/"
                       "manifests/manifests/latest: MANIFEST_UNKNOWN: manifest unknown", since=ago(minutes=40))),
        (f.bucket("team-c", "assets"),
         failed_status("BucketOperationFailed", "failed to confirm existence of 'manifests' bucket: Get "
                       '"https://minio.example.com/manifests/?location=": dial tcp: lookup minio.example.com: no such '
                       "host", since=ago(minutes=15))),
        # team-d: all healthy
        (f.gitrepository("team-d", "apps"), ready_status("GitRepository", rev=rev2, since=ago(days=1))),
        (f.kustomization("team-d", "apps", source=("GitRepository", "apps")),
         ready_status("Kustomization", rev=rev2, since=ago(hours=20),
                      inventory_entries=[("team-d", "api", "apps", "Deployment")])),
    ]
    await asyncio.gather(*(f.create(client, obj, status=status, exist_ok=True) for obj, status in objects))
    return len(objects)


#: The label of the demo's synthetic namespace (and the shard key of its objects: no controller serves it).
SYNTHETIC_LABEL = "fte.example/synthetic"


async def load_shard_fleet(client: KubeClient, namespace: str) -> list[dict[str, Any]]:
    """The demo's synthetic objects: failures of kinds the local controllers cannot reach, in ``namespace``.

    An OCIRepository (no OCI registry runs here) and a Bucket (no S3 server). They carry Flux's sharding label
    with a shard no controller serves, so the real controllers leave their hand-written statuses alone.
    Returns the objects created.
    """
    f = fleet
    labels = {SYNTHETIC_LABEL: "true"}
    await f.create(client, f.namespace(namespace, namespace, labels=labels), exist_ok=True)
    shard = {"labels": {SHARD_KEY_LABEL: "synthetic", **labels}}
    objects: list[tuple[dict[str, Any], dict[str, Any]]] = [
        (f.ocirepository(namespace, "manifests", url="oci://registry.example.com/team/manifests"),
         failed_status("OCIArtifactPullFailed", "failed to determine artifact digest: GET https://registry.example."
                       "com/v2/team/manifests/manifests/latest: MANIFEST_UNKNOWN: manifest unknown",
                       since=ago(minutes=40))),
        (f.bucket(namespace, "assets"),
         failed_status("BucketOperationFailed", "failed to confirm existence of 'manifests' bucket: Get "
                       '"https://minio.example.com/manifests/?location=": dial tcp: lookup minio.example.com: no such '
                       "host", since=ago(minutes=15))),
    ]
    created = []
    for obj, status in objects:
        obj["metadata"].update(shard)
        created.append(await f.create(client, obj, status=status, exist_ok=True))
    return created

"""``demo``: a local control plane with a realistic multi-tenant Flux fleet, and the exporter serving it.

The fleet has a healthy tenant, every failure category, a dependency chain (a Kustomization blocked by a
failing one, a HelmRelease blocked by a failing HelmChart), stuck reconciliations, drift and tenancy
policy violations. No Flux controller runs: statuses are written the way the controllers write them.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import structlog

from exporter.app import Exporter
from exporter.documents import tenants_doc
from exporter.kubeapi import KubeClient
from exporter.settings import Settings
from testbed import fleet
from testbed.controlplane import ControlPlane
from testbed.fleet import ago, failed_status, progressing_status, ready_status, revision

log = structlog.get_logger("testbed.demo")

_FORBIDDEN_NS = (
    'Namespace/team-a-extra dry-run failed (Forbidden): namespaces "team-a-extra" is forbidden: User '
    '"system:serviceaccount:team-a:flux" cannot patch resource "namespaces" in API group "" at the cluster scope'
)


async def load_demo_fleet(client: KubeClient) -> int:
    """Create the demo namespaces and Flux objects with their statuses; returns how many Flux objects."""
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


async def run_demo(settings: Settings) -> int:
    """Start the control plane and the fleet, serve it, print the URLs; until Ctrl-C (or ready, if asked)."""
    started = time.monotonic()
    print("Starting a local Kubernetes control plane (kube-apiserver + etcd + Flux CRDs) ...", flush=True)
    with ControlPlane() as cp:
        admin = await KubeClient.from_kubeconfig(cp.kubeconfig)
        try:
            count = await load_demo_fleet(admin)
        finally:
            await admin.close()
        print(f"Control plane ready in {cp.startup_seconds:.1f} s; loaded {count} Flux objects.", flush=True)
        exporter = Exporter(settings, await KubeClient.from_kubeconfig(cp.kubeconfig))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = asyncio.create_task(exporter.run(stop))
        exporter_started = time.monotonic()
        try:
            await exporter.wait_for(lambda e: e.ready(), timeout=60)
        except TimeoutError:
            print("The exporter did not become ready within 60 s; see the logs.", flush=True)
            stop.set()
            await runner
            return 1
        ready_after = time.monotonic() - exporter_started
        base = f"http://127.0.0.1:{exporter.port}"
        print(f"Exporter ready {ready_after:.2f} s after start ({time.monotonic() - started:.1f} s in all).")
        print(f"  {base}/  (status page)\n  {base}/tenants\n  {base}/tenants/team-b\n  {base}/metrics\n  {base}/readyz")
        print(f"  KUBECONFIG={cp.kubeconfig} (admin; kubectl works against it)")
        print(_summary(tenants_doc(exporter.view)), flush=True)
        if settings.demo_exit_after_ready:
            stop.set()
        else:
            print("Press Ctrl-C to stop.", flush=True)
        await runner
    return 0


def _summary(doc: dict[str, Any]) -> str:
    lines = []
    for t in doc["tenants"]:
        roots = [f for f in t["failures"] if f["root_cause"] is None]
        lines.append(f"  {t['name']:<10} {t['status']:<12} failing={t['counts']['failing']} "
                     f"stuck={t['counts']['stuck']} roots: "
                     + (", ".join(f"{r['kind']}/{r['name']}={r['category']}" for r in roots) or "-"))
    return "\n".join(lines)

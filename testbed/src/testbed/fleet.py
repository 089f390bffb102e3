"""Create Flux objects and write their status the way the Flux controllers do.

Shared by the tests, the ``demo`` command and the benchmark. Objects are plain dicts shaped like the
ones the Flux controllers write (conditions with ``lastTransitionTime`` and ``observedGeneration``,
``lastAppliedRevision``/``lastAttemptedRevision``, ``inventory``, ``history``, source ``artifact``);
status goes through the status subresource with a merge patch, as a controller's patch does.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from flux_tenant_exporter.base.config import TenancySettings
from flux_tenant_exporter.base.kinds import NAMESPACE, WatchedKind, by_kind
from flux_tenant_exporter.kube.client import ApiError, KubeClient

#: The namespace label `flux create tenant` sets, which the exporter reads by default.
TENANT_LABEL = TenancySettings().tenant_label

Obj = dict[str, Any]


def rfc3339(when: datetime.datetime | None = None) -> str:
    """A Kubernetes timestamp (seconds precision, UTC, Z)."""
    when = when or datetime.datetime.now(datetime.UTC)
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(**delta: float) -> datetime.datetime:
    """``now - timedelta(**delta)``, for condition transition times in the past."""
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(**delta)


def condition(
    type_: str,
    status: str,
    reason: str,
    message: str = "",
    *,
    generation: int = 1,
    since: datetime.datetime | None = None,
) -> Obj:
    """One status condition as fluxcd/pkg writes it."""
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": rfc3339(since),
    }


def revision(branch: str = "main", seed: str = "x") -> str:
    """A Git revision in Flux's ``<ref>@sha1:<hash>`` form."""
    return f"{branch}@sha1:{hashlib.sha1(seed.encode()).hexdigest()}"  # noqa: S324 - a fake commit id


# -- objects -------------------------------------------------------------------------------------


def meta(kind: WatchedKind, namespace: str, name: str, version: str | None = None, **extra: Any) -> Obj:
    """An object skeleton of a kind (first preferred version)."""
    obj: Obj = {
        "apiVersion": f"{kind.group}/{version or kind.versions[0]}",
        "kind": kind.kind,
        "metadata": {"name": name, "namespace": namespace, **extra.pop("metadata", {})},
    }
    obj.update(extra)
    return obj


def namespace(name: str, tenant: str | None = None, labels: Mapping[str, str] | None = None) -> Obj:
    """A Namespace, labelled with its tenant as ``flux create tenant`` does."""
    all_labels = dict(labels or {})
    if tenant:
        all_labels[TENANT_LABEL] = tenant
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": all_labels}}


def kustomization(
    namespace: str,
    name: str,
    *,
    source: tuple[str, str] | tuple[str, str, str] = ("GitRepository", "repo"),
    path: str = "./",
    target_namespace: str | None = None,
    service_account: str | None = "flux",
    depends_on: Iterable[str | tuple[str, str]] = (),
    suspend: bool = False,
    timeout: str | None = None,
    interval: str = "10m",
) -> Obj:
    """A Kustomization; ``source`` is (kind, name) or (kind, name, namespace)."""
    source_ref: Obj = {"kind": source[0], "name": source[1]}
    if len(source) == 3:  # noqa: PLR2004
        source_ref["namespace"] = source[2]
    spec: Obj = {"interval": interval, "path": path, "prune": True, "sourceRef": source_ref}
    _applier_options(spec, service_account, target_namespace, depends_on, suspend=suspend, timeout=timeout)
    return meta(by_kind_strict("Kustomization"), namespace, name, spec=spec)


def _applier_options(
    spec: Obj,
    service_account: str | None,
    target_namespace: str | None,
    depends_on: Iterable[str | tuple[str, str]],
    *,
    suspend: bool,
    timeout: str | None,
) -> None:
    """The spec fields Kustomizations and HelmReleases share."""
    if target_namespace:
        spec["targetNamespace"] = target_namespace
    if service_account:
        spec["serviceAccountName"] = service_account
    if depends_on:
        spec["dependsOn"] = [
            {"name": d} if isinstance(d, str) else {"name": d[1], "namespace": d[0]} for d in depends_on
        ]
    if suspend:
        spec["suspend"] = True
    if timeout:
        spec["timeout"] = timeout


def helmrelease(
    namespace: str,
    name: str,
    *,
    chart: str = "podinfo",
    repository: tuple[str, str] | tuple[str, str, str] = ("HelmRepository", "charts"),
    chart_ref: tuple[str, str] | None = None,
    service_account: str | None = "flux",
    target_namespace: str | None = None,
    depends_on: Iterable[str | tuple[str, str]] = (),
    suspend: bool = False,
    timeout: str | None = None,
) -> Obj:
    """A HelmRelease from a chart template (or ``chart_ref`` = (kind, name) of an OCIRepository/HelmChart)."""
    spec: Obj = {"interval": "10m"}
    if chart_ref:
        spec["chartRef"] = {"kind": chart_ref[0], "name": chart_ref[1]}
    else:
        source_ref: Obj = {"kind": repository[0], "name": repository[1]}
        if len(repository) == 3:  # noqa: PLR2004
            source_ref["namespace"] = repository[2]
        spec["chart"] = {"spec": {"chart": chart, "version": ">=1.0.0", "sourceRef": source_ref}}
    _applier_options(spec, service_account, target_namespace, depends_on, suspend=suspend, timeout=timeout)
    return meta(by_kind_strict("HelmRelease"), namespace, name, spec=spec)


def gitrepository(
    namespace: str, name: str, *, url: str = "https://github.com/example/app", branch: str = "main"
) -> Obj:
    """A GitRepository."""
    return meta(
        by_kind_strict("GitRepository"), namespace, name,
        spec={"interval": "5m", "url": url, "ref": {"branch": branch}},
    )


def ocirepository(
    namespace: str, name: str, *, url: str = "oci://ghcr.io/example/manifests", tag: str = "latest"
) -> Obj:
    """An OCIRepository."""
    spec = {"interval": "5m", "url": url, "ref": {"tag": tag}}
    return meta(by_kind_strict("OCIRepository"), namespace, name, spec=spec)


def helmrepository(
    namespace: str, name: str, *, url: str = "https://charts.example.com", oci: bool = False
) -> Obj:
    """A HelmRepository (``oci=True``: an OCI one, which has no status artifact)."""
    spec: Obj = {"interval": "30m", "url": url}
    if oci:
        spec["type"] = "oci"
    return meta(by_kind_strict("HelmRepository"), namespace, name, spec=spec)


def helmchart(namespace: str, name: str, *, chart: str = "podinfo", repository: str = "charts") -> Obj:
    """A HelmChart, as helm-controller creates for a HelmRelease (name ``<ns>-<release>``)."""
    return meta(
        by_kind_strict("HelmChart"), namespace, name,
        spec={
            "interval": "10m", "chart": chart, "version": "*",
            "sourceRef": {"kind": "HelmRepository", "name": repository},
        },
    )


def bucket(
    namespace: str, name: str, *, endpoint: str = "minio.example.com", bucket_name: str = "manifests"
) -> Obj:
    """A Bucket."""
    return meta(
        by_kind_strict("Bucket"), namespace, name,
        spec={"interval": "5m", "endpoint": endpoint, "bucketName": bucket_name},
    )


def by_kind_strict(kind: str) -> WatchedKind:
    """The WatchedKind for a kind name; KeyError when unknown."""
    found = by_kind(kind)
    if found is None:
        raise KeyError(kind)
    return found


# -- statuses --------------------------------------------------------------------------------------


def inventory(entries: Iterable[tuple[str, str, str, str]], version: str = "v1") -> Obj:
    """A Kustomization inventory from (namespace, name, group, kind) tuples (Flux's id format)."""
    return {"entries": [{"id": f"{ns}_{name}_{group}_{kind}", "v": version} for ns, name, group, kind in entries]}


def artifact(rev: str, *, when: datetime.datetime | None = None) -> Obj:
    """A source artifact as source-controller records it."""
    digest = hashlib.sha256(rev.encode()).hexdigest()
    return {
        "path": f"gitrepository/x/{digest[:12]}.tar.gz",
        "url": f"http://source-controller.flux-system.svc.cluster.local./{digest[:12]}.tar.gz",
        "revision": rev,
        "digest": f"sha256:{digest}",
        "lastUpdateTime": rfc3339(when),
        "size": 1024,
    }


def ready_status(
    kind: str,
    *,
    rev: str | None = None,
    generation: int = 1,
    since: datetime.datetime | None = None,
    inventory_entries: Iterable[tuple[str, str, str, str]] = (),
) -> Obj:
    """A Ready=True status as the controller of ``kind`` writes it after a successful reconcile."""
    status: Obj = {"observedGeneration": generation}
    if kind == "HelmRelease":
        return status | _release_status(rev or "6.5.4", generation, since)
    rev = rev or revision()
    if kind == "Kustomization":
        status["conditions"] = [
            condition("Ready", "True", "ReconciliationSucceeded", f"Applied revision: {rev}",
                      generation=generation, since=since),
        ]
        status |= {"lastAppliedRevision": rev, "lastAttemptedRevision": rev}
        status["inventory"] = inventory(inventory_entries)
    else:
        status["conditions"] = [
            condition("Ready", "True", "Succeeded", f"stored artifact for revision '{rev}'",
                      generation=generation, since=since),
            condition("ArtifactInStorage", "True", "Succeeded", f"stored artifact for revision '{rev}'",
                      generation=generation, since=since),
        ]
        status["artifact"] = artifact(rev, when=since)
    return status


def _release_status(chart_version: str, generation: int, since: datetime.datetime | None) -> Obj:
    """What helm-controller writes after a successful install of ``chart_version``."""
    return {
        "conditions": [
            condition("Ready", "True", "InstallSucceeded",
                      f"Helm install succeeded for release x/y.v1 with chart podinfo@{chart_version}",
                      generation=generation, since=since),
            condition("Released", "True", "InstallSucceeded", "Helm install succeeded", generation=generation,
                      since=since),
        ],
        "lastAttemptedRevision": chart_version,
        "lastAttemptedReleaseAction": "install",
        "history": [
            {
                "name": "x", "namespace": "x", "version": 1, "status": "deployed", "chartName": "podinfo",
                "chartVersion": chart_version, "appVersion": chart_version, "configDigest": "sha256:0",
                "digest": "sha256:1", "firstDeployed": rfc3339(since), "lastDeployed": rfc3339(since),
            }
        ],
    }


def failed_status(
    reason: str,
    message: str,
    *,
    generation: int = 1,
    since: datetime.datetime | None = None,
    stalled: bool = False,
    reconciling: bool = False,
    extra: Obj | None = None,
) -> Obj:
    """A Ready=False status with a reason and message (optionally Stalled or still Reconciling)."""
    conditions = [condition("Ready", "False", reason, message, generation=generation, since=since)]
    if stalled:
        conditions.append(condition("Stalled", "True", reason, message, generation=generation, since=since))
    if reconciling:
        conditions.append(
            condition("Reconciling", "True", "ProgressingWithRetry", message, generation=generation, since=since)
        )
    return {"observedGeneration": generation, "conditions": conditions, **(extra or {})}


def progressing_status(
    message: str = "reconciliation in progress",
    *,
    generation: int = 1,
    since: datetime.datetime | None = None,
    observed_generation: int | None = None,
) -> Obj:
    """A Ready=Unknown + Reconciling=True status, as written when a reconcile starts."""
    return {
        "observedGeneration": generation if observed_generation is None else observed_generation,
        "conditions": [
            condition("Reconciling", "True", "Progressing", message, generation=generation, since=since),
            condition("Ready", "Unknown", "Progressing", message, generation=generation, since=since),
        ],
    }


# -- API calls -------------------------------------------------------------------------------------


def kind_of(obj: Obj) -> WatchedKind:
    """The WatchedKind of an object dict."""
    if obj["kind"] == "Namespace":
        return NAMESPACE
    return by_kind_strict(obj["kind"])


def path_of(obj: Obj, *, collection: bool = False) -> str:
    """The REST path of an object (or of its collection)."""
    kind = kind_of(obj)
    version = obj["apiVersion"].rsplit("/", 1)[-1]
    if kind is NAMESPACE:
        return "/api/v1/namespaces" + ("" if collection else f"/{obj['metadata']['name']}")
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    return kind.collection_path(version, ns) if collection else kind.object_path(version, ns, name)


async def create(client: KubeClient, obj: Obj, *, status: Obj | None = None, exist_ok: bool = False) -> Obj:
    """Create an object, then (if given) write its status through the status subresource."""
    try:
        created: Obj = await client.request("POST", path_of(obj, collection=True), body=obj)
    except ApiError as err:
        if not (exist_ok and err.status == 409):  # noqa: PLR2004
            raise
        created = await client.request("GET", path_of(obj))
    if status is not None:
        created = await write_status(client, created, status)
    return created


async def write_status(client: KubeClient, obj: Obj, status: Obj) -> Obj:
    """Replace an object's status (merge patch of the status subresource; lists are replaced whole)."""
    patch = {"status": {**{k: None for k in obj.get("status", {}) if k not in status}, **status}}
    result: Obj = await client.request(
        "PATCH", path_of(obj) + "/status", body=patch, content_type="application/merge-patch+json"
    )
    return result


async def patch(client: KubeClient, obj: Obj, body: Obj) -> Obj:
    """Merge-patch an object's main resource (spec, metadata)."""
    result: Obj = await client.request("PATCH", path_of(obj), body=body, content_type="application/merge-patch+json")
    return result


async def delete(client: KubeClient, obj: Obj) -> None:
    """Delete an object (Flux objects have no finalizers here: no controller runs)."""
    await client.request("DELETE", path_of(obj))

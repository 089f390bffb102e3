"""Flux objects for the real controllers, with short intervals, and waiting on what the controllers write.

The builders make multi-tenant objects as the Flux multi-tenancy guides have them (``serviceAccountName`` and
``targetNamespace`` on every tenant Kustomization and HelmRelease) with ``interval: 30s`` and
``retryInterval: 10s``, so retries happen within a test. ``wait_for`` watches one object (no sleeping)
until a predicate on it holds, and keeps every version it saw, so a test (or the corpus recorder) can look
at each condition the controllers wrote on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from flux_tenant_exporter.kube.client import ApiError, KubeClient, OversizedLine
from testbed.fleet import by_kind_strict, meta, path_of

Obj = dict[str, Any]

INTERVAL: Final = "30s"
RETRY_INTERVAL: Final = "10s"


def git_repository(
    namespace: str, name: str, url: str, *, branch: str = "main", secret: str | None = None, timeout: str = "15s"
) -> Obj:
    """A GitRepository following ``branch`` of ``url`` (``secret``: a basic-auth Secret's name)."""
    spec: Obj = {"interval": INTERVAL, "timeout": timeout, "url": url, "ref": {"branch": branch}}
    if secret:
        spec["secretRef"] = {"name": secret}
    return meta(by_kind_strict("GitRepository"), namespace, name, spec=spec)


def basic_auth_secret(namespace: str, name: str, username: str, password: str) -> Obj:
    """The Secret a GitRepository's ``secretRef`` names for HTTP basic auth."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"username": username, "password": password},
    }


def kustomization(
    namespace: str,
    name: str,
    *,
    source: tuple[str, str] | tuple[str, str, str],
    path: str = "./",
    service_account: str | None,
    target_namespace: str | None = None,
    depends_on: Iterable[str] = (),
    wait: bool = False,
    timeout: str | None = None,
    suspend: bool = False,
) -> Obj:
    """A tenant Kustomization; ``source`` is (kind, name) or (kind, name, namespace)."""
    source_ref: Obj = {"kind": source[0], "name": source[1]}
    if len(source) == 3:  # noqa: PLR2004
        source_ref["namespace"] = source[2]
    spec: Obj = {
        "interval": INTERVAL,
        "retryInterval": RETRY_INTERVAL,
        "path": path,
        "prune": True,
        "sourceRef": source_ref,
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    if target_namespace:
        spec["targetNamespace"] = target_namespace
    if depends_on:
        spec["dependsOn"] = [{"name": d} for d in depends_on]
    if wait:
        spec["wait"] = True
    if timeout:
        spec["timeout"] = timeout
    if suspend:
        spec["suspend"] = True
    return meta(by_kind_strict("Kustomization"), namespace, name, spec=spec)


def helm_repository(namespace: str, name: str, url: str) -> Obj:
    """A HelmRepository (HTTP index)."""
    return meta(by_kind_strict("HelmRepository"), namespace, name,
                spec={"interval": INTERVAL, "timeout": "15s", "url": url})


def helm_release(
    namespace: str,
    name: str,
    *,
    chart: str,
    version: str,
    repository: str,
    service_account: str | None,
    target_namespace: str | None = None,
    values: Obj | None = None,
    timeout: str = "30s",
) -> Obj:
    """A tenant HelmRelease of ``chart`` ``version`` from HelmRepository ``repository``, retrying every 10s."""
    spec: Obj = {
        "interval": INTERVAL,
        "timeout": timeout,
        "chart": {
            "spec": {
                "chart": chart,
                "version": version,
                "interval": INTERVAL,
                "sourceRef": {"kind": "HelmRepository", "name": repository},
            }
        },
        # Retry a failed install/upgrade on an interval instead of stalling after the remediation budget.
        "install": {"strategy": {"name": "RetryOnFailure", "retryInterval": RETRY_INTERVAL}},
        "upgrade": {"strategy": {"name": "RetryOnFailure", "retryInterval": RETRY_INTERVAL}},
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    if target_namespace:
        spec["targetNamespace"] = target_namespace
    if values is not None:
        spec["values"] = values
    return meta(by_kind_strict("HelmRelease"), namespace, name, spec=spec)


# -- reading what the controllers wrote -----------------------------------------------------------


def condition(obj: Obj, type_: str) -> Obj | None:
    """The condition of ``type_`` in an object's status, if any."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            found: Obj = cond
            return found
    return None


def has_condition(type_: str, status: str, reason: str | None = None) -> Callable[[Obj], bool]:
    """A predicate: the object has condition ``type_`` with ``status`` (and ``reason``)."""

    def check(obj: Obj) -> bool:
        cond = condition(obj, type_)
        return cond is not None and cond.get("status") == status and (reason is None or cond.get("reason") == reason)

    return check


def is_ready(obj: Obj) -> bool:
    """Ready=True for the object's current generation.

    The controllers patch the conditions before the rest of the status, so Ready=True can be seen while
    ``status.observedGeneration`` is still -1 and ``status.artifact`` is not written yet: wait for both.
    """
    status = obj.get("status") or {}
    ready = condition(obj, "Ready")
    return (ready is not None and ready.get("status") == "True"
            and status.get("observedGeneration") == obj["metadata"].get("generation"))


def ready_false_with(reason: str, substring: str = "") -> Callable[[Obj], bool]:
    """A predicate: Ready=False with ``reason`` and a message containing ``substring``."""

    def check(obj: Obj) -> bool:
        cond = condition(obj, "Ready")
        return (cond is not None and cond.get("status") == "False" and cond.get("reason") == reason
                and substring in (cond.get("message") or ""))

    return check


@dataclass
class Seen:
    """Every version of one object a wait saw, oldest first."""

    versions: list[Obj] = field(default_factory=list)

    def conditions(self) -> list[Obj]:
        """Every distinct condition (type, status, reason, message) in the order first seen."""
        out: list[Obj] = []
        keys: set[tuple[str, str, str, str]] = set()
        for obj in self.versions:
            for cond in (obj.get("status") or {}).get("conditions") or []:
                key = (cond.get("type", ""), cond.get("status", ""), cond.get("reason", ""), cond.get("message", ""))
                if key not in keys:
                    keys.add(key)
                    out.append(cond)
        return out


class WaitTimeoutError(AssertionError):
    """The predicate did not hold within the deadline; the message shows the last status seen."""


async def wait_for(
    client: KubeClient,
    obj: Obj,
    predicate: Callable[[Obj], bool],
    *,
    timeout: float = 60,  # noqa: ASYNC109 - a deadline for the whole wait, not a request timeout
    seen: Seen | None = None,
    collection: str | None = None,
) -> Obj:
    """Watch ``obj`` until ``predicate`` holds for it; returns that version (raises WaitTimeoutError at the deadline).

    Every version seen is appended to ``seen``. A watch that ends (server timeout) is resumed from the last
    resourceVersion; nothing sleeps. ``collection``: the object's collection path, for a kind that is not Flux's.
    """
    seen = seen if seen is not None else Seen()
    name = obj["metadata"]["name"]
    collection = collection or path_of(obj, collection=True)
    deadline = time.monotonic() + timeout
    last: Obj | None = None
    try:
        async with asyncio.timeout(timeout):
            listing = await client.request("GET", collection, params={"fieldSelector": f"metadata.name={name}"})
            version = listing["metadata"]["resourceVersion"]
            items: list[Obj] = listing["items"]
            for item in items:
                last = item
                seen.versions.append(item)
                if predicate(item):
                    return item
            while True:
                remaining = max(1, int(deadline - time.monotonic()))
                params = {"watch": "true", "fieldSelector": f"metadata.name={name}", "resourceVersion": version,
                          "allowWatchBookmarks": "true", "timeoutSeconds": str(remaining)}
                async with client.stream(collection, params=params, inactivity_timeout=remaining + 30) as lines:
                    async for line in lines:
                        if isinstance(line, OversizedLine):
                            continue
                        event = orjson.loads(line)
                        item = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            # 410 Gone: start again from a fresh list.
                            listing = await client.request(
                                "GET", collection, params={"fieldSelector": f"metadata.name={name}"})
                            version = listing["metadata"]["resourceVersion"]
                            break
                        version = item.get("metadata", {}).get("resourceVersion", version)
                        if event.get("type") in {"ADDED", "MODIFIED"}:
                            last = item
                            seen.versions.append(item)
                            if predicate(item):
                                return item
    except TimeoutError:
        pass
    status = orjson.dumps((last or {}).get("status"), option=orjson.OPT_INDENT_2).decode()
    where = f"{obj['kind']} {obj['metadata'].get('namespace')}/{name}"
    msg = f"{where}: condition not met within {timeout:.0f}s; last status: {status}"
    raise WaitTimeoutError(msg)


async def apply(client: KubeClient, obj: Obj) -> Obj:
    """Create ``obj`` (a Flux object or a core/RBAC object with a known collection path)."""
    created: Obj = await client.request("POST", collection_path(obj), body=obj)
    return created


_CORE: Final = {"Secret": "secrets", "ConfigMap": "configmaps", "ServiceAccount": "serviceaccounts"}


def collection_path(obj: Obj) -> str:
    """The collection URL of ``obj`` (Flux kinds, and the core kinds the scenarios create)."""
    if obj["kind"] in _CORE:
        return f"/api/v1/namespaces/{obj['metadata']['namespace']}/{_CORE[obj['kind']]}"
    return path_of(obj, collection=True)


async def get(client: KubeClient, obj: Obj) -> Obj | None:
    """The current version of ``obj``, or None if it does not exist."""
    with contextlib.suppress(ApiError):
        found: Obj = await client.request("GET", path_of(obj))
        return found
    return None

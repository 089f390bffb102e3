"""Applying the project's own Kubernetes manifests (deploy/, the Helm chart) to the real API server."""

from __future__ import annotations

import subprocess
from typing import Any, Final

from flux_tenant_exporter.kube.client import KubeClient
from testbed.controlplane import REPO_ROOT

#: kind -> (API prefix, plural, namespaced) of every kind the manifests hold
REST: Final[dict[str, tuple[str, str, bool]]] = {
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Secret": ("/api/v1", "secrets", True),
    "Service": ("/api/v1", "services", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ServiceMonitor": ("/apis/monitoring.coreos.com/v1", "servicemonitors", True),
    "PrometheusRule": ("/apis/monitoring.coreos.com/v1", "prometheusrules", True),
}


def path_of(obj: dict[str, Any]) -> str:
    """The REST path of one manifest object."""
    prefix, plural, namespaced = REST[obj["kind"]]
    meta = obj["metadata"]
    ns = f"/namespaces/{meta['namespace']}" if namespaced else ""
    return f"{prefix}{ns}/{plural}/{meta['name']}"


async def apply(client: KubeClient, obj: dict[str, Any], *, dry_run: bool = False) -> Any:
    """Server-side apply (create or update) with strict field validation, optionally as a dry run."""
    params = {"fieldManager": "fte-tests", "force": "true", "fieldValidation": "Strict"}
    if dry_run:
        params["dryRun"] = "All"
    return await client.request("PATCH", path_of(obj), params=params, body=obj,
                                content_type="application/apply-patch+yaml")


def gotool(name: str) -> str:
    """The path ``tools/gotool.sh NAME`` prints (building the tool once); CalledProcessError if it cannot."""
    result = subprocess.run(["bash", str(REPO_ROOT / "tools" / "gotool.sh"), name],  # noqa: S603, S607 - our script
                            capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]

"""Restricted identities on the real API server: a ServiceAccount bound by a Role, and a kubeconfig with its token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flux_tenant_exporter.kube.client import KubeClient
from testbed.controlplane import ControlPlane


async def restricted_identity(
    admin: KubeClient, control_plane: ControlPlane, namespace: str, rules: list[dict[str, Any]], tmp_path: Path
) -> Path:
    """A ServiceAccount in ``namespace`` bound by a Role with ``rules``; returns a kubeconfig with its token."""
    name = "restricted"
    await admin.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", body={"metadata": {"name": name}})
    await admin.request(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
        body={"metadata": {"name": name}, "rules": rules},
    )
    await admin.request(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        body={
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    token = await admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        body={"spec": {"expirationSeconds": 3600}},
    )
    return control_plane.token_kubeconfig(token["status"]["token"], tmp_path / "restricted.kubeconfig")

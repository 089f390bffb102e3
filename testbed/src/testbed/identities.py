"""Restricted identities on the real API server: a ServiceAccount bound by a Role, and a kubeconfig with its token."""

from __future__ import annotations

import base64
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from flux_tenant_exporter.kube.client import ApiError, KubeClient
from testbed.controlplane import ControlPlane


async def restricted_identity(
    admin: KubeClient, control_plane: ControlPlane, namespace: str, rules: list[dict[str, Any]], tmp_path: Path
) -> Path:
    """A ServiceAccount in ``namespace`` bound by a Role with ``rules``; returns a kubeconfig with its token."""
    name = "restricted"
    await service_account(admin, namespace, name)
    await admin.request("POST", f"{RBAC}/namespaces/{namespace}/roles", body={"metadata": {"name": name},
                                                                            "rules": rules})
    await admin.request("POST", f"{RBAC}/namespaces/{namespace}/rolebindings", body={
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [subject(namespace, name)],
    })
    return control_plane.token_kubeconfig(await token(admin, namespace, name), tmp_path / "restricted.kubeconfig")


# -- access control: the exporter's identity, tenants', the platform's, Prometheus' -----------------------------

ROOT = Path(__file__).resolve().parents[3]
#: the shipped RBAC: the exporter's ClusterRole, and what access control adds (deploy/overlays/access-control)
DEPLOY_CLUSTERROLE = ROOT / "deploy" / "base" / "clusterrole.yaml"
ACCESS_CONTROL = ROOT / "deploy" / "overlays" / "access-control"
#: Flux's flux-view ClusterRole, as flux-operator ships it (get, list, watch on the Flux groups); the testbed runs
#: no controller-manager, so the aggregation into view/edit/admin does not happen here and tests bind it directly
FLUX_VIEW_RULES = [{"apiGroups": [group], "resources": ["*"], "verbs": ["get", "list", "watch"]} for group in (
    "kustomize.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io", "source.toolkit.fluxcd.io",
    "source.extensions.fluxcd.io", "notification.toolkit.fluxcd.io", "image.toolkit.fluxcd.io")]
RBAC = "/apis/rbac.authorization.k8s.io/v1"


async def _ensure(admin: KubeClient, path: str, body: dict[str, Any]) -> None:
    """Create ``body`` at ``path`` unless it exists (409)."""
    try:
        await admin.request("POST", path, body=body)
    except ApiError as err:
        if err.status != HTTPStatus.CONFLICT:
            raise


async def cluster_role(admin: KubeClient, name: str, rules: list[dict[str, Any]]) -> str:
    """A ClusterRole ``name`` with ``rules`` (kept if it exists)."""
    await _ensure(admin, f"{RBAC}/clusterroles", {"metadata": {"name": name}, "rules": rules})
    return name


async def service_account(admin: KubeClient, namespace: str, name: str) -> None:
    """A ServiceAccount (kept if it exists)."""
    await _ensure(admin, f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}})


async def token(admin: KubeClient, namespace: str, name: str, *, audiences: tuple[str, ...] = (),
                seconds: int = 3600) -> str:
    """A bound token of ServiceAccount ``namespace/name`` from the TokenRequest API (for ``audiences``)."""
    spec: dict[str, Any] = {"expirationSeconds": seconds}
    if audiences:
        spec["audiences"] = list(audiences)
    answer = await admin.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                                 body={"spec": spec})
    return str(answer["status"]["token"])


def subject(namespace: str, name: str) -> dict[str, str]:
    """A ServiceAccount as a binding's subject."""
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


async def bind(admin: KubeClient, role: str, subjects: list[dict[str, str]], *, namespace: str | None = None,
               name: str | None = None) -> str:
    """Bind ClusterRole ``role`` to ``subjects``: in ``namespace`` (a RoleBinding), else cluster-wide."""
    name = name or f"{role}-{subjects[0]['name']}"
    body = {"metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects}
    path = f"{RBAC}/namespaces/{namespace}/rolebindings" if namespace else f"{RBAC}/clusterrolebindings"
    await _ensure(admin, path, body)
    return name


async def unbind(admin: KubeClient, name: str, *, namespace: str | None = None) -> None:
    """Delete a RoleBinding (in ``namespace``) or a ClusterRoleBinding."""
    path = f"{RBAC}/namespaces/{namespace}/rolebindings/{name}" if namespace else f"{RBAC}/clusterrolebindings/{name}"
    await admin.request("DELETE", path)


def shipped(path: Path, kind: str) -> dict[str, Any]:
    """The one object of ``kind`` in a shipped manifest file."""
    return next(d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == kind)


async def exporter_identity(admin: KubeClient, control_plane: ControlPlane, namespace: str, tmp_path: Path, *,
                            suffix: str) -> Path:
    """The exporter's ServiceAccount in ``namespace`` with exactly the shipped RBAC; a kubeconfig with its token.

    The deploy ClusterRole (read Flux objects and namespaces) and the access-control overlay's
    system:auth-delegator binding (create TokenReviews and SubjectAccessReviews).
    """
    await service_account(admin, namespace, "exporter")
    role = shipped(DEPLOY_CLUSTERROLE, "ClusterRole")
    watcher = await cluster_role(admin, f"fte-exporter-{suffix}", role["rules"])
    await bind(admin, watcher, [subject(namespace, "exporter")])
    delegator = shipped(ACCESS_CONTROL / "auth-delegator.yaml", "ClusterRoleBinding")["roleRef"]["name"]
    await bind(admin, delegator, [subject(namespace, "exporter")], name=f"fte-auth-delegator-{suffix}")
    return control_plane.token_kubeconfig(await token(admin, namespace, "exporter"), tmp_path / "exporter.kubeconfig")


def expired_token(control_plane: ControlPlane, namespace: str, name: str, audience: str) -> str:
    """A ServiceAccount token signed with the cluster's own key whose validity ended an hour ago."""
    now = int(time.time())
    claims = {"iss": "https://kubernetes.default.svc.cluster.local", "aud": [audience],
              "sub": f"system:serviceaccount:{namespace}:{name}", "iat": now - 7200, "nbf": now - 7200,
              "exp": now - 3600, "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name,
                                                                                              "uid": "0"}}}

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(orjson.dumps({"alg": "RS256", "typ": "JWT"})) + "." + b64(orjson.dumps(claims))
    key = serialization.load_pem_private_key((control_plane.workdir / "sa.key").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64(signature)

"""Read the common kubeconfig shapes without importing the whole kubernetes-asyncio client.

kubernetes-asyncio's config loader imports every API model of the client (about 35 MiB of resident memory
for a process that needs none of them). Certificates, bearer tokens and token files cover in-cluster-like and
most static kubeconfigs; anything else (``exec`` plugins, ``auth-provider``) is handed to kubernetes-asyncio,
which is then imported. ``KUBECONFIG`` lists are merged as kubectl does (the first file to define a name wins).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flux_tenant_exporter.base.errors import UserError


class KubeconfigError(UserError):
    """The kubeconfig cannot be used; the message says why."""


@dataclass(frozen=True)
class Connection:
    """What a client needs: the server, a TLS context and, optionally, a token or a token file."""

    host: str
    ssl_context: ssl.SSLContext
    token: str | None = None
    token_file: Path | None = None


def _files(path: str | Path | None) -> list[Path]:
    if path:
        return [Path(path)]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _read(path: Path, *, explicit: bool) -> dict[str, Any] | None:
    """One kubeconfig document; None for a missing file of a $KUBECONFIG list (kubectl skips those)."""
    try:
        text = path.read_text()
    except FileNotFoundError as err:
        if not explicit:
            return None
        msg = f"kubeconfig {path}: no such file"
        raise KubeconfigError(msg) from err
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        msg = f"kubeconfig {path}: cannot read it: {reason or err}"
        raise KubeconfigError(msg) from err
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        msg = f"kubeconfig {path}: not valid YAML ({getattr(err, 'problem', None) or err}{where})"
        raise KubeconfigError(msg) from err
    if not isinstance(doc, dict) or not all(isinstance(doc.get(s) or [], list) for s in ("clusters", "users",
                                                                                          "contexts")):
        msg = f"kubeconfig {path}: not a kubeconfig (expected a mapping with clusters, users and contexts lists)"
        raise KubeconfigError(msg)
    return doc


def _merged(paths: list[Path], *, explicit: bool) -> tuple[dict[str, Any], dict[str, Path]]:
    """The merged document, and for each cluster/user name the directory its relative paths are based on."""
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": None}
    bases: dict[str, Path] = {}
    for path in paths:
        doc = _read(path, explicit=explicit)
        if doc is None:
            continue
        for section in ("clusters", "users", "contexts"):
            for item in doc.get(section) or []:
                body = item.get(section[:-1]) if isinstance(item, dict) else None
                if not isinstance(item, dict) or not isinstance(body or {}, dict):
                    msg = f"kubeconfig {path}: every entry of {section} must be a mapping with name and {section[:-1]}"
                    raise KubeconfigError(msg)
                name = item.get("name")
                if name and name not in merged[section]:
                    merged[section][name] = body or {}
                    bases[f"{section}/{name}"] = path.parent
        merged["current-context"] = merged["current-context"] or doc.get("current-context")
    return merged, bases


def _data_or_file(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    data = entry.get(f"{key}-data")
    if data:
        return base64.b64decode(data)
    path = entry.get(key)
    if path:
        return (base / str(path)).read_bytes()
    return None


def load(path: str | Path | None = None, context: str | None = None) -> Connection | None:
    """The connection of a kubeconfig context, or None when it needs kubernetes-asyncio (exec, auth-provider)."""
    paths = _files(path)
    merged, bases = _merged(paths, explicit=bool(path) or len(paths) == 1)
    where = f"kubeconfig {', '.join(map(str, paths))}"
    name = context or merged["current-context"]
    known = ", ".join(sorted(merged["contexts"])) or "none"
    if not name:
        msg = f"{where}: no current-context; pass --context (contexts: {known})"
        raise KubeconfigError(msg)
    if name not in merged["contexts"]:
        msg = f"{where}: context {name!r} not found (contexts: {known})"
        raise KubeconfigError(msg)
    ctx = merged["contexts"][name]
    cluster = merged["clusters"].get(ctx.get("cluster"))
    user = merged["users"].get(ctx.get("user"), {})
    if not cluster or not cluster.get("server"):
        msg = f"kubeconfig context {name!r}: cluster {ctx.get('cluster')!r} has no server"
        raise KubeconfigError(msg)
    if any(user.get(k) for k in ("exec", "auth-provider", "username")) or any(
        cluster.get(k) for k in ("tls-server-name", "proxy-url")
    ):
        return None
    try:
        ctx_ssl = _tls(cluster, user, bases.get(f"clusters/{ctx.get('cluster')}", Path()),
                       bases.get(f"users/{ctx.get('user')}", Path()))
    except (OSError, ValueError, ssl.SSLError) as err:  # unreadable files, bad base64, bad PEM
        msg = f"kubeconfig context {name!r}: cannot use its certificates: {err}"
        raise KubeconfigError(msg) from err
    user_base = bases.get(f"users/{ctx.get('user')}", Path())
    token_file = user.get("tokenFile")
    return Connection(
        host=str(cluster["server"]).rstrip("/"),
        ssl_context=ctx_ssl,
        token=user.get("token"),
        token_file=(user_base / token_file) if token_file else None,
    )


def _tls(cluster: dict[str, Any], user: dict[str, Any], cluster_base: Path, user_base: Path) -> ssl.SSLContext:
    """The TLS context of a cluster and user: its CA, and the client certificate if there is one."""
    ca = _data_or_file(cluster, "certificate-authority", cluster_base)
    ctx_ssl = ssl.create_default_context(cadata=ca.decode() if ca else None)
    if cluster.get("insecure-skip-tls-verify"):
        ctx_ssl.check_hostname = False
        ctx_ssl.verify_mode = ssl.CERT_NONE
    cert = _data_or_file(user, "client-certificate", user_base)
    key = _data_or_file(user, "client-key", user_base)
    if cert and key:
        with tempfile.TemporaryDirectory(prefix="fte-kubeconfig-") as tmp:
            cert_path, key_path = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            for file, content in ((cert_path, cert), (key_path, key)):
                file.touch(mode=0o600)
                file.write_bytes(content)
            ctx_ssl.load_cert_chain(cert_path, key_path)  # read now; the files go away with the directory
    return ctx_ssl

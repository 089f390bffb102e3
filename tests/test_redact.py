"""Redaction: one function for every free-text field and URL-like label; a table of credential shapes."""

from __future__ import annotations

import time

import pytest

from flux_tenant_exporter.base.redact import redact
from flux_tenant_exporter.flux.projection import parse_object
from flux_tenant_exporter.render.documents import tenants_doc
from flux_tenant_exporter.render.prometheus.renderer import Renderer, RenderOptions
from flux_tenant_exporter.state.store import Store
from flux_tenant_exporter.state.view import build_view
from testbed import fleet

JWT = ("eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Iiwic3ViIjoieCJ9"
       ".c2lnbmF0dXJlLXBhcnQtb2YtdGhlLWp3dA")
GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GLPAT = "glpat-" + "xY9zAbCdEfGhIjKlMnOp"
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
BASIC = "dXNlcjpodW50ZXIy"  # user:hunter2

#: (text, the secret parts that must not survive)
LEAKS: list[tuple[str, tuple[str, ...]]] = [
    (f"Authorization: Bearer {JWT}", (JWT, JWT[:20])),
    ("authorization=Bearer opaque-token-value-1234", ("opaque-token-value-1234",)),
    (f"request failed: {JWT}", (JWT[:20],)),
    (f"Authorization: Basic {BASIC}", (BASIC,)),
    (f"header was Basic {BASIC} (rejected)", (BASIC,)),
    (f"bearer token {GHP}", (GHP, GHP[4:])),
    (f"Authorization: token {GHP}", (GHP,)),
    (f"remote: {GHP} is invalid", (GHP,)),
    (f"clone with https://oauth2:{GLPAT}@gitlab.example.com/group/app.git", (GLPAT,)),
    (f"gitlab token {GLPAT} expired", (GLPAT,)),
    ('values: {"password":"hunter2","token":"t0k3n-abc"}', ("hunter2", "t0k3n-abc")),
    ('{"client_secret": "c-s3cret value", "accessToken":"atk"}', ("c-s3cret", "atk")),
    ("password: hunter2\nusername: admin", ("hunter2",)),
    ("  aws_secret_access_key: " + AWS_SECRET, (AWS_SECRET,)),
    (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET} AWS_ACCESS_KEY_ID={AWS_ID}", (AWS_SECRET, AWS_ID)),
    (f"invalid key id {AWS_ID}", (AWS_ID,)),
    (f"the secret is {AWS_SECRET}", (AWS_SECRET,)),
    ("https://bot:s3cr3t@git.example.com/app.git", ("s3cr3t", "bot:")),
    ("https://bot:p@ss@w0rd@git.example.com/app.git", ("p@ss", "w0rd", "ss@w0rd")),
    ("https://bot:pa/ss@git.example.com/app.git", ("pa/ss",)),
    ("unable to clone 'ssh://git:hunter2@example.com:22/app': EOF", ("hunter2",)),
    ("AKIAKEY:SECRETVALUE@minio.example.com:9000", ("SECRETVALUE", "AKIAKEY")),
    ("endpoint minio:s3cr3t@pw@storage.local is unreachable", ("s3cr3t", "pw@")),
    ("https://bucket.s3.amazonaws.com/x?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKID%2F2026",
     ("abcdef0123", "AKID")),
    ("https://host/repo.git?access_token=zzz111&ref=main", ("zzz111",)),
    ("https://blob.example.net/c?sv=2020&sig=Zm9vYmFy%3D&se=2026", ("Zm9vYmFy",)),
    ("env: API_KEY=abc123def SESSION_TOKEN='sess-value'", ("abc123def", "sess-value")),
    ("x-api-key: k-1234567", ("k-1234567",)),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----",
     ("b3BlbnNzaC1rZXkt",)),
    ("slack webhook token xoxb-123456789012-abcdefghij", ("xoxb-123456789012",)),
    ("passphrase=correct-horse", ("correct-horse",)),
    ("cookie: session=abc; Path=/", ("abc",)),
]

#: texts that carry no credential and must come out unchanged
KEPT = [
    "oci://ghcr.io/stefanprodan/charts/podinfo",
    "https://github.com/fluxcd/flux2-kustomize-helm-example",
    "ssh://git@github.com/org/repo",  # no password; the user "git" goes (over-redaction is fine), host stays
    "stored artifact for revision 'main@sha1:0123456789abcdef0123456789abcdef01234567'",
    "Applied revision: main@sha1:0123456789abcdef0123456789abcdef01234567",
    "failed to checkout and determine revision: unable to clone 'https://github.com/org/app': authentication required",
    "x509: certificate signed by unknown authority",
    "failed to verify signature: no matching signatures were found",
    "Secret 'flux-system/sops-age' not found",
    "health check failed after 5m0s: timeout waiting for: [Deployment/app/web status: 'InProgress']",
    "Basic authentication is not supported",
    "kustomize build failed: accumulating resources: 'ns/app' must build at directory",
    "docker.io/library/nginx:1.25@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "HelmChart 'flux-system/team-a-web' is not ready: chart pull error",
]


@pytest.mark.parametrize(("text", "secrets"), LEAKS, ids=[t[:40] for t, _ in LEAKS])
def test_every_credential_shape_is_redacted(text: str, secrets: tuple[str, ...]) -> None:
    """Each shape loses its secret (and keeps a *** marker where it was)."""
    out = redact(text)
    for secret in secrets:
        assert secret not in out, out
    assert "***" in out


@pytest.mark.parametrize("text", KEPT)
def test_text_without_credentials_is_kept(text: str) -> None:
    """Revisions, hosts, paths and ordinary error reasons stay readable."""
    out = redact(text)
    if text.startswith("ssh://git@"):
        assert out == "ssh://***@github.com/org/repo"
    else:
        assert out == text


def test_redaction_is_idempotent() -> None:
    """Redacting a redacted text changes nothing (cached texts may be redacted again)."""
    for text, _ in LEAKS:
        once = redact(text)
        assert redact(once) == once


def test_no_field_or_label_leaks_through_metrics_or_tenants(store: Store) -> None:
    """Every free-text field (messages) and URL-like label (``url``, also of gotk_resource_info) is redacted: a
    fleet whose statuses and URLs hold every shape leaks none of them into /metrics or /tenants."""
    secrets = [s for _, parts in LEAKS for s in parts]
    for i, (text, _) in enumerate(LEAKS):
        repo = fleet.gitrepository("t", f"repo-{i}", url="https://bot:p@ss@w0rd@git.example.com/app.git")
        repo["status"] = fleet.failed_status("GitOperationFailed", text)
        store.upsert(parse_object(repo))
        bucket = fleet.bucket("t", f"bucket-{i}")
        bucket["spec"]["endpoint"] = "AKIAKEY:SECRETVALUE@minio.example.com:9000"
        bucket["status"] = fleet.failed_status("BucketOperationFailed", text)
        store.upsert(parse_object(bucket))
    view = build_view(store, now=time.time())
    exposition = Renderer(RenderOptions(gotk_compat=True)).render(view)
    metrics_text = b"".join(exposition.pieces()).decode()
    assert 'url="https://***@git.example.com/app.git"' in metrics_text
    assert "gotk_resource_info{" in metrics_text
    assert 'url="***@minio.example.com:9000"' in metrics_text
    import orjson  # noqa: PLC0415

    tenants_text = orjson.dumps(tenants_doc(view)).decode()
    assert "GitOperationFailed" in tenants_text
    for secret in secrets:
        assert secret not in metrics_text
        assert secret not in tenants_text

"""Who may read what, the Kubernetes way (``--auth=kubernetes``): tokens, reviews, and caches of their answers.

A bearer token per request; the API server's reviews say who it is and what it may see.

- Who: a TokenReview of the token (for ``--auth-token-audiences``). Answers, authenticated or not, are kept
  ``token_ttl`` under an HMAC of the audiences and the token (a per-process key; the token itself is never kept
  nor logged).
- What: SubjectAccessReviews. A namespace is visible to an identity that may ``list`` Kustomizations there
  (``--auth-namespace-verb`` and ``-resource``); one that may do so in every namespace (namespace "") sees
  everything with one review. /metrics needs ``get`` on the non-resource path ``/metrics``. Answers are kept
  ``allow_ttl`` or ``deny_ttl`` under the whole identity (user, uid, groups, extra) and what was asked.
- One review in flight per key, at most ``concurrency`` at once; an error (the API server unreachable, slow or
  refusing the exporter) is never kept: the request gets 503, and the next one asks again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from flux_tenant_exporter.base.answers import Answers
from flux_tenant_exporter.base.config import AccessSettings
from flux_tenant_exporter.base.vocabulary import ReviewKind
from flux_tenant_exporter.kube.client import KubeClient
from flux_tenant_exporter.kube.reviews import Access, Identity, ReviewUnavailable, review_access, review_token
from flux_tenant_exporter.telemetry.selfmetrics import SelfMetrics

log = structlog.get_logger("flux_tenant_exporter.serve.access")
T = TypeVar("T", Identity | None, bool)

#: what reading /metrics takes (the API server's, the kubelet's and controller-runtime's convention)
METRICS_ACCESS = Access(verb="get", path="/metrics")


class Unauthenticated(Exception):  # noqa: N818 - what the caller answers: 401 Unauthorized
    """No bearer token, or one the API server does not authenticate."""


@dataclass(frozen=True, slots=True)
class Scope:
    """The namespaces an identity may see: ``namespaces`` None is every namespace."""

    namespaces: frozenset[str] | None


EVERYTHING = Scope(None)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class Gate:
    """Authentication and authorization of requests against one API server, with the caches of its answers."""

    def __init__(self, settings: AccessSettings, client: KubeClient, metrics: SelfMetrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Nothing is asked before the first request."""
        self.settings = settings
        self.client = client
        self.metrics = metrics
        self._secret = secrets.token_bytes(32)
        self._audiences = b"\0".join(a.encode() for a in settings.token_audiences)
        self._tokens: Answers[bytes, Identity | None] = Answers(settings.cache_size, lambda _: settings.token_ttl,
                                                                clock)
        self._access: Answers[tuple[Identity, Access], bool] = Answers(
            settings.cache_size, lambda allowed: settings.allow_ttl if allowed else settings.deny_ttl, clock)
        self._slots = asyncio.Semaphore(settings.concurrency)
        metrics.init_access()

    def _namespace_access(self, namespace: str) -> Access:
        s = self.settings
        return Access(verb=s.verb, group=s.group, resource=s.resource, namespace=namespace)

    async def _review(self, kind: ReviewKind, review: Callable[[], Awaitable[T]]) -> T:
        """Run one review in a slot, counting it and its time by kind and result."""
        async with self._slots:
            started = time.perf_counter()
            try:
                result = await review()
            except ReviewUnavailable as err:
                self.metrics.reviews.labels(kind, "error").inc()
                log.warning("review_failed", kind=kind, error=str(err))
                raise
            finally:
                self.metrics.review_duration.labels(kind).observe(time.perf_counter() - started)
        self.metrics.reviews.labels(kind, "allowed" if result else "denied").inc()
        return result

    async def identify(self, authorization: str | None) -> Identity:
        """Who the request's ``Authorization`` header is; Unauthenticated, or ReviewUnavailable (no verdict)."""
        token = bearer_token(authorization)
        if token is None:
            msg = "no bearer token: send Authorization: Bearer <token>"
            raise Unauthenticated(msg)
        key = hmac.new(self._secret, self._audiences + b"\0\0" + token.encode(), hashlib.sha256).digest()

        async def fetch() -> Identity | None:
            return await self._review("token", lambda: review_token(self.client, token,
                                                                    self.settings.token_audiences))

        identity, hit = await self._tokens.get(key, fetch)
        if hit:
            self.metrics.review_cache_hits.labels("token").inc()
        if identity is None:
            audiences = ", ".join(self.settings.token_audiences)
            msg = "the token is not valid" + (f" for the audience(s) {audiences}" if audiences else "")
            raise Unauthenticated(msg)
        return identity

    async def may(self, identity: Identity, access: Access) -> bool:
        """Whether ``identity`` may do ``access`` (kept answers first); ReviewUnavailable when there is no verdict."""
        async def fetch() -> bool:
            return await self._review("access", lambda: review_access(self.client, identity, access))

        allowed, hit = await self._access.get((identity, access), fetch)
        if hit:
            self.metrics.review_cache_hits.labels("access").inc()
        log.debug("access_review", user=identity.user, access=str(access), allowed=allowed, cached=hit)
        return allowed

    def _kept(self, identity: Identity, access: Access) -> bool | None:
        hit = self._access.cached((identity, access))
        if hit is None:
            return None
        self.metrics.review_cache_hits.labels("access").inc()
        return hit[0]

    async def scope(self, identity: Identity, namespaces: Iterable[str]) -> Scope:
        """Which of ``namespaces`` ``identity`` may see (every namespace: EVERYTHING, one review).

        Kept answers are read first without a task each, so a warm request over thousands of namespaces costs
        dictionary lookups; only the rest are asked, ``concurrency`` at a time.
        """
        if await self.may(identity, self._namespace_access("")):
            return EVERYTHING
        visible: set[str] = set()
        unknown: list[str] = []
        for namespace in set(namespaces):
            kept = self._kept(identity, self._namespace_access(namespace))
            if kept is None:
                unknown.append(namespace)
            elif kept:
                visible.add(namespace)
        if unknown:
            answers = await asyncio.gather(*(self.may(identity, self._namespace_access(ns)) for ns in unknown))
            visible.update(ns for ns, allowed in zip(unknown, answers, strict=True) if allowed)
        return Scope(frozenset(visible))

"""The API server's reviews: who a bearer token is (TokenReview) and what an identity may do (SubjectAccessReview).

Both are create-only virtual resources (nothing is stored; each is one round trip), and both need only
``system:auth-delegator``. ``ReviewUnavailable`` is any answer that is not a verdict: the API server unreachable,
slow, throttling, or refusing the exporter itself; the caller answers 503 and keeps nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flux_tenant_exporter.kube.client import CONNECTION_ERRORS, ApiError, KubeClient

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105 - a path, not a secret
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
#: a review is a quick in-memory check on the API server; a slow one is an outage
REVIEW_TIMEOUT = 10.0


class ReviewUnavailable(Exception):  # noqa: N818 - what the caller answers: 503 Service Unavailable
    """The API server gave no verdict (unreachable, an error, or the exporter may not ask)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a token is, as the API server says: the whole of it keys what is cached for it.

    Groups and extra are sorted, so one identity is one key whatever order the review listed them in; a user who
    comes with other groups is another identity.
    """

    user: str
    uid: str
    groups: tuple[str, ...]
    extra: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def of(cls, user: dict[str, Any]) -> Identity:
        """From a TokenReview's ``status.user``."""
        extra = user.get("extra") or {}
        return cls(
            user=str(user.get("username", "")),
            uid=str(user.get("uid", "")),
            groups=tuple(sorted(str(g) for g in user.get("groups") or ())),
            extra=tuple(sorted((str(k), tuple(str(v) for v in vs or ())) for k, vs in extra.items())),
        )

    def spec(self) -> dict[str, Any]:
        """The subject of a SubjectAccessReview: user, uid, groups and extra, as the token review gave them."""
        spec: dict[str, Any] = {"user": self.user, "groups": list(self.groups)}
        if self.uid:
            spec["uid"] = self.uid
        if self.extra:
            spec["extra"] = {k: list(v) for k, v in self.extra}
        return spec


@dataclass(frozen=True, slots=True)
class Access:
    """What is asked: a verb on a resource (in a namespace; "" is every namespace), or on a non-resource path."""

    verb: str
    group: str = ""
    resource: str = ""
    namespace: str = ""
    path: str | None = None

    def attributes(self) -> dict[str, Any]:
        """The SubjectAccessReview's resourceAttributes or nonResourceAttributes."""
        if self.path is not None:
            return {"nonResourceAttributes": {"path": self.path, "verb": self.verb}}
        return {"resourceAttributes": {"namespace": self.namespace, "verb": self.verb, "group": self.group,
                                       "resource": self.resource}}

    def __str__(self) -> str:
        """``get /metrics``, ``list kustomizations.kustomize.toolkit.fluxcd.io in team-a``."""
        if self.path is not None:
            return f"{self.verb} {self.path}"
        where = f" in {self.namespace}" if self.namespace else " in every namespace"
        return f"{self.verb} {self.resource}.{self.group}{where}"


async def _create(client: KubeClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        answer = await client.request("POST", path, body=body, timeout=REVIEW_TIMEOUT)
    except ApiError as err:
        msg = f"the API server refused the review: {err}"
        raise ReviewUnavailable(msg) from err
    except CONNECTION_ERRORS as err:
        msg = f"the API server did not answer the review: {str(err) or type(err).__name__}"
        raise ReviewUnavailable(msg) from err
    status = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(status, dict):
        msg = "the API server's review has no status"
        raise ReviewUnavailable(msg)
    return status


async def review_token(client: KubeClient, token: str, audiences: tuple[str, ...]) -> Identity | None:
    """The identity of ``token``, or None if the API server does not authenticate it (for ``audiences``).

    With audiences asked for, the answer must name one of them: an API server that is not audience-aware would
    answer without, and its yes would not be about our audiences.
    """
    spec: dict[str, Any] = {"token": token}
    if audiences:
        spec["audiences"] = list(audiences)
    status = await _create(client, TOKEN_REVIEWS, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                                   "spec": spec})
    if status.get("authenticated") is not True or status.get("error"):
        return None
    if audiences and not set(status.get("audiences") or ()) & set(audiences):
        return None
    user = status.get("user")
    if not isinstance(user, dict) or not user.get("username"):
        return None
    return Identity.of(user)


async def review_access(client: KubeClient, identity: Identity, access: Access) -> bool:
    """Whether ``identity`` may do ``access``; an evaluation error with no verdict is ReviewUnavailable."""
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {**identity.spec(), **access.attributes()}}
    status = await _create(client, ACCESS_REVIEWS, body)
    allowed, denied = status.get("allowed") is True, status.get("denied") is True
    if allowed and denied:
        msg = "the API server's access review says both allowed and denied"
        raise ReviewUnavailable(msg)
    return allowed

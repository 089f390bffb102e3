"""The Kubernetes kinds the exporter watches, how to address them, and the role each plays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from flux_tenant_exporter.base.vocabulary import KindRole


@dataclass(frozen=True)
class WatchedKind:
    """A kind the exporter lists and watches. ``versions`` is the order of preference when discovering."""

    kind: str
    group: str
    plural: str
    versions: tuple[str, ...]
    role: KindRole

    @property
    def id(self) -> str:
        """The flag/label id, e.g. ``kustomization`` (the lower-case kind)."""
        return self.kind.lower()

    def collection_path(self, version: str, namespace: str | None = None) -> str:
        """The REST path of the collection, cluster-wide or in one namespace."""
        prefix = "/api/v1" if not self.group else f"/apis/{self.group}/{version}"
        if namespace:
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"

    def object_path(self, version: str, namespace: str, name: str) -> str:
        """The REST path of one object."""
        return f"{self.collection_path(version, namespace)}/{name}"


SOURCE_GROUP = "source.toolkit.fluxcd.io"

KUSTOMIZATION = WatchedKind("Kustomization", "kustomize.toolkit.fluxcd.io", "kustomizations",
                            ("v1", "v1beta2", "v1beta1"), "applier")
HELMRELEASE = WatchedKind("HelmRelease", "helm.toolkit.fluxcd.io", "helmreleases", ("v2", "v2beta2", "v2beta1"),
                          "applier")
GITREPOSITORY = WatchedKind("GitRepository", SOURCE_GROUP, "gitrepositories", ("v1", "v1beta2", "v1beta1"), "source")
OCIREPOSITORY = WatchedKind("OCIRepository", SOURCE_GROUP, "ocirepositories", ("v1", "v1beta2"), "source")
HELMREPOSITORY = WatchedKind("HelmRepository", SOURCE_GROUP, "helmrepositories", ("v1", "v1beta2", "v1beta1"), "source")
HELMCHART = WatchedKind("HelmChart", SOURCE_GROUP, "helmcharts", ("v1", "v1beta2", "v1beta1"), "source")
BUCKET = WatchedKind("Bucket", SOURCE_GROUP, "buckets", ("v1", "v1beta2", "v1beta1"), "source")

#: The Flux kinds, appliers first.
FLUX_KINDS: Final[tuple[WatchedKind, ...]] = (
    KUSTOMIZATION,
    HELMRELEASE,
    GITREPOSITORY,
    OCIREPOSITORY,
    HELMREPOSITORY,
    HELMCHART,
    BUCKET,
)
#: The flag ids of the Flux kinds (``--kinds``).
FLUX_KIND_IDS: Final[tuple[str, ...]] = tuple(k.id for k in FLUX_KINDS)

#: Namespaces carry the tenant labels; the core group has one version.
NAMESPACE = WatchedKind("Namespace", "", "namespaces", ("v1",), "tenancy")

#: The kinds of each role, by ``kind``.
APPLIER_KINDS: Final = frozenset(k.kind for k in FLUX_KINDS if k.role == "applier")
SOURCE_KINDS: Final = frozenset(k.kind for k in FLUX_KINDS if k.role == "source")

_BY_KIND = {k.kind: k for k in (*FLUX_KINDS, NAMESPACE)}
_BY_ID = {k.id: k for k in (*FLUX_KINDS, NAMESPACE)}


def by_kind(kind: str) -> WatchedKind | None:
    """The WatchedKind for a ``kind`` string (``Kustomization``), or None."""
    return _BY_KIND.get(kind)


def by_id(kind_id: str) -> WatchedKind:
    """The WatchedKind for a flag id (``kustomization``); KeyError if unknown."""
    return _BY_ID[kind_id.lower()]

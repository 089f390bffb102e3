"""The Kubernetes kinds the exporter reads, and how to address them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FluxKind:
    """A kind the exporter watches. ``versions`` is the order of preference when discovering."""

    kind: str
    group: str
    plural: str
    versions: tuple[str, ...]
    #: the id used in flags and in the ``kind`` label (lower-case kind)
    @property
    def id(self) -> str:
        """The flag/label id, e.g. ``kustomization``."""
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

KUSTOMIZATION = FluxKind("Kustomization", "kustomize.toolkit.fluxcd.io", "kustomizations", ("v1", "v1beta2", "v1beta1"))
HELMRELEASE = FluxKind("HelmRelease", "helm.toolkit.fluxcd.io", "helmreleases", ("v2", "v2beta2", "v2beta1"))
GITREPOSITORY = FluxKind("GitRepository", SOURCE_GROUP, "gitrepositories", ("v1", "v1beta2", "v1beta1"))
OCIREPOSITORY = FluxKind("OCIRepository", SOURCE_GROUP, "ocirepositories", ("v1", "v1beta2"))
HELMREPOSITORY = FluxKind("HelmRepository", SOURCE_GROUP, "helmrepositories", ("v1", "v1beta2", "v1beta1"))
HELMCHART = FluxKind("HelmChart", SOURCE_GROUP, "helmcharts", ("v1", "v1beta2", "v1beta1"))
BUCKET = FluxKind("Bucket", SOURCE_GROUP, "buckets", ("v1", "v1beta2", "v1beta1"))

#: The Flux kinds, appliers first.
FLUX_KINDS: tuple[FluxKind, ...] = (
    KUSTOMIZATION,
    HELMRELEASE,
    GITREPOSITORY,
    OCIREPOSITORY,
    HELMREPOSITORY,
    HELMCHART,
    BUCKET,
)

#: Namespaces carry the tenant labels; the core group has one version.
NAMESPACE = FluxKind("Namespace", "", "namespaces", ("v1",))

_BY_KIND = {k.kind: k for k in (*FLUX_KINDS, NAMESPACE)}
_BY_ID = {k.id: k for k in (*FLUX_KINDS, NAMESPACE)}


def by_kind(kind: str) -> FluxKind | None:
    """The FluxKind for a ``kind`` string (``Kustomization``), or None."""
    return _BY_KIND.get(kind)


def by_id(kind_id: str) -> FluxKind:
    """The FluxKind for a flag id (``kustomization``); KeyError if unknown."""
    return _BY_ID[kind_id.lower()]

"""The Kubernetes kinds the exporter watches, how to address them, and the role each plays.

The known Flux kinds are listed here, one line each; a kind of a Flux API group that the cluster serves and this
table does not know (a future Flux kind) is watched too (``discovered_kind``), with the generic Flux condition
semantics only. What the exporter knows of each known kind beyond its address (the references that lead to a
root cause, its revision, its labels in ``gotk_resource_info``) sits in ``flux.kindspecs``.
"""

from __future__ import annotations

import re
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
    #: False for a kind found by discovery that the exporter has no specific knowledge of
    known: bool = True

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
IMAGE_GROUP = "image.toolkit.fluxcd.io"
NOTIFICATION_GROUP = "notification.toolkit.fluxcd.io"
GENERATOR_GROUP = "source.extensions.fluxcd.io"
OPERATOR_GROUP = "fluxcd.controlplane.io"

KUSTOMIZATION = WatchedKind("Kustomization", "kustomize.toolkit.fluxcd.io", "kustomizations",
                            ("v1", "v1beta2", "v1beta1"), "applier")
HELMRELEASE = WatchedKind("HelmRelease", "helm.toolkit.fluxcd.io", "helmreleases", ("v2", "v2beta2", "v2beta1"),
                          "applier")
GITREPOSITORY = WatchedKind("GitRepository", SOURCE_GROUP, "gitrepositories", ("v1", "v1beta2", "v1beta1"), "source")
OCIREPOSITORY = WatchedKind("OCIRepository", SOURCE_GROUP, "ocirepositories", ("v1", "v1beta2"), "source")
HELMREPOSITORY = WatchedKind("HelmRepository", SOURCE_GROUP, "helmrepositories", ("v1", "v1beta2", "v1beta1"), "source")
HELMCHART = WatchedKind("HelmChart", SOURCE_GROUP, "helmcharts", ("v1", "v1beta2", "v1beta1"), "source")
BUCKET = WatchedKind("Bucket", SOURCE_GROUP, "buckets", ("v1", "v1beta2", "v1beta1"), "source")
EXTERNALARTIFACT = WatchedKind("ExternalArtifact", SOURCE_GROUP, "externalartifacts", ("v1",), "source")
ARTIFACTGENERATOR = WatchedKind("ArtifactGenerator", GENERATOR_GROUP, "artifactgenerators", ("v1beta1",), "source")
IMAGEREPOSITORY = WatchedKind("ImageRepository", IMAGE_GROUP, "imagerepositories", ("v1", "v1beta2", "v1beta1"),
                              "automation")
IMAGEPOLICY = WatchedKind("ImagePolicy", IMAGE_GROUP, "imagepolicies", ("v1", "v1beta2", "v1beta1"), "automation")
IMAGEUPDATEAUTOMATION = WatchedKind("ImageUpdateAutomation", IMAGE_GROUP, "imageupdateautomations",
                                    ("v1", "v1beta2", "v1beta1"), "automation")
RECEIVER = WatchedKind("Receiver", NOTIFICATION_GROUP, "receivers", ("v1", "v1beta3", "v1beta2"), "notification")
ALERT = WatchedKind("Alert", NOTIFICATION_GROUP, "alerts", ("v1beta3", "v1beta2"), "notification")
PROVIDER = WatchedKind("Provider", NOTIFICATION_GROUP, "providers", ("v1beta3", "v1beta2"), "notification")
FLUXINSTANCE = WatchedKind("FluxInstance", OPERATOR_GROUP, "fluxinstances", ("v1",), "operator")
FLUXREPORT = WatchedKind("FluxReport", OPERATOR_GROUP, "fluxreports", ("v1",), "operator")
RESOURCESET = WatchedKind("ResourceSet", OPERATOR_GROUP, "resourcesets", ("v1",), "operator")
RESOURCESETINPUTPROVIDER = WatchedKind("ResourceSetInputProvider", OPERATOR_GROUP, "resourcesetinputproviders",
                                       ("v1",), "operator")

#: The known Flux kinds, appliers first. The first seven are the toolkit's core (what Flux's own
#: kube-state-metrics example and the benchmark fleet cover beside the image and notification kinds).
FLUX_KINDS: Final[tuple[WatchedKind, ...]] = (
    KUSTOMIZATION,
    HELMRELEASE,
    GITREPOSITORY,
    OCIREPOSITORY,
    HELMREPOSITORY,
    HELMCHART,
    BUCKET,
    EXTERNALARTIFACT,
    ARTIFACTGENERATOR,
    IMAGEREPOSITORY,
    IMAGEPOLICY,
    IMAGEUPDATEAUTOMATION,
    RECEIVER,
    ALERT,
    PROVIDER,
    FLUXINSTANCE,
    FLUXREPORT,
    RESOURCESET,
    RESOURCESETINPUTPROVIDER,
)
CORE_KINDS: Final[tuple[WatchedKind, ...]] = FLUX_KINDS[:7]
#: The flag ids of the known Flux kinds (``--kinds``).
FLUX_KIND_IDS: Final[tuple[str, ...]] = tuple(k.id for k in FLUX_KINDS)

#: Namespaces carry the tenant labels; the core group has one version.
NAMESPACE = WatchedKind("Namespace", "", "namespaces", ("v1",), "tenancy")

#: The kinds of each role, by ``kind``.
APPLIER_KINDS: Final = frozenset(k.kind for k in FLUX_KINDS if k.role == "applier")
SOURCE_KINDS: Final = frozenset(k.kind for k in FLUX_KINDS if k.role == "source")
#: The kinds that fetch from outside the cluster (Git, OCI and Helm registries, buckets, image registries, input
#: providers, the Flux distribution) or push to it: their errors are about credentials, reachability and refs.
FETCHING_KINDS: Final = SOURCE_KINDS | frozenset({"ImageRepository", "ImagePolicy", "ImageUpdateAutomation",
                                                  "ResourceSetInputProvider", "FluxInstance"})
#: Kinds with no status at all (notification-controller writes none): what the exporter reports of them is
#: derived from their references.
STATUSLESS_KINDS: Final = frozenset({"Alert", "Provider"})
#: Kinds another object produces (an ExternalArtifact is written by its generator): one that is not ready is
#: blocked by its producer.
PRODUCED_KINDS: Final = frozenset({"ExternalArtifact"})
#: Kinds reading several sources (an ArtifactGenerator's): the first is their source, the others in dependsOn.
MULTI_SOURCE_KINDS: Final = frozenset({"ArtifactGenerator"})

#: The Flux API groups: the toolkit's, source-watcher's and flux-operator's.
_FLUX_GROUP = re.compile(
    r"^(?:[a-z0-9-]+\.toolkit\.fluxcd\.io|source\.extensions\.fluxcd\.io|fluxcd\.controlplane\.io)$")
#: the role of an unknown kind, by its group (anything else in a Flux group: an applier of its own kind)
_GROUP_ROLES: Final[dict[str, KindRole]] = {
    SOURCE_GROUP: "source", GENERATOR_GROUP: "source", IMAGE_GROUP: "automation",
    NOTIFICATION_GROUP: "notification", OPERATOR_GROUP: "operator",
}

_BY_KIND = {k.kind: k for k in (*FLUX_KINDS, NAMESPACE)}
_BY_ID = {k.id: k for k in (*FLUX_KINDS, NAMESPACE)}


def is_flux_group(group: str) -> bool:
    """Whether ``group`` is one of Flux's API groups (``*.toolkit.fluxcd.io``, source-watcher's, the operator's)."""
    return bool(_FLUX_GROUP.match(group))


def by_kind(kind: str) -> WatchedKind | None:
    """The known WatchedKind for a ``kind`` string (``Kustomization``), or None."""
    return _BY_KIND.get(kind)


def by_id(kind_id: str) -> WatchedKind:
    """The known WatchedKind for a flag id (``kustomization``); KeyError if unknown."""
    return _BY_ID[kind_id.lower()]


def discovered_kind(kind: str, group: str, plural: str, versions: tuple[str, ...]) -> WatchedKind:
    """The WatchedKind of a Flux-group kind found by discovery: the known one, else a generic one."""
    known = _BY_KIND.get(kind)
    if known is not None and known.group == group:
        return known
    return WatchedKind(kind, group, plural, versions, _GROUP_ROLES.get(group, "applier"), known=False)

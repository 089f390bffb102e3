"""The Flux objects as the API serves them: the fields the exporter reads, as typed msgspec structs.

The types follow the Flux CRDs' OpenAPI schemas, which the API server enforces, so a well-formed object always
decodes; ``kube.codec`` turns a failure into ``MalformedObject`` naming the JSON path. ``flux.projection`` projects
these structs into the slim records of ``flux.model``. The ``Raw`` prefix keeps these apart from those records.
"""

from __future__ import annotations

import msgspec

from flux_tenant_exporter.kube.codec import Codec, ObjectMeta


class RawReference(msgspec.Struct, frozen=True):
    """A reference to another object.

    A sourceRef, chartRef, dependsOn entry, providerRef, eventSources or resources entry, imageRepositoryRef,
    secretRef, a generator's source, a ResourceSet's inputsFrom entry.
    """

    name: str = ""
    namespace: str = ""
    kind: str = ""


class RawChartTemplate(msgspec.Struct, frozen=True):
    """HelmRelease spec.chart.spec."""

    chart: str | None = None
    sourceRef: RawReference | None = None  # noqa: N815


class RawHelmChartTemplate(msgspec.Struct, frozen=True):
    """HelmRelease spec.chart."""

    spec: RawChartTemplate | None = None


class RawSpec(msgspec.Struct, frozen=True):
    """The spec fields of every Flux kind the exporter reads (absent ones default)."""

    suspend: bool = False
    sourceRef: RawReference | None = None  # noqa: N815
    chartRef: RawReference | None = None  # noqa: N815
    #: a chart template on HelmRelease, the chart's name on HelmChart
    chart: RawHelmChartTemplate | str | None = None
    dependsOn: list[RawReference] | None = None  # noqa: N815
    serviceAccountName: str | None = None  # noqa: N815
    targetNamespace: str | None = None  # noqa: N815
    path: str | None = None
    timeout: str | None = None
    url: str | None = None
    endpoint: str | None = None
    # the image, notification, source-watcher and operator kinds
    #: an ImageRepository's image
    image: str | None = None
    #: an ImagePolicy's ImageRepository
    imageRepositoryRef: RawReference | None = None  # noqa: N815
    #: a Provider's, a Receiver's, an ImageRepository's credentials (only whether one is named is read)
    secretRef: RawReference | None = None  # noqa: N815
    #: a Provider's type and address, a Receiver's and an input provider's type
    type: str | None = None
    address: str | None = None
    #: an Alert's Provider and the objects whose events it sends
    providerRef: RawReference | None = None  # noqa: N815
    eventSources: list[RawReference] | None = None  # noqa: N815
    #: the objects a Receiver reconciles (a ResourceSet's ``resources`` are manifests: read as references, they
    #: have no name and are skipped)
    resources: list[RawReference] | None = None
    #: an ArtifactGenerator's sources
    sources: list[RawReference] | None = None
    #: a ResourceSet's input providers
    inputsFrom: list[RawReference] | None = None  # noqa: N815


class RawCondition(msgspec.Struct, frozen=True):
    """A metav1.RawCondition."""

    type: str = ""
    status: str = ""
    reason: str = ""
    message: str = ""
    lastTransitionTime: str | None = None  # noqa: N815
    observedGeneration: int | None = None  # noqa: N815


class RawArtifact(msgspec.Struct, frozen=True):
    """A source's status.artifact."""

    revision: str | None = None
    lastUpdateTime: str | None = None  # noqa: N815


class RawInventoryEntry(msgspec.Struct, frozen=True):
    """One Kustomization inventory entry: ``<namespace>_<name>_<group>_<kind>``."""

    id: str = ""


class RawInventory(msgspec.Struct, frozen=True):
    """A Kustomization's status.inventory (and a FluxInstance's or ResourceSet's, of the same shape)."""

    entries: list[RawInventoryEntry] | None = None


class RawGenerated(msgspec.Struct, frozen=True):
    """One entry of an ArtifactGenerator's status.inventory (a list): an ExternalArtifact it wrote."""

    name: str = ""
    namespace: str = ""


class RawScanResult(msgspec.Struct, frozen=True):
    """An ImageRepository's status.lastScanResult."""

    revision: str | None = None
    tagCount: int | None = None  # noqa: N815
    scanTime: str | None = None  # noqa: N815


class RawImageRef(msgspec.Struct, frozen=True):
    """An ImagePolicy's status.latestRef."""

    name: str = ""
    tag: str = ""
    digest: str | None = None


class RawHistoryEntry(msgspec.Struct, frozen=True):
    """One status.history entry: a HelmRelease's releases, or a Kustomization's reconciliations per manifest digest."""

    # HelmRelease
    status: str | None = None
    chartVersion: str | None = None  # noqa: N815
    lastDeployed: str | None = None  # noqa: N815
    # Kustomization
    firstReconciled: str | None = None  # noqa: N815
    lastReconciledStatus: str | None = None  # noqa: N815


class RawStatus(msgspec.Struct, frozen=True):
    """The status fields of every Flux kind the exporter reads."""

    observedGeneration: int | None = None  # noqa: N815
    conditions: list[RawCondition] | None = None
    lastHandledReconcileAt: str | None = None  # noqa: N815
    lastAppliedRevision: str | None = None  # noqa: N815
    lastAttemptedRevision: str | None = None  # noqa: N815
    artifact: RawArtifact | None = None
    #: an applier's inventory; an ArtifactGenerator's is the list of the ExternalArtifacts it wrote
    inventory: RawInventory | list[RawGenerated] | None = None
    history: list[RawHistoryEntry] | None = None
    helmChart: str | None = None  # noqa: N815
    # the image, notification, source-watcher and operator kinds
    lastScanResult: RawScanResult | None = None  # noqa: N815
    latestRef: RawImageRef | None = None  # noqa: N815
    lastPushCommit: str | None = None  # noqa: N815
    lastPushTime: str | None = None  # noqa: N815
    webhookPath: str | None = None  # noqa: N815
    lastExportedRevision: str | None = None  # noqa: N815
    observedSourcesDigest: str | None = None  # noqa: N815


class RawFluxObject(msgspec.Struct, frozen=True):
    """A Flux object as the API serves it (the used fields only)."""

    metadata: ObjectMeta
    kind: str = ""
    apiVersion: str = ""  # noqa: N815
    spec: RawSpec | None = None
    status: RawStatus | None = None


FLUX = Codec(RawFluxObject)

"""The Flux objects as the API serves them: the fields the exporter reads, as typed msgspec structs.

The types follow the Flux CRDs' OpenAPI schemas, which the API server enforces, so a well-formed object always
decodes; ``kube.codec`` turns a failure into ``MalformedObject`` naming the JSON path. ``flux.projection`` projects
these structs into the slim records of ``flux.model``. The ``Raw`` prefix keeps these apart from those records.
"""

from __future__ import annotations

import msgspec

from flux_tenant_exporter.kube.codec import Codec, ObjectMeta


class RawReference(msgspec.Struct, frozen=True):
    """A sourceRef, chartRef or dependsOn entry."""

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
    """A Kustomization's status.inventory."""

    entries: list[RawInventoryEntry] | None = None


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
    inventory: RawInventory | None = None
    history: list[RawHistoryEntry] | None = None
    helmChart: str | None = None  # noqa: N815


class RawFluxObject(msgspec.Struct, frozen=True):
    """A Flux object as the API serves it (the used fields only)."""

    metadata: ObjectMeta
    kind: str = ""
    apiVersion: str = ""  # noqa: N815
    spec: RawSpec | None = None
    status: RawStatus | None = None


FLUX = Codec(RawFluxObject)

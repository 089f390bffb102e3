"""What the exporter knows of each Flux kind, one entry per kind (as kube-state-metrics keeps one file per resource).

For each known kind: the references that lead to a root cause (its ``source``, a HelmRelease's ``chart``, what
it ``depends_on``), which status fields are its revisions and when it last did its job, its address (the URL,
endpoint or image it fetches), the annotation that suspends it where ``spec.suspend`` does not, and its labels in
``gotk_resource_info`` (the label set of Flux's kube-state-metrics example). A kind without an entry (one found
by discovery) gets ``GENERIC``: no references, the common revision fields, ``spec.suspend``.

Read by ``flux.projection`` (at the boundary) and by the renderer (``gotk_resource_info``); the addresses of the
kinds (group, plural, versions, role) are in ``base.kinds``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import msgspec

from flux_tenant_exporter.base.timefmt import parse_time
from flux_tenant_exporter.base.vocabulary import InfoLabel
from flux_tenant_exporter.flux import schema
from flux_tenant_exporter.flux.model import Condition, Ref

#: (reference, default namespace, default kind) -> Ref; the projector's, which shares the strings
RefOf = Callable[[schema.RawReference | None, str, str | None], Ref | None]


class Refs(msgspec.Struct, frozen=True, gc=False):
    """The references of one object that lead to a root cause."""

    source: Ref | None = None
    chart: Ref | None = None
    depends_on: tuple[Ref, ...] = ()
    #: a HelmRelease's chart name (from its template), a HelmChart's
    chart_name: str | None = None


class Revisions(msgspec.Struct, frozen=True, gc=False):
    """What an object's status says it did last: applied, attempted, produced, and when."""

    applied: str | None = None
    attempted: str | None = None
    artifact: str | None = None
    artifact_updated: float | None = None


class Described(Protocol):
    """What ``gotk_resource_info`` reads of a published object (``state.published.ResourceView``)."""

    @property
    def kind(self) -> str: ...  # noqa: D102

    @property
    def revision(self) -> str | None: ...  # noqa: D102

    @property
    def url(self) -> str | None: ...  # noqa: D102

    @property
    def path(self) -> str | None: ...  # noqa: D102

    @property
    def chart(self) -> str | None: ...  # noqa: D102

    @property
    def source_ref(self) -> Ref | None: ...  # noqa: D102

    @property
    def chart_ref(self) -> Ref | None: ...  # noqa: D102


#: a gotk_resource_info label: its name, the info label that drops it (--drop-info-labels), and its value
GotkLabel = tuple[str, InfoLabel, Callable[[Described], str | None]]


def _name(ref: Ref | None) -> str | None:
    return ref.name if ref is not None else None


_REVISION: Final[GotkLabel] = ("revision", "revision", lambda r: r.revision)
_URL: Final[GotkLabel] = ("url", "url", lambda r: r.url)
_SOURCE_NAME: Final[GotkLabel] = ("source_name", "source", lambda r: _name(r.source_ref))


@dataclass(frozen=True, slots=True)
class KindSpec:
    """One kind's knowledge."""

    refs: Callable[[schema.RawSpec, schema.RawStatus, str, str, RefOf], Refs]
    revisions: Callable[[schema.RawStatus], Revisions]
    #: the URL, endpoint or image the kind fetches (credentials are removed by the projector)
    address: Callable[[schema.RawSpec], str | None] = lambda _spec: None
    #: a Kustomization's spec.path, a Receiver's webhook path
    path: Callable[[schema.RawSpec, schema.RawStatus], str | None] = lambda _spec, _status: None
    #: the annotation whose value ``disabled`` suspends the object (the kinds without spec.suspend)
    suspend_annotation: str | None = None
    #: the kind-specific labels of gotk_resource_info (Flux's kube-state-metrics example)
    gotk: tuple[GotkLabel, ...] = (_REVISION,)
    #: whether gotk_resource_info carries ``ready`` (Alert and Provider have no status)
    gotk_ready: bool = True
    #: for a kind without a status: the Ready condition its spec alone implies (its creation time the since)
    derived_status: Callable[[schema.RawSpec, float | None], Condition] | None = None


def _common_revisions(status: schema.RawStatus) -> Revisions:
    artifact = status.artifact
    return Revisions(
        applied=status.lastAppliedRevision or None,
        attempted=status.lastAttemptedRevision or None,
        artifact=artifact.revision if artifact is not None else None,
        artifact_updated=parse_time(artifact.lastUpdateTime) if artifact is not None else None,
    )


def _no_refs(spec: schema.RawSpec, status: schema.RawStatus, namespace: str, name: str, ref: RefOf) -> Refs:  # noqa: ARG001
    return Refs()


def _depends_on(spec: schema.RawSpec, namespace: str, kind: str, ref: RefOf) -> tuple[Ref, ...]:
    return tuple(r for r in (ref(d, namespace, kind) for d in spec.dependsOn or ()) if r is not None)


def _kustomization(spec: schema.RawSpec, status: schema.RawStatus, namespace: str, name: str, ref: RefOf) -> Refs:  # noqa: ARG001
    return Refs(source=ref(spec.sourceRef, namespace, None),
                depends_on=_depends_on(spec, namespace, "Kustomization", ref))


def _helmrelease(spec: schema.RawSpec, status: schema.RawStatus, namespace: str, name: str, ref: RefOf) -> Refs:
    depends_on = _depends_on(spec, namespace, "HelmRelease", ref)
    chart_ref = ref(spec.chartRef, namespace, None)
    if chart_ref is not None:
        return Refs(source=chart_ref if chart_ref.kind != "HelmChart" else None, chart=chart_ref,
                    depends_on=depends_on)
    template = spec.chart.spec if isinstance(spec.chart, schema.RawHelmChartTemplate) else None
    if template is None:
        return Refs(depends_on=depends_on)
    source = ref(template.sourceRef, namespace, None)
    # helm-controller names the HelmChart <release namespace>-<release name> in the source's namespace and
    # records it as status.helmChart "<namespace>/<name>".
    recorded = status.helmChart
    chart = None
    if recorded and "/" in recorded:
        chart_ns, chart_name = recorded.split("/", 1)
        chart = ref(schema.RawReference(name=chart_name, namespace=chart_ns, kind="HelmChart"), namespace, None)
    elif source is not None:
        chart = Ref("HelmChart", source.namespace, f"{namespace}-{name}")
    return Refs(source=source, chart=chart, depends_on=depends_on, chart_name=template.chart or None)


def _helmrelease_revisions(status: schema.RawStatus) -> Revisions:
    common = _common_revisions(status)
    latest = status.history[0] if status.history else None
    applied = latest.chartVersion or None if latest is not None and latest.status == "deployed" else common.applied
    return Revisions(applied=applied, attempted=common.attempted)


def _helmchart(spec: schema.RawSpec, status: schema.RawStatus, namespace: str, name: str, ref: RefOf) -> Refs:  # noqa: ARG001
    return Refs(source=ref(spec.sourceRef, namespace, None),
                chart_name=spec.chart if isinstance(spec.chart, str) and spec.chart else None)


def _source_ref(spec: schema.RawSpec, status: schema.RawStatus, namespace: str, name: str, ref: RefOf) -> Refs:  # noqa: ARG001
    return Refs(source=ref(spec.sourceRef, namespace, None))


def _imagepolicy(spec: schema.RawSpec, status: schema.RawStatus, namespace: str, name: str, ref: RefOf) -> Refs:  # noqa: ARG001
    return Refs(source=ref(spec.imageRepositoryRef, namespace, "ImageRepository"))


def _imageupdateautomation(spec: schema.RawSpec, status: schema.RawStatus, namespace: str, name: str,  # noqa: ARG001
                           ref: RefOf) -> Refs:
    return Refs(source=ref(spec.sourceRef, namespace, "GitRepository"))


def _generator(spec: schema.RawSpec, status: schema.RawStatus, namespace: str, name: str, ref: RefOf) -> Refs:  # noqa: ARG001
    sources = tuple(r for r in (ref(s, namespace, None) for s in spec.sources or ()) if r is not None)
    return Refs(source=sources[0] if sources else None, depends_on=sources[1:])


def _alert(spec: schema.RawSpec, status: schema.RawStatus, namespace: str, name: str, ref: RefOf) -> Refs:  # noqa: ARG001
    # the Provider (same namespace), then each event source named (a "*" name selects by labels: no reference)
    events = tuple(r for r in (ref(s, namespace, None) for s in spec.eventSources or ()
                               if s.name and s.name != "*") if r is not None)
    provider = ref(schema.RawReference(name=spec.providerRef.name), namespace, "Provider") if spec.providerRef else None
    return Refs(source=provider, depends_on=events)


def _receiver(spec: schema.RawSpec, status: schema.RawStatus, namespace: str, name: str, ref: RefOf) -> Refs:  # noqa: ARG001
    return Refs(depends_on=tuple(r for r in (ref(s, namespace, None) for s in spec.resources or ()
                                             if s.name and s.name != "*") if r is not None))


def _resourceset(spec: schema.RawSpec, status: schema.RawStatus, namespace: str, name: str, ref: RefOf) -> Refs:  # noqa: ARG001
    # input providers by name (a selector names none), in the ResourceSet's namespace; then its dependsOn
    providers = tuple(r for r in (ref(schema.RawReference(name=p.name), namespace, "ResourceSetInputProvider")
                                  for p in spec.inputsFrom or () if p.name) if r is not None)
    depends_on = _depends_on(spec, namespace, "ResourceSet", ref)
    return Refs(source=providers[0] if providers else None, depends_on=(*providers[1:], *depends_on))


def _image_repository_revisions(status: schema.RawStatus) -> Revisions:
    scan = status.lastScanResult
    if scan is None:
        return Revisions()
    return Revisions(artifact=scan.revision or None, artifact_updated=parse_time(scan.scanTime))


def _image_policy_revisions(status: schema.RawStatus) -> Revisions:
    latest = status.latestRef
    if latest is None or not latest.name:
        return Revisions()
    return Revisions(artifact=f"{latest.name}:{latest.tag}" + (f"@{latest.digest}" if latest.digest else ""))


def _automation_revisions(status: schema.RawStatus) -> Revisions:
    return Revisions(applied=status.lastPushCommit or None, artifact_updated=parse_time(status.lastPushTime))


def _generator_revisions(status: schema.RawStatus) -> Revisions:
    return Revisions(artifact=status.observedSourcesDigest or None)


def _input_provider_revisions(status: schema.RawStatus) -> Revisions:
    return Revisions(artifact=status.lastExportedRevision or None)


#: The reason of a Ready condition the exporter derives (a kind without a status).
DERIVED_REASON: Final = "Derived"
#: The Provider types whose notifier refuses to start without a token, which only a Secret can hold
#: (notification-controller v1.9.3 internal/notifier: "... token cannot be empty", "empty ... token", and
#: "github token or github app details must be specified" for the GitHub client the github types share).
TOKEN_PROVIDERS: Final = frozenset({
    "github", "githubdispatch", "githubpullrequestcomment", "gitlab", "gitlabmergerequestcomment", "bitbucket",
    "telegram", "opsgenie", "datadog", "incidentio", "zoom",
})


def _provider_status(spec: schema.RawSpec, created: float | None) -> Condition:
    if spec.type in TOKEN_PROVIDERS and spec.secretRef is None:
        return Condition("Ready", "False", "MissingSecretRef",
                         f"a Provider of type {spec.type} needs a token from a Secret, and spec.secretRef names none "
                         "(derived by the exporter: Providers have no status)", created, None)
    return Condition("Ready", "True", DERIVED_REASON,
                     "no status of its own; nothing known wrong in its spec (derived by the exporter)", created, None)


def _alert_status(spec: schema.RawSpec, created: float | None) -> Condition:  # noqa: ARG001
    # whether its Provider and event sources exist is the store's to say (it knows the other objects)
    return Condition("Ready", "True", DERIVED_REASON,
                     "no status of its own; its Provider and event sources exist (derived by the exporter)", created,
                     None)


def _url(spec: schema.RawSpec) -> str | None:
    return spec.url


_CHART_NAME: Final[GotkLabel] = ("chart_name", "chart", lambda r: r.chart)
_OPERATOR = "fluxcd.controlplane.io/reconcile"

#: The known kinds' knowledge, by kind.
SPECS: Final[dict[str, KindSpec]] = {
    "Kustomization": KindSpec(_kustomization, _common_revisions, path=lambda spec, _status: spec.path or None,
                              gotk=(_REVISION, _SOURCE_NAME)),
    "HelmRelease": KindSpec(_helmrelease, _helmrelease_revisions, gotk=(
        _REVISION, _CHART_NAME,
        ("chart_ref_name", "source", lambda r: _name(r.chart_ref) if r.chart is None else None),
        ("chart_source_name", "source", lambda r: _name(r.source_ref) if r.chart is not None else None))),
    "GitRepository": KindSpec(_no_refs, _common_revisions, _url, gotk=(_REVISION, _URL)),
    "OCIRepository": KindSpec(_no_refs, _common_revisions, _url, gotk=(_REVISION, _URL)),
    "HelmRepository": KindSpec(_no_refs, _common_revisions, _url, gotk=(_REVISION, _URL)),
    "HelmChart": KindSpec(_helmchart, _common_revisions, gotk=(_REVISION, _CHART_NAME)),
    "Bucket": KindSpec(_no_refs, _common_revisions, lambda spec: spec.endpoint,
                       gotk=(_REVISION, ("endpoint", "url", lambda r: r.url))),
    "ExternalArtifact": KindSpec(_source_ref, _common_revisions),
    "ArtifactGenerator": KindSpec(_generator, _generator_revisions,
                                  suspend_annotation="source.extensions.fluxcd.io/reconcile"),
    "ImageRepository": KindSpec(_no_refs, _image_repository_revisions, lambda spec: spec.image,
                                gotk=(("image", "url", lambda r: r.url),)),
    "ImagePolicy": KindSpec(_imagepolicy, _image_policy_revisions, gotk=(_SOURCE_NAME,)),
    "ImageUpdateAutomation": KindSpec(_imageupdateautomation, _automation_revisions, gotk=(_SOURCE_NAME,)),
    "Receiver": KindSpec(_receiver, _common_revisions, path=lambda _spec, status: status.webhookPath or None,
                         gotk=(("webhook_path", "path", lambda r: r.path),)),
    "Alert": KindSpec(_alert, _common_revisions, gotk=(), gotk_ready=False, derived_status=_alert_status),
    "Provider": KindSpec(_no_refs, _common_revisions, lambda spec: spec.address, gotk=(), gotk_ready=False,
                         derived_status=_provider_status),
    "FluxInstance": KindSpec(_no_refs, _common_revisions, suspend_annotation=_OPERATOR),
    "FluxReport": KindSpec(_no_refs, _common_revisions, suspend_annotation=_OPERATOR),
    "ResourceSet": KindSpec(_resourceset, _common_revisions, suspend_annotation=_OPERATOR),
    "ResourceSetInputProvider": KindSpec(_no_refs, _input_provider_revisions, _url, suspend_annotation=_OPERATOR),
}
#: A kind found by discovery: the generic Flux semantics only (its URL or endpoint, if it has one).
GENERIC: Final = KindSpec(_no_refs, _common_revisions, lambda spec: spec.url or spec.endpoint)


def spec_of(kind: str) -> KindSpec:
    """The knowledge of ``kind`` (GENERIC for a kind without an entry)."""
    return SPECS.get(kind, GENERIC)

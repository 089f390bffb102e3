"""Every closed set of the product, spelled once: the ``Literal`` types the code uses and their values in order.

The JSON contract (``openapi.yaml``), the README's taxonomy table, the metrics' label values and the filters
of ``/tenants`` all follow from these; tests compare them both ways. Nothing here imports the product.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

#: What an object's own status says (fluxcd/pkg condition semantics, plus spec.suspend).
State = Literal["ready", "progressing", "failing", "suspended", "unknown"]
STATES: Final[tuple[State, ...]] = get_args(State)

#: Who has to act on a failure.
Owner = Literal["tenant", "platform", "unknown"]
OWNERS: Final[tuple[Owner, ...]] = get_args(Owner)

#: The fixed failure taxonomy.
Category = Literal[
    "cluster_scoped_in_tenant",
    "cross_namespace_ref_denied",
    "rbac_forbidden",
    "source_not_found",
    "reference_not_found",
    "source_not_ready",
    "dependency_not_ready",
    "crd_missing",
    "api_version_not_served",
    "webhook_failed",
    "validation_failed",
    "health_check_failed",
    "build_failed",
    "decryption_failed",
    "source_auth_failed",
    "source_ref_not_found",
    "source_unreachable",
    "chart_failed",
    "helm_release_failed",
    "push_failed",
    "timeout",
    "suspended",
    "progressing",
    "unknown",
]
CATEGORIES: Final[tuple[Category, ...]] = get_args(Category)

#: The owner of each category; None: the owner of the root cause (a blocked object), or nobody.
CATEGORY_OWNER: Final[dict[Category, Owner | None]] = {
    "cluster_scoped_in_tenant": "tenant",
    "cross_namespace_ref_denied": "tenant",
    "rbac_forbidden": "tenant",
    "source_not_found": "tenant",
    "reference_not_found": "tenant",
    "source_not_ready": None,
    "dependency_not_ready": None,
    "crd_missing": "platform",
    # the CRD is installed, the manifest asks for a version it no longer serves: one line in the manifests
    "api_version_not_served": "tenant",
    "webhook_failed": "platform",
    "validation_failed": "tenant",
    "health_check_failed": "tenant",
    "build_failed": "tenant",
    "decryption_failed": "tenant",
    "source_auth_failed": "tenant",
    "source_ref_not_found": "tenant",
    "source_unreachable": "platform",
    "chart_failed": "tenant",
    "helm_release_failed": "tenant",
    "push_failed": "tenant",
    "timeout": "unknown",
    "suspended": None,
    "progressing": None,
    "unknown": "unknown",
}
#: Categories whose root cause is another object.
BLOCKED_CATEGORIES: Final[frozenset[Category]] = frozenset({"source_not_ready", "dependency_not_ready"})

#: Why an object is stuck (its own timer ran out), or why a root is paged for.
StuckReason = Literal[
    "stalled",
    "not_ready",
    "progressing_timeout",
    "generation_not_observed",
    "reconcile_request_unhandled",
    "dependent_stuck",
]
STUCK_REASONS: Final[tuple[StuckReason, ...]] = get_args(StuckReason)

#: Tenancy policy rules an applier can break.
PolicyRule = Literal[
    "missing_service_account",
    "target_namespace_outside_tenant",
    "cross_namespace_source",
    "cross_namespace_dependency",
    "cluster_scoped_in_inventory",
]
POLICY_RULES: Final[tuple[PolicyRule, ...]] = get_args(PolicyRule)

#: A tenant's roll-up, worst first.
TenantStatus = Literal["failing", "progressing", "degraded", "suspended", "healthy"]
TENANT_STATUSES: Final[tuple[TenantStatus, ...]] = get_args(TenantStatus)

#: A condition's status.
ConditionStatus = Literal["True", "False", "Unknown"]
CONDITION_STATUSES: Final[tuple[ConditionStatus, ...]] = get_args(ConditionStatus)

#: Watch event types of the Kubernetes API.
EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]
EVENT_TYPES: Final[tuple[EventType, ...]] = get_args(EventType)
#: The event types that carry an object.
OBJECT_EVENTS: Final[frozenset[EventType]] = frozenset({"ADDED", "MODIFIED", "DELETED"})

#: How a watched kind stands with the API server.
KindStatus = Literal["pending", "synced", "absent", "forbidden", "error"]
KIND_STATUSES: Final[tuple[KindStatus, ...]] = get_args(KindStatus)
#: What /readyz says of the exporter as a whole.
Readiness = Literal["ready", "not ready"]
READINESS: Final[tuple[Readiness, ...]] = get_args(Readiness)

#: How one list request (a page) ended, how a watch stream ended, and why a full list was made: the label values of
#: the reflector's self-metrics.
ListResult = Literal["success", "error", "gone"]
LIST_RESULTS: Final[tuple[ListResult, ...]] = get_args(ListResult)
WatchEnd = Literal["closed", "gone", "timeout", "error", "connection_error"]
WATCH_ENDS: Final[tuple[WatchEnd, ...]] = get_args(WatchEnd)
RelistReason = Literal["initial", "gone", "forbidden"]
RELIST_REASONS: Final[tuple[RelistReason, ...]] = get_args(RelistReason)

#: Access control of the HTTP API: none (anyone who reaches the port sees everything), or Kubernetes
#: authentication (TokenReview) and authorization (SubjectAccessReview) of every request.
AuthMode = Literal["none", "kubernetes"]
AUTH_MODES: Final[tuple[AuthMode, ...]] = get_args(AuthMode)
#: The reviews the exporter asks the API server for (a label of its self-metrics), their results, and its caches.
ReviewKind = Literal["token", "access"]
REVIEW_KINDS: Final[tuple[ReviewKind, ...]] = get_args(ReviewKind)
ReviewResult = Literal["allowed", "denied", "error"]
REVIEW_RESULTS: Final[tuple[ReviewResult, ...]] = get_args(ReviewResult)

#: Counts a tenant roll-up carries, besides one per state.
TenantCount = Literal["total", "ready", "progressing", "failing", "suspended", "unknown", "stuck"]
TENANT_COUNTS: Final[tuple[TenantCount, ...]] = get_args(TenantCount)

#: Where an object's ``since`` comes from: a condition's stable lastTransitionTime; the status's own record of
#: the failure (Kustomization history, HelmRelease Released); or only what the exporter observed (the failure
#: retries, so its conditions move on every retry, and no record says when it began).
SinceSource = Literal["condition", "history", "observed"]
SINCE_SOURCES: Final[tuple[SinceSource, ...]] = get_args(SinceSource)

#: how much per-object detail /metrics carries: every object, only objects needing attention, tenant totals only
Detail = Literal["all", "failing", "tenants"]
DETAILS: Final[tuple[Detail, ...]] = get_args(Detail)

#: the labels of fluxtenant_resource_info that can be dropped (high churn: revision; long values: url, path...)
InfoLabel = Literal["revision", "source", "path", "chart", "url"]
INFO_LABELS: Final[tuple[InfoLabel, ...]] = get_args(InfoLabel)

#: What a watched kind does: an applier applies manifests from a source; a source produces artifacts (or fetches
#: what others read); automation scans image registries and writes what it finds back to Git; notification
#: sends and receives events; operator kinds are flux-operator's (a Flux installation, its report, and the
#: ResourceSets that generate objects from inputs); namespaces carry the tenant labels.
KindRole = Literal["applier", "source", "automation", "notification", "operator", "tenancy"]
KIND_ROLES: Final[tuple[KindRole, ...]] = get_args(KindRole)

#: Every metric family the exposition of the Flux objects can carry (``--metrics-allowlist``/``-denylist`` name
#: these); the exporter's own families (``fluxtenant_exporter_*``, ``process_*``) are always exposed.
MetricFamily = Literal[
    "fluxtenant_resource_info",
    "fluxtenant_resource_ready",
    "fluxtenant_resource_state",
    "fluxtenant_resource_state_since_timestamp_seconds",
    "fluxtenant_resource_stuck",
    "fluxtenant_resource_suspended",
    "fluxtenant_resource_failure",
    "fluxtenant_resource_root_cause",
    "fluxtenant_resource_stuck_root",
    "fluxtenant_resource_drift",
    "fluxtenant_resource_drift_since_timestamp_seconds",
    "fluxtenant_resource_generation_lag",
    "fluxtenant_resource_last_success_timestamp_seconds",
    "fluxtenant_resource_policy_violation",
    "fluxtenant_tenant_resources",
    "fluxtenant_tenant_failures",
    "fluxtenant_tenant_root_failures",
    "fluxtenant_tenant_stuck_resources",
    "fluxtenant_tenant_policy_violations",
    "fluxtenant_tenant_status",
    "fluxtenant_tenant_health_ratio",
    "fluxtenant_tenant_info",
    "fluxtenant_resource_failures_total",
    "fluxtenant_resource_recoveries_total",
    "gotk_resource_info",
]
METRIC_FAMILIES: Final[tuple[MetricFamily, ...]] = get_args(MetricFamily)

#: Output formats: of ``report`` (``--format``), and of ``get`` (``-o``).
ReportFormat = Literal["json", "table"]
REPORT_FORMATS: Final[tuple[ReportFormat, ...]] = get_args(ReportFormat)
GetOutput = Literal["table", "json", "yaml"]
GET_OUTPUTS: Final[tuple[GetOutput, ...]] = get_args(GetOutput)
#: What ``get`` prints.
GetWhat = Literal["tenants", "tenant", "resources"]
GET_WHATS: Final[tuple[GetWhat, ...]] = get_args(GetWhat)

#: Logging: the renderer (``auto``: console on a terminal, else JSON) and the level.
LogFormat = Literal["auto", "json", "console"]
LOG_FORMATS: Final[tuple[LogFormat, ...]] = get_args(LogFormat)
LogLevel = Literal["debug", "info", "warning", "error"]
LOG_LEVELS: Final[tuple[LogLevel, ...]] = get_args(LogLevel)

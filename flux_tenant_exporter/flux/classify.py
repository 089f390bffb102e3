"""Classify one Flux object: its ``state`` (fluxcd/pkg condition semantics) and failure ``category``.

Pure and table-driven; runs once per object write. The state follows fluxcd/pkg
``runtime/conditions`` (Ready, Reconciling, Stalled; Stalled counts only while not Reconciling) plus
``spec.suspend`` and ``observedGeneration``. Most failures arrive as ``Ready=False`` with a coarse
reason, so the category comes from the reason and the messages of the failing conditions, matched
against ``RULES`` (first match wins; see ``tests/test_classify.py`` for the real shapes and their sources).
Time-based ``stuck`` detection is prepared here as ``stuck_at`` (when the object becomes stuck) and
decided at publish time.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

import msgspec
from msgspec.structs import replace

from flux_tenant_exporter.base.config import StuckThresholds
from flux_tenant_exporter.base.kinds import APPLIER_KINDS, FETCHING_KINDS, SOURCE_KINDS
from flux_tenant_exporter.base.timefmt import parse_time
from flux_tenant_exporter.base.vocabulary import (
    BLOCKED_CATEGORIES,
    CATEGORIES,
    Category,
    ConditionStatus,
    SinceSource,
    State,
    StuckReason,
)
from flux_tenant_exporter.flux.model import Condition, FluxObject, Observed, Signals, truncate
from flux_tenant_exporter.kube.discovery import ServedApis


@dataclass(frozen=True, slots=True)
class Rule:
    """``reason: message`` matching ``pattern`` means ``category``, for objects of ``kinds`` only."""

    category: Category
    pattern: re.Pattern[str]
    kinds: frozenset[str] | None = None


def _rule(category: Category, pattern: str, kinds: frozenset[str] | None = None) -> Rule:
    assert category in CATEGORIES, category
    return Rule(category, re.compile(pattern, re.IGNORECASE), kinds)


def _reasons(category: Category, *reasons: str, kinds: frozenset[str] | None = None) -> Rule:
    """A fallback on the condition reason alone (the text starts with ``Reason:``)."""
    return _rule(category, "^(?:" + "|".join(reasons) + "):", kinds)


_HELM = frozenset({"HelmRelease"})
_CHARTS = frozenset({"HelmChart", "HelmRelease"})
_IMAGE_POLICY = frozenset({"ImagePolicy"})
_AUTOMATION = frozenset({"ImageUpdateAutomation"})
_GENERATOR = frozenset({"ArtifactGenerator"})
_RESOURCESET = frozenset({"ResourceSet"})
_CLUSTER_KINDS = (
    r"Namespace|CustomResourceDefinition|ClusterRole|ClusterRoleBinding|PriorityClass|StorageClass|PersistentVolume|"
    r"IngressClass|RuntimeClass|CSIDriver|APIService|\w*WebhookConfiguration|ClusterIssuer|\w*ClusterPolicy"
)

#: Ordered, first match wins: specific causes before the generic ones that often wrap them (a Helm install
#: failure wrapping a missing CRD is crd_missing; a quota error says "forbidden" but is validation_failed).
#: The message shapes and where each comes from are in tests/test_classify.py.
RULES: Final[tuple[Rule, ...]] = (
    # The image, notification, source-watcher and operator kinds first: their messages reuse the words of the
    # generic rules below with other meanings (an ImagePolicy's "DependencyNotReady" is its ImageRepository).
    # Shapes from the controllers' code (tests/test_kinds.py names the files).
    _rule("source_not_found", r"referenced ImageRepository does not exist", _IMAGE_POLICY),
    _rule("source_not_ready", r"^DependencyNotReady:", _IMAGE_POLICY),
    _rule("source_ref_not_found", r"unable to determine latest version from provided list|version list argument cannot be empty|failed to parse invalid numeric value", _IMAGE_POLICY),
    _rule("validation_failed", r"^InvalidPolicy:|^IntervalNotConfigured:|invalid policy:|failed to filter tags", _IMAGE_POLICY),
    _rule("source_not_found", r"referenced git repository does not exist", _AUTOMATION),
    _rule("push_failed", r"failed to push to remote|failed to update source: failed to push", _AUTOMATION),
    _rule("validation_failed", r"^RemovedTemplateField:|^InvalidPolicySelector:|^InvalidUpdateStrategy:|^InvalidSourceConfiguration:|commit message template|failed to run template", _AUTOMATION),
    _rule("build_failed", r"^UpdateFailed:|failed to apply policies", _AUTOMATION),
    _rule("reference_not_found", r"^TokenNotFound:|unable to read token from secret|^ReferenceNotFound:"),
    _rule("source_not_found", r"get sources failed: (?:\w+\.[\w.]+ \"[^\"]*\" not found|unable to get source '[^']*':.*not found)", _GENERATOR),
    _rule("source_not_ready", r"get sources failed: source '[^']*' is not ready|^SourceFetchFailed:", _GENERATOR),
    _rule("source_not_found", r"failed to compute inputs: failed to get provider [^:]*:.*not found", _RESOURCESET),
    _rule("validation_failed", r"^ImageURLInvalid:|^InvalidSpec:|^InvalidSchedule:|^InvalidDefaultValues:|^InvalidExportedInputs:|^MissingSecretRef:|failed terminally due to configuration error"),
    _rule("cross_namespace_ref_denied", r"^AccessDenied:|cross-namespace references (?:have been blocked|are not allowed)"),
    _rule("dependency_not_ready", r"^DependencyNotReady:|dependency '[^']*' (?:is not ready|revision is not up to date|not found)|unable to get '[^']*' dependency|dependencies do not meet ready condition"),
    _rule("decryption_failed", r"decryption failed for|decryption secret error|cannot get \w+ decryption Secret|failed to decrypt|sops metadata not found|cannot get sops data key|data key required to decrypt|no master key was able to decrypt|SOPS encrypted, configuring decryption is required|error decrypting sources|sops data integrity|\.sops: field not declared"),
    _rule("crd_missing", r"no matches for kind|ensure CRDs are installed first|resource mapping not found for name|no kind \"[^\"]*\" is registered"),
    _rule("webhook_failed", r"failed calling webhook|failed to call webhook|does not support dry[- ]run|no endpoints available for service"),
    _rule("validation_failed", r"exceeded quota"),
    _rule("cluster_scoped_in_tenant", r'cannot \w+ resource "[^"]*" in API group "[^"]*" at the cluster scope|(?:^|\n|: )(?:' + _CLUSTER_KINDS + r")/[^\s/]+ dry-run failed(?:, reason: Forbidden| \(Forbidden\))|namespace not specified"),
    _rule("rbac_forbidden", r'is forbidden: User "[^"]*" cannot|cannot (?:get|list|watch|create|update|patch|delete) resource "|failed to get last release revision|^GetLastReleaseFailed:|impersonation failed|failed to impersonate'),
    _rule("source_not_found", r"^(?:ArtifactFailed: )?Source '[^']*' not found|unable to get source '[^']*':.*not found|could not get Source object:.*not found|failed to (?:get|retrieve) source:.*not found|source `[^`]*` kind '[^']*' not supported", APPLIER_KINDS | {"HelmChart"}),
    # KC v1.9.5 writes the API server's NotFound as is.
    _rule("source_not_found", r'^ArtifactFailed: \w+\.source\.toolkit\.fluxcd\.io "[^"]*" not found', APPLIER_KINDS),
    # The source is there and ready; the tenant's path in it is not (KC v1.9.5 says so with reason ArtifactFailed).
    _rule("build_failed", r"kustomization path not found", frozenset({"Kustomization"})),
    # A HelmChart waiting for its HelmRepository's index (SC v1.9.5: reason NoSourceArtifact).
    _rule("source_not_ready", r"^NoSourceArtifact:|no artifact available for \w+ source", frozenset({"HelmChart"})),
    _rule("source_not_ready", r"Source artifact not found|Source is not ready|(?:HelmChart|OCIRepository|ExternalArtifact|HelmRepository|GitRepository|Bucket) '[^']*' is not ready|does not have an artifact|no artifact available|artifact not found|failed to download (?:archive|artifact)|^SourceNotReady:", APPLIER_KINDS),
    _rule("chart_failed", r"chart pull error|chart package error|invalid chart reference|dependency build error|values files merge error|no chart name found|no chart version found|no '[^']*' chart with version matching|could not locate a version matching|chart \"[^\"]*\" version \"[^\"]*\" not found|failed to (?:download|get|load|pull) chart|Could not load chart|integrity failure", _CHARTS),
    _rule("source_auth_failed", r"authentication required|authorization failed|\bUNAUTHORIZED\b|\bDENIED\b|401 Unauthorized|403 Forbidden|Access Denied|\bAccessDenied\b|InvalidAccessKeyId|SignatureDoesNotMatch|ssh: handshake failed|unable to authenticate|knownhosts: key (?:mismatch|is unknown)|x509: |tls: failed to verify certificate|failed to get (?:authentication |auth |TLS |STS )?secret|invalid '\w+' auth option|failed to configure authentication options|failed to get credential|failed to fetch (?:anonymous|oauth) token|SSH identity key is encrypted|permission denied \(publickey\)|failed to get TLS config|failed to read secret|invalid secret '|failed to get auth secret", FETCHING_KINDS),
    _rule("source_ref_not_found", r"couldn't find remote ref|no match found for semver|unable to resolve (?:tag revision|ref|commit)|object not found|repository not found|git repository is empty|\bMANIFEST_UNKNOWN\b|manifest unknown|\bNAME_UNKNOWN\b|index\.yaml ?: ?404|404 Not Found|not a valid chart repository|failed to load Helm repository from index|NoSuchBucket|bucket '[^']*' does not exist|failed to determine the artifact tag", FETCHING_KINDS),
    _rule("source_unreachable", r"dial tcp|no such host|server misbehaving|connection refused|connection reset by peer|i/o timeout|TLS handshake timeout|network is unreachable|: EOF\b|Client\.Timeout exceeded|context deadline exceeded|\b50[0234] [A-Z]|Bad Gateway|Service Unavailable|Gateway Time-?out|TooManyRequests|429 Too Many Requests", FETCHING_KINDS),
    _rule("health_check_failed", r"^HealthCheckFailed:|health check (?:failed|timed out)|timeout waiting for: \[|failed early due to stalled resources|can't determine status for"),
    _rule("build_failed", r"kustomize build failed|accumulating resources|accumulation err=|(?:post build|var substitution) failed for|envsubst error|variable not set \(strict mode\)|yaml: line \d+|yaml: unmarshal errors|json: unknown field|failed to decode Kubernetes apiVersion|must build at directory|too many fields within"),
    _rule("validation_failed", r"dry-run failed|is invalid|Invalid value|immutable|denied the request|strict decoding error|failed to create typed patch object|field not declared in schema|values don't meet the specifications|Required value|Unsupported value|validation (?:failed|error)"),
    _rule("helm_release_failed", r"^Helm (?:install|upgrade|test|rollback|uninstall)\b|^Helm \w+ failed|(?:install|upgrade) retries exhausted|Failed to \w+ after \d+ attempt|previous release attempt remediation failed|^Unlock of Helm release|could not resolve(?: optional)? \w+ chart values reference|could not find (?:Secret|ConfigMap) '|Could not determine release state|failed to initialize Helm action runner|has no deployed releases|another operation \(install/upgrade/rollback\) is in progress", _HELM),
    _reasons("dependency_not_ready", "DependencyNotReady"),
    _reasons("health_check_failed", "HealthCheckFailed"),
    _reasons("build_failed", "BuildFailed"),
    _reasons("validation_failed", "ValidationFailed", "URLInvalid", "InvalidURL", "InvalidPath", "InvalidCELExpression", "InvalidChartReference", "InvalidProviderConfiguration", "InvalidSTSConfiguration"),
    _reasons("source_not_ready", "ArtifactFailed", "SourceNotReady", kinds=APPLIER_KINDS),
    _reasons("source_auth_failed", "AuthenticationFailed", kinds=FETCHING_KINDS),
    _reasons("chart_failed", "ChartPullError", "ChartPackageError", "ChartPullFailed", "ChartPackageFailed", "ValuesFilesError", "DependencyBuildError", kinds=_CHARTS),
    _reasons("helm_release_failed", "InstallFailed", "UpgradeFailed", "TestFailed", "RollbackFailed", "UninstallFailed", "RetriesExceeded", "MissingRollbackTarget", "ValuesError", "StateError", "PendingRelease", "InitFailed", "ChartMutateError", kinds=_HELM),
    _rule("timeout", r"context deadline exceeded|deadline exceeded|timed out|timeout(?: |:)|Client\.Timeout exceeded"),
)

@functools.lru_cache(maxsize=1024)  # reasons and messages repeat; keys hold messages (up to 4 KiB): keep it small
def categorize(kind: str, reason: str, messages: tuple[str, ...]) -> Category:
    """The category for a failing object of ``kind`` from its Ready reason and condition messages."""
    texts = [f"{reason}: {m}" for m in messages] or [f"{reason}: "]
    for rule in RULES:
        if rule.kinds is not None and kind not in rule.kinds:
            continue
        if any(rule.pattern.search(t) for t in texts):
            return rule.category
    return "unknown"


class Verdict(msgspec.Struct, frozen=True, gc=False):
    """What the object's own status says, before cross-object resolution (root cause, tenant)."""

    state: State
    category: Category | None
    reason: str
    message: str
    #: when the object entered its current state, and where that time comes from
    since: float | None
    since_source: SinceSource
    #: the Ready status of the state (held through the Unknown blip of a retry)
    ready: ConditionStatus
    #: when the object is (or becomes) stuck, and why; None: time alone will not make it stuck
    stuck_at: float | None
    stuck_reason: StuckReason | None
    #: what few verdicts have (``hold``, ``detail``); apart, so that the others are a field smaller (96 bytes, not 112)
    extra: Extra | None = None

    @property
    def hold(self) -> Hold | None:
        """A previous verdict held through a reconcile in progress, for as long as one may legitimately take.

        At ``hold.until`` it gives way to ``hold.then`` (the store swaps them; ``Store.expire``).
        """
        return self.extra.hold if self.extra is not None else None

    @property
    def detail(self) -> str | None:
        """What the exporter adds to the controller's message (the API versions a group serves)."""
        return self.extra.detail if self.extra is not None else None

    def having(self, hold: Hold | None, detail: str | None) -> Verdict:
        """The verdict with ``hold`` and ``detail`` (as they are given, None included)."""
        return replace(self, extra=Extra(hold, detail) if hold is not None or detail is not None else None)


class Extra(msgspec.Struct, frozen=True, gc=False):
    """What few verdicts have: a hold, a detail."""

    hold: Hold | None
    detail: str | None


class Hold(msgspec.Struct, frozen=True, gc=False):
    """How long a held verdict holds, and the verdict of the status itself that replaces it then."""

    until: float
    then: Verdict


def _is_true(cond: Condition | None) -> bool:
    return cond is not None and cond.status == "True"


Deadline = tuple[float | None, StuckReason | None]
Since = tuple[float | None, SinceSource]


def _earliest(*candidates: Deadline) -> Deadline:
    best: Deadline = (None, None)
    for at, why in candidates:
        if at is not None and (best[0] is None or at < best[0]):
            best = (at, why)
    return best


def _earliest_since(*candidates: Since) -> Since:
    """The earliest known time among ``candidates``; "observed" when none is known."""
    best: Since = (None, "observed")
    for at, source in candidates:
        if at is not None and (best[0] is None or at < best[0]):
            best = (at, source)
    return best


def classify(
    obj: Observed,
    *,
    thresholds: StuckThresholds,
    observed_at: float,
    lag_since: float | None,
    previous: Verdict | None = None,
) -> Verdict:
    """Classify one object, continuing ``previous`` (the verdict of its last version, if any).

    ``observed_at`` is when this version of the object was seen; ``lag_since`` is when the exporter first
    saw ``generation != observedGeneration`` for it (carried across updates by the store).

    Flux flips Ready to Unknown ("Reconciliation in progress") at the start of every attempt, and moves
    Ready's lastTransitionTime on every retry. So the Unknown blip of a retry of a failing object, or of a
    routine reconcile of a healthy one, keeps the previous verdict; and a state that continues keeps the time
    it began (a failure that keeps failing keeps its first failure).

    A hold lasts only as long as an attempt may legitimately take: its ``spec.timeout`` (or the default) plus the
    progressing margin from the start of the attempt (Reconciling's lastTransitionTime). A controller that dies
    mid-reconcile leaves Ready=Unknown behind for ever: a held ready verdict then gives way to the status's own
    (progressing, stuck with ``progressing_timeout``, since the attempt began), and a held failing one is stuck
    with ``progressing_timeout`` if that comes before its own deadline (it keeps the cause it last failed with).
    """
    signals = obj.signals
    own = _assess(obj, signals, thresholds, observed_at, lag_since, began=None)
    if previous is not None and _is_attempt_of(obj, signals, previous):
        return _held(previous, own, _attempt_deadline(signals, thresholds, observed_at))
    verdict = own
    if (
        previous is not None
        and previous.state == verdict.state
        and previous.since is not None
        and (verdict.since is None or previous.since < verdict.since)
    ):
        verdict = _assess(obj, signals, thresholds, observed_at, lag_since,
                          began=(previous.since, previous.since_source))
    return verdict


def _is_attempt_of(obj: FluxObject, signals: Signals, previous: Verdict) -> bool:
    """Whether ``obj`` shows only that its controller started another attempt after ``previous``."""
    ready, reconciling = signals.condition("Ready"), signals.condition("Reconciling")
    if obj.suspended or ready is None or ready.status != "Unknown" or not _is_true(reconciling):
        return False
    if previous.state == "failing":
        # a retry: failing until it succeeds; but a blocked object (its source or dependency not ready) does not
        # retry through "progressing" (real-flux-semantics): an attempt after it means the blocker cleared
        return previous.category not in BLOCKED_CATEGORIES
    # the periodic reconcile of a healthy object; a new generation, or a new revision being applied (attempted
    # but not yet applied), is real progress
    return (previous.state == "ready" and obj.observed_generation == obj.generation
            and obj.attempted_revision in {None, obj.applied_revision})


def _attempt_deadline(signals: Signals, thresholds: StuckThresholds, observed_at: float) -> float:
    """When the attempt in progress has taken longer than one may.

    That is its start (Reconciling's lastTransitionTime) plus its ``spec.timeout`` (or the default) plus the
    progressing margin.
    """
    reconciling = signals.condition("Reconciling")
    started = (reconciling.since if reconciling is not None else None) or observed_at
    return started + (signals.timeout or thresholds.default_timeout) + thresholds.progressing_margin


def _held(previous: Verdict, own: Verdict, until: float) -> Verdict:
    """``previous`` held through the attempt whose own verdict is ``own`` (progressing), no longer than ``until``.

    A held ready verdict carries the progressing one it gives way to then; a held failing verdict keeps its cause
    and is stuck (``progressing_timeout``) at ``until`` if its own deadline is later.
    """
    if previous.hold is not None:  # the same attempt, seen again: its budget does not start again
        until, began = previous.hold.until, previous.hold.then
        if began.since is not None and (own.since is None or began.since < own.since):
            # nor does its start (kustomize-controller marks Reconciling again for the health checks, a second on)
            own = replace(own, since=began.since, since_source=began.since_source)
        previous = previous.having(None, previous.detail)
    if previous.state == "failing":
        if previous.stuck_at is None or until < previous.stuck_at:
            return replace(previous, stuck_at=until, stuck_reason="progressing_timeout")
        return previous
    if own.stuck_at is None or until < own.stuck_at:
        own = replace(own, stuck_at=until, stuck_reason="progressing_timeout")
    return previous.having(Hold(until, own), previous.detail)


def _assess(
    obj: FluxObject,
    signals: Signals,
    thresholds: StuckThresholds,
    observed_at: float,
    lag_since: float | None,
    *,
    began: Since | None,
) -> Verdict:
    """The verdict of this status alone; ``began``: the state is known to have begun then (a continuing state)."""
    ready = signals.condition("Ready")
    reconciling = signals.condition("Reconciling")
    stalled = signals.condition("Stalled")
    reason = ready.reason if ready else ""
    message = truncate(ready.message) if ready else ""
    status: ConditionStatus = ready.status if ready else "Unknown"

    def first(*candidates: Since) -> Since:
        return _earliest_since(*candidates, began or (None, "observed"))

    since, source = first((ready.since if ready else signals.created, "condition"))
    lag_at: Deadline = (
        (lag_since + thresholds.generation_lag, "generation_not_observed") if lag_since is not None else (None, None)
    )
    request_at = _request_deadline(signals, thresholds, observed_at)

    if obj.suspended:
        return Verdict("suspended", "suspended", reason, message, since, source, status, None, None)

    if _is_true(stalled) and not _is_true(reconciling):
        assert stalled is not None
        messages = (stalled.message, *(c.message for c in signals.conditions if c.status == "False" and c.message))
        category = categorize(obj.kind, stalled.reason, messages)
        since, source = first((stalled.since or (ready.since if ready else None), "condition"),
                              (signals.failing_since, "history"))
        return Verdict("failing", category, stalled.reason, truncate(stalled.message) or message, since, source,
                       status, stalled.since or observed_at, "stalled")

    if ready is None:
        stuck_at, why = _earliest(lag_at, request_at)
        return Verdict("unknown", "unknown", "", "", since, source, status, stuck_at, why)

    generation_current = obj.observed_generation is None or not obj.generation or (
        obj.observed_generation == obj.generation
    )
    if ready.status == "True" and not _is_true(reconciling) and generation_current:
        stuck_at, why = _earliest(request_at)
        return Verdict("ready", None, reason, message, since, source, status, stuck_at, why)

    if ready.status == "False":
        messages = tuple(
            c.message for c in signals.conditions if c.message and (c.type == "Ready" or _is_failure(c))
        )
        category = categorize(obj.kind, reason, messages)
        # While the controller retries, Ready's lastTransitionTime is the last retry, not the first failure.
        retrying = _is_true(reconciling)
        since, source = first((ready.since, "observed" if retrying else "condition"), (signals.failing_since, "history"))
        limit = thresholds.source_not_ready if obj.kind in SOURCE_KINDS else thresholds.not_ready
        # Not the generation lag: Flux leaves observedGeneration behind (-1 at first) until a success.
        stuck_at, why = _earliest(((since or observed_at) + limit, "not_ready"), request_at)
        return Verdict("failing", category, reason, message, since, source, status, stuck_at, why)

    # Ready=Unknown, or Ready=True while reconciling a new generation: in progress within a time budget.
    if ready.status == "True" and not _is_true(reconciling):
        # Ready for an older generation: in progress since the lag was first seen; stuck by the lag rule.
        since, source = first((lag_since or observed_at, "observed"))
        stuck_at, why = _earliest(lag_at, request_at)
        return Verdict("progressing", "progressing", reason, message, since, source, status, stuck_at, why)
    begun = (reconciling.since if reconciling is not None and _is_true(reconciling) else None) or since
    started_at, source = first((begun, "condition") if begun is not None else (observed_at, "observed"))
    started = started_at or observed_at
    budget = (signals.timeout or thresholds.default_timeout) + thresholds.progressing_margin
    stuck_at, why = _earliest((started + budget, "progressing_timeout"), lag_at, request_at)
    return Verdict("progressing", "progressing", reason, message, started, source, status, stuck_at, why)


#: how the API server refuses a manifest of a kind (or version) it does not serve, in an applier's message
_NO_MATCH: Final = re.compile(r'no matches for kind "([^"]+)" in version "([^"]+)"')


def served_versions(verdict: Verdict, served: ServedApis | None) -> Verdict:
    """``crd_missing`` made precise by what the API server serves (``api_version_not_served`` when it applies).

    A manifest at a version its CRD no longer serves (the group is served, at other versions) is the manifests'
    owner's to fix: ``api_version_not_served``, its detail naming the versions served. A kind or group the
    cluster does not serve at all stays ``crd_missing``. Without discovery (``served`` None) nothing changes.
    """
    if served is None or verdict.category not in {"crd_missing", "api_version_not_served"}:
        return verdict
    for kind, group_version in _NO_MATCH.findall(verdict.message):
        group, _, version = group_version.rpartition("/")
        offered = served.groups.get(group) if group else None
        if not offered or version in offered:
            continue
        if group in served.described:
            kind_versions = served.versions_of(group, kind)
            if kind_versions is None:
                continue  # the group is there, the kind is not: a CRD that is missing
            offered = kind_versions
        detail = (f"{group} serves {kind} at {', '.join(offered)}, not {version}: the manifest's apiVersion "
                  f"should be {group}/{offered[0]}")
        return replace(verdict, category="api_version_not_served").having(verdict.hold, detail)
    return replace(verdict, category="crd_missing").having(verdict.hold, None)


def _is_failure(cond: Condition) -> bool:
    """Conditions whose abnormal value names a cause: negative ones False, abnormal-true ones True."""
    if cond.type in {"Stalled", "FetchFailed", "BuildFailed", "StorageOperationFailed", "IncludeUnavailable"}:
        return cond.status == "True"
    return cond.status == "False"


def _request_deadline(signals: Signals, thresholds: StuckThresholds, observed_at: float) -> Deadline:
    """A ``reconcile.fluxcd.io/requestedAt`` the controller has not acknowledged in ``lastHandledReconcileAt``."""
    if signals.requested_at is None or signals.requested_at == signals.last_handled_at:
        return None, None
    requested = parse_time(signals.requested_at) or observed_at
    return requested + thresholds.request_unhandled, "reconcile_request_unhandled"

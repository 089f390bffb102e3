"""The metric families of the Flux objects' exposition, each one value: name, HELP, type, and how its samples are made.

As kube-state-metrics' family generators: a family's ``samples`` makes its lines for one subject (an object, a
tenant's totals, the transition counters) from the subject and its identity labels, so nothing depends on the order
the families are listed in. Condition messages are never labels; no sample carries a timestamp.

Sample::

    # HELP fluxtenant_resource_state Current state of a Flux object (1 for the current state only).
    # TYPE fluxtenant_resource_state gauge
    fluxtenant_resource_state{tenant="team-a",kind="Kustomization",namespace="team-a",name="apps",state="failing"} 1
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, NamedTuple, TypeVar

from flux_tenant_exporter.base.textformat import TextType, escape, header, labels, number
from flux_tenant_exporter.base.vocabulary import (
    METRIC_FAMILIES,
    POLICY_RULES,
    TENANT_STATUSES,
    InfoLabel,
    MetricFamily,
)
from flux_tenant_exporter.flux.kindspecs import spec_of
from flux_tenant_exporter.state.published import ResourceView, TenantView, Transitions

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Family(Generic[S]):
    """A metric family: its name, HELP text and type, and how its samples are made for one subject."""

    name: MetricFamily
    help: str
    #: the family's lines for a subject, given the subject's identity labels as text: an object's or a tenant's
    #: (after the exporter's shard label, if any); for the counters, the shard label and a comma, or ""
    samples: Callable[[S, str], str]
    type: TextType = "gauge"
    #: at ``--detail=failing``, rendered for every object, not only those needing attention (gotk_resource_info:
    #: Flux's own dashboards count every object)
    every_object: bool = False

    def header(self) -> bytes:
        """The HELP and TYPE lines."""
        return header(self.name, self.help, self.type).encode()


def identity(res: ResourceView) -> str:
    """The identity labels of an object's series: tenant, kind, namespace and name."""
    return f'tenant="{escape(res.tenant)}",kind="{res.kind}",namespace="{res.namespace}",name="{escape(res.name)}"'


# -- per object ----------------------------------------------------------------------------------------------


def _line(name: str, ident: str, more: str = "", value: str = "1") -> str:
    return f"{name}{{{ident}{more}}} {value}\n"


def _info(res: ResourceView, ident: str) -> str:
    return (f'fluxtenant_resource_info{{{ident},revision="{escape(res.revision or "")}",'
            f'source="{escape(res.source or "")}",path="{escape(res.path or "")}",chart="{escape(res.chart or "")}",'
            f'url="{escape(res.url or "")}"}} 1\n')


def info_samples(keep: tuple[InfoLabel, ...], resource_labels: tuple[tuple[str, str], ...]) -> Callable[
        [ResourceView, str], str]:
    """The info family's samples with only the ``keep`` labels and the objects' ``resource_labels`` (key, name)."""

    def samples(res: ResourceView, ident: str) -> str:
        values = {"revision": res.revision, "source": res.source, "path": res.path, "chart": res.chart,
                  "url": res.url}
        pairs: list[tuple[str, str]] = [(label, values[label] or "") for label in keep]
        if res.labels:
            present = dict(res.labels)
            pairs += [(name, present[key]) for key, name in resource_labels if key in present]
        more = labels(pairs)
        return _line("fluxtenant_resource_info", ident, f",{more}" if more else "")

    return samples


def _failure(res: ResourceView, ident: str) -> str:
    if res.state not in {"failing", "unknown"}:
        return ""
    category = res.category or "unknown"
    owner, root = res.owner or "unknown", res.root_category or category
    return _line("fluxtenant_resource_failure", ident, f',category="{category}",owner="{owner}",root_category="{root}"')


def _stuck_root(res: ResourceView, ident: str) -> str:
    if not res.stuck_root:
        return ""
    return _line("fluxtenant_resource_stuck_root", ident,
                 f',category="{res.category or "unknown"}",owner="{res.owner or "unknown"}",'
                 f'reason="{res.stuck_reason or "stuck"}"')


def _drift_since(res: ResourceView, ident: str) -> str:
    return "".join(
        _line("fluxtenant_resource_drift_since_timestamp_seconds", ident, f',type="{kind}"', number(at))
        for kind, at in (("source", res.source_drift_since), ("attempt", res.attempt_drift_since))
        if at is not None
    )


RESOURCE_INFO: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_info", "Flux object metadata: revision, source, path, chart, URL (credentials removed).",
    _info)
RESOURCE_READY: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_ready", "1 if the Flux object's Ready condition is True, else 0.",
    lambda res, ident: _line("fluxtenant_resource_ready", ident, value="1" if res.ready == "True" else "0"))
RESOURCE_STATE: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_state", "Current state of a Flux object (1 for the current state only).",
    lambda res, ident: _line("fluxtenant_resource_state", ident, f',state="{res.state}"'))
RESOURCE_SINCE: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_state_since_timestamp_seconds",
    "Unix time the object entered its current state (Ready condition lastTransitionTime).",
    lambda res, ident: _line("fluxtenant_resource_state_since_timestamp_seconds", ident, value=number(res.since))
    if res.since is not None else "")
RESOURCE_STUCK: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_stuck", "1 if the object's reconciliation is stuck beyond its threshold (absent: 0).",
    lambda res, ident: _line("fluxtenant_resource_stuck", ident) if res.stuck else "")
RESOURCE_SUSPENDED: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_suspended", "1 if spec.suspend is true (absent: 0).",
    lambda res, ident: _line("fluxtenant_resource_suspended", ident) if res.suspended else "")
RESOURCE_FAILURE: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_failure",
    "1 for a failing or unknown object, labelled with its category, owner and root category.", _failure)
RESOURCE_ROOT: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_root_cause",
    "1 if the object is failing and no other object blocks it, a root cause (absent: 0).",
    lambda res, ident: _line("fluxtenant_resource_root_cause", ident) if res.is_root else "")
RESOURCE_STUCK_ROOT: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_stuck_root",
    "1 on each root cause to page for: stuck and not blocked by another object, or blocking a stuck object; "
    "labelled with its category, owner and stuck reason.", _stuck_root)
RESOURCE_DRIFT: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_drift",
    "1 if the applied revision differs from the source's or from the attempted one (absent: 0).",
    lambda res, ident: _line("fluxtenant_resource_drift", ident)
    if res.source_drift_since or res.attempt_drift_since else "")
RESOURCE_DRIFT_SINCE: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_drift_since_timestamp_seconds",
    "Unix time a drift began; type=source (new artifact not applied) or attempt (roll-forward failing).",
    _drift_since)
RESOURCE_GEN_LAG: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_generation_lag", "metadata.generation minus status.observedGeneration (absent: 0).",
    lambda res, ident: _line("fluxtenant_resource_generation_lag", ident, value=str(res.generation_lag))
    if res.generation_lag else "")
RESOURCE_LAST_SUCCESS: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_last_success_timestamp_seconds",
    "Unix time of the last known successful reconcile (Ready transition, deploy or artifact).",
    lambda res, ident: _line("fluxtenant_resource_last_success_timestamp_seconds", ident,
                             value=number(res.last_success)) if res.last_success is not None else "")
RESOURCE_VIOLATION: Final[Family[ResourceView]] = Family(
    "fluxtenant_resource_policy_violation", "1 per tenancy policy rule the object breaks.",
    lambda res, ident: "".join(_line("fluxtenant_resource_policy_violation", ident, f',rule="{v.rule}"')
                               for v in res.violations))


def gotk_samples(drop: tuple[InfoLabel, ...] = (), shard: str | None = None) -> Callable[[ResourceView, str], str]:
    """``gotk_resource_info`` as Flux's kube-state-metrics configuration writes it, without the ``drop`` labels.

    The kind-specific labels are the example's (``flux.kindspecs``); the exporter's ``shard``, if it has one,
    comes first.
    """
    first = [("shard", shard)] if shard else []

    def samples(res: ResourceView, _ident: str) -> str:
        group, _, version = res.api_version.rpartition("/")
        knowledge = spec_of(res.kind)
        pairs = [*first,
            ("customresource_group", group), ("customresource_kind", res.kind),
            ("customresource_version", version), ("exported_namespace", res.namespace), ("name", res.name),
        ]
        if knowledge.gotk_ready:
            pairs.append(("ready", res.ready))
        pairs.append(("suspended", "true" if res.suspended else "false"))
        for label, info, value_of in knowledge.gotk:
            value = value_of(res) if info not in drop else None
            if value:
                pairs.append((label, value))
        return f"gotk_resource_info{{{labels(pairs)}}} 1\n"

    return samples


#: Compatibility with Flux's kube-state-metrics configuration (opt-in, ``--gotk-resource-info``).
GOTK_INFO: Final[Family[ResourceView]] = Family(
    "gotk_resource_info",
    "The current state of a Flux resource (flux2-monitoring-example kube-state-metrics label set).",
    gotk_samples(), every_object=True)

#: The per-object families, in output order.
OBJECT_FAMILIES: Final[tuple[Family[ResourceView], ...]] = (
    RESOURCE_INFO, RESOURCE_READY, RESOURCE_STATE, RESOURCE_SINCE, RESOURCE_STUCK, RESOURCE_SUSPENDED,
    RESOURCE_FAILURE, RESOURCE_ROOT, RESOURCE_STUCK_ROOT, RESOURCE_DRIFT, RESOURCE_DRIFT_SINCE, RESOURCE_GEN_LAG,
    RESOURCE_LAST_SUCCESS, RESOURCE_VIOLATION,
)


# -- per tenant ----------------------------------------------------------------------------------------------


class TenantTotals(NamedTuple):
    """What one tenant's samples show: equal totals render the same text."""

    name: str
    by_kind_state: tuple[tuple[tuple[str, str], int], ...]
    failures: tuple[tuple[tuple[str, str], int], ...]
    roots: tuple[tuple[tuple[str, str], int], ...]
    stuck: int
    violations: tuple[tuple[str, int], ...]
    status: str
    health: float
    namespace: str | None


def tenant_totals(t: TenantView) -> TenantTotals:
    """The counts a tenant's samples show (by kind and state, failures by category and owner, ...)."""
    by_kind_state: dict[tuple[str, str], int] = {}
    failures: dict[tuple[str, str], int] = {}
    roots: dict[tuple[str, str], int] = {}
    for res in t.resources:
        state = res.state
        by_kind_state[(res.kind, state)] = by_kind_state.get((res.kind, state), 0) + 1
        if state == "failing":
            key = (res.category or "unknown", res.owner or "unknown")
            failures[key] = failures.get(key, 0) + 1
            if res.is_root:
                roots[key] = roots.get(key, 0) + 1
    rules = dict.fromkeys(POLICY_RULES, 0)
    for v in t.violations:
        rules[v.rule] += 1
    active = t.counts["total"] - t.counts["suspended"]
    return TenantTotals(
        t.name, tuple(sorted(by_kind_state.items())), tuple(sorted(failures.items())), tuple(sorted(roots.items())),
        t.counts["stuck"], tuple(rules.items()), t.status, t.counts["ready"] / active if active else 1,
        min(t.namespaces) if t.namespaces else None,
    )


def tenant_identity(totals: TenantTotals) -> str:
    """The identity label of a tenant's series."""
    return f'tenant="{escape(totals.name)}"'


def _tenant_line(name: str, ident: str, more: str, value: float) -> str:
    return f"{name}{{{ident}{more}}} {number(value)}\n"


TENANT_RESOURCES: Final[Family[TenantTotals]] = Family(
    "fluxtenant_tenant_resources", "Flux objects of a tenant by kind and state.",
    lambda t, ident: "".join(_tenant_line("fluxtenant_tenant_resources", ident, f',kind="{k}",state="{s}"', n)
                             for (k, s), n in t.by_kind_state))
TENANT_FAILURES: Final[Family[TenantTotals]] = Family(
    "fluxtenant_tenant_failures", "Failing objects of a tenant by category and owner.",
    lambda t, ident: "".join(_tenant_line("fluxtenant_tenant_failures", ident, f',category="{c}",owner="{o}"', n)
                             for (c, o), n in t.failures))
TENANT_ROOT_FAILURES: Final[Family[TenantTotals]] = Family(
    "fluxtenant_tenant_root_failures", "Failing root-cause objects of a tenant by category and owner.",
    lambda t, ident: "".join(_tenant_line("fluxtenant_tenant_root_failures", ident, f',category="{c}",owner="{o}"',
                                          n) for (c, o), n in t.roots))
TENANT_STUCK: Final[Family[TenantTotals]] = Family(
    "fluxtenant_tenant_stuck_resources", "Stuck objects of a tenant.",
    lambda t, ident: _tenant_line("fluxtenant_tenant_stuck_resources", ident, "", t.stuck))
TENANT_VIOLATIONS: Final[Family[TenantTotals]] = Family(
    "fluxtenant_tenant_policy_violations", "Tenancy policy violations of a tenant by rule.",
    lambda t, ident: "".join(_tenant_line("fluxtenant_tenant_policy_violations", ident, f',rule="{r}"', n)
                             for r, n in t.violations))
TENANT_STATUS: Final[Family[TenantTotals]] = Family(
    "fluxtenant_tenant_status",
    "Tenant status (1 for the current one): failing, progressing, degraded, suspended, healthy.",
    lambda t, ident: "".join(
        _tenant_line("fluxtenant_tenant_status", ident, f',status="{s}"', 1 if s == t.status else 0)
        for s in TENANT_STATUSES))
TENANT_HEALTH: Final[Family[TenantTotals]] = Family(
    "fluxtenant_tenant_health_ratio", "Ready objects over non-suspended objects of a tenant (1 when it has none).",
    lambda t, ident: _tenant_line("fluxtenant_tenant_health_ratio", ident, "", t.health))
TENANT_INFO: Final[Family[TenantTotals]] = Family(
    "fluxtenant_tenant_info", "A tenant's first namespace (sorted), the namespace label of its tenant-level alerts.",
    lambda t, ident: _tenant_line("fluxtenant_tenant_info", ident, f',namespace="{escape(t.namespace)}"', 1)
    if t.namespace is not None else "")

#: The per-tenant families, in output order.
TENANT_FAMILIES: Final[tuple[Family[TenantTotals], ...]] = (
    TENANT_RESOURCES, TENANT_FAILURES, TENANT_ROOT_FAILURES, TENANT_STUCK, TENANT_VIOLATIONS, TENANT_STATUS,
    TENANT_HEALTH, TENANT_INFO,
)


# -- transitions ---------------------------------------------------------------------------------------------


FAILURES_TOTAL: Final[Family[Transitions]] = Family(
    "fluxtenant_resource_failures_total", "Transitions of objects into failing, by category.",
    lambda tr, ident: "".join(
        f"fluxtenant_resource_failures_total{{{ident}{labels((('tenant', t), ('kind', k), ('category', c)))}}} "
        f"{number(n)}\n" for (t, k, c), n in tr.failures),
    type="counter")
RECOVERIES_TOTAL: Final[Family[Transitions]] = Family(
    "fluxtenant_resource_recoveries_total", "Transitions of objects from failing to ready.",
    lambda tr, ident: "".join(
        f"fluxtenant_resource_recoveries_total{{{ident}{labels((('tenant', t), ('kind', k)))}}} {number(n)}\n"
        for (t, k), n in tr.recoveries),
    type="counter")

#: The transition counters, in output order.
COUNTER_FAMILIES: Final[tuple[Family[Transitions], ...]] = (FAILURES_TOTAL, RECOVERIES_TOTAL)

#: Every family, in output order.
ALL_FAMILIES: Final[tuple[Family[ResourceView] | Family[TenantTotals] | Family[Transitions], ...]] = (
    *OBJECT_FAMILIES, *TENANT_FAMILIES, *COUNTER_FAMILIES, GOTK_INFO,
)
assert {f.name for f in ALL_FAMILIES} == set(METRIC_FAMILIES), "every MetricFamily has one Family, and no more"

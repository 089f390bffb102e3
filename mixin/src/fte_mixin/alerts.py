"""The Prometheus alert rules, generated from one thresholds file (``alerts/thresholds.yaml``).

Every alert has ``for``, ``labels.severity`` (page / warning / info), ``labels.owner`` (and ``tenant`` where
the series has one) so Alertmanager can route tenant-caused failures to the tenant and platform-caused ones
to the platform team, and annotations ``summary``, ``description`` (category, root cause, a remediation
hint), ``runbook_url`` (a section of ``alerts/RUNBOOK.md``) and ``dashboard_url``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from flux_tenant_exporter.base.config import resource_label_name

OBJ = "tenant, kind, namespace, name"


@dataclass(frozen=True)
class AlertDurations:
    """Alert thresholds; every field can be overridden in alerts/thresholds.yaml."""

    #: how long a stuck root must stay stuck before paging (the exporter's own thresholds come first)
    stuck_for: str = "5m"
    stalled_for: str = "5m"
    tenant_failing_for: str = "30m"
    policy_for: str = "1h"
    source_failing_for: str = "15m"
    helm_failing_for: str = "15m"
    #: an image automation (repository scan, policy, update automation) failing: images stop being updated
    automation_failing_for: str = "30m"
    suspended_for: str = "24h"
    #: drift older than this, in seconds, alerts
    drift_seconds: int = 3600
    drift_for: str = "10m"
    exporter_down_for: str = "5m"
    kind_not_synced_for: str = "15m"
    #: how long a kind's API server requests may keep failing (metrics frozen at the last contact) before warning
    disconnected_for: str = "5m"
    watch_errors_per_15m: int = 5
    watch_errors_for: str = "15m"
    no_events_seconds: int = 3600
    no_events_for: str = "15m"
    job: str = "flux-tenant-exporter"
    runbook_url: str = "https://github.com/flux-tenant-exporter/flux-tenant-exporter/blob/main/alerts/RUNBOOK.md"
    grafana_url: str = "https://grafana.example.com"
    #: the exporter's --resource-labels: the object alerts copy their label_* from fluxtenant_resource_info
    resource_labels: tuple[str, ...] = ("team", "app.kubernetes.io/part-of")

    @classmethod
    def load(cls, path: Path | None) -> AlertDurations:
        """Defaults, overridden by the keys of a YAML file (unknown keys are an error)."""
        if path is None or not path.exists():
            return cls()
        data = yaml.safe_load(path.read_text()) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            msg = f"{path}: unknown threshold(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
            raise ValueError(msg)
        if "resource_labels" in data:
            data["resource_labels"] = tuple(data["resource_labels"] or ())
        return replace(cls(), **data)


def with_object_labels(expr: str, t: AlertDurations) -> str:
    """``expr`` (one series per object) with the object's ``label_*`` from ``fluxtenant_resource_info``.

    The ``or`` keeps the alert when the info series is missing (denied, or over ``--object-limit``).
    """
    if not t.resource_labels:
        return expr
    names = ", ".join(resource_label_name(key) for key in t.resource_labels)
    return (f"({expr}) * on ({OBJ}) group_left ({names}) max by ({OBJ}, {names}) (fluxtenant_resource_info) "
            f"or on ({OBJ}) ({expr})")


def with_tenant_namespace(expr: str) -> str:
    """``expr`` (one series per tenant) with ``namespace``: the tenant's first namespace (fluxtenant_tenant_info)."""
    return (f"({expr}) * on (tenant) group_left (namespace) max by (tenant, namespace) (fluxtenant_tenant_info) "
            f"or on (tenant) ({expr})")


HINTS = {
    "cluster_scoped_in_tenant": "Move cluster-scoped objects (Namespaces, CRDs, ClusterRoles...) to a platform "
    "Kustomization, or give namespaced objects a namespace",
    "cross_namespace_ref_denied": "Reference a source in the tenant's own namespace; cross-namespace refs are blocked",
    "rbac_forbidden": "Grant the tenant's service account the verbs it needs in its namespaces",
    "source_not_found": "Create the referenced source or fix spec.sourceRef",
    "reference_not_found": "Create the object it names (a Secret, a Provider, an event source) or fix the reference",
    "crd_missing": "Install the CRD (platform) or drop the object",
    "api_version_not_served": "Change the manifest's apiVersion to the version the cluster serves (see the detail)",
    "webhook_failed": "Check the admission webhook's Service, endpoints and certificate (platform)",
    "validation_failed": "Fix the manifest the API server rejected (schema, immutable field, policy, quota)",
    "health_check_failed": "Look at the workloads named in the message: they did not become ready",
    "build_failed": "Run `kustomize build` on the path and fix the error",
    "decryption_failed": "Check the SOPS decryption secret and the keys the files are encrypted for",
    "source_auth_failed": "Check the source's credentials secret and TLS trust",
    "source_ref_not_found": "Check the branch, tag, semver range or OCI tag the source points at",
    "source_unreachable": "Check DNS, egress and the remote host (platform)",
    "chart_failed": "Check the chart name and version against the repository",
    "helm_release_failed": "Read the Helm error; `flux reconcile hr --force` after fixing, or fix values",
    "push_failed": "Let the automation push (branch protection, deploy key with write access) or push elsewhere",
    "progressing": "Reconciliation runs longer than its timeout: check the controller and the workloads",
}


def _hint_template() -> str:
    parts = [f'{{{{ if eq $labels.category "{c}" }}}}{h}.{{{{ end }}}}' for c, h in HINTS.items()]
    return "".join(parts)


# The stuck reason of the alert's object now, read back at evaluation time (Prometheus re-expands annotations).
_CURRENT_REASON = (
    '{{ with printf "fluxtenant_resource_stuck_root{kind=%q,namespace=%q,name=%q} == 1" '
    '$labels.kind $labels.namespace $labels.name | query }}{{ . | first | label "reason" }}{{ end }}'
)


def _alert(name: str, expr: str, for_: str, severity: str, summary: str, description: str, *,  # noqa: PLR0917
           t: AlertDurations, owner: str | None = None, dashboard: str = "flux-tenant-overview") -> dict[str, Any]:
    labels = {"severity": severity}
    if owner:
        labels["owner"] = owner
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": labels,
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{t.runbook_url}#{name.lower()}",
            "dashboard_url": f"{t.grafana_url}/d/{dashboard}",
        },
    }


def rule_groups(t: AlertDurations) -> dict[str, Any]:
    """The rule file document."""
    hint = _hint_template()
    tenant_dash = "flux-tenant-detail?var-tenant={{ $labels.tenant }}"
    resources = [
        _alert(
            "FluxReconciliationStuck",
            # ``reason`` is left out of the alert's labels: a root that first pages because an object it blocks
            # is stuck (dependent_stuck), and a moment later is stuck itself (not_ready), stays one alert with
            # one ``for`` timer. The description reads the current reason back from the series.
            f'max by ({OBJ}, category, owner) (fluxtenant_resource_stuck_root{{reason!="stalled"}} == 1)',
            t.stuck_for, "page",
            "{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.name }} of tenant {{ $labels.tenant }} is stuck",
            "Root cause {{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.name }} ({{ $labels.category }}, "
            f"owner {{{{ $labels.owner }}}}) is stuck ({_CURRENT_REASON}); objects that depend on it are blocked. "
            + hint,
            t=t, dashboard=tenant_dash,
        ),
        _alert(
            "FluxResourceStalled",
            f'max by ({OBJ}, category, owner) (fluxtenant_resource_stuck_root{{reason="stalled"}} == 1)',
            t.stalled_for, "page",
            "{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.name }} is stalled: Flux will not retry",
            "{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.name }} of tenant {{ $labels.tenant }} is "
            "Stalled ({{ $labels.category }}, owner {{ $labels.owner }}): a terminal error (e.g. Helm retries "
            "exhausted) that needs a change to the object. " + hint,
            t=t, dashboard=tenant_dash,
        ),
        _alert(
            "FluxTenantFailing",
            'max by (tenant) (fluxtenant_tenant_status{status="failing"}) == 1',
            t.tenant_failing_for, "warning",
            "Tenant {{ $labels.tenant }} has failing Flux objects",
            "Tenant {{ $labels.tenant }} has had failing or stuck Flux objects for "
            f"{t.tenant_failing_for}; see its failures (roots first) on the tenant dashboard or GET "
            "/tenants/{{ $labels.tenant }}.",
            t=t, owner="tenant", dashboard=tenant_dash,
        ),
        _alert(
            "FluxTenantClusterScopedObjects",
            f'max by ({OBJ}) (fluxtenant_resource_failure{{category="cluster_scoped_in_tenant"}} == 1) or '
            f'max by ({OBJ}) (fluxtenant_resource_policy_violation{{rule="cluster_scoped_in_inventory"}} == 1)',
            t.policy_for, "warning",
            "Tenant {{ $labels.tenant }} manifests hold cluster-scoped objects",
            "{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.name }} of tenant {{ $labels.tenant }} applies "
            "(or tries to apply) cluster-scoped objects or objects in other tenants' namespaces. Move them to a "
            "platform Kustomization or remove them from the tenant repository.",
            t=t, owner="platform", dashboard=tenant_dash,
        ),
        _alert(
            "FluxCrossNamespaceRefBlocked",
            f'max by ({OBJ}) (fluxtenant_resource_failure{{category="cross_namespace_ref_denied"}} == 1)',
            t.policy_for, "warning",
            "{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.name }} uses a blocked cross-namespace reference",
            "Tenant {{ $labels.tenant }}: a sourceRef/chartRef in another namespace is blocked by "
            "--no-cross-namespace-refs. Give the tenant its own source, or decide to share it deliberately.",
            t=t, owner="platform", dashboard=tenant_dash,
        ),
        _alert(
            "FluxTenancyPolicyViolation",
            f'max by ({OBJ}, rule) (fluxtenant_resource_policy_violation{{rule!="cluster_scoped_in_inventory"}} '
            "== 1)",
            t.policy_for, "warning",
            "{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.name }} breaks tenancy rule {{ $labels.rule }}",
            "Tenant {{ $labels.tenant }}: {{ $labels.rule }}. missing_service_account: set spec.serviceAccountName "
            "so the tenant's RBAC applies; target_namespace_outside_tenant: target a namespace of the tenant; "
            "cross_namespace_source / cross_namespace_dependency: keep references inside the tenant.",
            t=t, owner="platform", dashboard=tenant_dash,
        ),
        _alert(
            "FluxSourceFetchFailing",
            f'max by ({OBJ}, category, owner) (fluxtenant_resource_failure{{kind=~"GitRepository|OCIRepository|'
            'HelmRepository|Bucket|HelmChart", category=~"source_auth_failed|source_ref_not_found|'
            'source_unreachable"} == 1)',
            t.source_failing_for, "warning",
            "{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.name }} cannot fetch ({{ $labels.category }})",
            "The source cannot be fetched: {{ $labels.category }}, owner {{ $labels.owner }} (unreachable hosts are "
            "the platform's, credentials and refs the tenant's). " + hint,
            t=t, dashboard=tenant_dash,
        ),
        _alert(
            "FluxHelmReleaseFailing",
            f'max by ({OBJ}, category, owner) (fluxtenant_resource_failure{{kind="HelmRelease", '
            'category=~"helm_release_failed|chart_failed|health_check_failed|validation_failed|rbac_forbidden|'
            'crd_missing|webhook_failed|timeout"} == 1)',
            t.helm_failing_for, "warning",
            "HelmRelease {{ $labels.namespace }}/{{ $labels.name }} is failing ({{ $labels.category }})",
            "HelmRelease {{ $labels.namespace }}/{{ $labels.name }} of tenant {{ $labels.tenant }} fails to "
            "install or upgrade ({{ $labels.category }}, owner {{ $labels.owner }}). " + hint,
            t=t, dashboard=tenant_dash,
        ),
        _alert(
            "FluxImageAutomationFailing",
            f'max by ({OBJ}, category, owner) (fluxtenant_resource_failure{{kind=~"ImageUpdateAutomation|'
            'ImagePolicy|ImageRepository"} == 1)',
            t.automation_failing_for, "warning",
            "{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.name }} fails: new images are not rolled out "
            "({{ $labels.category }})",
            "Image automation of tenant {{ $labels.tenant }} has stopped: {{ $labels.kind }} "
            "{{ $labels.namespace }}/{{ $labels.name }} fails ({{ $labels.category }}, owner {{ $labels.owner }}), "
            "so no new image reaches Git (push_failed: the commit was refused, e.g. a protected branch; "
            "source_auth_failed / source_unreachable: the registry or Git; source_ref_not_found: no tag matches "
            "the policy). " + hint,
            t=t, dashboard=tenant_dash,
        ),
        _alert(
            "FluxSuspendedTooLong",
            f"max by ({OBJ}) (fluxtenant_resource_suspended == 1)",
            t.suspended_for, "info",
            "{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.name }} has been suspended for long",
            f"Suspended for more than {t.suspended_for}: changes in Git are not applied. Resume it "
            "(`flux resume`) or delete it.",
            t=t, owner="tenant", dashboard=tenant_dash,
        ),
        _alert(
            "FluxRevisionDrift",
            f"max by ({OBJ}, type) (time() - fluxtenant_resource_drift_since_timestamp_seconds) > {t.drift_seconds}",
            t.drift_for, "warning",
            "{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.name }} lags behind its source",
            "The applied revision has differed from the {{ if eq $labels.type \"source\" }}source's latest "
            "artifact{{ else }}last attempted revision{{ end }} for {{ $value | humanizeDuration }}: new commits "
            "are not rolling out.",
            t=t, owner="tenant", dashboard=tenant_dash,
        ),
    ]
    for rule in resources:
        # Tenant-owned alerts carry `namespace` for a tenant's AlertmanagerConfig: per-object ones have the
        # object's; the tenant-level one gets the tenant's first namespace. Per-object ones also get label_*.
        per_tenant = rule["alert"] == "FluxTenantFailing"
        rule["expr"] = with_tenant_namespace(rule["expr"]) if per_tenant else with_object_labels(rule["expr"], t)
    job = f'job="{t.job}"'
    exporter = [
        _alert(
            "FluxTenantExporterDown",
            f"up{{{job}}} == 0 or absent(up{{{job}}})",
            t.exporter_down_for, "page",
            "flux-tenant-exporter is down or not scraped",
            "Prometheus cannot scrape flux-tenant-exporter: Flux failures are not being detected or paged.",
            t=t, owner="platform", dashboard="flux-tenant-exporter",
        ),
        _alert(
            "FluxTenantExporterKindNotSynced",
            "max by (kind, shard) (fluxtenant_exporter_kind_synced == 0 "
            "and on (instance, job, kind) fluxtenant_exporter_kind_absent == 0)",
            t.kind_not_synced_for, "warning",
            "flux-tenant-exporter is not watching {{ $labels.kind }}",
            "{{ $labels.kind }} is neither synced nor absent (forbidden, or the API server keeps failing): its "
            "objects are missing from metrics. Check the exporter's RBAC and logs.",
            t=t, owner="platform", dashboard="flux-tenant-exporter",
        ),
        _alert(
            "FluxTenantExporterDisconnected",
            "max by (kind, shard) (fluxtenant_exporter_kind_connected == 0)",
            t.disconnected_for, "warning",
            "flux-tenant-exporter cannot reach the API server for {{ $labels.kind }}",
            f"Every list/watch request for {{{{ $labels.kind }}}} has failed for at least {t.disconnected_for} "
            "(connection refused or timed out, 401, 429 or 5xx): its metrics and /tenants show the state of the "
            "last contact (fluxtenant_exporter_last_contact_timestamp_seconds) and new failures are not detected.",
            t=t, owner="platform", dashboard="flux-tenant-exporter",
        ),
        _alert(
            "FluxTenantExporterWatchErrors",
            'max by (kind, shard) (increase(fluxtenant_exporter_watch_requests_total{result=~"error|connection_error"}'
            f"[15m])) > {t.watch_errors_per_15m}",
            t.watch_errors_for, "warning",
            "flux-tenant-exporter watch of {{ $labels.kind }} keeps failing",
            "{{ $value }} watch errors in 15 minutes for {{ $labels.kind }}: the API server connection is unstable.",
            t=t, owner="platform", dashboard="flux-tenant-exporter",
        ),
        _alert(
            "FluxTenantExporterNoEvents",
            f"max by (kind, shard) (time() - fluxtenant_exporter_last_event_timestamp_seconds) > {t.no_events_seconds} "
            "and on (kind, shard) max by (kind, shard) (fluxtenant_exporter_objects) > 0",
            t.no_events_for, "warning",
            "flux-tenant-exporter received nothing for {{ $labels.kind }} for long",
            "No watch event or bookmark for {{ $labels.kind }} in {{ $value | humanizeDuration }}: the watch may be "
            "dead while looking healthy.",
            t=t, owner="platform", dashboard="flux-tenant-exporter",
        ),
        _alert(
            "FluxTenantExporterWatchdog",
            "vector(1)",
            "0m", "info",
            "Always firing: proves the alerting pipeline works",
            "This alert always fires. Route it to an external dead man's switch; if it stops arriving, alerting "
            "for Flux tenants is broken.",
            t=t, owner="platform", dashboard="flux-tenant-exporter",
        ),
    ]
    return {"groups": [
        {"name": "flux-tenant-exporter.resources", "rules": resources},
        {"name": "flux-tenant-exporter.exporter", "rules": exporter},
    ]}

"""Grafana dashboards, built from code and checked in as JSON (``dashboards/``) for a sidecar or an import.

Each has a ``datasource`` variable, a ``cluster`` variable (the ``cluster`` label your Prometheus adds, e.g.
as an external label; "All" also matches series without it) and, where it applies, a ``tenant`` variable.
Panels link to each other and to the alert runbook.

Replicas and shards: every replica of an exporter serves the same series, so a query first takes one copy per
shard (``max without (instance, pod)``, ``ONCE``) and only then adds up (across shards, which hold disjoint
objects); per-object queries are ``max by`` the object's labels, which does both at once. A tenant whose objects
span shards has one roll-up per shard: its status is the worst of them (``WORST_STATUS``).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}
#: the labels that tell the replicas of one exporter apart (the Prometheus target's and the pod's)
REPLICA = "instance, pod"


def once(selector: str) -> str:
    """One copy of each series per shard: the replicas of a shard serve the same values."""
    return f"max without ({REPLICA}) ({selector})"


#: a tenant status's rank when shards are combined: the worst wins; a shard's "healthy" for a tenant it holds no
#: object of ranks below "suspended" (a tenant is suspended when all its objects are, in whichever shard)
STATUS_RANK = {"failing": 5, "progressing": 4, "degraded": 3, "healthy": 2, "suspended": 1}


def worst_status(where: str) -> str:
    """Per tenant, the rank of its worst status over every shard (0: healthy, holding no object anywhere)."""
    def rank(status: str, value: int) -> str:
        return f'(fluxtenant_tenant_status{{status="{status}", {where}}} == 1) * {value}'
    held = (f'({rank("healthy", 2)} and on (instance, job, tenant) '
            f"(sum by (instance, job, tenant) (fluxtenant_tenant_resources{{{where}}}) > 0))")
    terms = [rank(s, v) for s, v in STATUS_RANK.items() if s != "healthy"] + [held, rank("healthy", 0)]
    return f"max by (tenant) ({' or '.join(terms)})"


#: Grafana value mappings of ``worst_status``'s ranks: the status's name and colour
STATUS_MAPPINGS = [{"type": "value", "options": {
    str(v): {"text": s, "color": c, "index": i} for i, (s, v, c) in enumerate((
        ("failing", 5, "red"), ("progressing", 4, "yellow"), ("degraded", 3, "orange"), ("healthy", 2, "green"),
        ("suspended", 1, "text"), ("healthy", 0, "green")))}}]
C = 'cluster=~"$cluster"'
T = 'tenant=~"$tenant"'
OBJ = "tenant, kind, namespace, name"
UIDS = {"overview": "flux-tenant-overview", "tenant": "flux-tenant-detail", "exporter": "flux-tenant-exporter"}
ALL = {"text": ["All"], "value": ["$__all"]}
RUNBOOK = "https://github.com/flux-tenant-exporter/flux-tenant-exporter/blob/main/alerts/RUNBOOK.md"


def _target(expr: str, ref: str = "A", *, legend: str = "", table: bool = False) -> dict[str, Any]:
    target: dict[str, Any] = {"datasource": DS, "expr": expr, "refId": ref, "legendFormat": legend}
    if table:
        target |= {"format": "table", "instant": True, "range": False}
    return target


#: each panel type's options, complete as Grafana's schema (the Foundation SDK's strict parse) requires them
OPTIONS: dict[str, dict[str, Any]] = {
    "stat": {"graphMode": "none", "colorMode": "value", "justifyMode": "auto", "textMode": "auto",
             "wideLayout": True, "showPercentChange": False, "percentChangeColorMode": "standard",
             "orientation": "auto", "reduceOptions": {"calcs": ["lastNotNull"], "values": False, "fields": ""}},
    "timeseries": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
                   "tooltip": {"mode": "multi", "sort": "desc"}},
    "table": {"frameIndex": 0, "showHeader": True, "cellHeight": "sm"},
}


def _panel(kind: str, title: str, targets: list[dict[str, Any]], grid: tuple[int, int, int, int],
           *, description: str, unit: str, **extra: Any) -> dict[str, Any]:
    x, y, w, h = grid
    panel: dict[str, Any] = {
        "type": kind, "title": title, "description": description, "datasource": DS, "targets": targets,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": dict(OPTIONS[kind]),
    }
    panel.update(extra)
    return panel


def _table(title: str, exprs: list[str], grid: tuple[int, int, int, int], *, description: str,
           unit: str = "none", hide: tuple[str, ...] = ("Time",), tenant_link: bool = True,
           status_column: str | None = None) -> dict[str, Any]:
    refs = "ABCDEFGH"
    targets = [_target(e, refs[i], table=True) for i, e in enumerate(exprs)]
    transformations: list[dict[str, Any]] = []
    if len(exprs) > 1:
        transformations.append({"id": "merge", "options": {}})
    transformations.append({"id": "organize", "options": {"excludeByName": dict.fromkeys(hide, True)}})
    panel = _panel("table", title, targets, grid, description=description, unit=unit,
                   transformations=transformations)
    if status_column is not None:  # a worst_status rank, shown as the status's name
        panel["fieldConfig"]["overrides"].append({
            "matcher": {"id": "byName", "options": status_column},
            "properties": [{"id": "displayName", "value": "status"}, {"id": "mappings", "value": STATUS_MAPPINGS},
                           {"id": "custom.cellOptions", "value": {"type": "color-text"}}],
        })
    if tenant_link:
        panel["fieldConfig"]["overrides"].append({
            "matcher": {"id": "byName", "options": "tenant"},
            "properties": [{"id": "links", "value": [{
                "title": "Tenant detail",
                "url": f"/d/{UIDS['tenant']}?var-tenant=${{__value.raw}}&var-cluster=$cluster&"
                       "var-datasource=$datasource",
            }]}],
        })
    return panel


def _variables(*, tenant: bool) -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {"text": "default", "value": "default"}, "hide": 0},
        {"name": "cluster", "label": "Cluster", "type": "query", "datasource": DS,
         "query": {"query": "label_values(fluxtenant_exporter_build_info, cluster)", "refId": "cluster"},
         "definition": "label_values(fluxtenant_exporter_build_info, cluster)",
         "includeAll": True, "allValue": ".*", "multi": True, "refresh": 2, "current": ALL, "hide": 0},
    ]
    if tenant:
        variables.append({
            "name": "tenant", "label": "Tenant", "type": "query", "datasource": DS,
            "query": {"query": f"label_values(fluxtenant_tenant_status{{{C}}}, tenant)", "refId": "tenant"},
            "definition": f"label_values(fluxtenant_tenant_status{{{C}}}, tenant)",
            "includeAll": True, "allValue": ".+", "multi": True, "refresh": 2, "current": ALL, "hide": 0,
        })
    return variables


def _dashboard(key: str, title: str, description: str, panels: list[dict[str, Any]], *, tenant: bool) -> dict[str, Any]:
    ids: Iterator[int] = count(1)
    for panel in panels:
        panel["id"] = next(ids)
    return {
        "uid": UIDS[key], "title": title, "description": description, "tags": ["flux", "flux-tenant-exporter"],
        "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": _variables(tenant=tenant)},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "title": "Flux tenants", "tags": ["flux-tenant-exporter"], "asDropdown": False,
             "includeVars": True, "keepTime": True, "icon": "external link", "tooltip": "", "targetBlank": False},
            {"type": "link", "title": "Alert runbook", "url": RUNBOOK, "targetBlank": True, "icon": "doc",
             "tooltip": "What each alert means and what to do", "tags": [], "asDropdown": False,
             "includeVars": False, "keepTime": False},
        ],
        "panels": panels,
    }


def overview() -> dict[str, Any]:
    """Platform overview: every tenant, failures by category and owner, stuck roots, policy, drift, suspended."""
    panels = [
        _panel("stat", "Failing tenants",
               [_target(f'count(max by (tenant) (fluxtenant_tenant_status{{status="failing", {C}}}) == 1) '
                        "or vector(0)")],
               (0, 0, 6, 4), description="Tenants with a failing or stuck object (in any shard).", unit="short"),
        _panel("stat", "Stuck root causes",
               [_target(f"count(max by ({OBJ}) (fluxtenant_resource_stuck_root{{{C}}}) == 1) or vector(0)")],
               (6, 0, 6, 4), description="What the FluxReconciliationStuck / FluxResourceStalled alerts page for.",
               unit="short"),
        _panel("stat", "Policy violations",
               [_target(f"sum({once(f'fluxtenant_tenant_policy_violations{{{C}}}')})")], (12, 0, 6, 4),
               description="Tenancy policy violations over all tenants (missing service account, cross-namespace "
                           "references, cluster-scoped objects in a tenant's inventory...).", unit="short"),
        _panel("stat", "Flux objects", [_target(f"sum({once(f'fluxtenant_tenant_resources{{{C}}}')})")],
               (18, 0, 6, 4), description="Flux objects the exporter watches, over all tenants.", unit="short"),
        _table("Tenants", [
            worst_status(C),
            f"sum by (tenant) ({once(f'fluxtenant_tenant_resources{{{C}}}')})",
            "sum by (tenant) (" + once(f'fluxtenant_tenant_resources{{state="failing", {C}}}') + ")",
            f"sum by (tenant) ({once(f'fluxtenant_tenant_stuck_resources{{{C}}}')})",
            "topk by (tenant) (1, sum by (tenant, category, owner) "
            f"({once(f'fluxtenant_tenant_root_failures{{{C}}}')}))",
        ], (0, 4, 24, 9), description="Status (the worst over the shards), objects, failing, stuck, and the most "
                                        "frequent root-cause category with its owner. Click a tenant for its detail.",
            unit="short", status_column="Value #A"),
        _panel("timeseries", "Failing objects by category and owner",
               [_target(f"sum by (category, owner) ({once(f'fluxtenant_tenant_failures{{{C}}}')})",
                        legend="{{category}} ({{owner}})")], (0, 13, 12, 8),
               description="Failing objects (roots and the objects they block) by failure category and owner.",
               unit="short"),
        _panel("timeseries", "Failing root causes by owner",
               [_target(f"sum by (owner) ({once(f'fluxtenant_tenant_root_failures{{{C}}}')})", legend="{{owner}}")],
               (12, 13, 12, 8), description="tenant: the tenant fixes it; platform: the platform team does.",
               unit="short"),
        _table("Stuck root causes and their age", [
            f"max by ({OBJ}, category, owner, reason) (fluxtenant_resource_stuck_root{{{C}}}) * on ({OBJ}) "
            f"group_left () (time() - max by ({OBJ}) (fluxtenant_resource_state_since_timestamp_seconds{{{C}}}))",
        ], (0, 21, 24, 8), unit="s", description="Age since the root's current state began."),
        _table("Tenancy policy violations",
               [f"sum by (tenant, rule) ({once(f'fluxtenant_tenant_policy_violations{{{C}}}')}) > 0"], (0, 29, 12, 8),
               description="Violations per tenant and rule.", unit="short"),
        _table("Revision drift", [
            f"max by ({OBJ}, type) (time() - fluxtenant_resource_drift_since_timestamp_seconds{{{C}}})",
        ], (12, 29, 12, 8), unit="s",
            description="source: the source has a newer artifact than the one applied; attempt: the last "
                        "attempted revision failed to apply."),
        _table("Suspended objects",
               [f"max by ({OBJ}) (fluxtenant_resource_suspended{{{C}}} == 1)"], (0, 37, 24, 6),
               description="Objects with spec.suspend: true; nothing reconciles them until resumed."),
    ]
    return _dashboard("overview", "Flux tenants / Overview",
                      "Which Flux tenant is broken, why, and since when.", panels, tenant=False)


def tenant_detail() -> dict[str, Any]:
    """One tenant's objects, states, categories, root causes, since-times, revisions and transitions."""
    panels = [
        _table("Objects", [
            f"max by (kind, namespace, name, state) (fluxtenant_resource_state{{{T}, {C}}})",
            f"max by (kind, namespace, name, category, owner, root_category) (fluxtenant_resource_failure{{{T}, {C}}})",
            f"max by (kind, namespace, name) (time() - fluxtenant_resource_state_since_timestamp_seconds{{{T}, {C}}})",
            f"max by (kind, namespace, name, revision, source) (fluxtenant_resource_info{{{T}, {C}}})",
        ], (0, 0, 24, 10), description="State, category, owner, root category, time in state, revision, source. At the "
                                          "exporter's default --detail=failing only the objects needing attention "
                                          "are listed; --detail=all lists every object.",
            hide=("Time", "Value #A", "Value #B", "Value #D"), tenant_link=False, unit="s"),
        _table("Root causes", [
            f"max by (kind, namespace, name, category, owner) (fluxtenant_resource_failure{{{T}, {C}}} "
            f"* on ({OBJ}) group_left () max by ({OBJ}) (fluxtenant_resource_root_cause{{{T}, {C}}}) == 1)",
        ], (0, 10, 12, 8), description="Failing objects that nothing else blocks: fix these first.",
            tenant_link=False),
        _table("Stuck", [
            f"max by (kind, namespace, name, reason) (fluxtenant_resource_stuck_root{{{T}, {C}}})",
        ], (12, 10, 12, 8), tenant_link=False,
            description="Objects stuck beyond their threshold that nothing else blocks (what the alerts page for), "
                        "with why."),
        _panel("timeseries", "Objects by state",
               [_target(f"sum by (state) ({once(f'fluxtenant_tenant_resources{{{T}, {C}}}')})", legend="{{state}}")],
               (0, 18, 12, 8), description="The tenant's objects by state over time.", unit="short"),
        _panel("timeseries", "Transitions", [
            _target("sum by (category) "
                    f"({once(f'increase(fluxtenant_resource_failures_total{{{T}, {C}}}[$__rate_interval])')})",
                    legend="failed: {{category}}"),
            _target(f"sum ({once(f'increase(fluxtenant_resource_recoveries_total{{{T}, {C}}}[$__rate_interval])')})",
                    "B", legend="recovered"),
        ], (12, 18, 12, 8), description="Entries into failing by category, and recoveries.", unit="short"),
        _table("Policy violations", [
            f"max by (kind, namespace, name, rule) (fluxtenant_resource_policy_violation{{{T}, {C}}})",
        ], (0, 26, 12, 8), tenant_link=False, description="The tenant's objects that break a tenancy rule."),
        _table("Drift", [
            f"max by (kind, namespace, name, type) (time() - fluxtenant_resource_drift_since_timestamp_seconds{{{T}, {C}}})",
        ], (12, 26, 12, 8), unit="s", tenant_link=False,
            description="How long each object has applied an older revision than its source's (source) or failed "
                        "to apply the last attempted one (attempt)."),
    ]
    return _dashboard("tenant", "Flux tenants / Tenant", "One tenant's Flux objects and why they fail.",
                      panels, tenant=True)


def exporter_health() -> dict[str, Any]:
    """The exporter itself: sync, watch errors, events, scrape and publish time, memory."""
    panels = [
        _table("Kinds", [
            f"max by (kind, shard) (fluxtenant_exporter_kind_synced{{{C}}})",
            f"min by (kind, shard) (fluxtenant_exporter_kind_connected{{{C}}})",
            f"max by (kind, shard) (fluxtenant_exporter_kind_absent{{{C}}})",
            f"max by (kind, shard) (fluxtenant_exporter_kind_forbidden{{{C}}})",
            f"max by (kind, shard) (fluxtenant_exporter_objects{{{C}}})",
        ], (0, 0, 12, 8), description="Per kind (and shard): synced, connected (0: API server unreachable, data "
            "stale), absent (CRD not installed), forbidden (RBAC), objects.",
            tenant_link=False, unit="short"),
        _panel("timeseries", "Seconds since the last event or bookmark",
               [_target(f"time() - max by (kind, shard) (fluxtenant_exporter_last_event_timestamp_seconds{{{C}}})",
                        legend="{{kind}} {{shard}}")], (12, 0, 12, 8), unit="s",
               description="A watch that stays silent much longer than its bookmark interval has stalled."),
        _panel("timeseries", "Watch events",
               [_target("max by (kind, type, shard) "
                        f"(rate(fluxtenant_exporter_events_total{{{C}}}[$__rate_interval]))",
                        legend="{{kind}} {{type}} {{shard}}")], (0, 8, 12, 8), unit="ops",
               description="Watch events received per second, by kind and type (each replica receives them all)."),
        _panel("timeseries", "Watch endings and list errors", [
            _target(f'max by (kind, result, shard) (rate(fluxtenant_exporter_watch_requests_total{{result!="closed", '
                    f"{C}}}[$__rate_interval]))", legend="watch {{kind}} {{result}} {{shard}}"),
            _target(f'max by (kind, result, shard) (rate(fluxtenant_exporter_list_requests_total{{result!="success", '
                    f"{C}}}[$__rate_interval]))", "B", legend="list {{kind}} {{result}} {{shard}}"),
        ], (12, 8, 12, 8), unit="ops",
            description="Watches that ended other than by the server's timeout, and failed list requests."),
        _panel("timeseries", "/metrics and publish duration (p99)", [
            _target("histogram_quantile(0.99, sum by (le) (rate(fluxtenant_exporter_scrape_duration_seconds_bucket"
                    f"{{{C}}}[$__rate_interval])))", legend="scrape p99"),
            _target("histogram_quantile(0.99, sum by (le) (rate(fluxtenant_exporter_publish_duration_seconds_bucket"
                    f"{{{C}}}[$__rate_interval])))", "B", legend="publish p99"),
        ], (0, 16, 12, 8), unit="s",
            description="99th percentile of serving /metrics and of deriving a snapshot (publish)."),
        _panel("timeseries", "Memory (RSS)", [
            _target(f"process_resident_memory_bytes{{{C}}} and on (instance, job) fluxtenant_exporter_build_info",
                    legend="{{instance}}"),
        ], (12, 16, 12, 8), unit="bytes", description="Resident memory of each exporter process."),
        _panel("timeseries", "Relists", [
            _target("max by (kind, reason, shard) "
                    f"(increase(fluxtenant_exporter_relists_total{{{C}}}[$__rate_interval]))",
                    legend="{{kind}} {{reason}} {{shard}}"),
            _target("max by (kind, shard) "
                    f"(increase(fluxtenant_exporter_malformed_events_total{{{C}}}[$__rate_interval]))",
                    "B", legend="malformed {{kind}} {{shard}}"),
        ], (0, 24, 24, 8), unit="short",
            description="Relists (a watch's resourceVersion expired, or a reconnect) and objects the exporter could "
                        "not read."),
    ]
    return _dashboard("exporter", "Flux tenants / Exporter health", "Is flux-tenant-exporter itself healthy?",
                      panels, tenant=False)


DASHBOARDS = {"flux-tenant-overview.json": overview, "flux-tenant-detail.json": tenant_detail,
              "flux-tenant-exporter.json": exporter_health}

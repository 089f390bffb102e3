"""The status page: server-rendered HTML from the published View, for people (``/`` and ``/tenant/{name}``).

No JavaScript and no external assets: one inline stylesheet (light or dark from the browser's preference), a
``<meta refresh>`` for auto-refresh, and filter links that are plain query strings. Every name, message and
detail is untrusted and escaped. Every link is relative, so the page works unchanged behind a proxy that
serves it under a path prefix (``/flux/`` -> ``/``): open the prefix with its trailing slash.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlencode

from flux_tenant_exporter.base.timefmt import human_age, timestamp
from flux_tenant_exporter.base.vocabulary import TENANT_STATUSES
from flux_tenant_exporter.render.documents import Filters
from flux_tenant_exporter.state.published import ResourceView, TenantView, View

#: seconds between automatic reloads
REFRESH_SECONDS = 15

_CSS = """
:root { color-scheme: light dark; --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0;
  --head: #f6f8fa; --link: #0969da; --failing: #cf222e; --progressing: #9a6700; --degraded: #bc4c00;
  --healthy: #1a7f37; --suspended: #59636e; --chip: #eff2f5; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --head: #151b23; --link: #4493f8;
    --failing: #ff7b72; --progressing: #d29922; --degraded: #f0883e; --healthy: #3fb950; --suspended: #9198a1;
    --chip: #262c36; }
}
* { box-sizing: border-box; }
body { margin: 0; padding: 1.25rem 1.5rem; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
a { color: var(--link); text-decoration: none; } a:hover { text-decoration: underline; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; } h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
.meta { color: var(--muted); margin: 0 0 1rem; }
nav.filters { margin: .5rem 0 1rem; display: flex; gap: .4rem; flex-wrap: wrap; }
nav.filters a { padding: .15rem .6rem; border: 1px solid var(--line); border-radius: 1rem; }
nav.filters a.on { background: var(--chip); font-weight: 600; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.st { font-weight: 600; white-space: nowrap; }
.st-failing { color: var(--failing); } .st-progressing, .st-unknown { color: var(--progressing); }
.st-degraded { color: var(--degraded); } .st-healthy, .st-ready { color: var(--healthy); }
.st-suspended { color: var(--suspended); }
.stuck { color: var(--failing); font-weight: 600; }
.msg { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; white-space: pre-wrap;
  word-break: break-word; max-width: 60rem; }
td.msg { min-width: 22rem; }
.muted { color: var(--muted); }
.cause { margin: .25rem 0 .75rem; padding: .6rem .8rem; border-left: 4px solid var(--failing);
  background: var(--head); }
tr:target { outline: 2px solid var(--link); }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, *, status: str | None = None) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body data-status=\"{_e(status or '')}\">{body}</body></html>\n"
    )


def _status(value: str) -> str:
    return f'<span class="st st-{_e(value)}">{_e(value)}</span>'


def _since(value: float | None, now: float) -> str:
    if value is None:
        return '<span class="muted">-</span>'
    return f'<time datetime="{_e(timestamp(value))}" title="{_e(timestamp(value))}">{_e(human_age(now - value))}</time>'


def _ref(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def _anchor(kind: str, namespace: str, name: str) -> str:
    return quote(f"{kind}-{namespace}-{name}", safe="")


def _revision(value: str | None) -> str:
    """A revision with its digest cut to 12 characters (the whole one in the tooltip)."""
    if not value:
        return "-"
    head, sep, digest = value.rpartition(":")
    short = f"{head}{sep}{digest[:12]}" if sep and len(digest) > 12 else value  # noqa: PLR2004
    return f'<span title="{_e(value)}">{_e(short)}</span>'


def _first_line(message: str) -> str:
    stripped = message.strip()
    return stripped.splitlines()[0] if stripped else ""


def _worst_root(tenant: TenantView) -> ResourceView | None:
    roots = [r for r in tenant.failures if r.is_root]
    found = [r for r in roots if r.stuck] or roots or list(tenant.failures)
    return found[0] if found else None


def _filter_links(current: Mapping[str, str], options: Iterable[tuple[str, Mapping[str, str]]], here: str) -> str:
    links = []
    for label, params in options:
        on = dict(params) == dict(current)
        href = "?" + urlencode(params) if params else here
        links.append(f'<a href="{_e(href)}"{" class=on" if on else ""}>{_e(label)}</a>')
    return '<nav class="filters">' + "".join(links) + "</nav>"


def overview(view: View, filters: Filters, query: Mapping[str, str], status: str | None = None, *,
             visible: Mapping[str, TenantView] | None = None, limited: bool = False) -> str:
    """``/``: every tenant with its status, failing and stuck counts, and its worst root cause with the owner.

    ``visible``: the tenants as the caller may see them (default: all); ``limited``: the caller sees only some
    namespaces, which the page says, with the permission that shows more.
    """
    now = time.time()
    shown = view.tenants if visible is None else visible
    tenants = [t for t in shown.values()
               if (status is None or t.status == status) and (not filters.active or any(
                   filters.match(r) for r in t.resources))]
    tenants.sort(key=lambda t: (TENANT_STATUSES.index(t.status), t.name))
    failing = sum(1 for t in shown.values() if t.status == "failing")
    objects = len(view.resources) if visible is None else sum(t.counts["total"] for t in shown.values())
    rows = []
    for t in tenants:
        root = _worst_root(t)
        if root is None:
            cause = '<td class="muted">-</td><td></td>'
        else:
            cause = (f'<td><a href="tenant/{quote(t.name, safe="")}#{_anchor(root.kind, root.namespace, root.name)}">'
                     f"{_e(_ref(root.kind, root.namespace, root.name))}</a><br>"
                     f'<span class="msg">{_e(_first_line(root.message))}</span></td>'
                     f"<td>{_e(root.category or '-')}<br><span class=muted>owner:</span> {_e(root.owner or '-')}"
                     f"<br><span class=muted>since</span> {_since(root.since, now)}</td>")
        c = t.counts
        rows.append(
            f'<tr data-tenant="{_e(t.name)}"><td><a href="tenant/{quote(t.name, safe="")}">{_e(t.name)}</a></td>'
            f"<td>{_status(t.status)}</td><td class=num>{c['total']}</td><td class=num>{c['failing']}</td>"
            f"<td class=num>{c['stuck']}</td><td class=num>{len(t.violations)}</td>{cause}</tr>")
    links = _filter_links(query, [
        ("All tenants", {}), ("Failing", {"status": "failing"}), ("Stuck", {"stuck": "true"}),
        ("Owner: tenant", {"owner": "tenant", "state": "failing"}),
        ("Owner: platform", {"owner": "platform", "state": "failing"}),
    ], ".")
    empty = ("You can see no tenant: a tenant shows here once you may list Kustomizations in one of its namespaces "
             "(a RoleBinding to flux-view, view or flux-tenant-exporter-viewer there)." if limited and not shown
             else "No tenant matches.")
    table = ("<table><thead><tr><th>Tenant</th><th>Status</th><th>Objects</th><th>Failing</th><th>Stuck</th>"
             "<th>Violations</th><th>Worst root cause</th><th>Category / owner</th></tr></thead><tbody>"
             + ("".join(rows) or f'<tr><td colspan="8" class="muted">{_e(empty)}</td></tr>')
             + "</tbody></table>")
    scope = (" &middot; only the namespaces you may list Kustomizations in" if limited else "")
    body = (f"<h1>Flux tenants</h1><p class=meta>{len(shown)} tenants, {failing} failing, "
            f"{objects} Flux objects{scope} &middot; snapshot {_e(timestamp(view.generated_at))} &middot; "
            f'refreshes every {REFRESH_SECONDS} s &middot; <a href="tenants">JSON</a> &middot; '
            f'<a href="metrics">metrics</a></p>{links}{table}')
    return _page("Flux tenants", body)


def _violation_rows(tenant: TenantView) -> str:
    return "".join(
        f"<tr><td>{_e(v.rule)}</td><td>{_e(_ref(v.kind, v.namespace, v.name))}</td>"
        f'<td class="msg">{_e(v.detail)}</td></tr>' for v in tenant.violations)


def tenant_page(view: View, tenant: TenantView, filters: Filters, query: Mapping[str, str]) -> str:
    """``/tenant/{name}``: its root causes first, then every object (filtered), then its policy violations."""
    now = time.time()
    resources = sorted((r for r in tenant.resources if filters.match(r)), key=lambda r: (
        not r.is_root, r.state != "failing", not r.stuck, r.state == "ready", r.kind, r.namespace, r.name))
    roots = [r for r in tenant.failures if r.is_root]
    causes = "".join(
        f'<div class="cause"><a href="#{_anchor(r.kind, r.namespace, r.name)}">'
        f"<b>{_e(_ref(r.kind, r.namespace, r.name))}</b></a> &middot; {_e(r.category or '-')} &middot; "
        f"owner {_e(r.owner or '-')} &middot; since {_since(r.since, now)}"
        + (f' &middot; <span class="stuck">stuck ({_e(r.stuck_reason or "")})</span>' if r.stuck else "")
        + f'<div class="msg">{_e(r.message)}</div>'
        + (f"<div><b>{_e(r.detail)}</b></div>" if r.detail else "") + "</div>" for r in roots)
    rows = []
    for r in resources:
        blocked = "-"
        if r.root_cause is not None:
            rc = r.root_cause
            blocked = (f'<a href="#{_anchor(rc.kind, rc.namespace, rc.name)}">'
                       f"{_e(_ref(rc.kind, rc.namespace, rc.name))}</a> ({_e(r.root_category or '-')})")
        stuck = f'<span class="stuck">{_e(r.stuck_reason or "yes")}</span>' if r.stuck else "-"
        violations = ", ".join(_e(v.rule) for v in r.violations) or "-"
        rows.append(
            f'<tr id="{_anchor(r.kind, r.namespace, r.name)}"><td>{_e(r.kind)}</td><td>{_e(r.namespace)}</td>'
            f"<td>{_e(r.name)}</td><td>{_status(r.state)}</td><td>{_e(r.category or '-')}</td>"
            f"<td>{_e(r.owner or '-')}</td><td>{stuck}</td><td>{blocked}</td><td>{_since(r.since, now)}</td>"
            f"<td>{_revision(r.revision)}</td><td>{violations}</td>"
            f'<td class="msg">{_e(r.message if r.state != "ready" else "")}'
            + (f"<br><b>{_e(r.detail)}</b>" if r.detail else "") + "</td></tr>")
    categories = sorted({r.category for r in tenant.resources if r.category and r.state == "failing"})
    links = _filter_links(query, [("All objects", {}), ("Failing", {"state": "failing"}), ("Stuck", {"stuck": "true"}),
                                  *((c, {"category": c}) for c in categories)],
                          quote(tenant.name, safe=""))
    c = tenant.counts
    body = (
        f'<p><a href="..">&larr; All tenants</a></p><h1>{_e(tenant.name)} {_status(tenant.status)}</h1>'
        f"<p class=meta>namespaces: {_e(', '.join(tenant.namespaces) or '-')}"
        + (" (only those you may see: the tenant has others)" if tenant.partial else "")
        + f" &middot; {c['total']} objects, "
        f"{c['ready']} ready, {c['progressing']} progressing, {c['failing']} failing, {c['stuck']} stuck, "
        f"{c['suspended']} suspended &middot; snapshot {_e(timestamp(view.generated_at))} &middot; "
        f'<a href="../tenants/{quote(tenant.name, safe="")}">JSON</a></p>'
        + (f"<h2>Root causes</h2>{causes}" if causes else "")
        + f"<h2>Objects</h2>{links}<table><thead><tr><th>Kind</th><th>Namespace</th><th>Name</th><th>State</th>"
        "<th>Category</th><th>Owner</th><th>Stuck</th><th>Blocked by</th><th>Since</th><th>Revision</th>"
        "<th>Violations</th><th>Message</th></tr></thead><tbody>"
        + ("".join(rows) or '<tr><td colspan="12" class="muted">No object matches.</td></tr>') + "</tbody></table>"
        + ("<h2>Policy violations</h2><table><thead><tr><th>Rule</th><th>Object</th><th>Detail</th></tr></thead>"
           f"<tbody>{_violation_rows(tenant)}</tbody></table>" if tenant.violations else "")
    )
    return _page(f"{tenant.name} - Flux tenants", body, status=tenant.status)


def error_page(status: int, message: str, *, home: str) -> str:
    """A short HTML error (a bad filter, an unknown tenant) with a link ``home`` (relative) to the overview."""
    return _page(f"{status} - Flux tenants", f'<p><a href="{_e(home)}">&larr; All tenants</a></p><h1>{status}</h1>'
                 f"<p>{_e(message)}</p>")

"""Tables for people, from the ``/tenants`` JSON document: what ``get`` prints with ``-o table``.

Rows come from the JSON contract (so a running exporter and the in-process watcher print the same), roots
first; an age column like kubectl's; colour only when asked for (``get`` asks on a terminal, unless NO_COLOR).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from flux_tenant_exporter.base.timefmt import human_age, parse_time
from flux_tenant_exporter.base.vocabulary import STATES, TENANT_STATUSES, State

_RED, _YELLOW, _GREEN, _DIM, _BOLD_RED, _RESET = "\x1b[31m", "\x1b[33m", "\x1b[32m", "\x1b[2m", "\x1b[1;31m", "\x1b[0m"
_COLOURS = {
    "failing": _RED, "progressing": _YELLOW, "degraded": _YELLOW, "unknown": _YELLOW, "ready": _GREEN,
    "healthy": _GREEN, "suspended": _DIM, "yes": _BOLD_RED,
}
MESSAGE_WIDTH = 70
#: resources' states, worst first
_STATE_ORDER: tuple[State, ...] = ("failing", "progressing", "unknown", "suspended", "ready")
assert set(_STATE_ORDER) == set(STATES)


@dataclass(frozen=True)
class Row:
    """One printed line: a stable key (for --watch), the cells, and which cell is the age (it alone may move)."""

    key: tuple[str, ...]
    cells: tuple[str, ...]
    age_column: int | None = None

    def content(self) -> tuple[str, ...]:
        """The cells without the age, which changes with the clock and not with the object."""
        return tuple(c for i, c in enumerate(self.cells) if i != self.age_column)


@dataclass(frozen=True)
class Table:
    """A header and rows."""

    header: tuple[str, ...]
    rows: tuple[Row, ...]
    #: lines printed above the table (``get tenant``), and below it
    preamble: tuple[str, ...] = ()
    footer: tuple[str, ...] = ()
    colour_columns: frozenset[int] = frozenset()

    def render(self, *, colour: bool, rows: Sequence[Row] | None = None, header: bool = True) -> str:
        """The table as text, its columns aligned over all its rows; only ``rows`` (default: all) are printed."""
        widths = [len(h) for h in self.header]
        for row in self.rows:
            for i, cell in enumerate(row.cells):
                widths[i] = max(widths[i], len(cell))
        lines = list(self.preamble) if header else []
        if header:
            lines.append(_line(self.header, widths, colour=False, colour_columns=frozenset()))
        lines += [_line(r.cells, widths, colour=colour, colour_columns=self.colour_columns)
                  for r in (self.rows if rows is None else rows)]
        if header:
            lines += self.footer
        return "".join(line + "\n" for line in lines)


def _line(cells: Sequence[str], widths: Sequence[int], *, colour: bool, colour_columns: frozenset[int]) -> str:
    out = []
    last = len(cells) - 1
    for i, cell in enumerate(cells):
        text = cell if i == last else cell.ljust(widths[i])
        if colour and i in colour_columns and cell in _COLOURS:
            text = _COLOURS[cell] + text + _RESET
        out.append(text)
    return "   ".join(out).rstrip()


def age(since: str | None, now: float) -> str:
    """How long ago ``since`` (RFC 3339) was, as kubectl prints ages; ``-`` if unknown."""
    start = parse_time(since)
    return "-" if start is None else human_age(now - start)


def ref(item: dict[str, Any] | None) -> str:
    """``Kind/namespace/name`` of a resource or a root_cause entry; ``-`` for None."""
    if not item:
        return "-"
    return f"{item['kind']}/{item['namespace']}/{item['name']}"


def first_line(message: str, width: int = MESSAGE_WIDTH) -> str:
    """The first line of a message, cut to ``width`` characters."""
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def is_root(res: dict[str, Any]) -> bool:
    """A failing resource that nothing else blocks."""
    return bool(res["state"] == "failing" and res["root_cause"] is None)


def resource_order(res: dict[str, Any]) -> tuple[int, int, int, str, str, str, str]:
    """Roots first, then what they block, then stuck, then by state (worst first), then by identity."""
    worst = _STATE_ORDER.index(res["state"]) if res["state"] in _STATE_ORDER else len(_STATE_ORDER)
    return (not is_root(res), not res["stuck"], worst, res["tenant"], res["kind"], res["namespace"], res["name"])


def worst_root(tenant: dict[str, Any]) -> dict[str, Any] | None:
    """The tenant's first root cause (its failures are roots first), or its first failure, or None."""
    failures: list[dict[str, Any]] = tenant["failures"]
    roots = [f for f in failures if is_root(f)]
    stuck_roots = [f for f in roots if f["stuck"]]
    found = stuck_roots or roots or failures
    return found[0] if found else None


def tenants_table(doc: dict[str, Any], now: float) -> Table:
    """``get tenants``: one row per tenant, worst status first, with its worst root cause and that cause's owner."""
    header = ("TENANT", "STATUS", "OBJECTS", "FAILING", "STUCK", "VIOLATIONS", "ROOT CAUSE", "CATEGORY", "OWNER",
              "AGE")
    tenants = sorted(doc["tenants"], key=lambda t: (
        TENANT_STATUSES.index(t["status"]) if t["status"] in TENANT_STATUSES else len(TENANT_STATUSES), t["name"]))
    rows = []
    for t in tenants:
        root = worst_root(t)
        counts = t["counts"]
        rows.append(Row((t["name"],), (
            t["name"], t["status"], str(counts["total"]), str(counts["failing"]), str(counts["stuck"]),
            str(len(t["violations"])), ref(root), (root or {}).get("category") or "-",
            (root or {}).get("owner") or "-", age(root["since"], now) if root else "-",
        ), age_column=9))
    return Table(header, tuple(rows), colour_columns=frozenset({1}))


def resources_table(resources: Iterable[dict[str, Any]], now: float, *, with_tenant: bool = True,
                    preamble: tuple[str, ...] = (), footer: tuple[str, ...] = ()) -> Table:
    """``get resources`` / ``get tenant``: roots first; a blocked object names what blocks it."""
    header: tuple[str, ...] = ("TENANT", "KIND", "NAMESPACE", "NAME", "STATE", "CATEGORY", "OWNER", "STUCK",
                               "BLOCKED BY", "AGE", "MESSAGE")
    rows = []
    for r in sorted(resources, key=resource_order):
        cells = (r["tenant"], r["kind"], r["namespace"], r["name"], r["state"], r["category"] or "-",
                 r["owner"] or "-", "yes" if r["stuck"] else "-", ref(r["root_cause"]), age(r["since"], now),
                 first_line(r["message"]) if r["state"] != "ready" else "")
        rows.append(Row((r["kind"], r["namespace"], r["name"]), cells, age_column=9))
    colour = frozenset({4, 7})
    if not with_tenant:
        header = header[1:]
        rows = [Row(r.key, r.cells[1:], age_column=8) for r in rows]
        colour = frozenset({3, 6})
    return Table(header, tuple(rows), preamble=preamble, footer=footer, colour_columns=colour)


def tenant_table(tenant: dict[str, Any], now: float) -> Table:
    """``get tenant NAME``: a summary line, its objects (roots first), then its policy violations."""
    c = tenant["counts"]
    preamble = (f"Tenant {tenant['name']}: {tenant['status']}  (namespaces: {', '.join(tenant['namespaces']) or '-'})",
                (f"objects {c['total']}, ready {c['ready']}, progressing {c['progressing']}, failing {c['failing']}, "
                 f"stuck {c['stuck']}, suspended {c['suspended']}"), "")
    footer: tuple[str, ...] = ()
    if tenant["violations"]:
        footer = ("", "Policy violations:", *(f"  {v['rule']}: {v['kind']}/{v['namespace']}/{v['name']}: "
                                               f"{v['detail']}" for v in tenant["violations"]))
    return resources_table(tenant.get("resources", []), now, with_tenant=False, preamble=preamble, footer=footer)

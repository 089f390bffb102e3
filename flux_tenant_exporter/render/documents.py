"""The ``/tenants`` JSON contract, built from a View (shared by the HTTP API and ``report``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from flux_tenant_exporter.base.packed import Text, held, pack, unpack
from flux_tenant_exporter.base.timefmt import timestamp
from flux_tenant_exporter.base.vocabulary import CATEGORIES, OWNERS, STATES, Category, Owner, State
from flux_tenant_exporter.state.published import PLAIN, ResourceView, TenantView, View


class FilterError(ValueError):
    """A query parameter has a value outside its allowed set."""


@dataclass(frozen=True)
class Filters:
    """Resource filters of the API: ``?state=``, ``?category=``, ``?owner=``, ``?stuck=``."""

    state: State | None = None
    category: Category | None = None
    owner: Owner | None = None
    stuck: bool | None = None

    @classmethod
    def parse(cls, query: dict[str, str]) -> Filters:
        """Validate query parameters; FilterError names the bad one and the allowed values."""
        unknown = set(query) - {"state", "category", "owner", "stuck"}
        if unknown:
            msg = f"unknown query parameter(s): {', '.join(sorted(unknown))}; allowed: state, category, owner, stuck"
            raise FilterError(msg)
        stuck = _one_of(query, "stuck", ("true", "false"))
        return cls(_one_of(query, "state", STATES), _one_of(query, "category", CATEGORIES),
                   _one_of(query, "owner", OWNERS), None if stuck is None else stuck == "true")

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return any(v is not None for v in (self.state, self.category, self.owner, self.stuck))

    def match(self, res: ResourceView) -> bool:
        """Whether a resource passes every set filter."""
        return (
            (self.state is None or res.state == self.state)
            and (self.category is None or res.category == self.category)
            and (self.owner is None or res.owner == self.owner)
            and (self.stuck is None or res.stuck == self.stuck)
        )


_V = TypeVar("_V", bound=str)


def _one_of(query: dict[str, str], name: str, allowed: tuple[_V, ...]) -> _V | None:
    """The value of query parameter ``name`` as one of ``allowed``; None when absent."""
    value = query.get(name)
    if value is None:
        return None
    for candidate in allowed:
        if candidate == value:
            return candidate
    msg = f"{name}={value!r} is not one of: {', '.join(allowed)}"
    raise FilterError(msg)


def resource_doc(res: ResourceView) -> dict[str, Any]:
    """One resource entry of the contract.

    Read from the entry, its verdict and the derivation once (not property by property: ``report`` writes 100k).
    """
    obj, verdict = res.entry.obj, res.entry.verdict
    ref = obj.ref
    derived = res.derived or PLAIN
    root = derived.root_cause
    return {
        "kind": ref.kind,
        "namespace": ref.namespace,
        "name": ref.name,
        "tenant": res.tenant,
        "state": verdict.state,
        "category": verdict.category,
        "owner": derived.owner,
        "reason": verdict.reason,
        "message": verdict.message,
        "detail": verdict.detail,
        "since": timestamp(verdict.since),
        "since_source": verdict.since_source,
        "stuck": derived.stuck,
        "stuck_reason": derived.stuck_reason,
        "stuck_root": derived.stuck_root,
        "root_cause": {"kind": root.kind, "namespace": root.namespace, "name": root.name} if root else None,
        "root_category": derived.root_category,
        "violations": [v.rule for v in derived.violations],
        "revision": res.revision,
        "suspended": obj.suspended,
        "drift": {
            "source_since": timestamp(derived.source_drift_since),
            "attempt_since": timestamp(derived.attempt_drift_since),
        },
        "generation_lag": res.generation_lag,
        "last_success": timestamp(res.last_success),
    }


def tenant_doc(tenant: TenantView, filters: Filters, *, with_resources: bool) -> dict[str, Any]:
    """One tenant entry; ``with_resources`` adds every (filtered) resource."""
    doc: dict[str, Any] = {
        "name": tenant.name,
        "namespaces": list(tenant.namespaces),
        "status": tenant.status,
        "partial": tenant.partial,
        "counts": dict(tenant.counts),
        "failures": [resource_doc(r) for r in tenant.failures if filters.match(r)],
        "violations": [
            {"rule": v.rule, "kind": v.kind, "namespace": v.namespace, "name": v.name, "detail": v.detail}
            for v in tenant.violations
        ],
    }
    if with_resources:
        doc["resources"] = [resource_doc(r) for r in tenant.resources if filters.match(r)]
    return doc


def tenants_doc(view: View, filters: Filters = Filters(), *, with_resources: bool = False,
                visible: Mapping[str, TenantView] | None = None) -> dict[str, Any]:
    """The ``/tenants`` document (``report`` sets ``with_resources``).

    ``visible``: the tenants as the caller may see them (default: every tenant of the view).
    """
    tenants: Iterable[TenantView] = (view.tenants if visible is None else visible).values()
    if filters.active:
        tenants = [t for t in tenants if any(filters.match(r) for r in t.resources)]
    return {
        "generated_at": timestamp(view.generated_at),
        "tenants": [tenant_doc(t, filters, with_resources=with_resources) for t in tenants],
    }


def exact(data: bytes) -> bytes:
    """A copy of ``data`` that holds only its length, for what is kept.

    orjson's output keeps the whole buffer it wrote into: 32 KiB for a 2 KiB document.
    """
    return memoryview(data).tobytes()


class TenantPieces:
    """Each tenant's entry of the unfiltered ``/tenants`` document as JSON, kept current at every publish.

    A publish re-writes only the tenants whose TenantView changed (the View shares the others), so an answer
    joins pieces and no request pays for writing every tenant. The pieces are kept compressed (``base.packed``):
    at 100k objects 6.5 MiB of JSON in 2.3 MiB; an answer with every tenant inflates them in ~5 ms.
    """

    def __init__(self) -> None:
        """No pieces before the first publish."""
        self._pieces: dict[str, tuple[TenantView, Text]] = {}
        #: the build of the View the pieces were last brought to (-1: none)
        self._serial = -1

    def update(self, view: View) -> None:
        """Write the pieces of the tenants that changed in ``view``; drop those of tenants gone.

        When ``view`` follows the one seen last, only the tenants it says changed are looked at; otherwise (the
        first publish, or builds that were not shown in between) every tenant is.
        """
        pieces = self._pieces
        follows = self._serial >= 0 and view.parent == self._serial
        for name in (view.changed_tenants if follows else view.tenants.keys()):
            tenant = view.tenants.get(name)
            kept = pieces.get(name)
            if tenant is None:
                pieces.pop(name, None)
            elif kept is None or kept[0] is not tenant:
                pieces[name] = (tenant, _kept(_piece(tenant)))
        if not follows and len(pieces) > len(view.tenants):
            for name in [n for n in pieces if n not in view.tenants]:
                del pieces[name]
        self._serial = view.serial

    @property
    def size(self) -> int:
        """The bytes of JSON kept (compressed where they are)."""
        return sum(held(body) for _, body in self._pieces.values())

    def body(self, view: View, visible: Mapping[str, TenantView]) -> bytes:
        """The unfiltered document of ``view`` with the ``visible`` tenants (a projected one is written here)."""
        head = orjson.dumps({"generated_at": timestamp(view.generated_at)})[:-1] + b',"tenants":['
        parts = [head]
        for name, tenant in visible.items():
            kept = self._pieces.get(name)
            parts.append(unpack(kept[1]) if kept is not None and kept[0] is tenant else _piece(tenant))
            parts.append(b",")
        if len(parts) > 1:
            parts.pop()  # the last comma
        parts.append(b"]}")
        return b"".join(parts)  # one copy of the whole: at 1M objects the document is 64 MiB


def _piece(tenant: TenantView) -> bytes:
    return orjson.dumps(tenant_doc(tenant, Filters(), with_resources=False))


def _kept(piece: bytes) -> Text:
    """What is kept of a piece: compressed, or (a short one) a copy that holds only its length."""
    kept = pack(piece)
    return exact(piece) if kept is piece else kept

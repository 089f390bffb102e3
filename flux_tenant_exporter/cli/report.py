"""``report``: classify a ``kubectl get namespaces,kustomizations,... -A -o json`` dump offline.

Prints the ``/tenants`` document with every tenant's ``resources`` (``--format json``), or a table for
people (``--format table``). Unreadable items are reported on stderr and skipped; nothing else is lost.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from collections import deque
from collections.abc import Iterator
from typing import IO, Any

import msgspec
import orjson
import yaml

from flux_tenant_exporter.base.config import ReportSettings
from flux_tenant_exporter.base.errors import UserError
from flux_tenant_exporter.base.kinds import WatchedKind, by_kind, discovered_kind, is_flux_group
from flux_tenant_exporter.base.timefmt import timestamp
from flux_tenant_exporter.flux import schema
from flux_tenant_exporter.flux.projection import Projector
from flux_tenant_exporter.flux.tenants import TenantResolver
from flux_tenant_exporter.kube import codec
from flux_tenant_exporter.kube.codec import MalformedObject
from flux_tenant_exporter.render.documents import Filters, tenants_doc
from flux_tenant_exporter.state.store import Store
from flux_tenant_exporter.state.view import build_view


class ReportError(UserError):
    """The input cannot be read at all."""


def _items(doc: Any) -> Iterator[Any]:
    if isinstance(doc, list):
        for item in doc:
            yield from _items(item)
    elif isinstance(doc, dict) and isinstance(doc.get("items"), list):
        yield from doc["items"]
    elif isinstance(doc, dict):
        yield doc


def load_items(data: str | bytes) -> list[Any]:
    """The objects in a JSON document, or in one or more YAML documents (Lists are flattened).

    JSON items stay undecoded (``msgspec.Raw``) until ``build_report`` decodes each with the exporter's typed
    decoders; YAML items are Python values. Bytes that are not UTF-8 are a ReportError.
    """
    raw = data.encode() if isinstance(data, str) else data
    stripped = raw.lstrip()
    if not stripped:
        raise ReportError("the input is empty")
    if stripped[:1] in {b"{", b"["}:
        with contextlib.suppress(*codec.DecodeError):  # YAML is a superset: let the YAML parser report the error
            return _json_items(stripped)
    try:
        text = data if isinstance(data, str) else data.decode()
    except UnicodeDecodeError as err:
        msg = "the input is not UTF-8 text"
        raise ReportError(msg) from err
    try:
        return [item for doc in yaml.safe_load_all(text) for item in _items(doc)]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        msg = f"the input is neither JSON nor YAML: {getattr(err, 'problem', None) or err}{where}"
        raise ReportError(msg) from err


def _json_items(data: bytes) -> list[Any]:
    """The top-level items, undecoded: a List's items, a JSON array's elements, or the one object.

    Each is decoded once, by ``build_report`` (a List among them is expanded there).
    """
    if data.startswith(b"["):
        return list(codec.RAW_LIST.decode(data))
    items = codec.KINDED.decode(data).items  # one pass over what may be hundreds of MiB
    return list(items) if items is not None else [msgspec.Raw(data)]


class _Item(schema.RawFluxObject, frozen=True):
    """An item of a JSON dump, decoded once: a Flux object's used fields (a Namespace's too), or a List's items."""

    items: list[msgspec.Raw] | None = None


_ITEM = msgspec.json.Decoder(_Item)


def _decoded(item: Any) -> tuple[Any, str, list[Any] | None]:
    """(the item decoded, or None if it cannot be; its kind; the items of a List or array), JSON decoded once."""
    if isinstance(item, msgspec.Raw):
        if memoryview(item)[:1].tobytes() == b"[":
            try:
                return None, "", list(codec.RAW_LIST.decode(item))
            except codec.DecodeError:
                return None, "", None
        try:
            decoded = _ITEM.decode(item)
        except codec.DecodeError:
            try:  # a List has no metadata; a malformed object is named by its kind (FLUX.one says what is wrong)
                kinded = codec.KINDED.decode(item)
            except codec.DecodeError:
                return None, "", None
            return None, kinded.kind, kinded.items
        return decoded, decoded.kind, decoded.items
    if isinstance(item, list):
        return None, "", item
    if isinstance(item, dict):
        nested = item.get("items")
        return item, str(item.get("kind") or ""), nested if isinstance(nested, list) else None
    return None, "", None


def _watched(kind: str, api_version: str) -> WatchedKind | None:
    """The kind of a Flux object in a dump: a known one, or one of a Flux group the exporter does not know."""
    known = by_kind(kind)
    if known is not None:
        return known
    group, _, version = api_version.rpartition("/")
    return discovered_kind(kind, group, kind.lower() + "s", (version,)) if is_flux_group(group) else None


def build_report(items: list[Any], settings: ReportSettings, *, errors: IO[str] | None = None) -> dict[str, Any]:
    """Classify ``items`` and return the /tenants document with resources."""
    store = Store(resolver=TenantResolver.from_settings(settings.tenancy), thresholds=settings.thresholds)
    projector = Projector(keep_labels=settings.resource_labels)
    skipped = 0
    dumped: set[str] = set()
    pending = deque(items)
    index = -1
    while pending:
        item = pending.popleft()
        decoded, kind, nested = _decoded(item)
        if nested is not None:  # a List (or an array): its items, in its place
            pending.extendleft(reversed(nested))
            continue
        index += 1
        api_version = decoded.apiVersion if isinstance(decoded, _Item) else (
            str(decoded.get("apiVersion") or "") if isinstance(decoded, dict) else "")
        watched = _watched(kind, api_version) if kind and kind != "Namespace" else None
        try:
            if kind == "Namespace":
                namespace = (codec.RawNamespace(decoded.metadata) if isinstance(decoded, _Item)
                             else codec.NAMESPACES.one(item))
                store.upsert_namespace(projector.namespace(namespace, settings.tenancy.tenant_label))
            elif watched is not None:
                raw = decoded if isinstance(decoded, _Item) else schema.FLUX.one(item)
                store.upsert(projector.project(raw, watched))
                dumped.add(watched.kind)
            else:
                skipped += 1
        except MalformedObject as err:
            if errors is not None:
                print(f"item {index} ({kind or None}): skipped: {err}", file=errors)
    if skipped and errors is not None:
        print(f"{skipped} item(s) of other kinds ignored", file=errors)
    # an Alert's Provider or event source is missing if its kind is in the dump and it is not
    store.set_listed_kinds(dumped)
    now = time.time()
    store.expire(now)
    return tenants_doc(build_view(store, now=now), Filters(), with_resources=True)


def format_table(doc: dict[str, Any]) -> str:
    """A plain-text summary: one line per tenant, then its failures (roots first)."""
    lines = [f"{'TENANT':<24} {'STATUS':<12} {'TOTAL':>5} {'READY':>5} {'FAIL':>5} {'STUCK':>5}  VIOLATIONS"]
    for t in doc["tenants"]:
        c = t["counts"]
        rules = sorted({v["rule"] for v in t["violations"]})
        lines.append(f"{t['name']:<24} {t['status']:<12} {c['total']:>5} {c['ready']:>5} {c['failing']:>5} "
                     f"{c['stuck']:>5}  {', '.join(rules) or '-'}")
        for f in t["failures"]:
            root = f["root_cause"]
            cause = f"blocked by {root['kind']}/{root['namespace']}/{root['name']} ({f['root_category']})" if root \
                else f"{f['category']} (owner: {f['owner']})"
            stuck = " STUCK" if f["stuck"] else ""
            lines.append(f"  {f['kind']}/{f['namespace']}/{f['name']}: {cause}, since {f['since']}{stuck}")
            if not root and f["message"]:
                lines.append(f"      {f['message'].splitlines()[0][:160]}")
    lines.append(f"generated at {doc['generated_at'] or timestamp(time.time())}")
    return "\n".join(lines) + "\n"


def run_report(settings: ReportSettings, *, stdin: IO[str] | None = None, stdout: IO[str] | None = None,
               stderr: IO[str] | None = None) -> int:
    """The ``report`` command; returns the exit code."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    source = settings.input or "-"
    try:
        if source == "-":
            data: str | bytes = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read()
        else:
            with open(source, "rb") as handle:  # noqa: PTH123
                data = handle.read()
        gc.disable()  # a build allocates only what it keeps: the cyclic GC would rescan the growing heap for nothing
        try:
            doc = build_report(load_items(data), settings, errors=stderr)
        finally:
            gc.enable()
    except OSError as err:
        msg = f"cannot read the input {source}: {err.strerror or err}"
        raise ReportError(msg) from err
    except ReportError as err:
        msg = f"cannot read the input {source}: {err}" if "not UTF-8" in str(err) else str(err)
        raise ReportError(msg) from err
    if settings.format == "table":
        stdout.write(format_table(doc))
    elif hasattr(stdout, "buffer"):  # a 100k-object document: no round trip through str
        stdout.flush()
        stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
        stdout.buffer.flush()
    else:
        stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0

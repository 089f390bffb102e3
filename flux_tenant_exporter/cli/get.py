"""``get``: a live, tenant-aware view for a terminal: ``get tenants``, ``get tenant NAME``, ``get resources``.

Two sources give the same ``/tenants`` documents: ``--url`` reads a running exporter's HTTP API; otherwise the
watcher runs in-process against ``--kubeconfig`` (list, watch, print once every kind synced). ``--watch``
prints again on every change, like ``kubectl get -w``: on a terminal the table is redrawn, elsewhere only
the rows that changed are printed (JSON: one document per line; YAML: ``---``-separated documents).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from http import HTTPStatus
from typing import IO, TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import orjson
import yaml

from flux_tenant_exporter.base.config import GetQuery, GetSettings, ServeSettings, is_loopback
from flux_tenant_exporter.base.errors import UserError
from flux_tenant_exporter.base.logs import configure_logging
from flux_tenant_exporter.base.timefmt import timestamp
from flux_tenant_exporter.base.vocabulary import LOG_LEVELS
from flux_tenant_exporter.kube.client import KubeClient, TokenFile
from flux_tenant_exporter.render.documents import FilterError, Filters, tenant_doc, tenants_doc
from flux_tenant_exporter.render.tables import Row, Table, resources_table, tenant_table, tenants_table

if TYPE_CHECKING:
    from flux_tenant_exporter.serve.app import Exporter

#: how long the in-process watcher may take to list every kind before ``get`` gives up
SYNC_TIMEOUT = 120.0
CLEAR = "\x1b[H\x1b[2J"


class Source(Protocol):
    """Where the documents come from."""

    async def document(self, query: GetQuery) -> dict[str, Any]:
        """The /tenants document (with resources where the query needs them), filtered by the query."""

    async def changed(self) -> None:
        """Return after the next publish (in-process) or poll interval (HTTP)."""

    async def close(self) -> None:
        """Release connections and stop watchers."""


def _query(query: GetQuery) -> dict[str, str]:
    return {k: v for k, v in (("state", query.state), ("category", query.category), ("owner", query.owner)) if v}


class HttpSource:
    """A running exporter's /tenants API."""

    def __init__(self, settings: GetSettings) -> None:
        """Read ``settings.url`` (``http(s)://host:port``, optionally with a path prefix).

        Polls every ``interval`` seconds under --watch; sends the token of --token or --token-file if given.
        """
        assert settings.url is not None, "the HTTP source needs --url"
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self.interval = settings.interval
        ssl_context: ssl.SSLContext | bool = True
        if settings.certificate_authority is not None:
            try:
                ssl_context = ssl.create_default_context(cafile=str(settings.certificate_authority))
            except (OSError, ssl.SSLError) as err:
                msg = f"--certificate-authority {settings.certificate_authority}: {err}"
                raise UserError(msg) from err
        self.token_file: TokenFile | None = None
        if settings.token_file is not None:
            try:
                self.token_file = TokenFile(settings.token_file)
            except OSError as err:  # missing, unreadable, or empty
                msg = f"--token-file {settings.token_file}: {err.strerror or err}"
                raise UserError(msg) from err
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30),
                                             connector=aiohttp.TCPConnector(ssl=ssl_context))
        #: the kubeconfig context's credentials, sent once the exporter asked for a token
        self.kube_authorization: str | None = None

    async def _authorization(self) -> str | None:
        if self.settings.token is not None:
            return f"Bearer {self.settings.token}"
        if self.token_file is not None:
            return str(await self.token_file.get_api_key_with_prefix("BearerToken"))
        return self.kube_authorization

    def _check_channel(self) -> None:
        """A bearer token goes over HTTPS, or to this host; never in clear text over a network."""
        parsed = urlsplit(self.url)
        if parsed.scheme == "http" and not is_loopback(parsed.hostname or ""):
            msg = (f"refusing to send a bearer token over plain HTTP to {parsed.hostname}: use an https:// --url "
                   f"(with --certificate-authority for a private CA)")
            raise UserError(msg)

    async def _kubeconfig_authorization(self) -> str | None:
        """The Authorization header of the kubeconfig context (its token, token file or exec plugin), if any."""
        from flux_tenant_exporter.kube.kubeconfig import KubeconfigError  # noqa: PLC0415

        watcher = self.settings.watcher
        try:
            client = await KubeClient.from_kubeconfig(watcher.kubeconfig, watcher.context)
        except (KubeconfigError, OSError):
            return None
        try:
            return await client.authorization()
        finally:
            await client.close()

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        url = self.url + path + ("?" + urlencode(params) if params else "")
        status, data = await self._fetch(url)
        if status == HTTPStatus.UNAUTHORIZED and self.settings.token is None and self.token_file is None and (
                self.kube_authorization is None):
            self.kube_authorization = await self._kubeconfig_authorization()
            if self.kube_authorization is not None:
                status, data = await self._fetch(url)
        if status != HTTPStatus.OK:
            message = data.get("error", {}).get("message") if isinstance(data, dict) else None
            raise UserError(_refusal(url, status, message, sent=await self._authorization() is not None))
        return data

    async def _fetch(self, url: str) -> tuple[int, Any]:
        headers = {}
        authorization = await self._authorization()
        if authorization is not None:
            self._check_channel()
            headers["Authorization"] = authorization
        try:
            async with self.session.get(url, headers=headers) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as err:
            msg = f"cannot read {url}: {str(err) or type(err).__name__}"
            raise UserError(msg) from err
        try:
            return status, orjson.loads(body)
        except orjson.JSONDecodeError as err:
            msg = f"{url} answered {status} with something other than JSON: is it a flux-tenant-exporter?"
            raise UserError(msg) from err

    async def document(self, query: GetQuery) -> dict[str, Any]:
        """The exporter's documents: /tenants, and /tenants/{name} of each tenant whose resources are needed."""
        params = _query(query)
        tenant = query.name if query.what == "tenant" else query.tenant
        if tenant is not None:
            one = await self._get(f"/tenants/{quote(tenant)}", params)
            return {"generated_at": one.pop("generated_at", None), "tenants": [one]}
        doc: dict[str, Any] = await self._get("/tenants", params)
        if query.what == "resources":
            details = await asyncio.gather(*(self._get(f"/tenants/{quote(t['name'])}", params)
                                             for t in doc["tenants"]))
            doc["tenants"] = [{k: v for k, v in d.items() if k != "generated_at"} for d in details]
        return doc

    async def changed(self) -> None:
        """The exporter has no change stream: wait one poll interval."""
        await asyncio.sleep(self.interval)

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.session.close()


class WatcherSource:
    """The exporter's own watcher, run in this process against the cluster of a kubeconfig."""

    def __init__(self, settings: ServeSettings) -> None:
        """Nothing starts before ``start``."""
        # The in-process exporter serves nothing anyone reads: its HTTP port is an ephemeral one on loopback.
        self.settings = replace(settings, listen_address="127.0.0.1", port=0)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.exporter: Exporter | None = None
        self.seen: object = None

    async def start(self) -> None:
        """Connect, list every kind and wait until the first full snapshot is published."""
        from flux_tenant_exporter.kube.kubeconfig import KubeconfigError  # noqa: PLC0415
        from flux_tenant_exporter.serve.app import Exporter  # noqa: PLC0415

        try:
            client = await KubeClient.from_kubeconfig(self.settings.kubeconfig, self.settings.context)
        except (KubeconfigError, OSError) as err:
            msg = f"kubeconfig: {err}"
            raise UserError(msg) from err
        self.exporter = Exporter(self.settings, client)
        self.task = asyncio.create_task(self.exporter.run(self.stop), name="get-watcher")
        try:
            await self.exporter.wait_for(lambda e: e.ready(), timeout=SYNC_TIMEOUT)
        except TimeoutError as err:
            msg = f"the watcher did not list every kind within {SYNC_TIMEOUT:.0f} s: is the API server reachable?"
            raise UserError(msg) from err

    async def document(self, query: GetQuery) -> dict[str, Any]:
        """The documents of the latest publish."""
        assert self.exporter is not None, "start() first"
        view = self.exporter.view
        self.seen = view
        try:
            filters = Filters.parse(_query(query))
        except FilterError as err:
            raise UserError(str(err)) from err
        tenant = query.name if query.what == "tenant" else query.tenant
        if tenant is not None:
            found = view.tenants.get(tenant)
            if found is None:
                msg = f"no tenant {tenant!r}; `get tenants` lists them"
                raise UserError(msg)
            return {"generated_at": timestamp(view.generated_at),
                    "tenants": [tenant_doc(found, filters, with_resources=True)]}
        return tenants_doc(view, filters, with_resources=query.what == "resources")

    async def changed(self) -> None:
        """Wait for the next publish (a watch event, or the periodic re-evaluation of time-based state)."""
        assert self.exporter is not None, "start() first"
        assert self.task is not None
        seen = self.seen
        waiter = asyncio.create_task(self.exporter.wait_for(lambda e: e.view is not seen, timeout=86400))
        try:
            await asyncio.wait({waiter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if waiter.done() and not waiter.cancelled():
            waiter.exception()  # a day without a publish: a TimeoutError, retrieved; the caller just reprints
        if self.task.done():  # the exporter stops only on a bug; it logged why
            error = self.task.exception() if not self.task.cancelled() else None
            msg = f"the in-process watcher stopped: {error!r}"
            raise UserError(msg)

    async def close(self) -> None:
        """Stop the watcher."""
        self.stop.set()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task


def _refusal(url: str, status: int, message: str | None, *, sent: bool) -> str:
    """One line for an answer other than 200: what it means and what to do."""
    said = f": {message}" if message else ""
    if status == HTTPStatus.UNAUTHORIZED:
        if not sent:
            return (f"{url} needs a bearer token (401){said}; pass --token-file FILE (e.g. from `kubectl create "
                    f"token NAME`) or --token, or use a kubeconfig context with a token")
        return f"{url} refused the token (401){said}; is it expired, or for another audience?"
    if status == HTTPStatus.SERVICE_UNAVAILABLE:
        return f"{url} cannot check access now (503){said}; try again shortly"
    return f"{url}{said or f': HTTP {status}'}"


def _resources(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for t in doc["tenants"] for r in t.get("resources", [])]


def output_document(doc: dict[str, Any], query: GetQuery) -> dict[str, Any]:
    """What ``-o json|yaml`` prints: the /tenants document, one tenant's /tenants/{name}, or the resources."""
    if query.what == "tenant":
        return {"generated_at": doc["generated_at"], **doc["tenants"][0]}
    if query.what == "resources":
        return {"generated_at": doc["generated_at"], "resources": _resources(doc)}
    return {"generated_at": doc["generated_at"],
            "tenants": [{k: v for k, v in t.items() if k != "resources"} for t in doc["tenants"]]}


def table(doc: dict[str, Any], query: GetQuery, now: float) -> Table:
    """The table of a document for the query."""
    if query.what == "tenants":
        return tenants_table(doc, now)
    if query.what == "tenant":
        return tenant_table(doc["tenants"][0], now)
    return resources_table(_resources(doc), now, with_tenant=query.tenant is None)


class Printer:
    """Writes the first output and, under --watch, each change."""

    def __init__(self, query: GetQuery, out: IO[str], *, terminal: bool) -> None:
        """``terminal``: redraw the screen and colour the states."""
        self.query = query
        self.out = out
        self.terminal = terminal
        self.colour = terminal and not os.environ.get("NO_COLOR")
        self.last: dict[tuple[str, ...], Row] | None = None
        self.last_doc: bytes | None = None

    def show(self, doc: dict[str, Any]) -> None:
        """Print ``doc`` in full the first time; afterwards only if (and what) it changed."""
        if self.query.output in {"json", "yaml"}:
            self._document(output_document(doc, self.query))
        else:
            self._table(table(doc, self.query, time.time()))
        self.out.flush()

    def _document(self, data: dict[str, Any]) -> None:
        same = {k: v for k, v in data.items() if k != "generated_at"}
        key = orjson.dumps(same, option=orjson.OPT_SORT_KEYS)
        if key == self.last_doc:
            return
        first = self.last_doc is None
        self.last_doc = key
        if self.query.output == "json":
            option = orjson.OPT_INDENT_2 if not self.query.watch else 0
            self.out.write(orjson.dumps(data, option=option).decode() + "\n")
        else:
            self.out.write(("" if first else "---\n") + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    def _table(self, tbl: Table) -> None:
        rows = {r.key: r for r in tbl.rows}
        if self.last is None or self.terminal:
            if self.last is not None and [r.content() for r in self.last.values()] == [
                    r.content() for r in rows.values()]:
                return
            if self.last is not None or (self.terminal and self.query.watch):
                self.out.write(CLEAR)
            if not tbl.rows:
                self.out.write("".join(line + "\n" for line in tbl.preamble) + "No resources found.\n")
            else:
                self.out.write(tbl.render(colour=self.colour))
        else:
            changed = [r for k, r in rows.items() if k not in self.last or self.last[k].content() != r.content()]
            gone = [r for k, r in self.last.items() if k not in rows]
            if changed:
                self.out.write(tbl.render(colour=False, rows=changed, header=False))
            for row in gone:
                self.out.write("   ".join(row.cells[:4]) + "   (deleted)\n")
        self.last = rows


@contextlib.asynccontextmanager
async def open_source(settings: GetSettings) -> AsyncIterator[Source]:
    """The --url source, else the in-process watcher of --kubeconfig (or $KUBECONFIG, ~/.kube/config)."""
    if settings.url:
        source: Source = HttpSource(settings)
    else:
        watcher = WatcherSource(settings.watcher)
        source = watcher
        try:
            await watcher.start()
        except BaseException:
            await watcher.close()
            raise
    try:
        yield source
    finally:
        await source.close()


async def run(settings: GetSettings, out: IO[str], *, terminal: bool) -> int:
    """Print once, or (``--watch``) until interrupted."""
    query = settings.query
    printer = Printer(query, out, terminal=terminal)
    async with open_source(settings) as source:
        printer.show(await source.document(query))
        while query.watch:
            await source.changed()
            printer.show(await source.document(query))
    return 0


async def _until_interrupted(settings: GetSettings, out: IO[str], *, terminal: bool) -> int:
    task = asyncio.create_task(run(settings, out, terminal=terminal))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return 0 if settings.query.watch else 130


def run_get(settings: GetSettings, *, out: IO[str] | None = None,
            configure: Callable[..., None] = configure_logging) -> int:
    """The ``get`` command; returns the exit code. A user's mistake raises UserError (the CLI prints one line)."""
    out = out or sys.stdout
    # The in-process watcher's info lines (started, ready) would interleave with the table: warnings and up only.
    level = settings.log.level
    configure(log_format=settings.log.format,
              level="debug" if level == "debug" else max(level, "warning", key=LOG_LEVELS.index))
    try:
        return asyncio.run(_until_interrupted(settings, out, terminal=out.isatty()))
    except UserError as exc:
        msg = f"get: {exc}"
        raise UserError(msg) from exc
    except BrokenPipeError:  # `get ... | head`
        return 0

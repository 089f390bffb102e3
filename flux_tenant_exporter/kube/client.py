"""A thin asyncio client for the Kubernetes REST API, on aiohttp.

Configuration: ``kube.kubeconfig`` reads the common kubeconfig shapes (certificates, tokens, token
files); the in-cluster service account is read here, its token file re-read whenever it changes; only exec
plugins and auth providers are handed to kubernetes-asyncio's loader (a heavy import, so only then).
Requests: JSON requests, and newline-delimited streams read in chunks (so one multi-megabyte watch event is
fine) with a read inactivity timeout. Callers see ``ApiError`` (a subclass for the answers they act on: ``Forbidden``,
``NotFound``, ``Expired``, ``Throttled``, ``Unauthorized``) for non-2xx answers; connection problems are
aiohttp/OS errors, which the reflector tells apart.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from asyncio import sslproto
from collections.abc import AsyncIterator, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from flux_tenant_exporter.kube import kubeconfig

#: The largest watch event line kept; etcd caps objects at 1.5 MiB, so this is generous.
MAX_LINE_BYTES = 16 * 1024 * 1024


class ApiError(Exception):
    """The API server answered with a non-2xx status; the subclasses below are the answers callers act on.

    A plain exception, not a frozen dataclass: Python sets ``__traceback__`` (and ``__context__``) on an
    exception as it travels, which a frozen dataclass refuses (a ``FrozenInstanceError`` that hid the error).
    """

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None = None) -> None:
        """The answer's status, reason, message and Retry-After (seconds)."""
        super().__init__(status, reason, message, retry_after)
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    def __str__(self) -> str:
        """Status, reason and the server's message."""
        return f"{self.status} {self.reason}: {self.message}"


class Unauthorized(ApiError):  # noqa: N818 - named after the API's status reason
    """401: the credentials were refused (a token being rotated, or revoked)."""


class Forbidden(ApiError):  # noqa: N818 - named after the API's status reason
    """403: the identity may not do this."""


class NotFound(ApiError):  # noqa: N818 - named after the API's status reason
    """404: no such object, or the resource is not served (its CRD is absent)."""


class Expired(ApiError):  # noqa: N818 - named after the API's status reason
    """410: the resourceVersion (or a list's continue token) is too old; start again from a list."""


class Throttled(ApiError):  # noqa: N818 - named after the API's status reason
    """429: too many requests; ``retry_after`` says when to try again, if the server said."""


_BY_STATUS: dict[int, type[ApiError]] = {
    HTTPStatus.UNAUTHORIZED: Unauthorized,
    HTTPStatus.FORBIDDEN: Forbidden,
    HTTPStatus.NOT_FOUND: NotFound,
    HTTPStatus.GONE: Expired,
    HTTPStatus.TOO_MANY_REQUESTS: Throttled,
}


def api_error(status: int, reason: str, message: str, retry_after: float | None = None) -> ApiError:
    """The ApiError (of the subclass for ``status``, if there is one) of an answer or a watch ERROR event."""
    return _BY_STATUS.get(status, ApiError)(status, reason, message, retry_after)


SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class EmptyTokenFileError(OSError):
    """The token file exists but holds no token (yet): ``kubectl create token ... > file`` is still writing."""


class TokenFile:
    """A bearer token read from a file, and read again whenever the file changes (rotation).

    The kubelet rotates a projected token by swapping the ``..data`` symlink; a person may rewrite the file in
    place, which leaves it empty for a moment. Until the file holds a token again, the last good one is used (and
    the file is read again on the next request).
    """

    def __init__(self, path: Path) -> None:
        """Read ``path`` now; a missing or empty file is an error (there is no previous token to keep)."""
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._token = ""
        self._reload()

    def _reload(self) -> None:
        stat = self.path.stat()  # follows the ..data symlink
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            token = self.path.read_text().strip()
            if not token:
                msg = f"the token file {self.path} is empty"
                raise EmptyTokenFileError(msg)
            self._token, self._stamp = token, stamp

    async def get_api_key_with_prefix(self, _identifier: str) -> str:
        """``Bearer <token>``, re-reading the file if it changed (the same call kubernetes-asyncio makes)."""
        with contextlib.suppress(OSError):  # mid-rotation (missing, unreadable or empty): keep the last good token
            self._reload()
        return f"Bearer {self._token}"


class StaticToken:
    """A bearer token given in the kubeconfig."""

    def __init__(self, token: str) -> None:
        """Keep ``token``."""
        self._token = token

    async def get_api_key_with_prefix(self, _identifier: str) -> str:
        """``Bearer <token>``."""
        return f"Bearer {self._token}"


#: what asyncio's TLS connections read into. Its default (``SSLProtocol.max_size``) is 256 KiB per connection,
#: zero-filled and so resident, and the exporter holds a watch connection per kind and watched namespace: 20 of them
#: held 5 MiB at 100k objects. A TLS record is at most 16 KiB.
TLS_READ_BUFFER = 64 * 1024


def limit_tls_read_buffers(size: int = TLS_READ_BUFFER) -> None:
    """Make the TLS connections asyncio opens from now on read into ``size``-byte buffers (the process's: serve)."""
    sslproto.SSLProtocol.max_size = size


#: What a request that did not reach the API server (or whose stream broke) raises: connection refused or reset,
#: DNS, TLS, a timeout, a stalled stream. Callers catch these to retry; aiohttp's own types stay in this package.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError, TimeoutError)


class OversizedLine:
    """Marks a stream line longer than the limit; it was dropped."""


OVERSIZED = OversizedLine()


class KubeClient:
    """Requests to one API server with one identity; create with ``from_kubeconfig`` or ``in_cluster``."""

    def __init__(
        self,
        *,
        host: str,
        ssl_context: ssl.SSLContext | bool,
        token_source: Any = None,
        connect_timeout: float = 10,
        request_timeout: float = 60,
    ) -> None:
        """A client of ``host``; no connection is made before the first request.

        ``token_source`` answers ``get_api_key_with_prefix`` per request: a TokenFile, a StaticToken, or a
        kubernetes-asyncio Configuration (exec plugins refresh their token there).
        """
        self.host = host.rstrip("/")
        self._ssl = ssl_context
        self._token_source = token_source
        #: ask for gzip-compressed responses; off by default, as kubectl --disable-compression: compressing
        #: a 20,000-object list costs the API server more CPU than the bytes cost a cluster network
        self.compression = False
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None

    # -- construction -----------------------------------------------------------------------

    @classmethod
    async def from_kubeconfig(cls, path: str | Path | None = None, context: str | None = None) -> KubeClient:
        """From a kubeconfig file (``None``: $KUBECONFIG or ~/.kube/config).

        Certificates, tokens and token files are read by ``kube.kubeconfig``; exec plugins and auth providers
        by kubernetes-asyncio (a heavy import, so only then).
        """
        conn = kubeconfig.load(path, context)
        if conn is not None:
            source: TokenFile | StaticToken | None = None
            if conn.token_file is not None:
                try:
                    source = TokenFile(conn.token_file)
                except (OSError, RuntimeError, ValueError) as err:
                    msg = f"kubeconfig {path or '$KUBECONFIG'}: token file {conn.token_file}: {err}"
                    raise kubeconfig.KubeconfigError(msg) from err
            elif conn.token:
                source = StaticToken(conn.token)
            return cls(host=conn.host, ssl_context=conn.ssl_context, token_source=source)
        from kubernetes_asyncio import config as kconfig  # noqa: PLC0415 - heavy import, only here
        from kubernetes_asyncio.client import Configuration  # noqa: PLC0415

        configuration = Configuration()
        try:
            await kconfig.load_kube_config(
                config_file=str(path) if path else None, context=context, client_configuration=configuration
            )
            return cls._from_configuration(configuration)
        except Exception as err:  # ConfigException, and whatever an exec plugin or auth provider raises
            msg = f"kubeconfig {path or '$KUBECONFIG'}: {' '.join(str(err).split()) or type(err).__name__}"
            raise kubeconfig.KubeconfigError(msg) from err

    @classmethod
    def in_cluster(
        cls,
        *,
        token_file: Path = SERVICE_ACCOUNT_DIR / "token",
        ca_file: Path = SERVICE_ACCOUNT_DIR / "ca.crt",
        host: str | None = None,
    ) -> KubeClient:
        """From the pod's service account. The token file is re-read whenever it changes (kubelet rotates it)."""
        if host is None:
            service_host = os.environ.get("KUBERNETES_SERVICE_HOST")
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not service_host:
                msg = "not running in a cluster: KUBERNETES_SERVICE_HOST is not set"
                raise RuntimeError(msg)
            host = f"https://{service_host}:{port}" if ":" not in service_host else f"https://[{service_host}]:{port}"
        ctx = ssl.create_default_context(cafile=str(ca_file))
        return cls(host=host, ssl_context=ctx, token_source=TokenFile(token_file))

    @classmethod
    def _from_configuration(cls, configuration: Any) -> KubeClient:
        ctx = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if configuration.cert_file:
            ctx.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
        if not configuration.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return cls(host=configuration.host, ssl_context=ctx, token_source=configuration)

    # -- requests -----------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # no limit: each watch holds a connection for minutes (HTTP/1.1), one per kind and watched namespace;
                # a bounded pool (aiohttp's default is 100) would queue lists behind them for ever
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=0),
                read_bufsize=2**20,
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )
        return self._session

    async def authorization(self) -> str | None:
        """The ``Authorization`` header value this client sends (``Bearer <token>``).

        None without a token (a client certificate, or no credentials).
        """
        if self._token_source is None:
            return None
        value = await self._token_source.get_api_key_with_prefix("BearerToken")
        return str(value) if value else None

    async def _headers(self, content_type: str | None = None, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept}
        if not self.compression:
            headers["Accept-Encoding"] = "identity"
        if content_type:
            headers["Content-Type"] = content_type
        token = await self.authorization()
        if token:
            headers["Authorization"] = token
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,  # noqa: ASYNC109 - a per-request HTTP timeout, passed to aiohttp
        accept: str = "application/json",
    ) -> Any:
        """Send one request and return the decoded JSON body; raises ApiError on a non-2xx answer."""
        raw = await self.request_bytes(method, path, params=params, body=body, content_type=content_type,
                                       timeout=timeout, accept=accept)
        return orjson.loads(raw) if raw else None

    async def request_bytes(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,  # noqa: ASYNC109
        accept: str = "application/json",
    ) -> bytes:
        """Send one request and return the raw body (for typed decoding); raises ApiError on a non-2xx answer."""
        data = None if body is None else orjson.dumps(body)
        async with self._get_session().request(
            method,
            self.host + path,
            params=params,
            data=data,
            headers=await self._headers(content_type if data is not None else None, accept),
            timeout=aiohttp.ClientTimeout(
                total=timeout or self._request_timeout, sock_connect=self._connect_timeout
            ),
        ) as resp:
            raw = await resp.read()
            if resp.status >= HTTPStatus.MULTIPLE_CHOICES:
                raise _api_error(resp, raw)
            return raw

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, *, params: Mapping[str, str], inactivity_timeout: float
    ) -> AsyncIterator[AsyncIterator[bytes | OversizedLine]]:
        """Open a newline-delimited stream (a watch); yields an iterator of its lines.

        A read that sees no bytes for ``inactivity_timeout`` seconds raises ``TimeoutError``; a line
        longer than MAX_LINE_BYTES is dropped and replaced by ``OVERSIZED``.
        """
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._connect_timeout, sock_connect=self._connect_timeout,
            sock_read=inactivity_timeout,
        )
        async with self._get_session().get(
            self.host + path, params=params, headers=await self._headers(), timeout=timeout
        ) as resp:
            if resp.status >= HTTPStatus.MULTIPLE_CHOICES:
                raise _api_error(resp, await resp.read())
            yield _lines(resp.content)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes | OversizedLine]:
    buffer = bytearray()
    dropping = False
    try:
        async for chunk in content.iter_any():
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                if end < 0:
                    if not dropping:
                        buffer += chunk[start:]
                        if len(buffer) > MAX_LINE_BYTES:
                            buffer.clear()
                            dropping = True
                    break
                if dropping:
                    dropping = False
                    yield OVERSIZED
                else:
                    buffer += chunk[start:end]
                    if len(buffer) > MAX_LINE_BYTES:
                        yield OVERSIZED
                    elif buffer:
                        yield bytes(buffer)
                    buffer.clear()
                start = end + 1
    except aiohttp.ServerTimeoutError as err:
        msg = "no bytes from the watch stream within the inactivity timeout"
        raise TimeoutError(msg) from err
    if buffer and not dropping:
        yield bytes(buffer)


def _api_error(resp: aiohttp.ClientResponse, raw: bytes) -> ApiError:
    message = raw.decode(errors="replace")[:1000]
    reason = resp.reason or ""
    with contextlib.suppress(ValueError, TypeError):
        status = orjson.loads(raw)
        if isinstance(status, dict):
            message = str(status.get("message", message))
            reason = str(status.get("reason", reason))
    retry_after: float | None = None
    with contextlib.suppress(TypeError, ValueError):
        retry_after = float(resp.headers.get("Retry-After", ""))
    return api_error(resp.status, reason, message, retry_after)

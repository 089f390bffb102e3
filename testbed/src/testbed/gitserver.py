"""A Git smart-HTTP server on loopback for the real source-controller: ``git http-backend`` behind Python.

``GitServer`` is a context manager. It serves every bare repository under its root at
``http://127.0.0.1:<port>/<path>.git``; the first ``git push`` to a path that does not exist creates the
repository there, as a hosted Git service does. With ``credentials=(user, password)`` every request needs
HTTP basic auth with them (wrong or missing credentials get ``401`` and ``WWW-Authenticate``, the real
authentication failure a GitRepository reports). ``push()`` commits a set of files and pushes them over HTTP
with the real ``git`` client, so the server is exercised the way a tenant's CI would use it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit

from testbed.service import LoopbackHTTPServer

GIT = shutil.which("git") or "/usr/bin/git"

#: A fixed identity and dates-from-the-clock: the commits are real but say who made them.
_COMMIT_ENV = {
    "GIT_AUTHOR_NAME": "testbed",
    "GIT_AUTHOR_EMAIL": "testbed@example.invalid",
    "GIT_COMMITTER_NAME": "testbed",
    "GIT_COMMITTER_EMAIL": "testbed@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


class GitServerError(RuntimeError):
    """A git command of the harness failed; the message has its output."""


class GitServer(LoopbackHTTPServer):
    """Git smart HTTP (``git http-backend``) on a free loopback port; use as a context manager."""

    def __init__(self, *, credentials: tuple[str, str] | None = None) -> None:
        """Prepare (not start) a server; ``credentials`` turns on basic auth for every request."""
        if not Path(GIT).exists():
            msg = "git is required for the Git server (apt-get install git)"
            raise GitServerError(msg)
        super().__init__(Path(tempfile.mkdtemp(prefix="fte-gitserver-")), "gitserver")
        self.credentials = credentials
        self._create_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The clone URL of the repository at ``path`` (e.g. ``team-a/apps``), as a GitRepository's spec.url."""
        return f"{self.base_url}/{path.strip('/')}.git"

    def start(self) -> None:
        """Listen on a free loopback port and serve in a daemon thread."""
        server = self

        class Handler(_GitHandler):
            git_server = server

        self.serve(Handler)


    def repository_dir(self, path: str) -> Path:
        """Where the bare repository for ``path`` lives (it may not exist yet)."""
        return self.root / f"{path.strip('/')}.git"

    def ensure_repository(self, path: str) -> Path:
        """Create an empty bare repository at ``path`` unless it exists (what a push to a new path does)."""
        repo = self.repository_dir(path)
        with self._create_lock:
            if not (repo / "HEAD").exists():
                repo.parent.mkdir(parents=True, exist_ok=True)
                _git("init", "--quiet", "--bare", "--initial-branch=main", str(repo))
        return repo

    def push(
        self,
        path: str,
        files: Mapping[str, str | bytes],
        *,
        branch: str = "main",
        message: str = "update",
        credentials: tuple[str, str] | None = None,
    ) -> str:
        """Commit exactly ``files`` (relative path -> content) on ``branch`` and push over HTTP; returns the SHA.

        The commit replaces the branch's whole tree (files absent from ``files`` are deleted), so each push
        states the repository's content. ``credentials`` default to the server's own.
        """
        creds = credentials or self.credentials
        netloc = f"127.0.0.1:{self.port}"
        if creds:
            netloc = f"{quote(creds[0], safe='')}:{quote(creds[1], safe='')}@{netloc}"
        remote = f"http://{netloc}/{path.strip('/')}.git"
        with tempfile.TemporaryDirectory(prefix="fte-gitpush-") as tmp:
            work = Path(tmp)
            _git("init", "--quiet", f"--initial-branch={branch}", str(work))
            for name, content in files.items():
                target = work / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, bytes):
                    target.write_bytes(content)
                else:
                    target.write_text(content)
            _git("-C", str(work), "add", "--all")
            _git("-C", str(work), "commit", "--quiet", "--allow-empty", "-m", message)
            _git("-C", str(work), "push", "--quiet", "--force", remote, f"HEAD:refs/heads/{branch}")
            return _git("-C", str(work), "rev-parse", "HEAD").strip()


def _git(*args: str, env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(  # noqa: S603 - git with our own arguments
        [GIT, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **_COMMIT_ENV, **(env or {})},
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        msg = f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
        raise GitServerError(msg)
    return proc.stdout


class _GitHandler(http.server.BaseHTTPRequestHandler):
    """Runs ``git http-backend`` as a CGI for each request (after basic auth, if configured)."""

    git_server: GitServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Quiet: the tests read the controllers' conditions, not an access log."""

    def do_GET(self) -> None:
        """Fetch side: info/refs and upload-pack advertisement, dumb-HTTP files."""
        self._serve()

    def do_POST(self) -> None:
        """git-upload-pack / git-receive-pack."""
        self._serve()

    def _authorized(self) -> str | None:
        """The user name if authorized ("" when no auth is configured); None if not."""
        creds = self.git_server.credentials
        if creds is None:
            return ""
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                if (user, password) == creds:
                    return user
        return None

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in {b"\r\n", b"\n", b""}:
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        # A client that gives up (a controller stopping, a fetch timeout) is not the server's error.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    def _serve(self) -> None:
        body = self._read_body()
        user = self._authorized()
        if user is None:
            self._reply(401, b"authentication required\n",
                        {"WWW-Authenticate": 'Basic realm="fte-gitserver"', "Content-Type": "text/plain"})
            return
        url = urlsplit(self.path)
        if "git-receive-pack" in url.path or "service=git-receive-pack" in url.query:
            # A push to a new path creates the repository first.
            repo_path = url.path.split(".git/", 1)[0].strip("/")
            if repo_path and ".." not in repo_path.split("/"):
                self.git_server.ensure_repository(repo_path)
        env = {
            **os.environ,
            "GIT_PROJECT_ROOT": str(self.git_server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            # Pushes over HTTP are allowed (http-backend refuses them without an authenticated user otherwise).
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.receivepack",
            "GIT_CONFIG_VALUE_0": "true",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": user,
        }
        for header, var in (("Git-Protocol", "GIT_PROTOCOL"), ("Content-Encoding", "HTTP_CONTENT_ENCODING")):
            if self.headers.get(header):
                env[var] = self.headers[header]
        proc = subprocess.run(  # noqa: S603 - git http-backend, a CGI
            [GIT, "http-backend"], input=body, capture_output=True, env=env, check=False, timeout=120
        )
        out = proc.stdout
        crlf, lf = out.find(b"\r\n\r\n"), out.find(b"\n\n")
        if crlf >= 0 and (lf < 0 or crlf < lf):
            head, payload = out[:crlf], out[crlf + 4:]
        elif lf >= 0:
            head, payload = out[:lf], out[lf + 2:]
        else:
            head, payload = b"", out
        status = 200
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        if proc.returncode != 0 and not head:
            self._reply(500, proc.stderr or b"git http-backend failed\n", {"Content-Type": "text/plain"})
            return
        self._reply(status, payload, headers)

"""What the harness's servers share: the start/stop lifecycle as a context manager, and a loopback HTTP server.

``Service`` subclasses define ``start`` and an idempotent ``stop``; used in a ``with`` block, a service that
fails to start is stopped again, so nothing it spawned outlives the error. ``LoopbackHTTPServer`` serves an
``http.server`` handler on a free loopback port in a daemon thread, and removes its folder on stop. A service's
work directory names the process that made it, so the next run removes what a killed one left behind.
"""

from __future__ import annotations

import abc
import contextlib
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self


class Service(abc.ABC):
    """Started and stopped; a context manager that stops again if starting fails."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start; raise if that fails."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop whatever was started (idempotent, safe after a failed start)."""

    def __enter__(self) -> Self:
        """Start; stop again if starting fails."""
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop."""
        self.stop()


class LoopbackHTTPServer(Service):
    """An HTTP handler served on ``127.0.0.1:<free port>`` from a daemon thread; ``root`` is removed on stop."""

    def __init__(self, root: Path, name: str) -> None:
        """Serve from ``root`` (the subclass's folder); ``name`` names the thread."""
        self.root = root
        self._name = name
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (after start)."""
        assert self._httpd is not None, "not started"
        return int(self._httpd.server_address[1])

    def serve(self, handler: type[http.server.BaseHTTPRequestHandler] | object) -> None:
        """Listen on a free loopback port and serve ``handler`` (a handler class or factory) in a daemon thread."""
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # type: ignore[arg-type]
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and remove the root. Idempotent."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        shutil.rmtree(self.root, ignore_errors=True)


def work_directory(prefix: str) -> Path:
    """A new ``<prefix><pid>-…`` directory in the temp folder, after removing those of dead processes."""
    remove_stale_workdirs(prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def remove_stale_workdirs(prefix: str) -> list[Path]:
    """Remove the ``prefix`` work directories left by processes that were killed (SIGKILL allows no cleanup)."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        pid = path.name.removeprefix(prefix).split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def built(script: Path, override: str, *, build: bool, error: type[Exception]) -> Path:
    """The output folder of a build script (its stdout's last line), or the folder the ``override`` variable names.

    With ``build`` false the script only checks (``--check``) and nothing is built unasked. ``error`` is raised,
    with one line, when the script is missing or fails.
    """
    explicit = os.environ.get(override)
    if explicit:
        return Path(explicit)
    if not script.exists():
        msg = f"{script} not found: this needs a checkout, or {override}=<dir with bin/>"
        raise error(msg)
    proc = subprocess.run(  # noqa: S603 - our own script
        [shutil.which("bash") or "/bin/bash", str(script), *([] if build else ["--check"])],
        stdout=subprocess.PIPE, stderr=None if build else subprocess.DEVNULL, text=True, check=False,
    )
    if not build and proc.returncode != 0:
        msg = f"{script} --check: not built (exit {proc.returncode})"
        raise error(msg)
    if proc.returncode != 0 or not proc.stdout.strip():
        msg = f"{script} failed (exit {proc.returncode}); its error is printed above"
        raise error(msg)
    return Path(proc.stdout.strip().splitlines()[-1])


def wait_healthy(proc: subprocess.Popen[bytes], url: str, *, name: str, deadline: float, log: Callable[[], str],
                 error: type[Exception]) -> float:
    """Wait until ``url`` (a /readyz on loopback) answers 200; returns the seconds it took.

    ``error`` (with the end of ``log``) if the process exits or ``deadline`` (monotonic) passes first.
    """
    started = time.monotonic()
    while True:
        if proc.poll() is not None:
            msg = f"{name} exited with {proc.returncode}: {log()[-3000:]}"
            raise error(msg)
        # Not listening yet: try again.
        with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our http URL
            if resp.status == 200:  # noqa: PLR2004
                return time.monotonic() - started
        if time.monotonic() > deadline:
            msg = f"{name} not ready in time: {log()[-3000:]}"
            raise error(msg)
        time.sleep(0.05)

"""A real OCI registry (distribution, built by ``tools/gotool.sh registry``) on loopback, plain HTTP.

``OciRegistry`` serves anonymously, or (``credentials``) behind htpasswd basic auth, as a private registry does;
``push_chart`` pushes a packaged Helm chart with the real ``helm push`` (``tools/gotool.sh helm``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import yaml

from testbed.controlplane import _terminate, free_port
from testbed.helmrepo import _targz
from testbed.manifests import gotool
from testbed.service import Service, work_directory


def _bcrypt(password: str) -> str:
    """A bcrypt hash (what distribution's htpasswd reads), from the C library through the crypt module."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt leaves the standard library in Python 3.13
        import crypt  # noqa: PLC0415

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))  # noqa: S324 - bcrypt, as htpasswd wants


class OciRegistry(Service):
    """distribution's registry on a free loopback port; ``host`` is ``127.0.0.1:<port>``."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        """Prepare (not start); ``credentials``: (user, password) for basic auth, else anonymous."""
        self.credentials = credentials
        self.workdir = work_directory("fte-oci-")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the registry and wait until it answers /v2/."""
        self.port = free_port()
        config: dict[str, object] = {
            "version": 0.1, "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(self.workdir / "data")}},
            "http": {"addr": self.host},
        }
        if self.credentials is not None:
            user, password = self.credentials
            (self.workdir / "htpasswd").write_text(f"{user}:{_bcrypt(password)}\n")
            config["auth"] = {"htpasswd": {"realm": "fte", "path": str(self.workdir / "htpasswd")}}
        (self.workdir / "config.yml").write_text(yaml.safe_dump(config))
        with (self.workdir / "registry.log").open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own build of the registry
                [gotool("registry"), "serve", str(self.workdir / "config.yml")], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                msg = f"the registry did not start: {(self.workdir / 'registry.log').read_text()[-2000:]}"
                raise RuntimeError(msg)
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as resp:
                return bool(resp.status == 200)  # noqa: PLR2004
        except urllib.error.HTTPError as err:
            return err.code == 401  # noqa: PLR2004 - up, and asking for credentials
        except OSError:
            return False

    def push_chart(self, name: str, version: str) -> str:
        """Package a one-template chart and ``helm push`` it to ``oci://<host>/charts``; returns its repository URL."""
        with tempfile.TemporaryDirectory(prefix="fte-chart-") as tmp:
            home = Path(tmp)
            archive = home / f"{name}-{version}.tgz"
            chart = f"apiVersion: v2\nname: {name}\nversion: {version}\n"
            archive.write_bytes(_targz({f"{name}/Chart.yaml": chart.encode(),
                                        f"{name}/templates/cm.yaml": b"apiVersion: v1\nkind: ConfigMap\n"
                                        b"metadata:\n  name: {{ .Release.Name }}\n"}))
            env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
                   "HELM_DATA_HOME": str(home / "data")}
            subprocess.run([gotool("helm"), "push", str(archive), f"oci://{self.host}/charts", "--plain-http"],  # noqa: S603
                           check=True, capture_output=True, env=env)
        return f"oci://{self.host}/charts/{name}"

    def stop(self) -> None:
        """Stop the registry and remove its data. Idempotent."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                _terminate(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)

"""A static Helm chart repository on loopback for the real source-controller: ``index.yaml`` + chart archives.

``HelmRepo`` is a context manager serving a folder over plain HTTP at ``http://127.0.0.1:<port>/``.
``add_chart()`` packages a chart the way ``helm package`` lays it out (a gzipped tar with
``<name>/Chart.yaml``, ``<name>/values.yaml`` and ``<name>/templates/...``), no helm binary needed, and
rewrites ``index.yaml`` with every chart version, its URL and its sha256 digest.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import http.server
import io
import json
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from testbed.service import LoopbackHTTPServer


class HelmRepo(LoopbackHTTPServer):
    """A static Helm HTTP repository on a free loopback port; use as a context manager."""

    def __init__(self) -> None:
        """Prepare (not start) an empty repository."""
        super().__init__(Path(tempfile.mkdtemp(prefix="fte-helmrepo-")), "helmrepo")
        self._entries: dict[str, list[dict[str, Any]]] = {}

    @property
    def url(self) -> str:
        """The repository URL (a HelmRepository's spec.url)."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        """Write an empty index and serve the folder in a daemon thread."""
        self._write_index()
        self.serve(functools.partial(_QuietHandler, directory=str(self.root)))


    def add_chart(
        self,
        name: str,
        version: str,
        templates: Mapping[str, str],
        *,
        values: Mapping[str, Any] | None = None,
        values_schema: Mapping[str, Any] | None = None,
        app_version: str = "1.0.0",
    ) -> str:
        """Package chart ``name`` ``version`` with ``templates`` (file name -> text) and publish it; returns its URL.

        ``values_schema`` becomes ``values.schema.json`` (Helm validates values against it at install).
        """
        chart = {"apiVersion": "v2", "name": name, "version": version, "appVersion": app_version, "type": "application"}
        files: dict[str, bytes] = {
            "Chart.yaml": yaml.safe_dump(chart, sort_keys=False).encode(),
            "values.yaml": yaml.safe_dump(dict(values or {})).encode(),
        }
        if values_schema is not None:
            files["values.schema.json"] = json.dumps(values_schema).encode()
        files.update({f"templates/{t}": text.encode() for t, text in templates.items()})
        archive = _targz({f"{name}/{path}": data for path, data in files.items()})
        filename = f"{name}-{version}.tgz"
        (self.root / filename).write_bytes(archive)
        entry = {
            **chart,
            "urls": [self.url + filename],
            "digest": hashlib.sha256(archive).hexdigest(),
            "created": _now(),
        }
        versions = [e for e in self._entries.get(name, []) if e["version"] != version]
        self._entries[name] = [entry, *versions]
        self._write_index()
        return self.url + filename

    def reindex(self) -> int:
        """Rebuild ``index.yaml`` from every ``*.tgz`` in the folder (charts dropped there by hand).

        Returns how many chart versions it lists. An archive without a readable ``<name>/Chart.yaml`` is skipped.
        """
        entries: dict[str, list[dict[str, Any]]] = {}
        for archive in sorted(self.root.glob("*.tgz")):
            data = archive.read_bytes()
            try:
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                    member = next(m for m in tar.getmembers() if m.name.count("/") == 1
                                  and m.name.endswith("/Chart.yaml"))
                    handle = tar.extractfile(member)
                    chart = yaml.safe_load(handle.read()) if handle else None
            except (tarfile.TarError, OSError, StopIteration, yaml.YAMLError):
                continue
            if not isinstance(chart, dict) or not chart.get("name") or not chart.get("version"):
                continue
            entry = {**chart, "urls": [self.url + archive.name], "digest": hashlib.sha256(data).hexdigest(),
                     "created": _now()}
            entries.setdefault(str(chart["name"]), []).append(entry)
        self._entries = entries
        self._write_index()
        return sum(len(v) for v in entries.values())

    def _write_index(self) -> None:
        index = {"apiVersion": "v1", "entries": self._entries, "generated": _now()}
        tmp = self.root / "index.yaml.tmp"
        tmp.write_text(yaml.safe_dump(index, sort_keys=False))
        tmp.replace(self.root / "index.yaml")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _targz(files: Mapping[str, bytes]) -> bytes:
    """A gzipped tar of ``files`` with fixed owners and modes (what ``helm package`` writes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = int(datetime.datetime.now(datetime.UTC).timestamp())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """No access log."""

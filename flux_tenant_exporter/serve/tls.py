"""HTTPS for the port: the serving certificate, read from files and read again when they change.

cert-manager and the kubelet replace a mounted Secret's files in place (a ``..data`` symlink swap). The files
are checked every ``reload_interval``; a new pair is first loaded into a scratch context, so a half-written or
mismatched pair is logged and the previous certificate keeps serving. New connections get the new certificate;
open ones keep theirs.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import structlog

from flux_tenant_exporter.base.config import TlsSettings
from flux_tenant_exporter.base.errors import UserError

log = structlog.get_logger("flux_tenant_exporter.serve.tls")

_Stamp = tuple[tuple[int, int, int], ...]


def _stamp(*paths: Path) -> _Stamp:
    """What changes when a file is replaced or rewritten: inode, modification time, size (links followed)."""
    stats = [p.stat() for p in paths]
    return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)


def _context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class ServingCertificate:
    """The server's TLS context, kept current with its certificate and key files."""

    def __init__(self, settings: TlsSettings) -> None:
        """Load the files now; a UserError says which one cannot be used and why."""
        assert settings.cert_file is not None, "TLS is not configured"
        assert settings.key_file is not None, "TLS is not configured"
        self.cert_file, self.key_file = settings.cert_file, settings.key_file
        self.interval = settings.reload_interval
        self.context = _context()
        try:
            self._stamp = _stamp(self.cert_file, self.key_file)
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as err:
            msg = f"cannot serve HTTPS with {self.cert_file} and {self.key_file}: {_reason(err)}"
            raise UserError(msg) from err
        #: how often a pair was loaded, and how often a changed pair could not be (the previous one kept serving)
        self.loads = 1
        self.failures = 0

    def reload(self) -> bool:
        """Load the files again if they changed and form a valid pair; whether the certificate was replaced."""
        try:
            stamp = _stamp(self.cert_file, self.key_file)
            if stamp == self._stamp:
                return False
            _context().load_cert_chain(self.cert_file, self.key_file)  # a bad pair must not reach the live one
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as err:
            self.failures += 1
            log.warning("tls_reload_failed", cert_file=str(self.cert_file), error=_reason(err),
                        action="serving the previous certificate")
            return False
        self._stamp = stamp
        self.loads += 1
        log.info("tls_reloaded", cert_file=str(self.cert_file))
        return True

    async def watch(self) -> None:
        """Reload every ``interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            self.reload()


def _reason(err: OSError | ssl.SSLError) -> str:
    if isinstance(err, ssl.SSLError):
        return err.reason or str(err)
    return f"{err.strerror or err}" + (f" ({err.filename})" if err.filename else "")

"""Serving certificates for the exporter's HTTPS port in tests: a CA and a certificate for localhost/127.0.0.1."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec

from testbed.controlplane import _issue, _key_pem, _name, _pem

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True)
class Pki:
    """A CA (its certificate file, for clients) that issues serving certificates."""

    ca_file: Path
    ca: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, directory: Path) -> Pki:
        """A new CA, its certificate written to ``directory/ca.crt``."""
        key = ec.generate_private_key(ec.SECP256R1())
        ca = _issue(subject=_name("fte-test-serving-ca"), key=key, issuer=None)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ca.crt").write_bytes(_pem(ca))
        return cls(directory / "ca.crt", ca, key)

    def issue(self, cert_file: Path, key_file: Path) -> x509.Certificate:
        """A serving certificate for localhost and 127.0.0.1, written (replacing) to the two files."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(subject=_name("flux-tenant-exporter"), key=key, issuer=(self.ca, self.ca_key), server=True)
        for path, content in ((key_file, _key_pem(key)), (cert_file, _pem(cert))):
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(content)
            tmp.replace(path)  # as a Secret volume is updated: the new file appears whole
        return cert

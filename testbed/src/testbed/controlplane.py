"""A real local Kubernetes control plane: etcd + kube-apiserver on loopback, with the real Flux CRDs.

The tests and the ``demo`` command share it. The binaries and CRDs come from
``tools/controlplane/build.sh`` (built from the package registries into a cache outside the
repository), or from ``FTE_CONTROLPLANE_ASSETS`` (a folder with ``bin/`` and ``crds/``).

``ControlPlane`` is a context manager: it generates a CA, a serving certificate, an admin client
certificate in ``system:masters`` and a service-account signing key; starts etcd and kube-apiserver on
free loopback ports (RBAC on, no endpoint reconciler); waits for ``/readyz``; installs the Flux CRDs and
waits until they are Established and discoverable; writes a kubeconfig. On exit it stops both processes
(their whole process groups) and removes its temporary directory, also after an error or Ctrl-C.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from flux_tenant_exporter.base.errors import UserError
from testbed.service import Service, work_directory

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "tools" / "controlplane" / "build.sh"


class ControlPlaneError(UserError, RuntimeError):
    """The control plane could not be built or started; the message says why."""


@dataclass(frozen=True)
class Assets:
    """Where the binaries and the generated Flux CRDs are."""

    kube_apiserver: Path
    etcd: Path
    crds: tuple[Path, ...]
    versions: dict[str, str]


def find_assets() -> Assets:
    """Locate (building them if needed) kube-apiserver, etcd and the Flux CRDs."""
    explicit = os.environ.get("FTE_CONTROLPLANE_ASSETS")
    if explicit:
        root = Path(explicit)
    else:
        if not BUILD_SCRIPT.exists():
            msg = (
                f"{BUILD_SCRIPT} not found: the control plane needs a checkout of the repository, "
                "or FTE_CONTROLPLANE_ASSETS pointing at a folder with bin/ and crds/"
            )
            raise ControlPlaneError(msg)
        proc = subprocess.run(  # noqa: S603 - our own script
            [shutil.which("bash") or "/bin/bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
        )
        if proc.returncode != 0 or not proc.stdout.strip():
            msg = f"{BUILD_SCRIPT} failed (exit {proc.returncode}); its error is printed above"
            raise ControlPlaneError(msg)
        root = Path(proc.stdout.strip().splitlines()[-1])
    crds = tuple(sorted((root / "crds").glob("*.yaml")))
    versions_file = root / "versions.json"
    versions = json.loads(versions_file.read_text()) if versions_file.exists() else {}
    assets = Assets(root / "bin" / "kube-apiserver", root / "bin" / "etcd", crds, versions)
    for binary in (assets.kube_apiserver, assets.etcd):
        if not os.access(binary, os.X_OK):
            msg = f"{binary} is missing or not executable"
            raise ControlPlaneError(msg)
    if not crds:
        msg = f"no CRDs in {root / 'crds'}"
        raise ControlPlaneError(msg)
    return assets


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    *,
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    signer = issuer[1] if issuer else key
    return builder.sign(signer, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


class ControlPlane(Service):
    """etcd + kube-apiserver on loopback with the Flux CRDs installed; use as a context manager."""

    def __init__(
        self,
        assets: Assets | None = None,
        *,
        watch_cache: bool = False,
        extra_apiserver_args: tuple[str, ...] = (),
    ) -> None:
        """Prepare (not start) a control plane.

        ``watch_cache=False`` (the default) serves watches straight from etcd, which makes ``410 Gone``
        after a compaction deterministic; pass True to test behaviour of the watch cache (bookmarks).
        """
        self.assets = assets or find_assets()
        self.watch_cache = watch_cache
        self.extra_apiserver_args = extra_apiserver_args
        self.workdir = work_directory(WORKDIR_PREFIX)
        self.etcd_port = 0
        self.apiserver_port = 0
        self._procs: list[subprocess.Popen[bytes]] = []
        self._apiserver: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    # -- public surface -------------------------------------------------------------------

    @property
    def server(self) -> str:
        """The API server's URL."""
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def etcd_url(self) -> str:
        """Etcd's client URL (plain HTTP on loopback)."""
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (client certificate in system:masters)."""
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        """The cluster CA bundle."""
        return self.workdir / "ca.crt"

    @property
    def admin_cert(self) -> tuple[Path, Path]:
        """The admin client certificate and key files."""
        return self.workdir / "admin.crt", self.workdir / "admin.key"

    def ssl_context(self) -> ssl.SSLContext:
        """An SSL context that trusts the cluster CA and presents the admin certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(*map(str, self.admin_cert))
        return ctx

    def start(self) -> None:
        """Start etcd and kube-apiserver, install the CRDs; raises ControlPlaneError on failure."""
        started = time.monotonic()
        self._write_pki()
        self._start_etcd()
        self._start_apiserver()
        self._wait_ready(deadline=time.monotonic() + 60)
        self.install_crds(self.assets.crds)
        self._write_kubeconfig()
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop the processes (apiserver first) and remove the work directory. Idempotent."""
        for proc in reversed(self._procs):
            _terminate(proc)
        self._procs.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Any:
        """A blocking admin request to the API server; returns the decoded JSON (raises HTTPError)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)  # noqa: S310
        req.add_header("Content-Type", content_type)
        req.add_header("Accept", "application/json")
        with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as resp:  # noqa: S310
            return json.loads(resp.read() or b"null")

    def install_crds(self, files: tuple[Path, ...] | list[Path], *, timeout: float = 30) -> None:
        """Create (or replace) CRDs from YAML files and wait until each is Established and discoverable."""
        crds = [yaml.safe_load(f.read_text()) for f in files]
        for crd in crds:
            name = crd["metadata"]["name"]
            try:
                self.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
            except urllib.error.HTTPError as err:
                if err.code != 409:  # noqa: PLR2004
                    raise
                current = self.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                crd["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                self.request("PUT", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}", crd)
        deadline = time.monotonic() + timeout
        for crd in crds:
            self.wait_crd_served(crd, deadline=deadline)

    def wait_crd_served(self, crd: dict[str, Any], *, deadline: float) -> None:
        """Wait until a CRD is Established and each served version lists it in discovery."""
        name = crd["metadata"]["name"]
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        served = [v["name"] for v in crd["spec"]["versions"] if v.get("served")]
        while True:
            try:
                current = self.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                conditions = {c["type"]: c["status"] for c in (current.get("status") or {}).get("conditions") or []}
                if conditions.get("Established") == "True" and all(
                    any(r["name"] == plural for r in self.request("GET", f"/apis/{group}/{v}")["resources"])
                    for v in served
                ):
                    return
            except urllib.error.HTTPError as err:
                if err.code != 404:  # noqa: PLR2004
                    raise
            if time.monotonic() > deadline:
                msg = f"CRD {name} not established and discoverable in time"
                raise ControlPlaneError(msg)
            time.sleep(0.05)

    def kill_apiserver(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kill kube-apiserver and wait until it is gone.

        SIGKILL by default: no graceful shutdown, open streams just break. Etcd keeps running, so
        ``start_apiserver`` brings the same cluster back.
        """
        proc = self._apiserver
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)
        self._procs.remove(proc)
        self._apiserver = None

    def start_apiserver(self, *, timeout: float = 60, wait: bool = True) -> None:
        """Start kube-apiserver again on the same port (after ``kill_apiserver``) and wait until it is ready.

        Call it from a thread that outlives the server (not from ``asyncio.to_thread``): the process is killed when
        the thread that started it ends (PR_SET_PDEATHSIG). With ``wait=False`` it returns once the process runs;
        ``wait_ready`` (which may run in any thread) waits for it.
        """
        if self._apiserver is not None and self._apiserver.poll() is None:
            return
        deadline = time.monotonic() + timeout
        while True:  # the killed server's port may linger for a moment
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", self.apiserver_port))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
            time.sleep(0.05)
        self._start_apiserver()
        if wait:
            self._wait_ready(deadline=deadline)

    def wait_ready(self, *, timeout: float = 60) -> None:
        """Wait until the API server answers /readyz; raises ControlPlaneError if a process exits or time runs out."""
        self._wait_ready(deadline=time.monotonic() + timeout)

    def delete_crds(self, files: tuple[Path, ...] | list[Path], *, timeout: float = 60) -> None:
        """Delete CRDs (their objects go with them) and wait until the API server no longer serves them."""
        names = [yaml.safe_load(f.read_text())["metadata"]["name"] for f in files]
        for name in names:
            with contextlib.suppress(urllib.error.HTTPError):
                self.request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                try:
                    self.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                except urllib.error.HTTPError as err:
                    if err.code == 404:  # noqa: PLR2004
                        break
                    raise
                if time.monotonic() > deadline:
                    msg = f"CRD {name} not deleted in time"
                    raise ControlPlaneError(msg)
                time.sleep(0.05)

    def seed(self, objects: list[dict[str, Any]], *, group: str, plural: str) -> None:
        """Write namespaced custom objects straight into etcd, 128 per transaction: a fast bulk fixture.

        Thousands per second, where creating them through the API server takes about 5 ms each on two cores. The
        objects are stored as the API server stores custom resources (JSON under
        ``/registry/<group>/<plural>/<namespace>/<name>``), with a uid and creationTimestamp added; lists and
        watches then serve them like created ones. Bypasses admission and validation: give valid objects.
        """
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        puts = []
        for obj in objects:
            meta = obj["metadata"]
            stored = {**obj, "metadata": {"uid": str(uuid.uuid4()), "creationTimestamp": now, "generation": 1,
                                          **meta}}
            key = f"/registry/{group}/{plural}/{meta['namespace']}/{meta['name']}".encode()
            puts.append({"requestPut": {"key": base64.b64encode(key).decode(),
                                        "value": base64.b64encode(json.dumps(stored).encode()).decode()}})
        for start in range(0, len(puts), 128):  # etcd's default --max-txn-ops
            self._etcd("/v3/kv/txn", {"success": puts[start : start + 128]})

    def etcd_revision(self) -> int:
        """Etcd's current revision (through etcd's JSON gateway)."""
        return int(self._etcd("/v3/kv/range", {"key": base64.b64encode(b"\0").decode()})["header"]["revision"])

    def compact(self) -> int:
        """Compact etcd up to its current revision, so older resourceVersions are gone (410 on resume)."""
        revision = self.etcd_revision()
        self._etcd("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    # -- internals ------------------------------------------------------------------------

    def _etcd(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(  # noqa: S310 - loopback etcd
            self.etcd_url + path, data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            result: dict[str, Any] = json.loads(resp.read())
            return result

    def _write_pki(self) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _issue(subject=_name("fte-local-ca"), key=ca_key, issuer=None)
        serving_key = ec.generate_private_key(ec.SECP256R1())
        serving = _issue(subject=_name("kube-apiserver"), key=serving_key, issuer=(ca, ca_key), server=True)
        admin_key = ec.generate_private_key(ec.SECP256R1())
        admin = _issue(subject=_name("admin", "system:masters"), key=admin_key, issuer=(ca, ca_key))
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        files = {
            "ca.crt": _pem(ca),
            "ca.key": _key_pem(ca_key),
            "serving.crt": _pem(serving),
            "serving.key": _key_pem(serving_key),
            "admin.crt": _pem(admin),
            "admin.key": _key_pem(admin_key),
            "sa.key": _key_pem(sa_key),
            "sa.pub": sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        }
        for name, content in files.items():
            path = self.workdir / name
            path.write_bytes(content)
            path.chmod(0o600)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")  # a restarted process appends
        proc = subprocess.Popen(  # noqa: S603 - our own binaries
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets PR_SET_PDEATHSIG
        )
        log.close()
        self._procs.append(proc)
        return proc

    def _start_etcd(self) -> None:
        self.etcd_port, peer = free_port(), free_port()
        self._spawn(
            "etcd",
            [
                str(self.assets.etcd),
                "--name=fte",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=fte=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self) -> None:
        self.apiserver_port = self.apiserver_port or free_port()
        w = self.workdir
        self._apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.assets.kube_apiserver),
                f"--etcd-servers={self.etcd_url}",
                f"--secure-port={self.apiserver_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={w / 'certs'}",
                f"--tls-cert-file={w / 'serving.crt'}",
                f"--tls-private-key-file={w / 'serving.key'}",
                f"--client-ca-file={w / 'ca.crt'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={w / 'sa.pub'}",
                f"--service-account-signing-key-file={w / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                # Compaction is the tests' business (see compact()), not a 5-minute timer's.
                "--etcd-compaction-interval=0",
                f"--watch-cache={'true' if self.watch_cache else 'false'}",
                "--v=0",
                *self.extra_apiserver_args,
            ],
        )

    def _wait_ready(self, *, deadline: float) -> None:
        while True:
            for proc in self._procs:
                if proc.poll() is not None:
                    name = Path(str(proc.args[0])).name  # type: ignore[index]
                    msg = f"{name} exited with {proc.returncode}: {self._tail(name)}"
                    raise ControlPlaneError(msg)
            with contextlib.suppress(urllib.error.URLError, OSError):  # not listening yet: try again
                req = urllib.request.Request(self.server + "/readyz")  # noqa: S310
                with urllib.request.urlopen(req, context=self.ssl_context(), timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:  # noqa: PLR2004
                        return
            if time.monotonic() > deadline:
                msg = f"kube-apiserver not ready in time: {self._tail('kube-apiserver')}"
                raise ControlPlaneError(msg)
            time.sleep(0.1)

    def _tail(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"

    def _write_kubeconfig(self) -> None:
        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        cert, key = self.admin_cert
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fte-local",
                    "cluster": {"server": self.server, "certificate-authority-data": b64(self.ca_file)},
                }
            ],
            "users": [{"name": "admin", "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
            "contexts": [{"name": "fte-local", "context": {"cluster": "fte-local", "user": "admin"}}],
            "current-context": "fte-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def token_kubeconfig(self, token: str, path: Path) -> Path:
        """Write a kubeconfig that authenticates with a bearer token (e.g. a restricted identity)."""
        return self.write_kubeconfig(path, user={"token": token})

    def write_kubeconfig(self, path: Path, *, user: dict[str, str] | None = None, server: str | None = None) -> Path:
        """Write a kubeconfig for this cluster.

        ``user`` is the kubeconfig user entry (default: the admin client certificate); ``server`` is another URL
        in front of the API server (a proxy).
        """
        if user is None:
            cert, key = self.admin_cert
            user = {"client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
                    "client-key-data": base64.b64encode(key.read_bytes()).decode()}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fte-local",
                    "cluster": {
                        "server": server or self.server,
                        "certificate-authority-data": base64.b64encode(self.ca_file.read_bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "fte-local", "context": {"cluster": "fte-local", "user": "user"}}],
            "current-context": "fte-local",
        }
        path.write_text(yaml.safe_dump(config))
        return path


WORKDIR_PREFIX = "fte-controlplane-"



def _die_with_parent() -> None:
    """In the child: ask Linux to SIGKILL us when the parent dies, so no process outlives a killed run."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1


def _terminate(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

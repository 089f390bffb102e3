"""The CLI's one error boundary: every mistake of the user's is one line on stderr and exit code 2, never a
traceback; ``--log-level debug`` adds the traceback. Each case runs the real command in a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PROG = re.compile(r"^flux-tenant-exporter(?: \w+)?: error: ")


def _kubeconfig(path: Path, server: str = "https://127.0.0.1:1", context: str = "ctx") -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: '{server}', insecure-skip-tls-verify: true}}}}]\n"
        "users: [{name: u, user: {token: not-a-real-token}}]\n"
        f"contexts: [{{name: {context}, context: {{cluster: c, user: u}}}}]\n"
        f"current-context: {context}\n"
    )
    return path


def _run(*args: str, home: Path, env: dict[str, str] | None = None, prefix: list[str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("FTE_") and k not in {"KUBECONFIG", "KUBERNETES_SERVICE_HOST"}}
    clean |= {"HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"} | (env or {})
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "flux_tenant_exporter", *args], capture_output=True, text=True,
        env=clean, timeout=60, check=False, cwd=Path(__file__).resolve().parent.parent,
    )


def _assert_one_line(proc: subprocess.CompletedProcess[str], expected: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert PROG.match(lines[0]), lines[0]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home directory: no ~/.kube/config."""
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_missing_kubeconfig_is_named(home: Path, tmp_path: Path) -> None:
    """A --kubeconfig that does not exist says so (it used to say "context None not found")."""
    _assert_one_line(_run("serve", "--kubeconfig", str(tmp_path / "nope.yaml"), home=home),
                     f"kubeconfig {tmp_path / 'nope.yaml'}: no such file")


@pytest.mark.parametrize(("content", "expected"), [
    ("{{{ not: [yaml", "not valid YAML"),
    ("just a string", "not a kubeconfig"),
    ("clusters: {a: 1}", "not a kubeconfig"),
    ("clusters: [oops]\ncontexts: []\nusers: []", "every entry of clusters must be a mapping"),
])
def test_garbage_kubeconfig_is_one_line(home: Path, tmp_path: Path, content: str, expected: str) -> None:
    """A kubeconfig that is not YAML, or not a kubeconfig, is one clear line."""
    path = tmp_path / "garbage.yaml"
    path.write_text(content)
    _assert_one_line(_run("serve", "--kubeconfig", str(path), home=home), expected)


def test_directory_as_kubeconfig(home: Path, tmp_path: Path) -> None:
    """A directory passed as the kubeconfig cannot be read, and the line says why."""
    _assert_one_line(_run("serve", "--kubeconfig", str(tmp_path), home=home), "Is a directory")


def test_unknown_context_lists_the_known_ones(home: Path, tmp_path: Path) -> None:
    """--context naming no context of the kubeconfig names the contexts it has."""
    path = _kubeconfig(tmp_path / "kubeconfig")
    _assert_one_line(_run("serve", "--kubeconfig", str(path), "--context", "nope", home=home),
                     "context 'nope' not found (contexts: ctx)")


def test_no_cluster_configured_never_starts_a_demo(home: Path) -> None:
    """With no kubeconfig, no $KUBECONFIG and no service account, `serve` (and no command at all) names the ways
    to configure a cluster and the demo command, and exits; it starts nothing."""
    for args in ((), ("serve",)):
        proc = _run(*args, home=home)
        _assert_one_line(proc, "no cluster configured: pass --kubeconfig")
        assert "make demo" in proc.stderr


def test_pod_without_service_account_token(home: Path) -> None:
    """In a pod (KUBERNETES_SERVICE_HOST set) with no token mounted, the line says that."""
    proc = _run("serve", home=home, env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    _assert_one_line(proc, "running in a pod without a service account token")


@pytest.mark.parametrize(("mapping", "expected"), [
    (None, "cannot read tenant mapping"),
    ("tenants: [a, b]", "expected a top-level 'tenants:' mapping"),
    ("tenants: {team-a: {patterns: ['(']}}", "is not a valid regex"),
])
@pytest.mark.parametrize("command", ["serve", "report"])
def test_bad_tenant_mapping(home: Path, tmp_path: Path, command: str, mapping: str | None, expected: str) -> None:
    """A missing or invalid --tenant-mapping, or a bad regex in it, is one line for `serve` and `report` alike."""
    path = tmp_path / "mapping.yaml"
    if mapping is not None:
        path.write_text(mapping)
    dump = tmp_path / "dump.json"
    dump.write_text('{"kind": "List", "items": []}')
    args = (["serve", "--kubeconfig", str(_kubeconfig(tmp_path / "kubeconfig")), "--port", "0"]
            if command == "serve" else ["report", "--input", str(dump)])
    _assert_one_line(_run(*args, "--tenant-mapping", str(path), home=home), expected)


def test_port_in_use(home: Path, tmp_path: Path) -> None:
    """A port another process listens on is named with the reason."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _run("serve", "--kubeconfig", str(_kubeconfig(tmp_path / "kubeconfig")), "--listen-address",
                    "127.0.0.1", "--port", str(port), home=home)
    _assert_one_line(proc, f"cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in proc.stderr


def test_privileged_port_not_permitted(home: Path, tmp_path: Path) -> None:
    """Without the right to bind low ports (as an unprivileged pod), port 80 is refused with the reason."""
    setpriv = shutil.which("setpriv")  # util-linux: drop CAP_NET_BIND_SERVICE for the command alone
    assert setpriv is not None
    proc = _run("serve", "--kubeconfig", str(_kubeconfig(tmp_path / "kubeconfig")), "--listen-address",
                "127.0.0.1", "--port", "80", home=home,
                prefix=[setpriv, "--bounding-set", "-net_bind_service", "--inh-caps", "-net_bind_service"])
    _assert_one_line(proc, "cannot listen on 127.0.0.1:80: Permission denied")


@pytest.mark.parametrize(("address", "expected"), [
    ("192.0.2.1", "cannot listen on 192.0.2.1:"),  # TEST-NET-1: not an address of this host
    ("not an address", "cannot listen on not an address:"),
])
def test_bad_listen_address(home: Path, tmp_path: Path, address: str, expected: str) -> None:
    """A listen address this host does not have, or that is no address at all, is one line."""
    proc = _run("serve", "--kubeconfig", str(_kubeconfig(tmp_path / "kubeconfig")), "--listen-address", address,
                "--port", "0", home=home)
    _assert_one_line(proc, expected)


@pytest.mark.parametrize(("args", "expected"), [
    (["serve", "--port", "70000"], "argument --port: '70000' is not a TCP port (0-65535)"),
    (["serve", "--port", "http"], "argument --port: 'http' is not a TCP port"),
    (["serve", "--kinds", "kustomization,widget"], "argument --kinds: unknown kind(s) widget"),
    (["serve", "--stuck-after", "soon"], "argument --stuck-after: 'soon' is not a duration"),
    (["report", "--format", "pdf"], "argument --format: invalid choice: 'pdf'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_usage_errors_are_one_line(home: Path, args: list[str], expected: str) -> None:
    """Bad flag values are one line (no usage dump) with a pointer to --help."""
    proc = _run(*args, home=home)
    _assert_one_line(proc, expected)
    assert proc.stderr.rstrip().endswith("(see --help)")


def test_bad_boolean_environment_variable(home: Path) -> None:
    """An FTE_* boolean that is neither true nor false is named."""
    proc = _run("serve", home=home, env={"FTE_GOTK_RESOURCE_INFO": "maybe"})
    _assert_one_line(proc, "FTE_GOTK_RESOURCE_INFO='maybe' is not a boolean")


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("missing.json", None, "cannot read the input"),
    ("junk.txt", "{{{ not: [valid", "neither JSON nor YAML"),
    ("binary.bin", b"\xff\xfe\x00garbage", "not UTF-8 text"),
])
def test_unreadable_report_input(home: Path, tmp_path: Path, name: str, content: str | bytes | None,
                                 expected: str) -> None:
    """`report` on a missing, unparsable or binary input is one line."""
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    _assert_one_line(_run("report", "--input", str(path), home=home), expected)


def test_debug_log_level_adds_the_traceback(home: Path, tmp_path: Path) -> None:
    """With --log-level debug the same error also prints its traceback, and still exits 2."""
    proc = _run("serve", "--kubeconfig", str(tmp_path / "nope.yaml"), "--log-level", "debug", home=home)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert PROG.match(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(("args", "expected"), [
    (["serve", "--auth", "kubernetes"], "--auth=kubernetes sends bearer tokens: serve HTTPS"),
    (["serve", "--tls-cert-file", "tls.crt"], "--tls-cert-file and --tls-private-key-file go together"),
    (["serve", "--listen-address", "127.0.0.1", "--port", "0", "--tls-cert-file", "missing.crt",
      "--tls-private-key-file", "missing.key"], "cannot serve HTTPS with missing.crt and missing.key"),
    (["get", "tenants", "--token", "t"], "--token and --token-file go with --url"),
    (["get", "tenants", "--url", "http://127.0.0.1:1", "--token", "t", "--token-file", "f"], "give one of them"),
    (["get", "tenants", "--url", "http://127.0.0.1:1", "--token-file", "missing.token"],
     "--token-file missing.token: No such file or directory"),
    (["get", "tenants", "--url", "https://127.0.0.1:1", "--certificate-authority", "missing.crt"],
     "--certificate-authority missing.crt"),
    (["get", "tenants", "--url", "http://192.0.2.1:9897", "--token", "t"],
     "refusing to send a bearer token over plain HTTP to 192.0.2.1"),
])
def test_access_control_mistakes_are_one_line(home: Path, tmp_path: Path, args: list[str], expected: str) -> None:
    """A wrong access-control or TLS setting (serve) or token option (get) is one line and exit 2, never a
    traceback; nothing is sent before it."""
    proc = _run(*args, "--kubeconfig", str(_kubeconfig(tmp_path / "kubeconfig")), home=home)
    _assert_one_line(proc, expected)

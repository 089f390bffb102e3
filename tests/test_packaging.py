"""What ships: the product wheel holds the product package only (no harness, no tests), and its metadata
declares no harness-only dependency."""

from __future__ import annotations

import ast
import email
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_only_the_product(tmp_path: Path) -> None:
    """`pip wheel .` builds a wheel of `flux_tenant_exporter/` alone: no testbed module (control plane, fleet writers,
    demo), no tests, and cryptography (the harness's certificates) is not a runtime dependency."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("flux_tenant_exporter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = email.message_from_bytes(archive.read(next(n for n in names if n.endswith("/METADATA"))))
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"flux_tenant_exporter"}
    assert "flux_tenant_exporter/cli/main.py" in names
    assert "flux_tenant_exporter/openapi.yaml" in names
    assert not [n for n in names if "mixin" in n]  # the build-time generator of rules and dashboards is not shipped
    assert not [n for n in names if "controlplane" in n or "fleet" in n or "demo" in n or "test" in n]
    runtime = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    requires = [re.split(r"[<>=;\s]", r, maxsplit=1)[0].lower() for r in runtime]
    assert "cryptography" not in requires
    assert "aiohttp" in requires


def test_every_product_package_is_a_layer_and_says_what_it_holds() -> None:
    """The layers contract names every package of the product (and nothing else), so a new package cannot escape
    the layering, and each package's docstring says what lives there and what it may import."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = config["tool"]["importlinter"]["contracts"][0]
    assert contract["containers"] == ["flux_tenant_exporter"]
    named = {m.strip() for layer in contract["layers"] for m in layer.split("|")}
    product = ROOT / "flux_tenant_exporter"
    modules = {p.stem for p in product.glob("*.py") if p.stem != "__init__"}
    packages = {p.name for p in product.iterdir() if (p / "__init__.py").exists()}
    assert modules | packages == named
    for package in packages:
        doc = ast.get_docstring(ast.parse((product / package / "__init__.py").read_text()))
        assert doc, f"{package}/__init__.py has no docstring"
        assert "import" in doc, f"{package}: the docstring does not say what the package may import"

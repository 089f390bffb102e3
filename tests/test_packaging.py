"""What ships: the product wheel holds the product package only (no harness, no tests), and its metadata
declares no harness-only dependency."""

from __future__ import annotations

import email
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_only_the_product(tmp_path: Path) -> None:
    """`pip wheel .` builds a wheel of `exporter/` alone: no testbed module (control plane, fleet writers,
    demo), no tests, and cryptography (the harness's certificates) is not a runtime dependency."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("flux_tenant_exporter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = email.message_from_bytes(archive.read(next(n for n in names if n.endswith("/METADATA"))))
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"exporter"}
    assert "exporter/cli.py" in names
    assert "exporter/openapi.yaml" in names
    assert not [n for n in names if "controlplane" in n or "fleet" in n or "demo" in n or "test" in n]
    runtime = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    requires = [re.split(r"[<>=;\s]", r, maxsplit=1)[0].lower() for r in runtime]
    assert "cryptography" not in requires
    assert "aiohttp" in requires


def test_every_product_module_has_a_layer() -> None:
    """The import contract names every module of the product, so a new module cannot escape the layering."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    layers = config["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {m.strip() for layer in layers for m in layer.split("|")}
    modules = {f"exporter.{p.stem}" for p in (ROOT / "exporter").glob("*.py") if p.stem != "__init__"}
    modules |= {f"exporter.{p.name}" for p in (ROOT / "exporter").iterdir() if (p / "__init__.py").exists()}
    assert modules == named

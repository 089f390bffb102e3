"""The benchmark never rots: a 300-object run against kube-state-metrics completes and writes its results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.apiserver
@pytest.mark.gotools
def test_benchmark_smoke_run(tmp_path: Path) -> None:
    """`bench/run.py --sizes 300 --quick` measures both exporters on the same fleet and prints ratios."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--sizes", "300", "--quick",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "== 300 Flux objects" in result.stdout
    assert "ours/KSM" in result.stdout
    size = json.loads((tmp_path / "results.json").read_text())["sizes"]["300"]
    for who in ("ours", "ksm"):
        assert size[who]["cold_start_s"] > 0
        assert size[who]["steady_rss_mib"] > 0
        assert size[who]["lag_p99_ms@20"] >= 0
    assert size["ours"]["tenants_p99_ms"] > 0
    assert (tmp_path / "results.csv").read_text().startswith("size,metric,ours,ksm,ratio")


def test_sizes_script_measures_every_level() -> None:
    """`bench/sizes.py` prints a body size for each level, and each lower level's body is smaller."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "sizes.py"), "--objects", "400"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    sizes = {line.split()[0]: float(line.split()[1]) for line in result.stdout.splitlines()
             if line.split() and line.split()[0] in {"all", "failing", "tenants"}}
    assert sizes["all"] > sizes["failing"] > sizes["tenants"] > 0

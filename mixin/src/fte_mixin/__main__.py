"""``python -m fte_mixin [ROOT]``: write the alert rules, PrometheusRule and dashboards."""

import sys
from pathlib import Path

from fte_mixin import write

for written in write(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
    print(written)  # noqa: T201

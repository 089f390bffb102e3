"""Go-style durations (``5m``, ``1h30m``, ``500ms``), as Flux specs and our flags write them."""

from __future__ import annotations

import functools
import re
from typing import Any

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@functools.lru_cache(maxsize=1024)  # a fleet uses a handful of intervals and timeouts
def parse_duration(value: Any) -> float | None:
    """A duration in seconds; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """The shortest spelling ``parse_duration`` reads back as ``seconds`` (``900.0`` -> ``15m``)."""
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    out = ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            out += f"{whole // size}{unit}"
            whole %= size
    return out or "0s"

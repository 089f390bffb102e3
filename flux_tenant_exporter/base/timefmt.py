"""Times as the API server writes them (RFC 3339), as the JSON contract writes them, and as people read ages."""

from __future__ import annotations

import datetime
import functools
from typing import Any


def parse_time(value: Any) -> float | None:
    """An RFC 3339 timestamp as epoch seconds; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    return _parse_rfc3339(value)


@functools.lru_cache(maxsize=4096)  # objects made, reconciled and retried in bulk share their times: one float each
def _parse_rfc3339(value: str) -> float | None:
    try:
        return datetime.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def timestamp(value: float | None) -> str | None:
    """Epoch seconds as RFC 3339 UTC (``2026-12-05T12:00:00Z``), or None."""
    if value is None:
        return None
    return _rfc3339(value)


@functools.lru_cache(maxsize=4096)  # a fleet's objects share many times (created, reconciled in bulk)
def _rfc3339(value: float) -> str:
    when = datetime.datetime.fromtimestamp(value, datetime.UTC)
    # Not strftime("%Y"): glibc writes year 1 (Go's zero time, which Flux may write) as "1", not "0001".
    return f"{when.year:04d}-{when:%m-%dT%H:%M:%S}Z"


def human_age(seconds_ago: float) -> str:
    """A duration the way kubectl prints ages: ``45s``, ``4m12s``, ``35m``, ``3h20m``, ``20h``, ``2d3h``, ``12d``."""
    seconds = max(0, int(seconds_ago))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:  # noqa: PLR2004
        return f"{seconds}s"
    if minutes < 10:  # noqa: PLR2004
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:  # noqa: PLR2004
        return f"{minutes}m"
    if hours < 8:  # noqa: PLR2004
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:  # noqa: PLR2004
        return f"{hours}h"
    if days < 8:  # noqa: PLR2004
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"

"""Giving freed memory back to the OS: glibc keeps freed heap pages otherwise, and RSS would not follow the live data.

The exporter trims after each publish (what the old snapshot held) and after writing a large response (the body of
an unfiltered /tenants at 100k objects is 6.5 MiB, joined from its pieces).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

#: a response at least this long is followed by a trim
TRIM_AFTER = 1024 * 1024


def _malloc_trim() -> Callable[[], object] | None:
    try:
        trim: Callable[[], object] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Give freed heap pages back to the OS (a no-op without glibc)."""
    if _TRIM is not None:
        _TRIM(0)  # type: ignore[call-arg]

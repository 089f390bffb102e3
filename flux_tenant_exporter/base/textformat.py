"""The Prometheus text exposition format (version 0.0.4), written in one place.

Both the exposition of the Flux objects (``render.prometheus``) and the exporter's own metrics
(``telemetry.instruments``) write their lines with these functions, so numbers, escaping and headers are spelled
the same everywhere:

* a sample value is written as the shortest text that reads back as the same float: integral values without a
  fraction (``1``, ``1733400000``), others as Python's ``repr`` (``0.25``, ``1.5e-07``), and the three special
  values as the format requires (``NaN``, ``+Inf``, ``-Inf``);
* a label value escapes backslash, double quote and line feed; a HELP text escapes backslash and line feed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, Literal

#: the TYPE of a family in the text format
TextType = Literal["counter", "gauge", "histogram", "summary", "untyped"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: integers up to this magnitude are exact in a float64 and written without a fraction
_EXACT = 2**53


def number(value: float) -> str:
    """A sample value: ``1``, ``0.25``, ``1.7e+20``, ``NaN``, ``+Inf``, ``-Inf``."""
    try:
        whole = int(value)
    except (ValueError, OverflowError):  # NaN, +Inf, -Inf
        if value != value:  # noqa: PLR0124 - NaN is the one float not equal to itself
            return "NaN"
        return "+Inf" if value > 0 else "-Inf"
    if whole == value and -_EXACT < whole < _EXACT:
        return str(whole)
    return repr(float(value))


def escape(value: str) -> str:
    """A label value escaped for the text format (backslash, double quote, line feed)."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def escape_help(text: str) -> str:
    """A HELP text escaped for the text format (backslash, line feed)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def labels(pairs: Iterable[tuple[str, str]]) -> str:
    """``a="x",b="y"`` (values escaped, in the given order); "" for no pairs."""
    return ",".join(f'{name}="{escape(value)}"' for name, value in pairs)


def header(name: str, help_text: str, type_: TextType) -> str:
    """The HELP and TYPE lines of the family whose samples are named ``name``."""
    return f"# HELP {name} {escape_help(help_text)}\n# TYPE {name} {type_}\n"


def prefix(name: str, pairs: Iterable[tuple[str, str]] = ()) -> str:
    """A sample line up to its value: ``name{a="x"} `` or ``name ``."""
    text = labels(pairs)
    return f"{name}{{{text}}} " if text else f"{name} "


def sample(name: str, pairs: Iterable[tuple[str, str]], value: float) -> str:
    """One whole sample line."""
    return f"{prefix(name, pairs)}{number(value)}\n"


_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_]")


def label_name(text: str) -> str:
    """``text`` as a label name: every character outside ``[A-Za-z0-9_]`` becomes ``_``."""
    return _NOT_IN_NAME.sub("_", text)

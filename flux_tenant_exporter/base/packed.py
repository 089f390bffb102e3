"""Texts kept compressed: what the exporter holds to serve (exposition blocks, /tenants pieces) is mostly text.

zlib at level 1 compresses the exposition and the JSON pieces about 4-7x at ~100 MB/s, and inflates them at
several hundred MB/s; a text too short to gain is kept as it is.
"""

from __future__ import annotations

import zlib

#: texts shorter than this are kept as they are: compressing them would save less than the record costs
PACK_MIN = 512


class Packed:
    """A text kept compressed, and its length."""

    __slots__ = ("data", "size")

    def __init__(self, text: bytes) -> None:
        """``text`` compressed."""
        self.data = zlib.compress(text, 1)
        self.size = len(text)

    def __repr__(self) -> str:
        """``Packed(size -> compressed size)``."""
        return f"Packed({self.size} -> {len(self.data)})"


#: a text as it is, or compressed
Text = bytes | Packed


def pack(text: bytes) -> Text:
    """``text`` compressed, if it is long enough to be worth it."""
    return Packed(text) if len(text) >= PACK_MIN else text


def unpack(text: Text) -> bytes:
    """The text itself."""
    return text if isinstance(text, bytes) else zlib.decompress(text.data, zlib.MAX_WBITS, text.size)


def size_of(text: Text) -> int:
    """The length of the text (compressed or not)."""
    return len(text) if isinstance(text, bytes) else text.size

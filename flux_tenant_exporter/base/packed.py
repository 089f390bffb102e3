"""Texts kept compressed: what the exporter holds to serve (exposition blocks, /tenants pieces) is mostly text.

LZ4 (block format): at 100k objects the exposition's 16.3 MiB of text is held in 2.6 MiB, and a scrape without
gzip inflates all of it in ~8 ms (zlib held it in 2.1 MiB but took 38 ms, which a 10 Hz poller of /metrics saw as
update lag). A text too short to gain is kept as it is.
"""

from __future__ import annotations

import lz4.block

#: texts shorter than this are kept as they are: compressing them would save less than the record costs
PACK_MIN = 512


class Packed:
    """A text kept compressed, and its length."""

    __slots__ = ("data", "size")

    def __init__(self, text: bytes) -> None:
        """``text`` compressed."""
        self.data: bytes = lz4.block.compress(text, store_size=False)
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
    if isinstance(text, bytes):
        return text
    data: bytes = lz4.block.decompress(text.data, uncompressed_size=text.size)
    return data


def size_of(text: Text) -> int:
    """The length of the text (compressed or not)."""
    return len(text) if isinstance(text, bytes) else text.size


def held(text: Text) -> int:
    """The bytes kept for the text: its length, or its compressed length."""
    return len(text) if isinstance(text, bytes) else len(text.data)

"""The exposition of one publish as handed to HTTP: a list of texts, never joined whole; gzip on demand.

The larger texts (a block's objects or tenants in one family, once they stop changing) are kept compressed
(``base.packed``): at 100k objects 16.3 MiB of text in 2.6 MiB. A scrape without gzip inflates them as it writes
(~8 ms at 100k, in pieces, with the event loop free between them); Prometheus asks for gzip and is served one gzip
body per publish, made in a worker thread.
"""

from __future__ import annotations

import functools
import threading
import zlib
from collections.abc import Iterator

from flux_tenant_exporter.base.packed import Text, size_of, unpack

#: /metrics is written in pieces of about this size
WRITE_SIZE = 256 * 1024


class Exposition:
    """The rendered families of one publish as a list of texts (never joined whole), gzip on demand."""

    def __init__(self, parts: tuple[Text, ...]) -> None:
        """``parts`` in output order."""
        self.parts = parts
        self._gzip: bytes | None = None
        #: a scrape compresses in a worker thread; concurrent ones wait for the first instead of compressing again
        self._gzip_lock = threading.Lock()

    @functools.cached_property
    def size(self) -> int:
        """The length of the text (counted on the first scrape: a publish that nobody reads costs nothing)."""
        return sum(map(size_of, self.parts))

    @property
    def body(self) -> bytes:
        """The whole text at once (tests, small fleets)."""
        return b"".join(map(unpack, self.parts))

    def pieces(self, size: int = WRITE_SIZE) -> Iterator[bytes]:
        """The text in pieces of about ``size`` bytes, for writing to a socket."""
        batch: list[bytes] = []
        held = 0
        for part in map(unpack, self.parts):
            batch.append(part)
            held += len(part)
            if held >= size:
                yield b"".join(batch)
                batch, held = [], 0
        if batch:
            yield b"".join(batch)

    def gzipped(self) -> bytes:
        """The text as one gzip member (concatenated members are a valid gzip stream)."""
        with self._gzip_lock:
            if self._gzip is None:
                compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
                self._gzip = b"".join([*map(compressor.compress, map(unpack, self.parts)), compressor.flush()])
            return self._gzip

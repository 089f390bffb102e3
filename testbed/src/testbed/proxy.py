"""A loopback TCP proxy that can cut, refuse or blackhole connections: network faults on demand.

``FaultProxy`` listens on 127.0.0.1 and forwards bytes to a target (e.g. the API server; TLS passes through
untouched, and the serving certificate's 127.0.0.1 SAN still matches). Its ``mode`` decides what happens:

* ``"pass"``: forward;
* ``"refuse"``: new connections are closed at once (what a client sees as a reset or refused connection);
* ``"blackhole"``: new connections are accepted and nothing is ever forwarded or answered, and bytes of the
  existing ones are dropped (a half-open path: only the client's own timeouts notice).

``cut()`` closes every open connection (the effect of a network partition on established streams).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal, Self

Mode = Literal["pass", "refuse", "blackhole"]


class FaultProxy:
    """A TCP proxy to ``target_port`` on 127.0.0.1; ``async with`` starts and stops it."""

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1") -> None:
        """Prepare; ``start`` listens on a free port (``port``)."""
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``."""
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aenter__(self) -> Self:
        """Start."""
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        """Stop."""
        await self.stop()

    def cut(self) -> int:
        """Close every open connection; returns how many there were."""
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        self._writers.clear()
        return len(writers)

    async def stop(self) -> None:
        """Stop listening and close everything."""
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "refuse":
            writer.transport.abort()
            return
        self._writers.add(writer)
        if self.mode == "blackhole":
            await self._drain_forever(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink, (writer, up_writer)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain_forever(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while await reader.read(65536):
                pass
        self._writers.discard(writer)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while data := await source.read(65536):
                if self.mode == "blackhole":
                    continue  # the path went dark: bytes vanish both ways
                sink.write(data)
                await sink.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            for end in pair:
                end.transport.abort()
                self._writers.discard(end)

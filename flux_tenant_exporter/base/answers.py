"""A bounded cache of answers that expire, with one fetch in flight per key (asyncio, no I/O of its own).

What ``serve.access`` keeps of the API server's reviews, the way k8s.io/apiserver keeps them: each answer for a
lifetime its value decides (an allowed review longer than a denied one), at most ``size`` answers (the least
recently used go first), a fetch shared by every caller asking for the same key while it runs (singleflight), and
a fetch that raises is shared as the error but never kept, so the next caller asks again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Answers(Generic[K, V]):
    """Answers by key, each kept for ``lifetime(answer)`` seconds; at most ``size`` of them."""

    def __init__(self, size: int, lifetime: Callable[[V], float], clock: Callable[[], float] = time.monotonic) -> None:
        """An empty cache; ``clock`` is monotonic seconds (a test may pass its own)."""
        self.size = size
        self._lifetime = lifetime
        self._clock = clock
        self._kept: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._running: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        """How many answers are kept (expired ones included until they are asked for or pushed out)."""
        return len(self._kept)

    def cached(self, key: K) -> tuple[V] | None:
        """``(answer,)`` if one is kept for ``key`` and has not expired, else None (an answer may be None)."""
        hit = self._kept.get(key)
        if hit is None:
            return None
        if hit[0] <= self._clock():
            del self._kept[key]
            return None
        self._kept.move_to_end(key)
        return (hit[1],)

    async def get(self, key: K, fetch: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """The answer for ``key`` and whether it was kept; else ``fetch()``'s, shared with concurrent callers.

        The fetch runs as a task of its own: a caller that goes away (a client that disconnects) does not cancel
        it for the others waiting on it.
        """
        hit = self.cached(key)
        if hit is not None:
            return hit[0], True
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._fetch(key, fetch))
            running.add_done_callback(_retrieve)  # an error nobody waits for any more is not reported as lost
            self._running[key] = running
        return await asyncio.shield(running), False

    async def _fetch(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        try:
            value = await fetch()
        finally:
            del self._running[key]
        lifetime = self._lifetime(value)
        if lifetime > 0:
            self._kept[key] = (self._clock() + lifetime, value)
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return value


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()

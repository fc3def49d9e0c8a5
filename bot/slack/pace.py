"""How fast the bot writes to Slack: a token bucket per key (a channel, or the workspace).

Slack lets an app post about one new message a second per channel, with short bursts.
Writers that find the bucket empty queue; when a slot frees, a new top-level message
goes before replies in threads (a diagnosis' progress post, a chart, a note), so an
alert's post is never held behind the chatter of the alert before it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass, field

FIRST, LATER = 0, 1  # queue ranks: top-level messages, then the rest


@dataclass
class ChannelPace:
    """``burst`` writes at once per key, then one per ``every_s``; waiters by rank, then FIFO."""

    every_s: float = 1.0
    burst: int = 3
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _queues: dict[str, list[tuple[int, int, asyncio.Future[None]]]] = field(default_factory=dict)
    _granting: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def _tokens(self, key: str) -> float:
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) / self.every_s)
        self._buckets[key] = (tokens, now)
        return tokens

    def _take(self, key: str) -> None:
        tokens, at = self._buckets[key]
        self._buckets[key] = (tokens - 1, at)

    def waiting(self, key: str) -> int:
        """Writers queued for ``key``."""
        return sum(not w.done() for _, _, w in self._queues.get(key, ()))

    async def wait(self, key: str, *, first: bool = False) -> None:
        """Until this write may go; ``first``: a new top-level message, ahead of the queue."""
        queue = self._queues.setdefault(key, [])
        if not queue and self._tokens(key) >= 1:
            self._take(key)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(queue, (FIRST if first else LATER, next(self._order), waiter))
        granting = self._granting.get(key)
        if granting is None or granting.done():
            self._granting[key] = asyncio.create_task(self._grant(key))
        await waiter

    async def _grant(self, key: str) -> None:
        """Hand each freed slot to the best-ranked waiter still waiting."""
        queue = self._queues[key]
        while queue:
            tokens = self._tokens(key)
            if tokens < 1:
                await asyncio.sleep((1 - tokens) * self.every_s)
                continue
            _, _, waiter = heapq.heappop(queue)
            if not waiter.done():  # a cancelled writer gives its place up
                self._take(key)
                waiter.set_result(None)

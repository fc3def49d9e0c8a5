"""The database work a Slack request needs before its acknowledgement, kept off the queue.

Background work (outbox writes, diagnoses, plans) shares asyncio's default thread pool;
a request waiting there for its replay check waits behind all of it, and Slack's ack with
it. The ack path gets a thread of its own, and the signatures of requests arriving
together are recorded in one transaction (SQLite serialises writers: fifty concurrent
one-row commits queue on its lock, one commit of fifty rows does not).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.store import SeenRequest, Store

T = TypeVar("T")


class AckPath:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ack-path")
        self._waiting: list[tuple[str, asyncio.Future[bool]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on the ack path's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def first_sight(self, signature: str) -> bool:
        """True the first time a signature is seen on any replica (recorded durably)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((signature, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                fresh = await self.run(self._record, [s for s, _ in batch])
            except Exception as exc:  # the caller answers 5xx; Slack retries
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for signature, future in batch:
                if not future.done():
                    future.set_result(signature in fresh)
                fresh.discard(signature)  # the same signature twice in a batch: once

    def _record(self, signatures: list[str]) -> set[str]:
        """Record the signatures not seen before, in one transaction; those are returned."""
        wanted = set(signatures)
        try:
            with self.store.session() as s, s.begin():
                seen = set(
                    s.scalars(
                        select(SeenRequest.signature).where(SeenRequest.signature.in_(wanted))
                    )
                )
                fresh = wanted - seen
                s.add_all(SeenRequest(signature=sig) for sig in fresh)
            return fresh
        except IntegrityError:  # another replica recorded one meanwhile: one at a time
            return {sig for sig in wanted if self.store.first_sight(sig)}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

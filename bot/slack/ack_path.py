"""The database work a Slack request needs before its acknowledgement, kept off the queue.

Background work (outbox writes, diagnoses, plans) shares asyncio's default thread pool;
a request waiting there for its replay check waits behind all of it, and Slack's ack with
it. The ack path gets a thread of its own, and what requests arriving together ask is
asked once: their signatures recorded in one transaction (SQLite serialises writers:
fifty concurrent one-row commits queue on its lock, one commit of fifty rows does not),
the action requests their modals name looked up in one query.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.store import ActionRequest, SeenRequest, Store

T = TypeVar("T")
Answer = Callable[[list[str]], set[str]]  # the keys asked about → those that answer yes


Submit = Callable[[Answer, list[str]], "asyncio.Future[set[str]]"]


class _Batch:
    """Keys asked about while a query runs wait and go together in the next one.

    ``once``: a key asked twice in one batch answers yes the first time only (a signature
    is first seen once)."""

    def __init__(self, answer: Answer, submit: Submit, *, once: bool = False) -> None:
        self._answer = answer
        self._submit = submit
        self._once = once
        self._waiting: list[tuple[str, asyncio.Future[bool]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def ask(self, key: str) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                yes = await self._submit(self._answer, [k for k, _ in batch])
            except Exception as exc:  # the caller answers 5xx; Slack retries
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for key, future in batch:
                if not future.done():
                    future.set_result(key in yes)
                if self._once:
                    yes.discard(key)


class AckPath:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ack-path")
        self._signatures = _Batch(self._record, self._submit, once=True)
        self._requests = _Batch(self._existing, self._submit)

    def _submit(self, fn: Answer, keys: list[str]) -> asyncio.Future[set[str]]:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, keys)

    async def first_sight(self, signature: str) -> bool:
        """True the first time a signature is seen on any replica (recorded durably); the
        same signature twice in one batch is first seen once."""
        return await self._signatures.ask(signature)

    async def request_exists(self, request_id: str) -> bool:
        """Whether an action request with this id exists (on any replica)."""
        return await self._requests.ask(request_id)

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

    def _existing(self, request_ids: list[str]) -> set[str]:
        with self.store.session() as s:
            query = select(ActionRequest.id).where(ActionRequest.id.in_(set(request_ids)))
            return set(s.scalars(query))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class AcksFirst:
    """Work a listener hands off starts once no Slack request is waiting for its ack.

    The event loop is shared: a plan or a diagnosis started by one click runs its
    synchronous stretches (rendering, database reads, TLS set-up) between the steps of
    the requests still being acknowledged, and in a burst the last ack waits for all of
    them. So handed-off work waits until the requests in flight are answered, at most
    ``max_wait_s`` (a steady stream of requests must not starve it)."""

    def __init__(self, max_wait_s: float = 0.5) -> None:
        self.max_wait_s = max_wait_s
        self.in_flight = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Around the handling of one Slack request, until its answer is ready."""
        self.in_flight += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._quiet.set()

    async def turn(self) -> None:
        """Until no request is in flight (or ``max_wait_s`` passed)."""
        if self.in_flight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._quiet.wait(), self.max_wait_s)

"""Progress edits of a Slack message that never hold up the work they report on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.slack.block_kit import Message

log = logging.getLogger(__name__)

EVERY_S = 1.0  # at most one progress edit a second, and none in an operation's first second


class ProgressEdits:
    """The newest progress of an operation, edited into its message in the background.

    ``show`` returns at once. An edit can wait seconds for Slack's workspace-wide budget
    of edits (about 50 a minute; an alert storm spends it), and the operation must not wait
    with it: a diagnosis whose checks waited for their progress edits took 6 to 17 s
    instead of 0.1 s. While an edit waits, newer progress replaces older; an operation that
    ends within ``every_s`` sends no progress edit at all, only its final content.
    """

    def __init__(self, send: Callable[[Message], Awaitable[object]], every_s: float = EVERY_S):
        self._send = send
        self._every_s = every_s
        self._next_at = time.monotonic() + every_s
        self._latest: Message | None = None
        self._task: asyncio.Task[None] | None = None
        self._sending = False
        self._closed = False

    def show(self, message: Message) -> None:
        if self._closed:
            return
        self._latest = message
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._edits())

    async def aclose(self) -> None:
        """No more progress: what was not sent is dropped, and an edit on its way is let
        finish first, so the final content, sent after this, is the message's last write
        (an edit recorded after it would leave the message showing progress)."""
        self._closed = True
        self._latest = None
        task = self._task
        if task is None or task.done():
            return
        if self._sending:
            await task
        else:  # still waiting for its turn: nothing of it reached the outbox
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # our cancel, not the caller's

    async def _edits(self) -> None:
        while self._latest is not None:
            await asyncio.sleep(max(0.0, self._next_at - time.monotonic()))
            message, self._latest = self._latest, None
            if message is None or self._closed:
                return
            self._next_at = time.monotonic() + self._every_s
            self._sending = True
            try:
                await self._send(message)
            except Exception:  # a progress edit is worth a log line, never the operation
                log.exception("progress edit failed")
            finally:
                self._sending = False

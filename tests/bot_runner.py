"""Run the real bot (``bot.app.build`` + ``serve``) on its own thread for tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx

from bot.app import Bot, build
from bot.commands.serve import serve
from bot.config import Settings
from bot.simulator.prometheus_runner import free_port

T = TypeVar("T")


class BotRunner:
    def __init__(self, **settings: Any) -> None:
        self.port = free_port()
        self.settings = Settings(**settings)
        self.bot: Bot = build(self.settings)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            await serve(self.bot, "127.0.0.1", self.port, self._stop)

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:  # surfaced by start()/stop()
            self.error = exc

    def start(self, timeout_s: float = 20.0) -> BotRunner:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("bot did not start")

    def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until the bot's background work (posts, diagnoses) is done."""
        future = asyncio.run_coroutine_threadsafe(self.bot.services.drain(timeout_s), self._loop)
        future.result(timeout=timeout_s + 5)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the bot's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

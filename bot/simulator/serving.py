"""Serve an aiohttp application on its own thread and event loop.

One lifecycle for every in-process HTTP server: the fleet simulator and the Kubernetes API
stand-in (tests, the ``demo`` command) and the test fakes (``tests/fakes/slack.py``).
Synchronous and asynchronous code can both talk to it, since it never shares a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Self, TypeVar

from aiohttp import web

T = TypeVar("T")


class StartStop:
    """``with thing:`` starts it and stops it, whatever happens inside."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class BackgroundServer(StartStop):
    """Serve an aiohttp app on its own (daemon) thread and event loop.

    ``port=0`` picks a free port; :attr:`port` and :attr:`url` are set once
    :meth:`start` returns. A server starts once; :meth:`stop` is idempotent and joins
    the thread. ``timeout`` bounds start, stop and :meth:`run`; ``shutdown_timeout`` is
    how long stopping waits for in-flight requests; ``on_stop`` is awaited on the
    server's loop when stopping begins, before the app is shut down (e.g. to close
    websockets, which would otherwise hold the shutdown up).
    """

    def __init__(
        self,
        app: web.Application,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "BackgroundServer",
        timeout: float = 30.0,
        shutdown_timeout: float = 60.0,
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self.port = 0
        self._app = app
        self._host = host
        self._requested_port = port
        self._timeout = timeout
        self._shutdown_timeout = shutdown_timeout
        self._on_stop = on_stop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = False

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> BackgroundServer:
        if self._started:
            raise RuntimeError(f"{self.name} already started")
        self._started = True
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run_loop, args=(loop,), name=self.name, daemon=True
        )
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), loop).result(timeout=self._timeout)
        except BaseException:
            with contextlib.suppress(Exception):  # the start failure is what to report
                self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), loop).result(timeout=self._timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self._loop = None
            self._thread = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the server's loop, blocking the calling thread for its result."""
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError(f"{self.name} is not running; call start()")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(f"blocking {self.name} call made from its own event loop")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        return future.result(self._timeout if timeout is None else timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (where the app's state lives) and return its result."""

        async def run() -> T:
            return fn()

        return self.run(run())

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    async def _start(self) -> None:
        self._runner = web.AppRunner(
            self._app, access_log=None, shutdown_timeout=self._shutdown_timeout
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._requested_port).start()
        self.port = int(self._runner.addresses[0][1])

    async def _stop(self) -> None:
        if self._on_stop is not None:
            await self._on_stop()
        if self._runner is not None:
            await self._runner.cleanup()

"""A proxy before a real Prometheus that answers every query ``delay_s`` late.

How the ``ack`` section makes Prometheus slow without making it wrong: the answers are
Prometheus' own. ``delay_s`` may change while it runs (0: straight through).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from bot.simulator.serving import BackgroundServer, StartStop

_KEPT_HEADERS = ("content-type",)


@dataclass
class DelayingProxy(StartStop):
    upstream: str
    delay_s: float = 0.0
    queries: int = 0  # how many requests it has forwarded
    _server: BackgroundServer | None = field(default=None, repr=False)
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)
    _held: set[asyncio.Task[object]] = field(default_factory=set, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return self._server.url

    def start(self) -> DelayingProxy:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._server = BackgroundServer(
            app, name="delaying-proxy", shutdown_timeout=1, on_stop=self._close
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    async def _close(self) -> None:
        # queries still held back: ended here, not left pending when the loop closes
        for task in list(self._held):
            task.cancel()
        await asyncio.gather(*self._held, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.queries += 1
        if self.delay_s > 0:
            task = asyncio.current_task()
            assert task is not None
            self._held.add(task)
            try:
                await asyncio.sleep(self.delay_s)
            finally:
                self._held.discard(task)
        if self._session is None:
            self._session = aiohttp.ClientSession(self.upstream)
        headers = {k: v for k, v in request.headers.items() if k.lower() in _KEPT_HEADERS}
        async with self._session.request(
            request.method, request.path, params=request.query, data=body, headers=headers
        ) as answer:
            content = await answer.read()
            return web.Response(
                body=content,
                status=answer.status,
                content_type=answer.content_type or "application/json",
            )

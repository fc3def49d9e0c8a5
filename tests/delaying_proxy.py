"""A real HTTP proxy in front of a real Prometheus that answers chosen queries late.

It records, for every query, when it arrived and whether (and when) the client hung up
before the answer: how a test proves that abandoned queries are cancelled, not awaited,
and never retried.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
from aiohttp import web

from bot.simulator.serving import BackgroundServer


@dataclass
class Seen:
    query: str
    slow: bool
    arrived: float  # monotonic
    hung_up: float | None = None  # monotonic; None: the client waited for the answer


@dataclass
class DelayingProxy:
    upstream: str
    delay_s: float
    slow_when: str  # a query containing this is answered after delay_s
    seen: list[Seen] = field(default_factory=list)
    server: BackgroundServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "start() first"
        return self.server.url

    def start(self) -> DelayingProxy:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self.server = BackgroundServer(app, name="delaying-proxy", shutdown_timeout=1).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def slow_queries(self) -> list[Seen]:
        return [s for s in self.seen if s.slow]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        form = await request.post() if request.method == "POST" else request.query
        query = str(form.get("query", ""))
        seen = Seen(query, bool(query) and self.slow_when in query, time.monotonic())
        self.seen.append(seen)
        if seen.slow:
            until = seen.arrived + self.delay_s
            while time.monotonic() < until:
                transport = request.transport
                if transport is None or transport.is_closing():
                    seen.hung_up = time.monotonic()
                    return web.Response(status=499)
                await asyncio.sleep(0.05)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type",)}
        async with httpx.AsyncClient(base_url=self.upstream, timeout=60) as client:
            answer = await client.request(
                request.method, request.path, params=request.query, content=body, headers=headers
            )
        return web.Response(
            body=answer.content,
            status=answer.status_code,
            content_type=answer.headers.get("content-type", "application/json").split(";")[0],
        )

"""Slack's Socket Mode server side: websockets that ``apps.connections.open`` points at.

``hello`` on connect, envelopes routed to one connected client chosen at random (never
to one told to disconnect), acknowledgements recorded, ``disconnect`` messages with a
grace period, ``too_many_websockets`` past the connection limit.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from bot.console.records import SocketAck, SocketConnection, SocketEnvelope


@dataclass
class _Conn:
    id: int
    ws: web.WebSocketResponse
    connected_at: float
    closed_at: float | None = None
    draining: bool = False


class SocketModeHub:
    """The websockets of one app; its coroutines run on the serving loop."""

    def __init__(self, app_id: str, *, max_connections: int = 10, seed: int = 0) -> None:
        self.app_id = app_id
        self.max_connections = max_connections
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._conns: dict[int, _Conn] = {}
        self._conn_seq = 0
        self._url_seq = 0
        self._issued_paths: set[str] = set()
        self._envelopes: dict[str, SocketEnvelope] = {}
        self._acks: list[SocketAck] = []
        self._tasks: set[asyncio.Future[None]] = set()

    def issue_url(self, port: int) -> str:
        """A websocket URL for apps.connections.open (each one opens once)."""
        with self._lock:
            self._url_seq += 1
            path = str(self._url_seq)
            self._issued_paths.add(path)
        return (
            f"ws://127.0.0.1:{port}/socket-mode/{path}?ticket={uuid.uuid4()}&app_id={self.app_id}"
        )

    # -- recorded state (copies) ---------------------------------------------

    @property
    def envelopes(self) -> list[SocketEnvelope]:
        with self._lock:
            return list(self._envelopes.values())

    @property
    def acks(self) -> list[SocketAck]:
        with self._lock:
            return list(self._acks)

    def ack_for(self, envelope_id: str) -> SocketAck | None:
        with self._lock:
            return next((a for a in self._acks if a.envelope_id == envelope_id), None)

    @property
    def connections(self) -> list[SocketConnection]:
        """Every connection so far (open and closed), oldest first."""
        with self._lock:
            return [
                SocketConnection(c.id, c.connected_at, c.closed_at, c.draining)
                for c in self._conns.values()
            ]

    def routable_count(self) -> int:
        with self._lock:
            return len(self._routable())

    def forget_traffic(self) -> None:
        with self._lock:
            self._envelopes.clear()
            self._acks.clear()

    def _routable(self) -> list[_Conn]:
        return [
            c
            for c in self._conns.values()
            if c.closed_at is None and not c.draining and not c.ws.closed
        ]

    # -- sending (on the serving loop) ---------------------------------------

    async def send(self, envelope: dict[str, Any], connection_id: int | None) -> str:
        with self._lock:
            candidates = self._routable()
            if connection_id is not None:
                candidates = [c for c in candidates if c.id == connection_id]
            if not candidates:
                raise RuntimeError("no Socket Mode client is connected")
            conn = self._rng.choice(candidates)
            record = SocketEnvelope(
                envelope_id=envelope["envelope_id"],
                type=envelope["type"],
                payload=envelope["payload"],
                sent_at=time.time(),
                connection_id=conn.id,
                accepts_response_payload=bool(envelope["accepts_response_payload"]),
            )
            self._envelopes[record.envelope_id] = record
        await conn.ws.send_str(json.dumps(envelope))
        return record.envelope_id

    async def disconnect(self, reason: str, connection_id: int | None, grace: float) -> list[int]:
        with self._lock:
            targets = [
                c for c in self._routable() if connection_id is None or c.id == connection_id
            ]
            for c in targets:
                c.draining = True
        for c in targets:
            await c.ws.send_str(
                json.dumps(
                    {
                        "type": "disconnect",
                        "reason": reason,
                        "debug_info": {"host": f"applink-local-{c.id}"},
                    }
                )
            )
            task = asyncio.ensure_future(self._close_later(c.ws, grace))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return [c.id for c in targets]

    @staticmethod
    async def _close_later(ws: web.WebSocketResponse, grace: float) -> None:
        await asyncio.sleep(grace)
        if not ws.closed:
            await ws.close()

    async def close_all(self) -> None:
        """On stop: cancel delayed closes, then close every websocket (1001 going away)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in list(self._conns.values()):
            if not conn.ws.closed:
                await conn.ws.close(code=1001, message=b"server shutting down")

    # -- the websocket endpoint ----------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            known = request.match_info["n"] in self._issued_paths
        if not known:
            return web.Response(status=401, text="invalid or expired socket URL")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self._lock:
            self._conn_seq += 1
            conn = _Conn(self._conn_seq, ws, time.time())
            self._conns[conn.id] = conn
            too_many = len(self._routable()) > self.max_connections
            num = len(self._routable())
        try:
            if too_many:
                conn.draining = True
                await ws.send_str(
                    json.dumps({"type": "disconnect", "reason": "too_many_websockets"})
                )
                await ws.close()
                return ws
            await ws.send_str(
                json.dumps(
                    {
                        "type": "hello",
                        "num_connections": num,
                        "debug_info": {
                            "host": f"applink-local-{conn.id}",
                            "build_number": 1,
                            "approximate_connection_time": 18060,
                        },
                        "connection_info": {"app_id": self.app_id},
                    }
                )
            )
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(data, dict) and isinstance(data.get("envelope_id"), str):
                    self._record_ack(conn.id, data)
        finally:
            with self._lock:
                conn.closed_at = time.time()
        return ws

    def _record_ack(self, connection_id: int, data: dict[str, Any]) -> None:
        payload = data.get("payload")
        with self._lock:
            envelope = self._envelopes.get(data["envelope_id"])
            self._acks.append(
                SocketAck(
                    envelope_id=data["envelope_id"],
                    payload=payload if isinstance(payload, dict) else None,
                    at=time.time(),
                    connection_id=connection_id,
                    envelope=envelope,
                )
            )

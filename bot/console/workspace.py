"""A local Slack workspace served over HTTP on 127.0.0.1 (its own thread and event loop).

It serves:

* the Web API under ``/api/<method>`` (point ``slack_sdk``'s ``base_url`` / the bot's
  ``SLACK_API_URL`` at :attr:`Workspace.api_url`), with Slack's auth rules, Block Kit
  limits, error codes and 429 rate limiting (see ``bot.console.web_api``);
* the external file-upload URLs handed out by ``files.getUploadURLExternal``;
* ``response_url`` endpoints (at most 5 uses within 30 minutes, like Slack);
* incoming webhooks at ``/services/T…/B…/SECRET`` (see ``bot.console.incoming_webhooks``);
* a Socket Mode websocket that ``apps.connections.open`` points at.

Synchronous and asynchronous code can both use it, since it never shares a loop. The
console (``bot.console.app``) adds its pages to the same server with :meth:`extend`.

Usage::

    with Workspace() as slack:
        client = WebClient(token=slack.token, base_url=slack.api_url)
        client.chat_postMessage(channel="C123", text="hi")
        assert slack.messages("C123")[0].text == "hi"
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from aiohttp import web

from bot.console.incoming_webhooks import IncomingWebhooks, WebhookPost
from bot.console.records import Call, SocketAck, SocketConnection, SocketEnvelope
from bot.console.socket_mode import SocketModeHub
from bot.console.web_api import WebApi
from bot.simulator.serving import BackgroundServer, StartStop

T = TypeVar("T")

_JSON_FIELDS = ("blocks", "attachments", "view", "files", "metadata")


class Workspace(WebApi, StartStop):
    """The Web API's state (:class:`WebApi`) behind a real HTTP server."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        max_socket_connections: int = 10,
        **web_api: Any,
    ) -> None:
        super().__init__(**web_api)
        self.sockets = SocketModeHub(self.app_id, max_connections=max_socket_connections, seed=seed)
        self._handlers["apps.connections.open"] = self._apps_connections_open
        self.incoming_webhooks = IncomingWebhooks()
        self._host = host
        self._requested_port = port
        self._server: BackgroundServer | None = None
        self._port: int | None = None
        self._extensions: list[Callable[[web.Application], None]] = []
        self._stop_hooks: list[Callable[[], Awaitable[None]]] = []

    # -- lifecycle -----------------------------------------------------------

    def extend(
        self,
        add_routes: Callable[[web.Application], None],
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Serve more routes on the same port (before :meth:`start`)."""
        self._extensions.append(add_routes)
        if on_stop is not None:
            self._stop_hooks.append(on_stop)

    def start(self) -> Workspace:
        if self._server is not None:
            raise RuntimeError("the workspace is already started")
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/v1/{ticket}", self._upload)
        app.router.add_post("/response/{rid}", self._response_url)
        app.router.add_get("/socket-mode/{n}", self.sockets.handle)
        self.incoming_webhooks.add_routes(app)
        for add_routes in self._extensions:
            add_routes(app)
        self._server = BackgroundServer(
            app,
            self._host,
            self._requested_port,
            name="SlackWorkspace",
            timeout=10.0,
            shutdown_timeout=1.0,
            on_stop=self._stopping,
        ).start()
        self._port = self._server.port
        self._base_url = f"http://{self._host}:{self._port}"
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    async def _stopping(self) -> None:
        for hook in self._stop_hooks:
            await hook()
        await self.sockets.close_all()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run ``coro`` on the serving loop, blocking the calling thread for its result."""
        if self._server is None:
            coro.close()
            raise RuntimeError("the workspace is not running; call start()")
        return self._server.run(coro, timeout)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the workspace is not running; call start()")
        return self._port

    def reset(self) -> None:
        """Forget recorded traffic, posted state and faults (directory and sockets stay)."""
        super().reset()
        self.sockets.forget_traffic()
        self.incoming_webhooks.forget()

    def incoming_webhook_url(self, team: str = "T00000000", hook: str = "B00000000") -> str:
        """An incoming webhook's address (any secret is accepted)."""
        return f"{self.base_url}/services/{team}/{hook}/{secrets.token_hex(12)}"

    @property
    def webhook_posts(self) -> list[WebhookPost]:
        """What arrived at incoming webhooks, oldest first."""
        return self.incoming_webhooks.posts

    # -- waiting -------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Poll ``predicate`` until it returns something truthy; return that value."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(0.01)

    async def async_wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> T:
        """Like :meth:`wait_for` but yields to the caller's event loop while polling."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.01)

    # -- Socket Mode ---------------------------------------------------------

    @property
    def socket_envelopes(self) -> list[SocketEnvelope]:
        return self.sockets.envelopes

    @property
    def socket_acks(self) -> list[SocketAck]:
        return self.sockets.acks

    def ack_for(self, envelope_id: str) -> SocketAck | None:
        return self.sockets.ack_for(envelope_id)

    @property
    def socket_connections(self) -> list[SocketConnection]:
        return self.sockets.connections

    def wait_for_socket_connection(self, timeout: float = 5.0, count: int = 1) -> None:
        """Block until ``count`` Socket Mode clients are connected (and not draining)."""
        self.wait_for(lambda: self.sockets.routable_count() >= count, timeout)

    async def async_wait_for_socket_connection(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109
        count: int = 1,
    ) -> None:
        await self.async_wait_for(lambda: self.sockets.routable_count() >= count, timeout)

    def socket_send(
        self,
        payload_type: str,
        payload: Mapping[str, Any],
        *,
        connection_id: int | None = None,
        accepts_response_payload: bool | None = None,
        timeout: float = 5.0,
    ) -> str:
        """Push an envelope to one connected client (chosen at random, like Slack).

        ``payload_type`` is ``"slash_commands"``, ``"interactive"`` or ``"events_api"``.
        ``accepts_response_payload`` defaults to what Slack sends: true for slash
        commands and view submissions, false for block actions and Events API.
        Returns the envelope_id. Raises RuntimeError if no client is connected.
        """
        if accepts_response_payload is None:
            accepts_response_payload = payload_type == "slash_commands" or (
                payload_type == "interactive"
                and payload.get("type") in ("view_submission", "block_suggestion")
            )
        envelope: dict[str, Any] = {
            "envelope_id": str(uuid.uuid4()),
            "type": payload_type,
            "payload": copy.deepcopy(dict(payload)),
            "accepts_response_payload": accepts_response_payload,
        }
        if payload_type == "events_api":
            envelope["retry_attempt"] = 0
            envelope["retry_reason"] = ""
        return self.run(self.sockets.send(envelope, connection_id), timeout)

    def disconnect(
        self,
        reason: str = "refresh_requested",
        *,
        connection_id: int | None = None,
        grace: float = 1.0,
        timeout: float = 5.0,
    ) -> list[int]:
        """Send ``{"type": "disconnect", "reason": ...}`` and close after ``grace`` seconds.

        Like Slack, nothing more is routed to a connection once it has been told to
        disconnect; the client is expected to open a new one. Returns the connection ids.
        """
        return self.run(self.sockets.disconnect(reason, connection_id, grace), timeout)

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.sockets.issue_url(self.port)}

    # -- HTTP ----------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        arrived = time.time()
        method = request.match_info["method"]
        headers = dict(request.headers.items())
        raw = b""
        try:
            params: dict[str, Any] = dict(request.query.items())
            if request.content_type.startswith("multipart/"):
                form = await request.post()
                for k, v in form.items():
                    params[k] = (
                        v
                        if isinstance(v, str)
                        else bytes(v)
                        if isinstance(v, (bytes, bytearray))
                        else v.file.read()
                    )
            else:
                raw = await request.read()
                if request.content_type == "application/json" and raw:
                    body = json.loads(raw)
                    if not isinstance(body, dict):
                        raise ValueError("not an object")
                    params.update(body)
                elif raw:
                    params.update(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
            for key in _JSON_FIELDS:
                value = params.get(key)
                if isinstance(value, str) and value:
                    # undecodable JSON stays a string; the method reports the format error
                    with contextlib.suppress(ValueError):
                        params[key] = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            error = {"ok": False, "error": "invalid_json"}
            return self._answer(Call(method, {}, headers, arrived, 200, error, raw))

        delay = self.delay_for(method)
        if delay:
            await asyncio.sleep(delay)

        token = None
        auth = request.headers.get("Authorization")
        if auth and auth.startswith("Bearer "):
            token = auth[len("Bearer ") :].strip()
        elif isinstance(params.get("token"), str):
            token = params["token"]
        params.pop("token", None)

        status, body, extra = self.call(method, params, token)
        call = Call(
            method, copy.deepcopy(params), headers, arrived, status, copy.deepcopy(body), raw
        )
        return self._answer(call, extra)

    def _answer(self, call: Call, extra_headers: dict[str, str] | None = None) -> web.Response:
        self.record(call)
        headers = {"X-Slack-Req-Id": secrets.token_hex(16), **(extra_headers or {})}
        return web.json_response(call.response, status=call.status, headers=headers)

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        data = b""
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            for value in form.values():
                if isinstance(value, (bytes, bytearray)):
                    data = bytes(value)
                    break
                if not isinstance(value, str):
                    data = value.file.read()
                    break
        else:
            data = await request.read()
        if not self.accept_upload(request.match_info["ticket"], data):
            return web.Response(status=404, text="invalid upload URL")
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _response_url(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any
        try:
            if request.content_type == "application/json":
                body = json.loads(raw)
            else:
                form = dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
                body = json.loads(form["payload"]) if "payload" in form else form
        except (ValueError, KeyError, UnicodeDecodeError):
            body = raw.decode(errors="replace")
        status, text = self.accept_response(
            request.match_info["rid"], body, dict(request.headers.items())
        )
        return web.Response(status=status, text=text)

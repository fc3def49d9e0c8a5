"""The demo console: a local Slack-style web page the unmodified bot talks to.

One aiohttp server on one port serves the Slack Web API at ``/api/<method>`` (the bot's
``SLACK_API_URL`` is :attr:`Console.api_url`, its token :attr:`Console.bot_token`) and the
page at ``/``. What a person does on the page reaches the bot's events URL exactly as
Slack sends it, signed with the signing secret: slash commands, ``block_actions``,
``view_submission``. Nothing is fetched from the internet: the page is plain files in
``static/``, and images are only loaded from this console or loopback addresses.

Page routes (JSON unless said): ``GET /console/config``; ``GET /console/state?user=U&after=N``
(long poll: answers once the state's revision passes N, or after 25 s);
``POST /console/send`` ``{user, channel, text, thread_ts?}``; ``POST /console/action``
``{user, channel, ts, ephemeral?, view_id?, block, element, value?, state?}``;
``POST /console/submit`` ``{user, view_id, state}``; ``POST /console/close``
``{user, view_id}``; ``GET /console/files/{id}`` (bytes); ``GET /console/simulator/index|
scenario|fleet`` and ``POST /console/simulator/scenario`` (proxied to the simulator).

``data-testid`` attributes of the page, for browser tests:

=========================  ==============================================================
``user-switcher``          the persona ``<select>`` (option values are user ids);
                           ``persona-role`` the selected person's role and id
``channel-<id>``           a channel in the channel list (``aria-current`` when shown)
``feed``                   the channel's messages
``message``                a message (``data-ts``, ``data-user``); ``edited`` inside when
                           it was updated
``ephemeral``              an "Only visible to you" reply (``data-ts``)
``file``                   an uploaded file (``data-file-id``), an ``<img>`` for images
``error-item``             a refused Web API call or an undelivered request
                           (``data-method``, ``data-source``): the error and Slack's
                           pointer messages
``command-echo``           a slash command as the person typed it (theirs only)
``block-<type>``           a rendered block (``block-header``, ``block-section`` …);
                           ``block-unsupported`` for a type the page cannot draw
``section-field``          a field of a section; ``accessory``: its accessory
``button-<action_id>``     a button (``data-value``, ``data-style``)
``select-<action_id>``     a select (static/overflow) in a message (in a modal: ``input-…``)
``thread-link``            "N replies" under a message; opens ``thread-pane``
``thread-pane``            the open thread; ``thread-close``, ``thread-input``
``composer-input``         the message box (``/vllm …`` sends a slash command);
                           ``composer-send`` its button; ``composer-error`` why the
                           last thing typed or clicked was not sent
``confirm-dialog``         a button's confirm dialog; ``confirm-yes``, ``confirm-no``
``modal``                  the top modal (``data-view-id``); ``modal-title``,
                           ``input-<block_id>-<action_id>``, ``modal-error-<block_id>``,
                           ``modal-error`` (not tied to a field), ``modal-submit``,
                           ``modal-close``
``live-status``            "live" while the page follows the state, else why not
``side-panel``             the simulator panel; ``scenario-<name>`` buttons,
                           ``scenario-truth``, ``fleet-panel``, ``fleet-refresh``,
                           ``simulator-error``, ``link-prometheus``, ``link-alertmanager``
=========================  ==============================================================

A block the app gave no ``block_id`` is named ``b<index>``, an element without an
``action_id`` ``a<index>`` (Slack makes up ids too; these are stable).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import secrets
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.console.delivery import BotUnreachable, SignedResponse, post_signed
from bot.console.feed import Notice, snapshot
from bot.console.interactions import (
    UnknownElement,
    action_entry,
    locate,
    state_values,
)
from bot.console.payloads import (
    block_action_payload,
    make_ts,
    slash_command_body,
    view_submission_payload,
)
from bot.console.personas import CHANNELS, PERSONAS, USERGROUPS, Channel, Persona
from bot.console.web_api import Origin
from bot.console.workspace import Workspace
from bot.simulator.serving import StartStop

STATIC = Path(__file__).parent / "static"
LONG_POLL_S = 25.0
SIMULATOR_PATHS = {"index": "/", "scenario": "/scenario", "fleet": "/fleet"}


class Console(StartStop):
    """The console: a workspace with personas and channels, the page, and delivery.

    ``events_url`` is the bot's ``/slack/events``; ``signing_secret`` the one the bot
    verifies with. ``port=None`` picks a free port. The bot token is made up per console
    unless given; configure the bot with :attr:`bot_token` and :attr:`api_url`.
    """

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        *,
        simulator_url: str | None = None,
        prometheus_url: str | None = None,
        alertmanager_url: str | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        bot_token: str | None = None,
        personas: Sequence[Persona] = PERSONAS,
        channels: Sequence[Channel] = CHANNELS,
        usergroups: Mapping[str, Sequence[str]] = USERGROUPS,
        answer_within: float = 3.0,
    ) -> None:
        self.events_url = events_url
        self.signing_secret = signing_secret
        self.simulator_url = simulator_url.rstrip("/") if simulator_url else None
        self.links = {"prometheus": prometheus_url, "alertmanager": alertmanager_url}
        self.personas = {p.id: p for p in personas}
        self.channels = list(channels)
        self.default_channel = self.channels[0]
        self.answer_within = answer_within
        self.workspace = Workspace(
            host=host,
            port=port or 0,
            token=bot_token or f"xoxb-console-{secrets.token_hex(12)}",
            channels=[(c.id, c.name) for c in channels],
            users=[(p.id, p.handle, p.real_name) for p in personas],
        )
        for group_id, members in usergroups.items():
            self.workspace.add_usergroup(group_id, members)
        self.workspace.extend(self._add_routes, on_stop=self._closing)
        self._notices: list[Notice] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    # -- lifecycle and addresses ---------------------------------------------

    def start(self) -> Console:
        self.workspace.start()
        return self

    def stop(self) -> None:
        self.workspace.stop()

    @property
    def url(self) -> str:
        return self.workspace.base_url

    @property
    def api_url(self) -> str:
        """The bot's ``SLACK_API_URL``."""
        return self.workspace.api_url

    @property
    def bot_token(self) -> str:
        """The bot's ``SLACK_BOT_TOKEN``: the only token this workspace accepts."""
        return self.workspace.token

    def link(self, channel: str, ts: str) -> str:
        """The page's address opened at one message."""
        return f"{self.url}/#{channel}/{ts}"

    def reset(self) -> None:
        """Start over: no messages, files, modals or notices (people and channels stay)."""
        with self._lock:
            self._notices.clear()
        self.workspace.reset()

    def notices(self) -> list[Notice]:
        with self._lock:
            return list(self._notices)

    def _add_routes(self, app: web.Application) -> None:
        app.on_startup.append(self._starting)
        app.router.add_get("/", self._index)
        app.router.add_static("/static", STATIC)
        app.router.add_get("/console/config", self._config)
        app.router.add_get("/console/state", self._state)
        app.router.add_post("/console/send", self._send)
        app.router.add_post("/console/action", self._action)
        app.router.add_post("/console/submit", self._submit)
        app.router.add_post("/console/close", self._close)
        app.router.add_get("/console/files/{file_id}", self._file)
        app.router.add_route("*", "/console/simulator/{what}", self._simulator)

    async def _starting(self, app: web.Application) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._session = aiohttp.ClientSession()
        self.workspace.watch(self._poke)

    async def _closing(self) -> None:
        self._closed = True
        self._wake()  # long polls answer now rather than hold the shutdown up
        if self._session is not None:
            await self._session.close()

    def _poke(self) -> None:
        """From any thread: the workspace changed."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        if changed is not None:
            changed.set()

    def _notice(self, notice: Notice) -> None:
        with self._lock:
            self._notices.append(notice)
        self.workspace.touch()

    # -- the page and its state ----------------------------------------------

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "personas": [
                    {"id": p.id, "handle": p.handle, "real_name": p.real_name, "role": p.role}
                    for p in self.personas.values()
                ],
                "default_channel": self.default_channel.id,
                "bot_name": self.workspace.bot_name,
                "links": {k: v for k, v in self.links.items() if v},
                "simulator": self.simulator_url is not None,
            }
        )

    async def _state(self, request: web.Request) -> web.Response:
        viewer = request.query.get("user", "")
        try:
            after = int(request.query.get("after", "-1"))
        except ValueError:
            after = -1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LONG_POLL_S
        while self.workspace.revision <= after and not self._closed:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            assert self._changed is not None  # set at startup
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        state = snapshot(self.workspace, self.notices(), viewer, self.default_channel.id)
        return web.json_response(state)

    async def _file(self, request: web.Request) -> web.Response:
        found = self.workspace.file_data(request.match_info["file_id"])
        if found is None:
            return web.json_response({"error": "no such file"}, status=404)
        record, data = found
        ctype = mimetypes.guess_type(record.filename)[0] or "application/octet-stream"
        return web.Response(body=data, content_type=ctype)

    # -- what a person does ----------------------------------------------------

    async def _body(self, request: web.Request) -> tuple[dict[str, Any], Persona]:
        try:
            body = await request.json()
        except ValueError as exc:
            raise web.HTTPBadRequest(text="body must be JSON") from exc
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        persona = self.personas.get(str(body.get("user", "")))
        if persona is None:
            raise web.HTTPBadRequest(text=f"unknown user {body.get('user')!r}")
        return body, persona

    def _channel_name(self, channel_id: str) -> str:
        found = next((c for c in self.workspace.channels if c["id"] == channel_id), None)
        return str(found["name"]) if found else channel_id.lower()

    async def _send(self, request: web.Request) -> web.Response:
        body, persona = await self._body(request)
        text = str(body.get("text", "")).strip()
        channel = str(body.get("channel") or self.default_channel.id)
        thread_ts = body.get("thread_ts") or None
        if not text:
            return web.json_response({"ok": False, "error": "nothing to send"}, status=400)
        if not text.startswith("/"):
            self.workspace.post_as_user(channel, persona.id, text, thread_ts)
            return web.json_response({"ok": True})
        command, _, rest = text.partition(" ")
        self._notice(Notice(channel, make_ts(), "command", text, persona.id, thread_ts))
        ws = self.workspace
        form = slash_command_body(
            rest.strip(),
            command,
            persona.id,
            channel,
            ws.new_response_url(user=persona.id, channel=channel),
            ws.new_trigger_id(user=persona.id, channel=channel),
            user_name=persona.handle,
            channel_name=self._channel_name(channel),
            team_id=ws.team_id,
            team_domain=ws.team_domain,
            api_app_id=ws.app_id,
        )
        answer = await self._deliver(form, command, persona, channel, thread_ts)
        if answer is None:
            return web.json_response({"ok": False, "error": "the bot did not take the command"})
        if answer.body.strip():  # an immediate answer: shown to the person, like Slack
            reply = _reply_body(answer.body)
            errors = ws.reply(Origin(persona.id, channel), reply)
            if errors:
                detail = tuple(errors[:20])
                self._notice(
                    Notice(channel, make_ts(), "error", "invalid_blocks", persona.id, None, detail)
                )
        return web.json_response({"ok": True})

    async def _action(self, request: web.Request) -> web.Response:
        body, persona = await self._body(request)
        ws = self.workspace
        channel = str(body.get("channel") or self.default_channel.id)
        ts = str(body.get("ts") or "")
        view_id = body.get("view_id")
        ephemeral = bool(body.get("ephemeral"))
        view: dict[str, Any] | None = None
        message: dict[str, Any] | None = None
        if view_id:
            record = next((v for v in ws.views if v.id == view_id and v.user == persona.id), None)
            if record is None:
                return web.json_response({"ok": False, "error": "no such modal"}, status=404)
            view, blocks, channel = record.view, record.view.get("blocks", []), record.channel or ""
        elif ephemeral:
            found = next(
                (
                    e
                    for e in ws.ephemerals
                    if e.message_ts == ts and e.user == persona.id and e.channel == channel
                ),
                None,
            )
            if found is None:
                return web.json_response({"ok": False, "error": "no such message"}, status=404)
            blocks = found.blocks
        else:
            message = ws.message_json(channel, ts)
            if message is None:
                return web.json_response({"ok": False, "error": "no such message"}, status=404)
            blocks = message.get("blocks", [])
        element = body.get("element")
        try:
            located = locate(
                blocks,
                int(body.get("block", -1)),
                element if isinstance(element, (int, str)) else -1,
            )
        except (UnknownElement, TypeError, ValueError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        raw_state = body.get("state") if isinstance(body.get("state"), dict) else {}
        thread_ts = (message or {}).get("thread_ts")
        payload = block_action_payload(
            located.action_id,
            str(located.element.get("value", "")),
            persona.id,
            channel,
            ts or None,
            ws.new_trigger_id(user=persona.id, channel=channel),
            block_id=located.block_id,
            response_url=ws.new_response_url(
                user=persona.id,
                channel=channel,
                message_ts=ts or None,
                thread_ts=thread_ts,
                is_ephemeral=ephemeral,
            ),
            message=message,
            thread_ts=thread_ts,
            action=action_entry(located, body.get("value")),
            state_values=state_values(blocks, raw_state or {}),
            is_ephemeral=ephemeral,
            view=view,
            user_name=persona.handle,
            channel_name=self._channel_name(channel),
            team_id=ws.team_id,
            team_domain=ws.team_domain,
            api_app_id=ws.app_id,
        )
        form = urllib.parse.urlencode({"payload": json.dumps(payload)})
        answer = await self._deliver(form, located.action_id, persona, channel, thread_ts)
        if answer is None:
            return web.json_response({"ok": False, "error": "the bot did not take the click"})
        return web.json_response({"ok": True})

    async def _submit(self, request: web.Request) -> web.Response:
        body, persona = await self._body(request)
        ws = self.workspace
        record = next(
            (v for v in ws.views if v.id == body.get("view_id") and v.user == persona.id), None
        )
        if record is None or record.closed:
            return web.json_response({"ok": False, "error": "no such modal"}, status=404)
        raw_state = body.get("state") if isinstance(body.get("state"), dict) else {}
        payload = view_submission_payload(
            record.callback_id,
            record.private_metadata,
            state_values(record.view.get("blocks", []), raw_state or {}),
            persona.id,
            view=record.view,
            trigger_id=ws.new_trigger_id(user=persona.id, channel=record.channel),
            user_name=persona.handle,
            team_id=ws.team_id,
            team_domain=ws.team_domain,
            api_app_id=ws.app_id,
        )
        form = urllib.parse.urlencode({"payload": json.dumps(payload)})
        channel = record.channel or self.default_channel.id
        answer = await self._deliver(form, "the modal", persona, channel, None)
        if answer is None:
            failed = "the bot did not take the submission; try again"
            ws.answer_submission(record.id, {"response_action": "errors", "errors": {"": failed}})
            return web.json_response({"ok": False, "error": failed})
        problem = ws.answer_submission(record.id, _json_object(answer.body))
        return web.json_response({"ok": problem is None, "error": problem})

    async def _close(self, request: web.Request) -> web.Response:
        body, persona = await self._body(request)
        view_id = str(body.get("view_id", ""))
        mine = any(v.id == view_id and v.user == persona.id for v in self.workspace.views)
        closed = mine and self.workspace.close_view(view_id)
        return web.json_response({"ok": closed})

    async def _deliver(
        self, form: str, what: str, persona: Persona, channel: str, thread_ts: str | None
    ) -> SignedResponse | None:
        """Send a signed request to the bot; what went wrong is shown to the person."""
        assert self._session is not None
        problem: str | None = None
        detail: tuple[str, ...] = ()
        try:
            answer = await post_signed(
                self._session,
                self.events_url,
                form,
                self.signing_secret,
                answer_within=self.answer_within,
            )
        except BotUnreachable as exc:
            problem = f"{what}: the bot did not answer: {exc}"
        else:
            if answer.status == 200:
                return answer
            problem = f"{what}: the bot answered HTTP {answer.status}"
            detail = (answer.body.decode(errors="replace")[:500],)
        self._notice(Notice(channel, make_ts(), "error", problem, persona.id, thread_ts, detail))
        return None

    # -- the simulator panel ---------------------------------------------------

    async def _simulator(self, request: web.Request) -> web.Response:
        path = SIMULATOR_PATHS.get(request.match_info["what"])
        if self.simulator_url is None:
            return web.json_response({"error": "no simulator is configured"}, status=404)
        if path is None or (request.method == "POST" and path != "/scenario"):
            return web.json_response({"error": "not a simulator endpoint"}, status=404)
        url = self.simulator_url + path
        assert self._session is not None
        try:
            async with self._session.request(
                request.method,
                url,
                data=await request.read() if request.method == "POST" else None,
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                status, raw = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"the simulator at {self.simulator_url} did not answer: {exc or 'timeout'}"
            return web.json_response({"error": error}, status=502)
        try:
            data = json.loads(raw)
        except ValueError:
            data = {"error": raw.decode(errors="replace")[:500]}
        if status >= 400 and not (isinstance(data, dict) and "error" in data):
            data = {"error": f"HTTP {status}", "body": data}
        return web.json_response(data, status=status)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw) if raw.strip() else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _reply_body(raw: bytes) -> Mapping[str, Any]:
    """An app's immediate answer to a command: JSON with text/blocks, or plain text."""
    data = _json_object(raw)
    return data if data is not None else {"text": raw.decode(errors="replace")}

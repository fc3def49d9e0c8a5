"""A tiny app standing in for the bot behind the console: it checks Slack's signature on
every request, records what arrived, and answers slash commands by a script through the
console's Web API (the real bot's own paths are tested elsewhere).

``/vllm <script>`` scripts: ``blocks`` (every block type the console draws), ``xss``
(markup in text), ``invalid`` (blocks Slack refuses), ``whisper`` (an ephemeral),
``reply`` (an ephemeral through the response_url), ``modal`` (views.open), ``confirm``
(a button behind a confirm dialog). A submission whose ``replicas`` is not a number gets
field errors; any other closes the modal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import threading
import urllib.parse
import zlib
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.simulator.serving import BackgroundServer, StartStop


def png(width: int = 40, height: int = 20, rgb: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    """A small one-colour PNG (a stand-in chart)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Received:
    """One request Slack (here: the console) sent to the app."""

    kind: str  # "command", "block_actions", "view_submission", …
    fields: dict[str, Any]  # the form fields of a command, or the decoded payload
    body: bytes
    headers: dict[str, str]
    signed: bool


def rich_blocks(image_url: str) -> list[dict[str, Any]]:
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Diagnosis: high latency"}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "*p99* is _high_ on ~two~ `3` replicas"},
            "fields": [
                {"type": "mrkdwn", "text": "*Runbook*\nhigh_latency"},
                {"type": "mrkdwn", "text": "*Status*\n:red_circle: crit"},
            ],
            "accessory": {
                "type": "button",
                "action_id": "open_runbook",
                "text": {"type": "plain_text", "text": "Runbook"},
                "value": "high_latency",
            },
        },
        {"type": "divider"},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": "checked by <@U0ONCALL> in <#C0INCIDENTS>"}],
        },
        {"type": "image", "image_url": image_url, "alt_text": "a chart"},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "scale_out",
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Scale out"},
                    "value": "req-1",
                },
                {
                    "type": "button",
                    "action_id": "rollback",
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Roll back"},
                    "value": "req-2",
                },
            ],
        },
    ]


CONFIRM_BLOCKS = [
    {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "drain",
                "style": "danger",
                "text": {"type": "plain_text", "text": "Drain node-1"},
                "value": "req-drain",
                "confirm": {
                    "title": {"type": "plain_text", "text": "Drain node-1?"},
                    "text": {"type": "mrkdwn", "text": "This *drains* node-1."},
                    "confirm": {"type": "plain_text", "text": "Show plan"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                    "style": "danger",
                },
            }
        ],
    }
]

MODAL = {
    "type": "modal",
    "callback_id": "plan",
    "private_metadata": "req-9",
    "title": {"type": "plain_text", "text": "Confirm scale"},
    "submit": {"type": "plain_text", "text": "Confirm"},
    "close": {"type": "plain_text", "text": "Cancel"},
    "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*scale* `inference/llama`"}},
        {
            "type": "input",
            "block_id": "param_replicas",
            "label": {"type": "plain_text", "text": "Replicas"},
            "element": {"type": "plain_text_input", "action_id": "replicas", "initial_value": "8"},
        },
        {
            "type": "input",
            "block_id": "param_reason",
            "optional": True,
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {
                "type": "static_select",
                "action_id": "reason",
                "options": [
                    {"text": {"type": "plain_text", "text": "Load"}, "value": "load"},
                    {"text": {"type": "plain_text", "text": "Drill"}, "value": "drill"},
                ],
            },
        },
    ],
}

INVALID_BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}]


class ScriptedBot(StartStop):
    """The app at ``events_url``; ``client`` must be set before a script runs."""

    def __init__(self, signing_secret: str) -> None:
        self.verifier = SignatureVerifier(signing_secret)
        self.client: AsyncWebClient | None = None
        self.image_url = ""  # the image block's URL in the ``blocks`` script
        self.status = 200  # what /slack/events answers (e.g. 500 to test a broken bot)
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        app = web.Application()
        app.router.add_post("/slack/events", self._events)
        app.router.add_get("/chart.png", self._chart)
        self._server = BackgroundServer(app, name="ScriptedBot", timeout=10, shutdown_timeout=1)

    def start(self) -> ScriptedBot:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def connect(self, api_url: str, token: str) -> None:
        self.client = AsyncWebClient(token=token, base_url=api_url)

    @property
    def events_url(self) -> str:
        return f"{self._server.url}/slack/events"

    @property
    def chart_url(self) -> str:
        """An image on a loopback address, which the console's page may load."""
        return f"{self._server.url}/chart.png"

    def forget(self) -> None:
        with self._lock:
            self._received.clear()

    async def _chart(self, request: web.Request) -> web.Response:
        return web.Response(body=png(), content_type="image/png")

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def of_kind(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.kind == kind]

    async def _events(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers.items())
        signed = self.verifier.is_valid_request(body, headers)
        form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        fields: dict[str, Any] = json.loads(form["payload"]) if "payload" in form else form
        kind = "command" if "command" in fields else str(fields.get("type"))
        with self._lock:
            self._received.append(Received(kind, fields, body, headers, signed))
        if not signed:
            return web.json_response({"error": "invalid request"}, status=401)
        if self.status != 200:
            return web.Response(status=self.status, text="the app broke")
        if kind == "view_submission":
            return self._submission(fields)
        if kind == "command":
            task = asyncio.create_task(self._script(fields))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response()

    @staticmethod
    def _submission(payload: dict[str, Any]) -> web.Response:
        values = payload["view"]["state"]["values"]
        replicas = values["param_replicas"]["replicas"]["value"] or ""
        if not replicas.isdigit():
            errors = {"param_replicas": "replicas must be a whole number"}
            return web.json_response({"response_action": "errors", "errors": errors})
        return web.Response()

    async def _script(self, command: dict[str, str]) -> None:
        client = self.client
        assert client is not None, "connect() the bot to the console first"
        channel, user, script = command["channel_id"], command["user_id"], command["text"]
        if script == "blocks":
            blocks = rich_blocks(self.image_url or self.chart_url)
            await client.chat_postMessage(channel=channel, text="diagnosis", blocks=blocks)
        elif script == "xss":
            text = (
                "<script>window.pwned = 1</script> <b>html</b> *real bold* "
                "a &lt;tag&gt; &amp;amp; <https://example.com/x?a=1&amp;b=2|a link>"
            )
            await client.chat_postMessage(channel=channel, text=text)
        elif script == "invalid":
            with contextlib.suppress(SlackApiError):  # refused: the console shows it
                await client.chat_postMessage(channel=channel, text="broken", blocks=INVALID_BLOCKS)
        elif script == "whisper":
            await client.chat_postEphemeral(channel=channel, user=user, text="just for you")
        elif script == "reply":
            answer = {"response_type": "ephemeral", "text": "a private answer"}
            async with aiohttp.ClientSession() as session:
                await session.post(command["response_url"], json=answer)
        elif script == "modal":
            await client.views_open(trigger_id=command["trigger_id"], view=MODAL)
        elif script == "confirm":
            await client.chat_postMessage(channel=channel, text="drain?", blocks=CONFIRM_BLOCKS)
        elif script == "chart":
            await client.files_upload_v2(
                channel=channel, content=png(), filename="chart.png", title="p99 latency"
            )

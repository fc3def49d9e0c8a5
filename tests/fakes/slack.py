"""A local fake of Slack that speaks Slack's wire protocols over real sockets.

`FakeSlack` is an aiohttp server on 127.0.0.1 (a free port) running on its own thread
and event loop, so synchronous and asynchronous tests can both use it. It serves:

* the Web API under ``/api/<method>`` (point ``slack_sdk``'s ``base_url`` / the bot's
  ``SLACK_API_URL`` at :attr:`FakeSlack.api_url`), with Slack's auth rules, Block Kit
  limits, error codes and 429 rate limiting;
* the external file-upload URLs handed out by ``files.getUploadURLExternal``;
* ``response_url`` endpoints (at most 5 uses within 30 minutes, like Slack);
* a Socket Mode websocket that ``apps.connections.open`` points at (``hello`` on connect,
  envelopes to one connected client, acks recorded, ``disconnect`` messages).

Module-level helpers build the signed form bodies Slack POSTs to an app's
``/slack/events`` endpoint (slash commands, block actions, view submissions).

Everything a test needs to assert on is recorded and readable from any thread:
:attr:`FakeSlack.calls`, :meth:`FakeSlack.messages`, :attr:`FakeSlack.files`,
:attr:`FakeSlack.responses`, :attr:`FakeSlack.socket_acks`, ... Readers get copies.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import mimetypes
import random
import re
import secrets
import string
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import WSMsgType, web
from slack_sdk.signature import SignatureVerifier

from bot.simulator.serving import BackgroundServer, StartStop

T = TypeVar("T")

DEFAULT_BOT_TOKEN = "xoxb-fake-bot-token"
DEFAULT_APP_TOKEN = "xapp-1-A0FAKE-fake-app-token"
DEFAULT_TEAM_ID = "T0FAKE"
DEFAULT_TEAM_DOMAIN = "fake-workspace"
DEFAULT_APP_ID = "A0FAKE"
DEFAULT_BOT_USER_ID = "U0BOT"
DEFAULT_BOT_ID = "B0BOT"
# A response_url that can never reach the internet (TCP discard port on loopback):
# builders fall back to it so an app under test never talks to the real Slack.
UNROUTED_RESPONSE_URL = "http://127.0.0.1:9/response/unset"

# Slack's documented limits.
MAX_MESSAGE_TEXT = 40_000
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_TTL = 30 * 60.0
TRIGGER_ID_TTL = 3.0

_TRIGGER_RE = re.compile(r"^(\d{13})\.\d{6,}\.[0-9a-f]{32}$")
_USER_ID_RE = re.compile(r"^[UW][A-Z0-9]{2,}$")
_CHANNEL_ID_RE = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_JSON_FIELDS = ("blocks", "attachments", "view", "files", "metadata")


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One Web API request as the fake received it.

    ``params`` merges the query string and the body (form or JSON); JSON-valued form
    fields (``blocks``, ``attachments``, ``view``, ``files``, ``metadata``) are decoded.
    The token is not part of ``params`` (it travels in ``headers["Authorization"]``).
    """

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    at: float
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass(frozen=True)
class MessageVersion:
    text: str
    blocks: list[dict[str, Any]]
    at: float
    method: str  # "chat.postMessage" or "chat.update"


@dataclass
class Message:
    """A message's current state; ``history`` lists every version, oldest first."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    user: str
    history: list[MessageVersion]
    metadata: dict[str, Any] | None = None

    @property
    def edited(self) -> bool:
        return len(self.history) > 1


@dataclass(frozen=True)
class Ephemeral:
    channel: str
    user: str
    message_ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    at: float


@dataclass
class UploadedFile:
    id: str
    filename: str
    length: int
    title: str | None = None
    data: bytes | None = None
    channel: str | None = None
    channels: list[str] = field(default_factory=list)
    thread_ts: str | None = None
    initial_comment: str | None = None
    alt_txt: str | None = None
    completed: bool = False
    created: float = 0.0
    uploaded_at: float | None = None
    completed_at: float | None = None


@dataclass
class View:
    """A modal opened with views.open/views.push; ``history`` holds every version."""

    id: str
    view: dict[str, Any]
    trigger_id: str | None
    opened_at: float
    history: list[dict[str, Any]]

    @property
    def callback_id(self) -> str:
        return str(self.view.get("callback_id", ""))

    @property
    def private_metadata(self) -> str:
        return str(self.view.get("private_metadata", ""))


@dataclass(frozen=True)
class ResponsePost:
    """One POST to a response_url; ``status`` is what the fake answered."""

    response_id: str
    body: Any
    headers: dict[str, str]
    at: float
    status: int


@dataclass(frozen=True)
class SocketEnvelope:
    envelope_id: str
    type: str
    payload: dict[str, Any]
    sent_at: float
    connection_id: int
    accepts_response_payload: bool


@dataclass(frozen=True)
class SocketAck:
    """An acknowledgement a Socket Mode client sent back."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float
    connection_id: int
    envelope: SocketEnvelope | None

    @property
    def latency(self) -> float | None:
        """Seconds between the envelope leaving the fake and its ack arriving."""
        return None if self.envelope is None else self.at - self.envelope.sent_at


@dataclass(frozen=True)
class SocketConnection:
    id: int
    connected_at: float
    closed_at: float | None
    draining: bool  # a disconnect message was sent; Slack routes nothing more to it

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True)
class SignedResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float


# ---------------------------------------------------------------------------
# Block Kit validation (Slack's documented limits, Slack's error-message style)
# ---------------------------------------------------------------------------


def _ptr_len(errors: list[str], value: Any, limit: int, ptr: str) -> None:
    if isinstance(value, str) and len(value) > limit:
        errors.append(f"must be less than {limit + 1} characters [json-pointer:{ptr}]")


def _check_text(
    errors: list[str],
    obj: Any,
    ptr: str,
    limit: int,
    *,
    plain_only: bool = False,
    required: bool = True,
) -> None:
    if obj is None:
        if required:
            errors.append(f"missing required field: {ptr.rsplit('/', 1)[-1]} [json-pointer:{ptr}]")
        return
    if not isinstance(obj, dict):
        errors.append(f"expected object [json-pointer:{ptr}]")
        return
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if obj.get("type") not in allowed:
        errors.append(f"must be a valid enum value [json-pointer:{ptr}/type]")
    text = obj.get("text")
    if not isinstance(text, str):
        errors.append(f"missing required field: text [json-pointer:{ptr}/text]")
    elif not text:
        errors.append(f"must be more than 0 characters [json-pointer:{ptr}/text]")
    else:
        _ptr_len(errors, text, limit, f"{ptr}/text")


def _check_confirm(errors: list[str], confirm: Any, ptr: str) -> None:
    if not isinstance(confirm, dict):
        errors.append(f"expected object [json-pointer:{ptr}]")
        return
    _check_text(errors, confirm.get("title"), f"{ptr}/title", 100, plain_only=True)
    _check_text(errors, confirm.get("text"), f"{ptr}/text", 300)
    _check_text(errors, confirm.get("confirm"), f"{ptr}/confirm", 30, plain_only=True)
    _check_text(errors, confirm.get("deny"), f"{ptr}/deny", 30, plain_only=True)


def _check_options(errors: list[str], options: Any, ptr: str, max_items: int) -> None:
    if not isinstance(options, list):
        errors.append(f"expected array [json-pointer:{ptr}]")
        return
    if len(options) > max_items:
        errors.append(f"no more than {max_items} items allowed [json-pointer:{ptr}]")
    for i, option in enumerate(options):
        p = f"{ptr}/{i}"
        if not isinstance(option, dict):
            errors.append(f"expected object [json-pointer:{p}]")
            continue
        _check_text(errors, option.get("text"), f"{p}/text", 75)
        _ptr_len(errors, option.get("value"), 150, f"{p}/value")
        if option.get("description") is not None:
            _check_text(errors, option.get("description"), f"{p}/description", 75)


def _check_element(errors: list[str], element: Any, ptr: str) -> None:
    if not isinstance(element, dict):
        errors.append(f"expected object [json-pointer:{ptr}]")
        return
    etype = element.get("type")
    if not isinstance(etype, str):
        errors.append(f"missing required field: type [json-pointer:{ptr}]")
        return
    _ptr_len(errors, element.get("action_id"), 255, f"{ptr}/action_id")
    if element.get("confirm") is not None:
        _check_confirm(errors, element["confirm"], f"{ptr}/confirm")
    if etype == "button":
        _check_text(errors, element.get("text"), f"{ptr}/text", 75, plain_only=True)
        _ptr_len(errors, element.get("value"), 2000, f"{ptr}/value")
        _ptr_len(errors, element.get("url"), 3000, f"{ptr}/url")
        if element.get("style") not in (None, "primary", "danger"):
            errors.append(f"must be a valid enum value [json-pointer:{ptr}/style]")
    elif etype.endswith("_select"):
        if element.get("placeholder") is not None:
            _check_text(errors, element["placeholder"], f"{ptr}/placeholder", 150, plain_only=True)
        if element.get("options") is not None:
            _check_options(errors, element["options"], f"{ptr}/options", 100)
    elif etype == "overflow":
        _check_options(errors, element.get("options"), f"{ptr}/options", 5)
    elif etype in ("checkboxes", "radio_buttons"):
        _check_options(errors, element.get("options"), f"{ptr}/options", 10)
    elif etype == "plain_text_input":
        if element.get("placeholder") is not None:
            _check_text(errors, element["placeholder"], f"{ptr}/placeholder", 150, plain_only=True)
    elif etype == "image":
        _ptr_len(errors, element.get("image_url"), 3000, f"{ptr}/image_url")
        if not element.get("alt_text"):
            errors.append(f"missing required field: alt_text [json-pointer:{ptr}]")
        _ptr_len(errors, element.get("alt_text"), 2000, f"{ptr}/alt_text")


def _check_section(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    text, fields = block.get("text"), block.get("fields")
    if text is None and not fields:
        errors.append(f"must provide either text or fields [json-pointer:{ptr}]")
    if text is not None:
        _check_text(errors, text, f"{ptr}/text", 3000)
    if fields is not None:
        if not isinstance(fields, list):
            errors.append(f"expected array [json-pointer:{ptr}/fields]")
        else:
            if len(fields) > 10:
                errors.append(f"no more than 10 items allowed [json-pointer:{ptr}/fields]")
            for i, f in enumerate(fields):
                _check_text(errors, f, f"{ptr}/fields/{i}", 2000)
    if block.get("accessory") is not None:
        _check_element(errors, block["accessory"], f"{ptr}/accessory")


def _check_header(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    _check_text(errors, block.get("text"), f"{ptr}/text", 150, plain_only=True)


def _check_elements(
    block: dict[str, Any], ptr: str, errors: list[str], max_items: int, *, context: bool
) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        errors.append(f"must provide at least 1 element [json-pointer:{ptr}/elements]")
        return
    if len(elements) > max_items:
        errors.append(f"no more than {max_items} items allowed [json-pointer:{ptr}/elements]")
    for i, element in enumerate(elements):
        p = f"{ptr}/elements/{i}"
        if (
            context
            and isinstance(element, dict)
            and element.get("type") in ("plain_text", "mrkdwn")
        ):
            _check_text(errors, element, p, 3000)
        else:
            _check_element(errors, element, p)


def _check_actions(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    _check_elements(block, ptr, errors, 25, context=False)


def _check_context(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    _check_elements(block, ptr, errors, 10, context=True)


def _check_image(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    if not block.get("image_url") and not block.get("slack_file"):
        errors.append(f"missing required field: image_url [json-pointer:{ptr}]")
    _ptr_len(errors, block.get("image_url"), 3000, f"{ptr}/image_url")
    if not block.get("alt_text"):
        errors.append(f"missing required field: alt_text [json-pointer:{ptr}]")
    _ptr_len(errors, block.get("alt_text"), 2000, f"{ptr}/alt_text")
    if block.get("title") is not None:
        _check_text(errors, block["title"], f"{ptr}/title", 2000, plain_only=True)


def _check_input(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    _check_text(errors, block.get("label"), f"{ptr}/label", 2000, plain_only=True)
    if block.get("hint") is not None:
        _check_text(errors, block["hint"], f"{ptr}/hint", 2000, plain_only=True)
    if block.get("element") is None:
        errors.append(f"missing required field: element [json-pointer:{ptr}]")
    else:
        _check_element(errors, block["element"], f"{ptr}/element")


def _check_markdown(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    _ptr_len(errors, block.get("text"), 12_000, f"{ptr}/text")


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str, list[str]], None]] = {
    "section": _check_section,
    "header": _check_header,
    "actions": _check_actions,
    "context": _check_context,
    "image": _check_image,
    "input": _check_input,
    "markdown": _check_markdown,
}


def validate_blocks(
    blocks: Sequence[Any], *, max_blocks: int = MAX_MESSAGE_BLOCKS, pointer: str = "/blocks"
) -> list[str]:
    """Slack-style error strings for a list of blocks (empty list = valid)."""
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:{pointer}]")
    seen_block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        ptr = f"{pointer}/{i}"
        if not isinstance(block, dict):
            errors.append(f"expected object [json-pointer:{ptr}]")
            continue
        btype = block.get("type")
        if not isinstance(btype, str):
            errors.append(f"missing required field: type [json-pointer:{ptr}]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            _ptr_len(errors, block_id, 255, f"{ptr}/block_id")
            if block_id in seen_block_ids:
                errors.append(f"duplicate block_id {block_id!r} [json-pointer:{ptr}/block_id]")
            seen_block_ids.add(str(block_id))
        check = _BLOCK_CHECKS.get(btype)
        if check is not None:
            check(block, ptr, errors)
    return errors


def validate_view(view: Mapping[str, Any], *, pointer: str = "/view") -> list[str]:
    """Slack-style error strings for a modal/home view (empty list = valid)."""
    errors: list[str] = []
    vtype = view.get("type")
    if vtype not in ("modal", "home"):
        errors.append(f"must be a valid enum value [json-pointer:{pointer}/type]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        errors.append(f"missing required field: blocks [json-pointer:{pointer}]")
        blocks = []
    errors.extend(validate_blocks(blocks, max_blocks=MAX_VIEW_BLOCKS, pointer=f"{pointer}/blocks"))
    if vtype == "modal":
        _check_text(errors, view.get("title"), f"{pointer}/title", 24, plain_only=True)
        for key in ("submit", "close"):
            if view.get(key) is not None:
                _check_text(errors, view[key], f"{pointer}/{key}", 24, plain_only=True)
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
        if has_input and view.get("submit") is None:
            errors.append(
                f"must provide submit property when using input blocks [json-pointer:{pointer}]"
            )
    _ptr_len(errors, view.get("callback_id"), 255, f"{pointer}/callback_id")
    _ptr_len(errors, view.get("private_metadata"), 3000, f"{pointer}/private_metadata")
    _ptr_len(errors, view.get("external_id"), 255, f"{pointer}/external_id")
    return errors


# ---------------------------------------------------------------------------
# Requests Slack sends to an app: signatures and payload builders
# ---------------------------------------------------------------------------


def signed_headers(secret: str, body: str | bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers Slack signs each request to an app with (v0 HMAC-SHA256)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def make_trigger_id(at: float | None = None) -> str:
    """A trigger_id like Slack's; FakeSlack's views.open reads its issue time (3 s TTL)."""
    issued = time.time() if at is None else at
    return f"{int(issued * 1000):013d}.{random.randrange(10**11, 10**12)}.{secrets.token_hex(16)}"


def make_ts(at: float | None = None) -> str:
    """A message timestamp in Slack's "seconds.micros" format."""
    us = int((time.time() if at is None else at) * 1_000_000)
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def slash_command_payload(
    text: str,
    command: str = "/vllm",
    user_id: str = "U123",
    channel_id: str = "C123",
    response_url: str | None = None,
    trigger_id: str | None = None,
    *,
    user_name: str = "alice",
    channel_name: str = "general",
    team_id: str = DEFAULT_TEAM_ID,
    team_domain: str = DEFAULT_TEAM_DOMAIN,
    api_app_id: str = DEFAULT_APP_ID,
    token: str = "fake-verification-token",
) -> dict[str, str]:
    """The fields of a slash command, as Slack sends them (all strings)."""
    return {
        "token": token,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url or UNROUTED_RESPONSE_URL,
        "trigger_id": trigger_id or make_trigger_id(),
    }


def slash_command_body(
    text: str,
    command: str = "/vllm",
    user_id: str = "U123",
    channel_id: str = "C123",
    response_url: str | None = None,
    trigger_id: str | None = None,
    **kwargs: str,
) -> str:
    """application/x-www-form-urlencoded body of a slash command POST."""
    payload = slash_command_payload(
        text, command, user_id, channel_id, response_url, trigger_id, **kwargs
    )
    return urllib.parse.urlencode(payload)


def block_action_payload(
    action_id: str,
    value: str,
    user_id: str = "U123",
    channel_id: str = "C123",
    message_ts: str | None = None,
    trigger_id: str | None = None,
    *,
    block_id: str | None = None,
    response_url: str | None = None,
    message: Mapping[str, Any] | None = None,
    thread_ts: str | None = None,
    button_text: str = "Button",
    user_name: str = "alice",
    channel_name: str = "general",
    team_id: str = DEFAULT_TEAM_ID,
    team_domain: str = DEFAULT_TEAM_DOMAIN,
    api_app_id: str = DEFAULT_APP_ID,
    token: str = "fake-verification-token",
) -> dict[str, Any]:
    """A ``block_actions`` interaction payload for a button click on a message."""
    ts = message_ts or make_ts()
    msg: dict[str, Any] = (
        dict(message)
        if message is not None
        else {
            "type": "message",
            "user": DEFAULT_BOT_USER_ID,
            "bot_id": DEFAULT_BOT_ID,
            "text": "",
            "blocks": [],
            "ts": ts,
        }
    )
    msg.setdefault("ts", ts)
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": ts,
        "channel_id": channel_id,
        "is_ephemeral": False,
    }
    if thread_ts is not None:
        container["thread_ts"] = thread_ts
        msg.setdefault("thread_ts", thread_ts)
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": token,
        "container": container,
        "trigger_id": trigger_id or make_trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": msg,
        "state": {"values": {}},
        "response_url": response_url or UNROUTED_RESPONSE_URL,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id or secrets.token_urlsafe(4),
                "text": {"type": "plain_text", "text": button_text, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": make_ts(),
            }
        ],
    }


def block_action_body(
    action_id: str,
    value: str,
    user_id: str = "U123",
    channel_id: str = "C123",
    message_ts: str | None = None,
    trigger_id: str | None = None,
    **kwargs: Any,
) -> str:
    """Form body ``payload=<json>`` of a button click, as Slack POSTs it."""
    payload = block_action_payload(
        action_id, value, user_id, channel_id, message_ts, trigger_id, **kwargs
    )
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def _state_values(values: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for block_id, actions in (values or {}).items():
        out[block_id] = {
            action_id: (
                {"type": "plain_text_input", "value": v} if isinstance(v, str) or v is None else v
            )
            for action_id, v in actions.items()
        }
    return out


def view_submission_payload(
    callback_id: str,
    private_metadata: str = "",
    values: Mapping[str, Mapping[str, Any]] | None = None,
    user_id: str = "U123",
    *,
    view_id: str | None = None,
    trigger_id: str | None = None,
    blocks: Sequence[Mapping[str, Any]] = (),
    title: str = "Modal",
    user_name: str = "alice",
    team_id: str = DEFAULT_TEAM_ID,
    team_domain: str = DEFAULT_TEAM_DOMAIN,
    api_app_id: str = DEFAULT_APP_ID,
    token: str = "fake-verification-token",
) -> dict[str, Any]:
    """A ``view_submission`` payload.

    ``values`` is ``{block_id: {action_id: state}}``; a plain string state is wrapped as
    ``{"type": "plain_text_input", "value": s}``, a dict is used as given.
    """
    vid = view_id or _random_id("V")
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id or make_trigger_id(),
        "view": {
            "id": vid,
            "team_id": team_id,
            "type": "modal",
            "blocks": [dict(b) for b in blocks],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": _state_values(values)},
            "hash": secrets.token_hex(8),
            "title": {"type": "plain_text", "text": title, "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
            "previous_view_id": None,
            "root_view_id": vid,
            "app_id": api_app_id,
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": DEFAULT_BOT_ID,
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_submission_body(
    callback_id: str,
    private_metadata: str = "",
    values: Mapping[str, Mapping[str, Any]] | None = None,
    user_id: str = "U123",
    **kwargs: Any,
) -> str:
    """Form body ``payload=<json>`` of a modal submission, as Slack POSTs it."""
    payload = view_submission_payload(callback_id, private_metadata, values, user_id, **kwargs)
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def event_callback_payload(
    event: Mapping[str, Any],
    *,
    team_id: str = DEFAULT_TEAM_ID,
    api_app_id: str = DEFAULT_APP_ID,
    event_id: str | None = None,
    token: str = "fake-verification-token",
) -> dict[str, Any]:
    """An Events API ``event_callback`` wrapping ``event`` (for ``events_api`` envelopes)."""
    now = int(time.time())
    return {
        "token": token,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or _random_id("Ev"),
        "event_time": now,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": DEFAULT_BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def send_signed(
    url: str,
    body: str,
    secret: str,
    *,
    content_type: str = "application/x-www-form-urlencoded",
    timestamp: int | None = None,
    timeout: float = 10.0,
) -> SignedResponse:
    """POST ``body`` to an app's endpoint signed like Slack does; never raises on HTTP errors."""
    headers = {"Content-Type": content_type, **signed_headers(secret, body, timestamp)}
    req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return SignedResponse(
                resp.status, dict(resp.headers.items()), resp.read(), time.monotonic() - start
            )
    except urllib.error.HTTPError as err:
        return SignedResponse(
            err.code, dict(err.headers.items()), err.read(), time.monotonic() - start
        )


# ---------------------------------------------------------------------------
# The fake server
# ---------------------------------------------------------------------------


def _random_id(prefix: str, n: int = 10) -> str:
    alphabet = string.ascii_uppercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


class _SlackError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.body: dict[str, Any] = {"ok": False, "error": error, **extra}


def _block_errors(error: str, errors: list[str]) -> _SlackError:
    return _SlackError(
        error,
        errors=errors,
        response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
    )


@dataclass
class _Conn:
    id: int
    ws: web.WebSocketResponse
    connected_at: float
    closed_at: float | None = None
    draining: bool = False


_Handler = Callable[[dict[str, Any]], dict[str, Any]]


class FakeSlack(StartStop):
    """A fake Slack workspace + app on 127.0.0.1; see the module docstring.

    Usage::

        with FakeSlack() as fake:
            client = WebClient(token=fake.token, base_url=fake.api_url)
            client.chat_postMessage(channel="C123", text="hi")
            assert fake.messages("C123")[0].text == "hi"

    With ``strict=False`` (default) any channel or user ID is accepted and described
    on demand; with ``strict=True`` only those added with :meth:`add_channel` /
    :meth:`add_user` exist (others give ``channel_not_found`` / ``user_not_found``),
    and ``not_in_channel`` applies to channels the bot is not a member of.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_BOT_TOKEN,
        app_token: str = DEFAULT_APP_TOKEN,
        team_id: str = DEFAULT_TEAM_ID,
        team_domain: str = DEFAULT_TEAM_DOMAIN,
        app_id: str = DEFAULT_APP_ID,
        bot_user_id: str = DEFAULT_BOT_USER_ID,
        bot_id: str = DEFAULT_BOT_ID,
        strict: bool = False,
        seed: int = 0,
        max_socket_connections: int = 10,
    ) -> None:
        self.token = token
        self.app_token = app_token
        self.team_id = team_id
        self.team_domain = team_domain
        self.app_id = app_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.strict = strict
        self.max_socket_connections = max_socket_connections
        self.trigger_id_ttl = TRIGGER_ID_TTL
        self.response_url_ttl = RESPONSE_URL_TTL

        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._server: BackgroundServer | None = None
        self._port: int | None = None

        self._calls: list[Call] = []
        self._messages: dict[tuple[str, str], Message] = {}
        self._ephemerals: list[Ephemeral] = []
        self._files: dict[str, UploadedFile] = {}
        self._upload_tickets: dict[str, str] = {}
        self._views: dict[str, View] = {}
        self._used_triggers: set[str] = set()
        self._responses: list[ResponsePost] = []
        self._response_uses: dict[str, tuple[float, int]] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._last_ts_us = 0
        self._rate_limits: dict[str, list[int]] = {}  # method -> [remaining, retry_after]
        self._outages: dict[str, list[Any]] = {}  # method -> [HTTP status, remaining|None]
        self._failures: dict[str, list[Any]] = {}  # method -> [error, remaining or None]
        self._delays: dict[str, float] = {}
        self._stubs: dict[str, dict[str, Any]] = {}
        self._conns: dict[int, _Conn] = {}
        self._conn_seq = 0
        self._url_seq = 0
        self._issued_ws_paths: set[str] = set()
        self._envelopes: dict[str, SocketEnvelope] = {}
        self._acks: list[SocketAck] = []
        self._default_response_id = uuid.uuid4().hex
        self._tasks: set[asyncio.Future[None]] = set()

        self._handlers: dict[str, _Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "apps.connections.open": self._apps_connections_open,
        }
        self.add_channel("C123", "general")
        self.add_user("U123", "alice", "Alice Example")

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> FakeSlack:
        if self._server is not None:
            raise RuntimeError("FakeSlack already started")
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/v1/{ticket}", self._upload)
        app.router.add_post("/response/{rid}", self._response_url)
        app.router.add_get("/socket-mode/{n}", self._socket_mode)
        self._server = BackgroundServer(
            app,
            name="FakeSlack",
            timeout=10.0,
            shutdown_timeout=1.0,
            on_stop=self._close_sockets,
        ).start()
        self._port = self._server.port
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    async def _close_sockets(self) -> None:
        """On stop: cancel delayed closes, then close every websocket (1001 going away)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in list(self._conns.values()):
            if not conn.ws.closed:
                await conn.ws.close(code=1001, message=b"server shutting down")

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        if self._server is None:
            coro.close()
            raise RuntimeError("FakeSlack is not running; call start()")
        return self._server.run(coro, timeout)

    # -- addresses -----------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeSlack is not running; call start()")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """Web API base URL, e.g. ``http://127.0.0.1:PORT/api/`` (slack_sdk ``base_url``)."""
        return f"{self.base_url}/api/"

    @property
    def response_url(self) -> str:
        """This fake's default response_url (shared: 5 uses in total, like Slack's)."""
        return f"{self.base_url}/response/{self._default_response_id}"

    def new_response_url(self) -> str:
        """A fresh response_url with its own 5-use budget."""
        return f"{self.base_url}/response/{uuid.uuid4().hex}"

    def new_trigger_id(self) -> str:
        """A trigger_id issued now (views.open rejects it after ``trigger_id_ttl`` seconds)."""
        return make_trigger_id()

    # -- workspace directory -------------------------------------------------

    def add_channel(
        self, channel_id: str, name: str, *, is_private: bool = False, is_member: bool = True
    ) -> None:
        with self._lock:
            self._channels[channel_id] = {
                "id": channel_id,
                "name": name,
                "is_channel": not is_private,
                "is_group": False,
                "is_im": channel_id.startswith("D"),
                "is_mpim": False,
                "is_private": is_private,
                "is_archived": False,
                "is_general": name == "general",
                "is_member": is_member,
                "created": int(time.time()) - 86_400,
                "creator": "U123",
                "name_normalized": name,
                "context_team_id": self.team_id,
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0},
            }

    def add_user(self, user_id: str, name: str, real_name: str, **extra: Any) -> None:
        with self._lock:
            self._users[user_id] = {
                "id": user_id,
                "team_id": self.team_id,
                "name": name,
                "deleted": False,
                "real_name": real_name,
                "tz": "Etc/UTC",
                "tz_offset": 0,
                "is_admin": False,
                "is_bot": False,
                "is_app_user": False,
                "profile": {
                    "real_name": real_name,
                    "display_name": name,
                    "real_name_normalized": real_name,
                    "display_name_normalized": name,
                    "team": self.team_id,
                },
                **extra,
            }

    # -- fault injection -----------------------------------------------------

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next ``times`` calls to ``method`` get HTTP 429 + ``Retry-After``."""
        with self._lock:
            self._rate_limits[method] = [times, int(retry_after)]

    def fail(self, method: str, error: str = "channel_not_found", times: int | None = 1) -> None:
        """The next ``times`` calls (``None`` = until cleared) answer ``{"ok": false, ...}``."""
        with self._lock:
            self._failures[method] = [error, times]

    def outage(self, method: str, status: int = 503, times: int | None = None) -> None:
        """The next ``times`` calls (``None`` = until cleared) answer HTTP ``status`` (5xx)."""
        with self._lock:
            self._outages[method] = [status, times]

    def delay(self, method: str, seconds: float) -> None:
        """Every call to ``method`` waits ``seconds`` before answering (0 = remove)."""
        with self._lock:
            if seconds > 0:
                self._delays[method] = seconds
            else:
                self._delays.pop(method, None)

    def stub(self, method: str, response: Mapping[str, Any]) -> None:
        """Answer ``method`` (known or not) with a fixed JSON body after the auth check."""
        with self._lock:
            self._stubs[method] = copy.deepcopy(dict(response))

    def clear_faults(self) -> None:
        with self._lock:
            self._rate_limits.clear()
            self._outages.clear()
            self._failures.clear()
            self._delays.clear()
            self._stubs.clear()

    def reset(self) -> None:
        """Forget recorded traffic, posted state and faults (directory and sockets stay)."""
        with self._lock:
            self.clear_faults()
            self._calls.clear()
            self._messages.clear()
            self._ephemerals.clear()
            self._files.clear()
            self._upload_tickets.clear()
            self._views.clear()
            self._used_triggers.clear()
            self._responses.clear()
            self._response_uses.clear()
            self._envelopes.clear()
            self._acks.clear()

    # -- recorded state (copies) ---------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if c.method == method]

    def messages(
        self, channel: str | None = None, *, thread_ts: str | None = None
    ) -> list[Message]:
        """Current state of posted messages (updates applied), in ts order."""
        with self._lock:
            msgs = [
                copy.deepcopy(m)
                for m in self._messages.values()
                if (channel is None or m.channel == channel)
                and (thread_ts is None or m.thread_ts == thread_ts or m.ts == thread_ts)
            ]
        return sorted(msgs, key=lambda m: tuple(int(part) for part in m.ts.split(".")))

    @property
    def ephemerals(self) -> list[Ephemeral]:
        with self._lock:
            return list(self._ephemerals)

    @property
    def files(self) -> list[UploadedFile]:
        """Files whose upload was completed (files.completeUploadExternal succeeded)."""
        with self._lock:
            return [copy.deepcopy(f) for f in self._files.values() if f.completed]

    @property
    def pending_files(self) -> list[UploadedFile]:
        """Files reserved with files.getUploadURLExternal but not completed."""
        with self._lock:
            return [copy.deepcopy(f) for f in self._files.values() if not f.completed]

    @property
    def views(self) -> list[View]:
        with self._lock:
            return [copy.deepcopy(v) for v in self._views.values()]

    @property
    def responses(self) -> list[ResponsePost]:
        with self._lock:
            return list(self._responses)

    @property
    def socket_envelopes(self) -> list[SocketEnvelope]:
        with self._lock:
            return list(self._envelopes.values())

    @property
    def socket_acks(self) -> list[SocketAck]:
        with self._lock:
            return list(self._acks)

    def ack_for(self, envelope_id: str) -> SocketAck | None:
        with self._lock:
            return next((a for a in self._acks if a.envelope_id == envelope_id), None)

    @property
    def socket_connections(self) -> list[SocketConnection]:
        """Every Socket Mode connection so far (open and closed), oldest first."""
        with self._lock:
            return [
                SocketConnection(c.id, c.connected_at, c.closed_at, c.draining)
                for c in self._conns.values()
            ]

    def _routable(self) -> list[_Conn]:
        return [
            c
            for c in self._conns.values()
            if c.closed_at is None and not c.draining and not c.ws.closed
        ]

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

    def wait_for_socket_connection(self, timeout: float = 5.0, count: int = 1) -> None:
        """Block until ``count`` Socket Mode clients are connected (and not draining)."""

        def ready() -> bool:
            with self._lock:
                return len(self._routable()) >= count

        self.wait_for(ready, timeout)

    async def async_wait_for_socket_connection(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109
        count: int = 1,
    ) -> None:
        def ready() -> bool:
            with self._lock:
                return len(self._routable()) >= count

        await self.async_wait_for(ready, timeout)

    # -- Socket Mode control -------------------------------------------------

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
        return self._run(self._send_envelope(envelope, connection_id), timeout)

    async def _send_envelope(self, envelope: dict[str, Any], connection_id: int | None) -> str:
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
        return self._run(self._disconnect(reason, connection_id, grace), timeout)

    async def _disconnect(self, reason: str, connection_id: int | None, grace: float) -> list[int]:
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
                        "debug_info": {"host": f"applink-fake-{c.id}"},
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

    # -- HTTP plumbing -------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        arrived = time.time()
        method = request.match_info["method"]
        headers = dict(request.headers.items())
        raw = b""
        try:
            params: dict[str, Any] = {k: v for k, v in request.query.items()}
            ctype = request.content_type
            if ctype.startswith("multipart/"):
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
                if ctype == "application/json" and raw:
                    body = json.loads(raw)
                    if not isinstance(body, dict):
                        raise _SlackError("invalid_json")
                    params.update(body)
                elif raw:
                    params.update(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
            for key in _JSON_FIELDS:
                value = params.get(key)
                if isinstance(value, str) and value:
                    # undecodable JSON stays a string; the handler reports the format error
                    with contextlib.suppress(ValueError):
                        params[key] = json.loads(value)
        except _SlackError as err:
            return self._record(method, {}, headers, arrived, 200, err.body, raw)
        except (ValueError, UnicodeDecodeError):
            return self._record(
                method, {}, headers, arrived, 200, {"ok": False, "error": "invalid_json"}, raw
            )

        with self._lock:
            delay = self._delays.get(method, 0.0)
        if delay:
            await asyncio.sleep(delay)

        token = None
        auth = request.headers.get("Authorization")
        if auth and auth.startswith("Bearer "):
            token = auth[len("Bearer ") :].strip()
        elif isinstance(params.get("token"), str):
            token = params["token"]
        params.pop("token", None)

        status, body, extra = self._dispatch(method, params, token)
        return self._record(method, params, headers, arrived, status, body, raw, extra)

    def _record(
        self,
        method: str,
        params: dict[str, Any],
        headers: dict[str, str],
        at: float,
        status: int,
        body: dict[str, Any],
        raw: bytes,
        extra_headers: dict[str, str] | None = None,
    ) -> web.Response:
        call = Call(method, copy.deepcopy(params), headers, at, status, copy.deepcopy(body), raw)
        with self._lock:
            self._calls.append(call)
        resp_headers = {"X-Slack-Req-Id": secrets.token_hex(16), **(extra_headers or {})}
        return web.json_response(body, status=status, headers=resp_headers)

    def _dispatch(
        self, method: str, params: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            handler = self._handlers.get(method)
            stub = self._stubs.get(method)
            if handler is None and stub is None:
                return 200, {"ok": False, "error": "unknown_method", "req_method": method}, {}
            if token is None or not token:
                return 200, {"ok": False, "error": "not_authed"}, {}
            if method == "apps.connections.open":
                if token != self.app_token:
                    error = (
                        "invalid_auth" if token.startswith("xapp-") else "not_allowed_token_type"
                    )
                    return 200, {"ok": False, "error": error}, {}
            elif token != self.token:
                error = "not_allowed_token_type" if token.startswith("xapp-") else "invalid_auth"
                return 200, {"ok": False, "error": error}, {}
            limit = self._rate_limits.get(method)
            if limit is not None and limit[0] > 0:
                limit[0] -= 1
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(limit[1])}
            outage = self._outages.get(method)
            if outage is not None and (outage[1] is None or outage[1] > 0):
                if outage[1] is not None:
                    outage[1] -= 1
                return outage[0], {"ok": False, "error": "service_unavailable"}, {}
            failure = self._failures.get(method)
            if failure is not None and (failure[1] is None or failure[1] > 0):
                if failure[1] is not None:
                    failure[1] -= 1
                return 200, {"ok": False, "error": failure[0]}, {}
            if stub is not None:
                return 200, copy.deepcopy(stub), {}
            assert handler is not None
            try:
                return 200, handler(params), {}
            except _SlackError as err:
                return 200, err.body, {}

    # -- helpers for handlers (called with the lock held) --------------------

    def _next_ts(self) -> str:
        us = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
        self._last_ts_us = us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    @staticmethod
    def _str(params: Mapping[str, Any], key: str) -> str | None:
        value = params.get(key)
        if value is None or value == "":
            return None
        return value if isinstance(value, str) else str(value)

    def _channel(self, params: Mapping[str, Any], key: str = "channel") -> dict[str, Any]:
        ref = self._str(params, key)
        if ref is None:
            raise _SlackError("channel_not_found")
        if ref in self._channels:
            return self._channels[ref]
        name = ref.lstrip("#")
        for info in self._channels.values():
            if info["name"] == name:
                return info
        if self.strict:
            raise _SlackError("channel_not_found")
        if _USER_ID_RE.match(ref):  # posting to a user ID goes to the DM with them
            cid, cname = "D" + ref[1:], ref.lower()
        elif _CHANNEL_ID_RE.match(ref):
            cid, cname = ref, ref.lower()
        else:
            cid, cname = _random_id("C"), name
        if cid not in self._channels:
            self.add_channel(cid, cname)
        return self._channels[cid]

    def _member_channel(self, params: Mapping[str, Any], key: str = "channel") -> str:
        info = self._channel(params, key)
        if self.strict and not info["is_member"]:
            raise _SlackError("not_in_channel")
        return str(info["id"])

    def _user(self, user_id: str | None) -> dict[str, Any]:
        if user_id is None:
            raise _SlackError("user_not_found")
        if user_id not in self._users:
            if self.strict:
                raise _SlackError("user_not_found")
            self.add_user(user_id, user_id.lower(), f"User {user_id}")
        return self._users[user_id]

    @staticmethod
    def _blocks(params: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        if "blocks" not in params or params["blocks"] in (None, ""):
            return None
        blocks = params["blocks"]
        if not isinstance(blocks, list):
            raise _SlackError("invalid_blocks_format")
        return blocks

    def _message_content(
        self, params: Mapping[str, Any], *, require: bool = True
    ) -> tuple[str | None, list[dict[str, Any]] | None]:
        text = self._str(params, "text")
        blocks = self._blocks(params)
        if require and text is None and not blocks and not params.get("attachments"):
            raise _SlackError("no_text")
        if blocks is not None:
            errors = validate_blocks(blocks)
            if errors:
                raise _block_errors("invalid_blocks", errors)
        if text is not None and len(text) > MAX_MESSAGE_TEXT:
            raise _SlackError("msg_too_long")
        return text, blocks

    def _message_json(self, m: Message) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "user": m.user,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": m.text,
            "ts": m.ts,
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": "fake-bot",
                "team_id": self.team_id,
            },
        }
        if m.blocks:
            out["blocks"] = copy.deepcopy(m.blocks)
        if m.thread_ts is not None:
            out["thread_ts"] = m.thread_ts
        if m.metadata is not None:
            out["metadata"] = copy.deepcopy(m.metadata)
        if m.edited:
            out["edited"] = {"user": m.user, "ts": make_ts(m.history[-1].at)}
        return out

    # -- Web API methods -----------------------------------------------------

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": "Fake Workspace",
            "user": "fake-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._member_channel(params)
        text, blocks = self._message_content(params)
        now = time.time()
        metadata = params.get("metadata")
        message = Message(
            channel=channel,
            ts=self._next_ts(),
            text=text or "",
            blocks=copy.deepcopy(blocks or []),
            thread_ts=self._str(params, "thread_ts"),
            user=self.bot_user_id,
            history=[],
            metadata=metadata if isinstance(metadata, dict) else None,
        )
        message.history.append(
            MessageVersion(message.text, copy.deepcopy(message.blocks), now, "chat.postMessage")
        )
        self._messages[(channel, message.ts)] = message
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "message": self._message_json(message),
        }

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(self._channel(params)["id"])
        ts = self._str(params, "ts")
        message = self._messages.get((channel, ts or ""))
        if message is None:
            raise _SlackError("message_not_found")
        text, blocks = self._message_content(params)
        if text is not None:
            message.text = text
        if blocks is not None:  # omitted blocks are kept; [] removes them (like Slack)
            message.blocks = copy.deepcopy(blocks)
        message.history.append(
            MessageVersion(message.text, copy.deepcopy(message.blocks), time.time(), "chat.update")
        )
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "text": message.text,
            "message": self._message_json(message),
        }

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._member_channel(params)
        user = self._str(params, "user")
        self._user(user)
        assert user is not None
        text, blocks = self._message_content(params)
        ts = self._next_ts()
        self._ephemerals.append(
            Ephemeral(
                channel,
                user,
                ts,
                text or "",
                copy.deepcopy(blocks or []),
                self._str(params, "thread_ts"),
                time.time(),
            )
        )
        return {"ok": True, "message_ts": ts}

    def _view_param(self, params: Mapping[str, Any]) -> dict[str, Any]:
        view = params.get("view")
        if view is None or view == "":
            raise _SlackError("invalid_arguments", response_metadata={"messages": []})
        if not isinstance(view, dict):
            raise _SlackError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] invalid JSON [json-pointer:/view]"]},
            )
        errors = validate_view(view)
        if errors:
            raise _SlackError(
                "invalid_arguments",
                response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
            )
        return view

    def _view_json(self, view: Mapping[str, Any], vid: str, root: str) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            return {**value, "emoji": True} if isinstance(value, dict) else value

        return {
            "id": vid,
            "team_id": self.team_id,
            "type": view.get("type", "modal"),
            "blocks": copy.deepcopy(view.get("blocks", [])),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": plain(view.get("title")),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": plain(view.get("close")),
            "submit": plain(view.get("submit")),
            "previous_view_id": None,
            "root_view_id": root,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger_id = self._str(params, "trigger_id")
        if trigger_id is None:
            raise _SlackError("invalid_arguments", response_metadata={"messages": []})
        if trigger_id in self._used_triggers:
            raise _SlackError("exchanged_trigger_id")
        match = _TRIGGER_RE.match(trigger_id)
        if match is not None:
            if time.time() - int(match.group(1)) / 1000 > self.trigger_id_ttl:
                raise _SlackError("expired_trigger_id")
        elif self.strict:
            raise _SlackError("invalid_trigger_id")
        view = self._view_param(params)
        self._used_triggers.add(trigger_id)
        vid = _random_id("V")
        body = self._view_json(view, vid, vid)
        self._views[vid] = View(vid, body, trigger_id, time.time(), [copy.deepcopy(body)])
        return {"ok": True, "view": copy.deepcopy(body)}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        vid = self._str(params, "view_id")
        external_id = self._str(params, "external_id")
        if vid is None and external_id is None:
            raise _SlackError("invalid_arguments", response_metadata={"messages": []})
        current = self._views.get(vid or "")
        if current is None and external_id is not None:
            current = next(
                (v for v in self._views.values() if v.view.get("external_id") == external_id),
                None,
            )
        if current is None:
            raise _SlackError("not_found")
        view = self._view_param(params)
        expected = self._str(params, "hash")
        if expected is not None and expected != current.view["hash"]:
            raise _SlackError("hash_conflict")
        body = self._view_json(view, current.id, str(current.view["root_view_id"]))
        current.view = body
        current.history.append(copy.deepcopy(body))
        return {"ok": True, "view": copy.deepcopy(body)}

    def _files_get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = self._str(params, "filename")
        length = self._str(params, "length")
        if filename is None or length is None or not length.isdigit() or int(length) <= 0:
            raise _SlackError("invalid_arguments")
        file_id = _random_id("F")
        ticket = secrets.token_urlsafe(24)
        self._files[file_id] = UploadedFile(
            id=file_id,
            filename=filename,
            length=int(length),
            alt_txt=self._str(params, "alt_txt"),
            created=time.time(),
        )
        self._upload_tickets[ticket] = file_id
        return {"ok": True, "upload_url": f"{self.base_url}/upload/v1/{ticket}", "file_id": file_id}

    def _file_json(self, f: UploadedFile) -> dict[str, Any]:
        mimetype = mimetypes.guess_type(f.filename)[0] or "application/octet-stream"
        ext = f.filename.rsplit(".", 1)[-1].lower() if "." in f.filename else "binary"
        return {
            "id": f.id,
            "created": int(f.created),
            "timestamp": int(f.created),
            "name": f.filename,
            "title": f.title or f.filename,
            "mimetype": mimetype,
            "filetype": ext,
            "pretty_type": ext.upper(),
            "user": self.bot_user_id,
            "user_team": self.team_id,
            "mode": "hosted",
            "editable": False,
            "is_external": False,
            "is_public": True,
            "size": len(f.data or b""),
            "url_private": f"{self.base_url}/files-pri/{self.team_id}-{f.id}/{f.filename}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/{f.id}",
            "channels": list(f.channels),
            "groups": [],
            "ims": [],
            "comments_count": 0,
            "shares": {},
        }

    def _files_complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        if not isinstance(files, list) or not files:
            raise _SlackError("invalid_arguments")
        records: list[UploadedFile] = []
        for item in files:
            fid = item.get("id") if isinstance(item, dict) else None
            record = self._files.get(str(fid))
            if record is None or record.data is None or record.completed:
                raise _SlackError("file_not_found")
            records.append(record)
        channels: list[str] = []
        if self._str(params, "channel_id") is not None:
            channels.append(self._member_channel(params, "channel_id"))
        for ref in (self._str(params, "channels") or "").split(","):
            if ref.strip():
                channels.append(self._member_channel({"channel": ref.strip()}))
        thread_ts = self._str(params, "thread_ts")
        if thread_ts is not None and not channels:
            raise _SlackError("invalid_arguments")
        now = time.time()
        for item, record in zip(files, records, strict=True):
            record.title = item.get("title") or record.filename
            record.channels = channels
            record.channel = channels[0] if channels else None
            record.thread_ts = thread_ts
            record.initial_comment = self._str(params, "initial_comment")
            record.completed = True
            record.completed_at = now
        return {"ok": True, "files": [self._file_json(r) for r in records]}

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channel": copy.deepcopy(self._channel(params))}

    def _listed(self, messages: list[Message], params: dict[str, Any]) -> list[dict[str, Any]]:
        """Messages as conversations.history/replies return them: metadata only when
        ``include_all_metadata`` is true, within ``oldest``/``latest``, at most ``limit``."""
        oldest = float(self._str(params, "oldest") or 0)
        latest = float(self._str(params, "latest") or "inf")
        limit = int(self._str(params, "limit") or 100)
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("true", "1")
        out = []
        for m in messages:
            if not oldest <= float(m.ts) <= latest:
                continue
            item = self._message_json(m)
            if not with_metadata:
                item.pop("metadata", None)
            out.append(item)
        return out[: min(limit, 999)]

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(self._channel(params)["id"])
        top = [
            m
            for (c, _), m in self._messages.items()
            if c == channel and m.thread_ts in (None, m.ts)
        ]
        top.sort(key=lambda m: float(m.ts), reverse=True)  # newest first, like Slack
        return {"ok": True, "messages": self._listed(top, params), "has_more": False}

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(self._channel(params)["id"])
        parent = self._str(params, "ts") or ""
        if (channel, parent) not in self._messages:
            raise _SlackError("thread_not_found")
        thread = [
            m
            for (c, ts), m in self._messages.items()
            if c == channel and (ts == parent or m.thread_ts == parent)
        ]
        thread.sort(key=lambda m: float(m.ts))  # the parent first, then oldest first
        return {"ok": True, "messages": self._listed(thread, params), "has_more": False}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user": copy.deepcopy(self._user(self._str(params, "user")))}

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        self._url_seq += 1
        path = str(self._url_seq)
        self._issued_ws_paths.add(path)
        ticket = uuid.uuid4()
        url = f"ws://127.0.0.1:{self.port}/socket-mode/{path}?ticket={ticket}&app_id={self.app_id}"
        return {"ok": True, "url": url}

    # -- upload URLs and response_urls ---------------------------------------

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        ticket = request.match_info["ticket"]
        if request.content_type.startswith("multipart/"):
            data = b""
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
        with self._lock:
            file_id = self._upload_tickets.get(ticket)
            record = self._files.get(file_id or "")
            if record is None:
                return web.Response(status=404, text="invalid upload URL")
            record.data = data
            record.uploaded_at = time.time()
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _response_url(self, request: web.Request) -> web.StreamResponse:
        rid = request.match_info["rid"]
        raw = await request.read()
        headers = dict(request.headers.items())
        body: Any
        try:
            if request.content_type == "application/json":
                body = json.loads(raw)
            else:
                form = dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
                body = json.loads(form["payload"]) if "payload" in form else form
        except (ValueError, KeyError, UnicodeDecodeError):
            body = raw.decode(errors="replace")
        now = time.time()
        with self._lock:
            first, uses = self._response_uses.get(rid, (now, 0))
            if uses >= RESPONSE_URL_MAX_USES:
                status, text = 404, "used_url"
            elif now - first > self.response_url_ttl:
                status, text = 404, "expired_url"
            else:
                status, text = 200, "ok"
                if isinstance(body, dict) and isinstance(body.get("blocks"), list):
                    errors = validate_blocks(body["blocks"])
                    if errors:
                        status, text = 400, "invalid_blocks"
                if status == 200:
                    self._response_uses[rid] = (first, uses + 1)
            self._responses.append(ResponsePost(rid, body, headers, now, status))
        return web.Response(status=status, text=text)

    # -- Socket Mode server --------------------------------------------------

    async def _socket_mode(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            known = request.match_info["n"] in self._issued_ws_paths
        if not known:
            return web.Response(status=401, text="invalid or expired socket URL")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self._lock:
            self._conn_seq += 1
            conn = _Conn(self._conn_seq, ws, time.time())
            self._conns[conn.id] = conn
            too_many = len(self._routable()) > self.max_socket_connections
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
                            "host": f"applink-fake-{conn.id}",
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

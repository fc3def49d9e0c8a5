"""What Slack sends to an app: signed request bodies and the ids inside them. Pure.

Slash commands arrive as form fields; interactions (``block_actions``,
``view_submission``) as a form field ``payload`` holding JSON; every request carries
``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` (v0 HMAC-SHA256 of
``v0:<timestamp>:<body>`` with the app's signing secret).
"""

from __future__ import annotations

import json
import random
import secrets
import string
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.signature import SignatureVerifier

DEFAULT_BOT_TOKEN = "xoxb-local-bot-token"
DEFAULT_APP_TOKEN = "xapp-1-A0LOCAL-local-app-token"
DEFAULT_TEAM_ID = "T0LOCAL"
DEFAULT_TEAM_DOMAIN = "local-workspace"
DEFAULT_APP_ID = "A0LOCAL"
DEFAULT_BOT_USER_ID = "U0BOT"
DEFAULT_BOT_ID = "B0BOT"
VERIFICATION_TOKEN = "local-verification-token"  # deprecated by Slack, still sent
# A response_url that can never reach the internet (TCP discard port on loopback):
# builders fall back to it so an app never talks to the real Slack by accident.
UNROUTED_RESPONSE_URL = "http://127.0.0.1:9/response/unset"


def random_id(prefix: str, n: int = 10) -> str:
    """An id in Slack's style: a type letter (C, U, V, F …) and upper-case alphanumerics."""
    alphabet = string.ascii_uppercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


def signed_headers(secret: str, body: str | bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers Slack signs each request to an app with (v0 HMAC-SHA256)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def make_trigger_id(at: float | None = None) -> str:
    """A trigger_id like Slack's; views.open reads its issue time (3 s TTL)."""
    issued = time.time() if at is None else at
    return f"{int(issued * 1000):013d}.{random.randrange(10**11, 10**12)}.{secrets.token_hex(16)}"


def make_ts(at: float | None = None) -> str:
    """A message timestamp in Slack's "seconds.micros" format."""
    us = int((time.time() if at is None else at) * 1_000_000)
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def _interaction(
    kind: str,
    user_id: str,
    user_name: str,
    team_id: str,
    team_domain: str,
    api_app_id: str,
    token: str,
    trigger_id: str | None,
) -> dict[str, Any]:
    """The fields every interaction payload (``block_actions``, ``view_submission``) has."""
    return {
        "type": kind,
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id or make_trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
    }


def _form_body(payload: Mapping[str, Any]) -> str:
    """Form body ``payload=<json>``: how Slack POSTs an interaction."""
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


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
    token: str = VERIFICATION_TOKEN,
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
    action: Mapping[str, Any] | None = None,
    state_values: Mapping[str, Any] | None = None,
    is_ephemeral: bool = False,
    view: Mapping[str, Any] | None = None,
    user_name: str = "alice",
    channel_name: str = "general",
    team_id: str = DEFAULT_TEAM_ID,
    team_domain: str = DEFAULT_TEAM_DOMAIN,
    api_app_id: str = DEFAULT_APP_ID,
    token: str = VERIFICATION_TOKEN,
) -> dict[str, Any]:
    """A ``block_actions`` interaction payload: by default a button click on a message.

    ``action`` replaces the default button action (e.g. a select's ``selected_option``);
    ``view`` makes it a click inside that modal (``container.type`` ``view``, no
    channel or message); ``is_ephemeral`` a click on an ephemeral message, which Slack
    sends without the message itself.
    """
    ts = message_ts or make_ts()
    clicked: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id or secrets.token_urlsafe(4),
        "text": {"type": "plain_text", "text": button_text, "emoji": True},
        "value": value,
        "type": "button",
        **(action or {}),
        "action_ts": make_ts(),
    }
    payload = _interaction(
        "block_actions", user_id, user_name, team_id, team_domain, api_app_id, token, trigger_id
    ) | {
        "state": {"values": dict(state_values or {})},
        "actions": [clicked],
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id")}
        payload["view"] = {**view, "state": {"values": dict(state_values or {})}}
        return payload
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": ts,
        "channel_id": channel_id,
        "is_ephemeral": is_ephemeral,
    }
    payload["container"] = container
    payload["channel"] = {"id": channel_id, "name": channel_name}
    payload["response_url"] = response_url or UNROUTED_RESPONSE_URL
    if thread_ts is not None:
        container["thread_ts"] = thread_ts
    if is_ephemeral:
        return payload
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
    if thread_ts is not None:
        msg.setdefault("thread_ts", thread_ts)
    payload["message"] = msg
    return payload


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
    return _form_body(payload)


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
    view: Mapping[str, Any] | None = None,
    user_name: str = "alice",
    team_id: str = DEFAULT_TEAM_ID,
    team_domain: str = DEFAULT_TEAM_DOMAIN,
    api_app_id: str = DEFAULT_APP_ID,
    token: str = VERIFICATION_TOKEN,
) -> dict[str, Any]:
    """A ``view_submission`` payload.

    ``values`` is ``{block_id: {action_id: state}}``; a plain string state is wrapped as
    ``{"type": "plain_text_input", "value": s}``, a dict is used as given. ``view`` is
    the modal as views.open answered it; without it a minimal modal is made up.
    """
    vid = view_id or (str(view["id"]) if view is not None else random_id("V"))
    payload = _interaction(
        "view_submission", user_id, user_name, team_id, team_domain, api_app_id, token, trigger_id
    ) | {
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
    }
    if view is not None:
        payload["view"] = {**view, "state": {"values": _state_values(values)}}
    return payload


def view_submission_body(
    callback_id: str,
    private_metadata: str = "",
    values: Mapping[str, Mapping[str, Any]] | None = None,
    user_id: str = "U123",
    **kwargs: Any,
) -> str:
    """Form body ``payload=<json>`` of a modal submission, as Slack POSTs it."""
    payload = view_submission_payload(callback_id, private_metadata, values, user_id, **kwargs)
    return _form_body(payload)


def event_callback_payload(
    event: Mapping[str, Any],
    *,
    team_id: str = DEFAULT_TEAM_ID,
    api_app_id: str = DEFAULT_APP_ID,
    event_id: str | None = None,
    token: str = VERIFICATION_TOKEN,
) -> dict[str, Any]:
    """An Events API ``event_callback`` wrapping ``event`` (for ``events_api`` envelopes)."""
    now = int(time.time())
    return {
        "token": token,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or random_id("Ev"),
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

"""What the console page shows one person: the workspace's state as Slack would show it.

Pure: reads a :class:`~bot.console.web_api.WebApi` and the console's own notices, returns
JSON for the page. Ephemerals and the person's notices are theirs alone; a Web API call
Slack refused is shown to everyone, where it was aimed, as an error item.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.console.block_kit_rules import validate_blocks
from bot.console.payloads import make_ts
from bot.console.records import Call, ResponsePost
from bot.console.web_api import WebApi


@dataclass(frozen=True)
class Notice:
    """Something the console itself has to say, e.g. that the bot did not answer."""

    channel: str
    ts: str
    kind: str  # "command": what the person typed; "error": a delivery that failed
    text: str
    user: str | None = None  # shown to this person only; None: to everyone
    thread_ts: str | None = None
    detail: tuple[str, ...] = field(default_factory=tuple)


def _channel_id(ref: Any, channels: dict[str, str], fallback: str) -> str:
    given = str(ref or "")
    if given in channels:
        return given
    name = given.lstrip("#")
    return next((cid for cid, cname in channels.items() if cname == name), fallback)


def _call_error(ws: WebApi, call: Call, channels: dict[str, str], fallback: str) -> dict[str, Any]:
    params, response = call.params, call.response
    ref = params.get("channel") or params.get("channel_id")
    if not ref and params.get("trigger_id"):
        origin = ws.origin_of_trigger(str(params["trigger_id"]))
        ref = origin.channel if origin else None
    if not ref and params.get("view_id"):
        view = next((v for v in ws.views if v.id == params["view_id"]), None)
        ref = view.channel if view else None
    meta = response.get("response_metadata")
    messages = meta.get("messages") if isinstance(meta, dict) else None
    return {
        "kind": "error",
        "source": "web_api",
        "method": call.method,
        "error": str(response.get("error") or f"HTTP {call.status}"),
        "messages": [str(m) for m in (messages or response.get("errors") or [])][:20],
        "channel": _channel_id(ref, channels, fallback),
        "thread_ts": params.get("thread_ts") or None,
        "ts": make_ts(call.at),
    }


def _response_error(ws: WebApi, post: ResponsePost, fallback: str) -> dict[str, Any] | None:
    origin = ws.origin_of_response(post.response_id)
    if origin is None:  # not a response_url this console handed out
        return None
    body = post.body if isinstance(post.body, dict) else {}
    blocks = body.get("blocks")
    refused = post.status == 400 and isinstance(blocks, list)
    return {
        "kind": "error",
        "source": "response_url",
        "method": "response_url",
        "error": "invalid_blocks" if refused else "used_url or expired_url",
        "messages": validate_blocks(blocks)[:20] if refused and isinstance(blocks, list) else [],
        "channel": origin.channel or fallback,
        "thread_ts": origin.thread_ts,
        "ts": make_ts(post.at),
        "user": origin.user,
    }


def _name(ws: WebApi, user: str) -> str:
    if user == ws.bot_user_id:
        return ws.bot_name
    info = ws.user_info(user)
    return str(info.get("real_name") or info.get("name")) if info else user


def snapshot(
    ws: WebApi, notices: Sequence[Notice], viewer: str, default_channel: str
) -> dict[str, Any]:
    """Everything ``viewer`` sees: channels, items (messages, their ephemerals, files,
    errors, notices; replies carry ``thread_ts``) in time order, and their open modals."""
    revision = ws.revision  # read first: a change after it is a new revision to fetch
    channels = {str(c["id"]): str(c["name"]) for c in ws.channels}
    items: list[dict[str, Any]] = []
    messages = ws.messages()
    files = ws.files
    replies: dict[tuple[str, str], int] = {}
    for m in messages:
        if m.thread_ts and m.thread_ts != m.ts:
            replies[(m.channel, m.thread_ts)] = replies.get((m.channel, m.thread_ts), 0) + 1
    for f in files:
        for c in f.channels:
            if f.thread_ts:
                replies[(c, f.thread_ts)] = replies.get((c, f.thread_ts), 0) + 1
    for m in messages:
        items.append(
            {
                "kind": "message",
                "channel": m.channel,
                "ts": m.ts,
                "thread_ts": m.thread_ts,
                "user": m.user,
                "author": _name(ws, m.user),
                "is_bot": m.user == ws.bot_user_id,
                "text": m.text,
                "blocks": m.blocks,
                "edited": m.edited,
                "reply_count": replies.get((m.channel, m.ts), 0),
            }
        )
    for e in ws.ephemerals:
        if e.user == viewer:
            items.append(
                {
                    "kind": "ephemeral",
                    "channel": e.channel,
                    "ts": e.message_ts,
                    "thread_ts": e.thread_ts,
                    "user": e.user,
                    "author": ws.bot_name,
                    "text": e.text,
                    "blocks": e.blocks,
                }
            )
    for f in files:
        mimetype = mimetypes.guess_type(f.filename)[0] or "application/octet-stream"
        for c in f.channels:
            items.append(
                {
                    "kind": "file",
                    "channel": c,
                    "ts": make_ts(f.completed_at or f.created),
                    "thread_ts": f.thread_ts,
                    "author": ws.bot_name,
                    "file_id": f.id,
                    "title": f.title or f.filename,
                    "url": f"/console/files/{f.id}",
                    "is_image": mimetype.startswith("image/"),
                    "comment": f.initial_comment or "",
                }
            )
    for call in ws.calls:
        if not call.ok:
            items.append(_call_error(ws, call, channels, default_channel))
    for post in ws.responses:
        if post.status != 200:
            error = _response_error(ws, post, default_channel)
            if error is not None and error["user"] == viewer:
                items.append(error)
    for n in notices:
        if n.user in (None, viewer):
            items.append(
                {
                    "kind": "notice" if n.kind != "error" else "error",
                    "source": "console",
                    "notice": n.kind,
                    "channel": n.channel,
                    "ts": n.ts,
                    "thread_ts": n.thread_ts,
                    "user": n.user,
                    "author": _name(ws, n.user) if n.user else "console",
                    "text": n.text,
                    "method": "",
                    "error": n.text,
                    "messages": list(n.detail),
                }
            )
    items.sort(key=lambda item: float(item["ts"]))
    for item in items:
        channels.setdefault(item["channel"], item["channel"].lower())
    return {
        "revision": revision,
        "viewer": viewer,
        "channels": [{"id": cid, "name": name} for cid, name in channels.items()],
        "default_channel": default_channel,
        "items": items,
        "views": [
            {"id": v.id, "view": v.view, "errors": v.errors}
            for v in ws.views
            if v.user == viewer and not v.closed
        ],
    }

"""Slack's Web API as one workspace's state: methods, auth, limits, errors, faults.

No sockets here: :class:`WebApi` takes a method name, its parameters and a token and
answers what Slack would (:meth:`WebApi.call`), keeping messages, ephemerals, files and
modals. ``bot.console.workspace`` serves it over HTTP; the console shows its state.
Thread-safe: readers get copies; watchers hear of every change (see :meth:`watch`).
"""

from __future__ import annotations

import copy
import mimetypes
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.console.block_kit_rules import validate_blocks, validate_view
from bot.console.payloads import (
    DEFAULT_APP_ID,
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_ID,
    DEFAULT_BOT_TOKEN,
    DEFAULT_BOT_USER_ID,
    DEFAULT_TEAM_DOMAIN,
    DEFAULT_TEAM_ID,
    make_trigger_id,
    make_ts,
    random_id,
)
from bot.console.records import (
    Call,
    Ephemeral,
    Message,
    MessageVersion,
    ResponsePost,
    UploadedFile,
    View,
)

# Slack's documented limits.
MAX_MESSAGE_TEXT = 40_000
RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_TTL = 30 * 60.0
TRIGGER_ID_TTL = 3.0

_TRIGGER_RE = re.compile(r"^(\d{13})\.\d{6,}\.[0-9a-f]{32}$")
_USER_ID_RE = re.compile(r"^[UW][A-Z0-9]{2,}$")
_CHANNEL_ID_RE = re.compile(r"^[CGD][A-Z0-9]{2,}$")

DEFAULT_CHANNELS: tuple[tuple[str, str], ...] = (("C123", "general"),)
DEFAULT_USERS: tuple[tuple[str, str, str], ...] = (("U123", "alice", "Alice Example"),)


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


def _flag(body: Mapping[str, Any], key: str) -> bool:
    """A response_url boolean: JSON true or the string "true"."""
    return str(body.get(key, "")).lower() == "true"


@dataclass(frozen=True)
class Origin:
    """Where a trigger_id or response_url was issued: who acted, in which channel, on what."""

    user: str | None = None
    channel: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None
    is_ephemeral: bool = False


_Handler = Callable[[dict[str, Any]], dict[str, Any]]


class WebApi:
    """One workspace with one app installed; see the module docstring.

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
        bot_name: str = "vllm-chatops",
        strict: bool = False,
        channels: Sequence[tuple[str, str]] = DEFAULT_CHANNELS,
        users: Sequence[tuple[str, str, str]] = DEFAULT_USERS,
    ) -> None:
        self.token = token
        self.app_token = app_token
        self.team_id = team_id
        self.team_domain = team_domain
        self.app_id = app_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.strict = strict
        self.trigger_id_ttl = TRIGGER_ID_TTL
        self.response_url_ttl = RESPONSE_URL_TTL

        self._lock = threading.RLock()
        self._base_url: str | None = None
        self._revision = 0
        self._watchers: list[Callable[[], None]] = []

        self._calls: list[Call] = []
        self._messages: dict[tuple[str, str], Message] = {}
        self._ephemerals: list[Ephemeral] = []
        self._files: dict[str, UploadedFile] = {}
        self._upload_tickets: dict[str, str] = {}
        self._views: dict[str, View] = {}
        self._used_triggers: set[str] = set()
        self._triggers: dict[str, Origin] = {}
        self._responses: list[ResponsePost] = []
        self._response_uses: dict[str, tuple[float, int]] = {}
        self._response_origins: dict[str, Origin] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._last_ts_us = 0
        self._rate_limits: dict[str, list[int]] = {}  # method -> [remaining, retry_after]
        self._outages: dict[str, list[Any]] = {}  # method -> [HTTP status, remaining|None]
        self._failures: dict[str, list[Any]] = {}  # method -> [error, remaining or None]
        self._delays: dict[str, float] = {}
        self._stubs: dict[str, dict[str, Any]] = {}
        self._default_response_id = uuid.uuid4().hex

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
            "usergroups.users.list": self._usergroups_users_list,
        }
        for channel_id, name in channels:
            self.add_channel(channel_id, name)
        for user_id, name, real_name in users:
            self.add_user(user_id, name, real_name)

    # -- addresses (set by whoever serves it) --------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the workspace is not served; call start()")
        return self._base_url

    @property
    def api_url(self) -> str:
        """Web API base URL, e.g. ``http://127.0.0.1:PORT/api/`` (slack_sdk ``base_url``)."""
        return f"{self.base_url}/api/"

    @property
    def response_url(self) -> str:
        """The default response_url (shared: 5 uses in total, like Slack's)."""
        return f"{self.base_url}/response/{self._default_response_id}"

    def new_response_url(
        self,
        *,
        user: str | None = None,
        channel: str | None = None,
        message_ts: str | None = None,
        thread_ts: str | None = None,
        is_ephemeral: bool = False,
    ) -> str:
        """A fresh response_url with its own 5-use budget. Given the ``user`` and
        ``channel`` it answers, what is posted to it shows like Slack shows it: an
        ephemeral reply, an ``in_channel`` post, or ``replace_original`` /
        ``delete_original`` of the message at ``message_ts``."""
        rid = uuid.uuid4().hex
        if user is not None and channel is not None:
            with self._lock:
                self._response_origins[rid] = Origin(
                    user, channel, message_ts, thread_ts, is_ephemeral
                )
        return f"{self.base_url}/response/{rid}"

    def new_trigger_id(self, *, user: str | None = None, channel: str | None = None) -> str:
        """A trigger_id issued now (views.open rejects it after ``trigger_id_ttl`` seconds);
        a modal opened with it is shown to ``user``."""
        trigger = make_trigger_id()
        if user is not None:
            with self._lock:
                self._triggers[trigger] = Origin(user, channel)
        return trigger

    # -- changes -------------------------------------------------------------

    @property
    def revision(self) -> int:
        """Grows with every change of the recorded state."""
        with self._lock:
            return self._revision

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every change, from the changing thread (keep it quick)."""
        with self._lock:
            self._watchers.append(callback)

    def touch(self) -> None:
        """Tell the watchers something shown alongside the workspace changed."""
        self._changed()

    def _changed(self) -> None:
        with self._lock:
            self._revision += 1
            watchers = list(self._watchers)
        for callback in watchers:
            callback()

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

    def add_usergroup(self, group_id: str, users: Sequence[str]) -> None:
        """A user group (``S…``) and its members, for usergroups.users.list."""
        with self._lock:
            self._usergroups[group_id] = list(users)

    @property
    def channels(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._channels.values()))

    def user_info(self, user_id: str) -> dict[str, Any] | None:
        with self._lock:
            user = self._users.get(user_id)
            return copy.deepcopy(user) if user is not None else None

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

    def delay_for(self, method: str) -> float:
        with self._lock:
            return self._delays.get(method, 0.0)

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
            self._triggers.clear()
            self._responses.clear()
            self._response_uses.clear()
            self._response_origins.clear()
        self._changed()

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

    # -- the Web API ---------------------------------------------------------

    def call(
        self, method: str, params: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Slack's answer to ``method``: HTTP status, JSON body, extra headers."""
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

    def record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)
        self._changed()

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
            cid, cname = random_id("C"), name
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
        out: dict[str, Any] = {"type": "message", "user": m.user, "text": m.text, "ts": m.ts}
        out["team"] = self.team_id
        if m.user == self.bot_user_id:
            out["bot_id"] = self.bot_id
            out["app_id"] = self.app_id
            out["bot_profile"] = {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": self.bot_name,
                "team_id": self.team_id,
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
            "team": "Local Workspace",
            "user": self.bot_name,
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
        vid = random_id("V")
        body = self._view_json(view, vid, vid)
        origin = self._triggers.get(trigger_id, Origin())
        self._views[vid] = View(
            vid,
            body,
            trigger_id,
            time.time(),
            [copy.deepcopy(body)],
            user=origin.user,
            channel=origin.channel,
        )
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
        current.errors = {}
        current.history.append(copy.deepcopy(body))
        return {"ok": True, "view": copy.deepcopy(body)}

    def _files_get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = self._str(params, "filename")
        length = self._str(params, "length")
        if filename is None or length is None or not length.isdigit() or int(length) <= 0:
            raise _SlackError("invalid_arguments")
        file_id = random_id("F")
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

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        members = self._usergroups.get(self._str(params, "usergroup") or "")
        if members is None:
            raise _SlackError("no_such_subteam")
        return {"ok": True, "users": list(members)}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user": copy.deepcopy(self._user(self._str(params, "user")))}

    # -- uploads and response_urls -------------------------------------------

    def accept_upload(self, ticket: str, data: bytes) -> bool:
        """Bytes sent to an upload URL; False when the URL was never handed out."""
        with self._lock:
            record = self._files.get(self._upload_tickets.get(ticket, ""))
            if record is None:
                return False
            record.data = data
            record.uploaded_at = time.time()
        self._changed()
        return True

    def file_data(self, file_id: str) -> tuple[UploadedFile, bytes] | None:
        """A completed file and its bytes."""
        with self._lock:
            f = self._files.get(file_id)
            if f is None or not f.completed or f.data is None:
                return None
            return copy.deepcopy(f), f.data

    def accept_response(self, rid: str, body: Any, headers: dict[str, str]) -> tuple[int, str]:
        """A POST to a response_url: Slack's answer (status, text); used at most 5 times
        within 30 minutes; blocks Slack would refuse are refused (400 invalid_blocks)."""
        now = time.time()
        with self._lock:
            first, uses = self._response_uses.get(rid, (now, 0))
            if uses >= RESPONSE_URL_MAX_USES:
                status, text = 404, "used_url"
            elif now - first > self.response_url_ttl:
                status, text = 404, "expired_url"
            else:
                status, text = 200, "ok"
                blocks = body.get("blocks") if isinstance(body, dict) else None
                if isinstance(blocks, list) and validate_blocks(blocks):
                    status, text = 400, "invalid_blocks"
                if status == 200:
                    self._response_uses[rid] = (first, uses + 1)
                    origin = self._response_origins.get(rid)
                    if origin is not None and isinstance(body, dict):
                        self._respond(origin, body)
            self._responses.append(ResponsePost(rid, body, headers, now, status))
        self._changed()
        return status, text

    def _respond(self, origin: Origin, body: Mapping[str, Any]) -> None:
        """Show a response_url post as Slack does (lock held)."""
        assert origin.channel is not None and origin.user is not None
        text = str(body.get("text") or "")
        blocks = body.get("blocks") if isinstance(body.get("blocks"), list) else None
        now = time.time()
        original = (
            None
            if origin.is_ephemeral
            else self._messages.get((origin.channel, origin.message_ts or ""))
        )
        if _flag(body, "delete_original"):
            if original is not None:
                del self._messages[(original.channel, original.ts)]
            return
        if _flag(body, "replace_original") and original is not None:
            original.text = text
            original.blocks = copy.deepcopy(blocks or [])
            original.history.append(
                MessageVersion(original.text, copy.deepcopy(original.blocks), now, "response_url")
            )
            return
        if body.get("response_type") == "in_channel":
            ts = self._next_ts()
            message = Message(
                origin.channel,
                ts,
                text,
                copy.deepcopy(blocks or []),
                origin.thread_ts,
                self.bot_user_id,
                [],
            )
            message.history.append(MessageVersion(text, message.blocks, now, "response_url"))
            self._messages[(origin.channel, ts)] = message
            return
        self._ephemerals.append(
            Ephemeral(
                origin.channel,
                origin.user,
                self._next_ts(),
                text,
                copy.deepcopy(blocks or []),
                origin.thread_ts,
                now,
            )
        )

    # -- what people do in the workspace -------------------------------------

    def origin_of_trigger(self, trigger_id: str) -> Origin | None:
        with self._lock:
            return self._triggers.get(trigger_id)

    def origin_of_response(self, rid: str) -> Origin | None:
        with self._lock:
            return self._response_origins.get(rid)

    def message_json(self, channel: str, ts: str) -> dict[str, Any] | None:
        """A message as Slack shows it to an app (conversations.history's form)."""
        with self._lock:
            message = self._messages.get((channel, ts))
            return self._message_json(message) if message is not None else None

    def reply(self, origin: Origin, body: Mapping[str, Any]) -> list[str]:
        """Show an app's immediate answer to a command as Slack does (an ephemeral reply
        unless ``in_channel``); the Block Kit errors when Slack would refuse it."""
        blocks = body.get("blocks")
        errors = validate_blocks(blocks) if isinstance(blocks, list) else []
        if not errors:
            with self._lock:
                self._respond(origin, body)
            self._changed()
        return errors

    def post_as_user(
        self, channel: str, user: str, text: str, thread_ts: str | None = None
    ) -> Message:
        """A person's plain message (what the composer sends that is not a command)."""
        with self._lock:
            cid = str(self._channel({"channel": channel})["id"])
            message = Message(cid, self._next_ts(), text, [], thread_ts, user, [])
            message.history.append(MessageVersion(text, [], time.time(), "message"))
            self._messages[(cid, message.ts)] = message
            result = copy.deepcopy(message)
        self._changed()
        return result

    def close_view(self, view_id: str) -> bool:
        """The person closed the modal (Cancel, or the submission was taken)."""
        with self._lock:
            view = self._views.get(view_id)
            if view is None:
                return False
            view.closed = True
        self._changed()
        return True

    def answer_submission(self, view_id: str, answer: Mapping[str, Any] | None) -> str | None:
        """Apply the app's answer to a view_submission, as Slack does: nothing closes the
        modal, ``errors`` shows them under the fields, ``update`` replaces it, ``push``
        stacks a new one, ``clear`` closes them all. Returns a problem to show, if any."""
        action = (answer or {}).get("response_action")
        problem: str | None = None
        with self._lock:
            view = self._views.get(view_id)
            if view is None:
                return f"there is no open modal {view_id}"
            if action == "errors":
                errors = (answer or {}).get("errors")
                view.errors = (
                    {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {}
                )
            elif action in ("update", "push"):
                new = (answer or {}).get("view")
                errors = validate_view(new) if isinstance(new, dict) else ["no view"]
                if errors:
                    problem = f"the app answered {action} with a view Slack refuses: " + "; ".join(
                        errors[:5]
                    )
                    view.errors = {"": problem}
                elif action == "update":
                    assert isinstance(new, dict)
                    view.view = self._view_json(new, view.id, str(view.view["root_view_id"]))
                    view.errors = {}
                    view.history.append(copy.deepcopy(view.view))
                else:
                    assert isinstance(new, dict)
                    vid = random_id("V")
                    body = self._view_json(new, vid, str(view.view["root_view_id"]))
                    self._views[vid] = View(
                        vid,
                        body,
                        None,
                        time.time(),
                        [copy.deepcopy(body)],
                        user=view.user,
                        channel=view.channel,
                    )
            elif action == "clear":
                for other in self._views.values():
                    if other.user == view.user:
                        other.closed = True
            else:
                view.closed = True
        self._changed()
        return problem

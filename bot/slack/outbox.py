"""Everything that reaches Slack leaves through here.

Posts and updates are durable: recorded in the database (:mod:`bot.ledger`) before they
are sent, paced as Slack limits them (a new message about one a second per channel, with
short bursts; an edit is not a new message, and edits share a workspace-wide budget of
about 50 a minute, so a diagnosis' edits never hold the next alert's post), retried with
backoff on 429, 5xx and network errors — by any replica, after a restart too — and given
up only on a permanent refusal, recorded with why and counted. A post carries its
idempotency key in its message metadata, so a post whose first attempt may have reached
Slack before the bot died is looked up, not posted twice; an update slot (one per
message) sends only its newest content. Nothing here raises into a listener.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client import Counter
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.ledger import Entry, Ledger
from bot.slack.block_kit import Message
from bot.slack.pace import ChannelPace
from bot.store import utcnow

log = logging.getLogger(__name__)

METADATA_EVENT = "vllm_chatops_message"
LEASE = timedelta(seconds=30)  # a sender that died lets go of its write after this
EPHEMERAL_TTL = timedelta(minutes=30)  # like a response_url: an answer is due soon or never
# Slack errors that may pass: tried again later. Everything else is a permanent refusal.
TRANSIENT = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def make_client(token: str | None, base_url: str) -> AsyncWebClient:
    """A 429 means Slack did nothing: waited out here. A 5xx or a dropped connection may
    come after Slack posted, so those are retried by the outbox, which looks a post up by
    its key before sending it again, never blindly by the HTTP client."""
    client = AsyncWebClient(token=token, base_url=base_url, timeout=15)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    return client


def backoff_s(attempts: int) -> float:
    """Seconds before trying a write again: 2, 4, 8 … capped at a minute."""
    return float(min(60, 2 ** max(1, attempts)))


UPDATES = "chat.update"  # the update budget's one bucket: it is the workspace's, not a channel's


@dataclass
class SlackHealth:
    """How Slack has been answering: the last success, and failures since (for /readyz)."""

    last_ok: float | None = None
    failing_since: float | None = None
    last_error: str = ""

    def ok(self) -> None:
        self.last_ok, self.failing_since, self.last_error = time.monotonic(), None, ""

    def failed(self, error: str) -> None:
        self.failing_since = self.failing_since or time.monotonic()
        self.last_error = error

    def describe(self) -> str:
        if self.failing_since is not None:
            since = time.monotonic() - self.failing_since
            return f"failing for {since:.0f} s ({self.last_error}); writes are kept and retried"
        return "ok" if self.last_ok is not None else "not used yet"


@dataclass(frozen=True)
class Outcome:
    data: Mapping[str, Any] | None
    error: str | None = None
    transient: bool = False


class Outbox:
    def __init__(
        self,
        client: AsyncWebClient,
        calls: Counter,
        ledger: Ledger,
        pace: ChannelPace | None = None,
        update_pace: ChannelPace | None = None,
    ) -> None:
        self.client = client
        self._calls = calls  # labelled by Web API method and outcome
        self.ledger = ledger
        self.pace = pace or ChannelPace()  # new messages, per channel
        # chat.update (Slack's tier 3, ~50 a minute for the workspace), one bucket for all
        self.update_pace = update_pace or ChannelPace(every_s=1.2, burst=10)
        self._locks: dict[str, asyncio.Lock] = {}
        self.health = SlackHealth()

    async def _call(
        self, method: str, call: Callable[[], Awaitable[AsyncSlackResponse]]
    ) -> Mapping[str, Any] | None:
        return (await self._attempt(method, call)).data

    async def _attempt(
        self, method: str, call: Callable[[], Awaitable[AsyncSlackResponse]]
    ) -> Outcome:
        try:
            response = await call()
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown")) if exc.response else "unknown"
            status = exc.response.status_code if exc.response is not None else 0
            log.warning("slack %s failed: %s", method, error)
            self._calls.labels(method, f"error:{error}").inc()
            transient = error in TRANSIENT or status == 429 or status >= 500
            if transient:
                self.health.failed(error)
            return Outcome(None, error, transient)
        except Exception as exc:  # network down, timeout: report, never raise
            log.warning("slack %s failed: %s", method, exc)
            self._calls.labels(method, "unreachable").inc()
            self.health.failed(f"unreachable: {type(exc).__name__}")
            return Outcome(None, f"unreachable: {type(exc).__name__}", True)
        self._calls.labels(method, "ok").inc()
        self.health.ok()
        return Outcome(response.data if isinstance(response.data, dict) else {})

    async def post(
        self, channel: str, message: Message, thread_ts: str | None = None, key: str | None = None
    ) -> str | None:
        """Post; the message ts, or None when Slack has not taken it (yet: a transient
        failure is sent later). The same ``key`` is one message: recorded again before it
        was sent, it takes the new content; once sent, its ts is returned as it is."""
        key = key or f"post:{secrets.token_urlsafe(12)}"
        params: dict[str, Any] = {
            "channel": channel,
            "text": message.text,
            "blocks": message.blocks,
            "metadata": {"event_type": METADATA_EVENT, "event_payload": {"key": key}},
        }
        if thread_ts:
            params["thread_ts"] = thread_ts
        entry = await asyncio.to_thread(
            self.ledger.record, key, "chat.postMessage", channel, params
        )
        if entry.state == "sent":
            return entry.ts
        state, ts = await self._deliver(entry)
        return ts if state == "sent" else None

    async def update(self, channel: str, ts: str, message: Message) -> bool:
        """Replace a message's content (last write wins). True once Slack has it or will
        (a transient failure is sent later); False when Slack refused it for good."""
        params: dict[str, Any] = {
            "channel": channel,
            "ts": ts,
            "text": message.text,
            "blocks": message.blocks,
        }
        entry = await asyncio.to_thread(
            self.ledger.record, f"update:{channel}:{ts}", "chat.update", channel, params
        )
        state, _ = await self._deliver(entry)
        return state != "failed"

    async def _deliver(self, recorded: Entry) -> tuple[str, str | None]:
        """Send a recorded write now: ("sent", ts), ("pending", None) when it is left for
        a retry (or another replica holds it), ("failed", None) when Slack refused it.

        Writes of one key are serialised in this process, and the content is read when
        the channel's pace allows, so a burst of updates to one message sends the newest.
        """
        lock = self._locks.setdefault(recorded.key, asyncio.Lock())
        try:
            async with lock:
                if recorded.method == "chat.update":
                    await self.update_pace.wait(UPDATES)
                elif recorded.method != "chat.postEphemeral":  # a reply to one person: own limit
                    top_level = recorded.method == "chat.postMessage" and not (
                        recorded.params.get("thread_ts")
                    )
                    await self.pace.wait(recorded.channel, first=top_level)
                entry = await asyncio.to_thread(self.ledger.take, recorded.id, LEASE)
                if entry is None:  # settled meanwhile, or another replica is sending it
                    # sent by the resend job in between: the caller still needs its ts
                    now = await asyncio.to_thread(self.ledger.get, recorded.id)
                    if now is not None and now.state == "sent":
                        return "sent", now.ts
                    return "pending", None
                return await self._send(entry)
        finally:
            if not lock.locked():
                self._locks.pop(recorded.key, None)

    async def _send(self, entry: Entry) -> tuple[str, str | None]:
        params = entry.params
        if entry.method == "chat.update":
            outcome = await self._attempt("chat.update", lambda: self.client.chat_update(**params))
        elif entry.method == "files_upload_v2":
            upload = dict(params)
            content = base64.b64decode(upload.pop("content_base64"))
            outcome = await self._attempt(
                "files_upload_v2", lambda: self.client.files_upload_v2(content=content, **upload)
            )
        elif entry.method == "chat.postEphemeral":
            outcome = await self._attempt(
                "chat.postEphemeral", lambda: self.client.chat_postEphemeral(**params)
            )
        else:
            outcome = await self._attempt(
                "chat.postMessage", lambda: self.client.chat_postMessage(**params)
            )
        if outcome.data is not None:
            ts = str(outcome.data.get("ts") or params.get("ts") or "")
            await asyncio.to_thread(self.ledger.sent, entry, ts or None)
            return "sent", ts
        error = outcome.error or "unknown"
        if outcome.transient:
            at = utcnow() + timedelta(seconds=backoff_s(entry.attempts))
            await asyncio.to_thread(self.ledger.retry, entry, at, error)
            return "pending", None
        log.error("slack refused %s %s for good: %s", entry.method, entry.key, error)
        self._calls.labels(entry.method, "gave_up").inc()
        await asyncio.to_thread(self.ledger.failed, entry, error)
        return "failed", None

    async def resend_due(self) -> int:
        """Send what is pending: after Slack failed, or after its sender died. A post that
        may already have reached Slack is looked up by its key first."""
        due = await asyncio.to_thread(self.ledger.due)
        for entry in due:
            if entry.method == "chat.postEphemeral" and utcnow() - entry.created_at > (
                EPHEMERAL_TTL
            ):
                await asyncio.to_thread(self.ledger.failed, entry, "expired: too late to answer")
                continue
            if entry.method == "chat.postMessage" and entry.attempts > 0:
                found = await self._posted_ts(entry)
                if found is not None:
                    await asyncio.to_thread(self.ledger.sent, entry, found)
                    continue
            await self._deliver(entry)
        return len(due)

    async def _posted_ts(self, entry: Entry) -> str | None:
        """The ts of a message Slack already holds for ``entry`` (by its metadata key)."""
        oldest = f"{entry.created_at.timestamp() - 60:.6f}"
        thread = entry.params.get("thread_ts")
        if thread:
            outcome = await self._attempt(
                "conversations.replies",
                lambda: self.client.conversations_replies(
                    channel=entry.channel, ts=thread, oldest=oldest, include_all_metadata=True
                ),
            )
        else:
            outcome = await self._attempt(
                "conversations.history",
                lambda: self.client.conversations_history(
                    channel=entry.channel, oldest=oldest, limit=200, include_all_metadata=True
                ),
            )
        for message in (outcome.data or {}).get("messages", []):
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("key") == entry.key:
                return str(message["ts"])
        return None

    async def ephemeral(self, channel: str, user: str, message: Message) -> bool:
        """A reply only ``user`` sees. Kept and retried like a post, but only for
        ``EPHEMERAL_TTL``: an answer that comes much later is no answer."""
        params: dict[str, Any] = {
            "channel": channel,
            "user": user,
            "text": message.text,
            "blocks": message.blocks,
        }
        key = f"ephemeral:{secrets.token_urlsafe(12)}"
        entry = await asyncio.to_thread(
            self.ledger.record, key, "chat.postEphemeral", channel, params
        )
        state, _ = await self._deliver(entry)
        return state == "sent"

    async def open_view(self, trigger_id: str, view: Mapping[str, Any]) -> str | None:
        """Open a modal; its view id (for updates), or None."""
        data = await self._call(
            "views.open", lambda: self.client.views_open(trigger_id=trigger_id, view=dict(view))
        )
        return str(data["view"]["id"]) if data and "view" in data else None

    async def update_view(self, view_id: str, view: Mapping[str, Any]) -> bool:
        data = await self._call(
            "views.update", lambda: self.client.views_update(view_id=view_id, view=dict(view))
        )
        return data is not None

    async def group_members(self, group_id: str) -> list[str] | None:
        """User ids in a Slack user group; None when Slack refuses (e.g. a missing scope)."""
        data = await self._call(
            "usergroups.users.list",
            lambda: self.client.usergroups_users_list(usergroup=group_id),
        )
        return None if data is None else [str(u) for u in data.get("users", [])]

    async def upload_png(
        self, channel: str, thread_ts: str | None, png: bytes, filename: str, title: str
    ) -> bool:
        """Upload a chart into a thread; kept and retried like a post (a chart whose
        uploader died mid-upload may be shown twice: files carry no idempotency key)."""
        params: dict[str, Any] = {
            "channel": channel,
            "thread_ts": thread_ts,
            "content_base64": base64.b64encode(png).decode(),
            "filename": filename,
            "title": title,
        }
        key = f"upload:{secrets.token_urlsafe(12)}"
        entry = await asyncio.to_thread(self.ledger.record, key, "files_upload_v2", channel, params)
        state, _ = await self._deliver(entry)
        return state == "sent"

"""Everything that reaches Slack leaves through here.

Rate limits (429 + Retry-After) are retried by slack_sdk's handler; any other failure is
logged and counted, and reported to the caller as ``None`` — a Slack outage must never
crash a listener or lose the bot's own state.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import Counter
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.slack.block_kit import Message

log = logging.getLogger(__name__)


def make_client(token: str | None, base_url: str) -> AsyncWebClient:
    client = AsyncWebClient(token=token, base_url=base_url, timeout=15)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    client.retry_handlers.append(AsyncConnectionErrorRetryHandler(max_retry_count=2))
    return client


class Outbox:
    def __init__(self, client: AsyncWebClient, calls: Counter) -> None:
        self.client = client
        self._calls = calls  # labelled by Web API method and outcome

    async def _call(
        self, method: str, call: Callable[[], Awaitable[AsyncSlackResponse]]
    ) -> Mapping[str, Any] | None:
        try:
            response = await call()
        except SlackApiError as exc:
            error = exc.response.get("error", "unknown") if exc.response else "unknown"
            log.warning("slack %s failed: %s", method, error)
            self._calls.labels(method, f"error:{error}").inc()
            return None
        except Exception as exc:  # network down, timeout: report, never raise
            log.warning("slack %s failed: %s", method, exc)
            self._calls.labels(method, "unreachable").inc()
            return None
        self._calls.labels(method, "ok").inc()
        return response.data if isinstance(response.data, dict) else {}

    async def post(
        self, channel: str, message: Message, thread_ts: str | None = None
    ) -> str | None:
        """Post; the message ts, or None when Slack refused or could not be reached."""
        data = await self._call(
            "chat.postMessage",
            lambda: self.client.chat_postMessage(
                channel=channel, text=message.text, blocks=message.blocks, thread_ts=thread_ts
            ),
        )
        return str(data["ts"]) if data and "ts" in data else None

    async def update(self, channel: str, ts: str, message: Message) -> bool:
        data = await self._call(
            "chat.update",
            lambda: self.client.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=message.blocks
            ),
        )
        return data is not None

    async def ephemeral(self, channel: str, user: str, message: Message) -> bool:
        data = await self._call(
            "chat.postEphemeral",
            lambda: self.client.chat_postEphemeral(
                channel=channel, user=user, text=message.text, blocks=message.blocks
            ),
        )
        return data is not None

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
        data = await self._call(
            "files_upload_v2",
            lambda: self.client.files_upload_v2(
                channel=channel, thread_ts=thread_ts, content=png, filename=filename, title=title
            ),
        )
        return data is not None

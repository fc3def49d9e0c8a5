"""Bolt listeners: acknowledge at once, parse, hand the work to a background task.

Nothing slow happens before ``ack()``: Slack gives three seconds, and Prometheus may be
slow. Every failure ends in a message to the user, never silence or a stack trace.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.config import ConfigError
from bot.models import RecommendedAction
from bot.services import SLASH_COMMANDS, Services
from bot.slack import ids
from bot.slack.blocks import (
    Message,
    action_plan_view,
    help_message,
    runbook_message,
    runbooks_message,
    usage_error,
)
from bot.slack.live import diagnose_to_slack
from bot.slack.slash import SlashError, parse
from bot.store import utcnow

log = logging.getLogger(__name__)


def register(app: AsyncApp, svc: Services) -> None:
    @app.command(ids.COMMAND)
    async def vllm(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        svc.spawn(safely(svc, command, respond), f"/vllm {command.get('text', '')}")

    @app.action(ids.ACTION_BUTTON)
    async def recommended_action(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        svc.spawn(show_plan(svc, body), "action plan")


async def _reply(svc: Services, command: dict[str, Any], respond: Any, message: Message) -> None:
    """An ephemeral answer: through response_url, which works in any channel."""
    try:
        await respond(text=message.text, blocks=message.blocks, response_type="ephemeral")
    except Exception:
        await svc.outbox.ephemeral(command["channel_id"], command["user_id"], message)


async def safely(svc: Services, command: dict[str, Any], respond: Any) -> None:
    """A bug must reach the log, and the user a plain sentence — never a stack trace."""
    try:
        await handle_command(svc, command, respond)
    except Exception:
        log.exception("/vllm %s failed", command.get("text", ""))
        await _reply(
            svc,
            command,
            respond,
            usage_error("something went wrong on my side; it is in the bot's log"),
        )


async def handle_command(svc: Services, command: dict[str, Any], respond: Any) -> None:
    try:
        request = parse(command.get("text", ""), svc.runbooks)
    except SlashError as exc:
        SLASH_COMMANDS.labels("invalid").inc()
        await _reply(svc, command, respond, usage_error(str(exc)))
        return
    SLASH_COMMANDS.labels(request.verb).inc()
    if request.verb == "help":
        await _reply(svc, command, respond, help_message())
        return
    if request.verb == "runbooks":
        await _reply(svc, command, respond, runbooks_message(list(svc.runbooks.values())))
        return
    assert request.runbook is not None
    runbook = svc.runbooks[request.runbook]
    if request.verb == "runbook":
        await _reply(svc, command, respond, runbook_message(runbook))
        return
    try:
        svc.metrics_for(request.scope.cluster)
    except ConfigError as exc:
        await _reply(svc, command, respond, usage_error(str(exc)))
        return
    _, ts = await diagnose_to_slack(svc, command["channel_id"], runbook, request.scope)
    if ts is None:
        await _reply(
            svc,
            command,
            respond,
            usage_error("I cannot post in this channel: invite the bot (/invite @vllm-chatops)"),
        )


async def show_plan(svc: Services, body: dict[str, Any]) -> None:
    """The button's value is an opaque request id: look the request up, show its plan."""
    action = (body.get("actions") or [{}])[0]
    request_id = str(action.get("value", ""))
    request = await asyncio.to_thread(svc.store.action_request, request_id)
    channel = (body.get("channel") or {}).get("id", "")
    user = (body.get("user") or {}).get("id", "")
    if request is None:
        await svc.outbox.ephemeral(channel, user, usage_error("this action request is unknown"))
        return
    expires = (
        request.expires_at
        if request.expires_at.tzinfo
        else request.expires_at.replace(tzinfo=utcnow().tzinfo)
    )
    if expires < utcnow():
        await svc.outbox.ephemeral(
            channel, user, usage_error("this action request expired; run the diagnosis again")
        )
        return
    planned = RecommendedAction(
        kind=request.kind,  # validated when it was stored
        target=request.target,
        params=request.params,
        reason=request.reason,
    )
    await svc.outbox.open_view(body["trigger_id"], action_plan_view(planned, request.id))

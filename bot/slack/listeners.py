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
from bot.diagnosis.doctor import examine, expected_groups, gather
from bot.diagnosis.labels import UnknownCluster, known_cluster
from bot.remediation.events import Actor, Preview
from bot.remediation.flow import UnknownRequest
from bot.remediation.placement import AmbiguousTarget
from bot.remediation.requests import Asked, check_edits
from bot.slack import ids
from bot.slack.block_kit import Message
from bot.slack.canary_listeners import canary_reply
from bot.slack.canary_listeners import register as register_canary
from bot.slack.doctor_blocks import doctor_message
from bot.slack.help_blocks import (
    help_message,
    refusal,
    runbook_message,
    runbooks_message,
    usage_error,
)
from bot.slack.live import diagnose_to_slack
from bot.slack.readiness_listeners import readiness_reply
from bot.slack.readiness_listeners import register as register_readiness
from bot.slack.remediation_blocks import (
    PARAM_BLOCK,
    audit_message,
    loading_view,
    plan_view,
    submitted_params,
)
from bot.slack.services import Services
from bot.slack.slash import SlashError, SlashRequest, parse

log = logging.getLogger(__name__)


def register(app: AsyncApp, svc: Services) -> None:
    @app.command(ids.COMMAND)
    async def vllm(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        what = f"/vllm {command.get('text', '')}"
        svc.spawn(safely(svc, command, respond), what, after_acks=True)

    @app.action(ids.ACTION_BUTTON)
    async def recommended_action(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        svc.spawn(show_plan(svc, body), "action plan", after_acks=True)

    @app.view(ids.ACTION_PLAN_VIEW)
    async def confirmed(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        edited = submitted_params((view.get("state") or {}).get("values") or {})
        problems = check_edits(edited)
        if problems:  # shown under the fields; the modal stays open, nothing is posted
            errors = {f"{PARAM_BLOCK}{name}": text[:150] for name, text in problems.items()}
            await ack(response_action="errors", errors=errors)
            return
        request_id = str(view.get("private_metadata", ""))
        if not await svc.ack_path.request_exists(request_id):
            unknown = Preview(request_id, None, error=f"there is no action request {request_id!r}")
            await ack(response_action="update", view=plan_view(unknown))
            return
        await ack()
        confirm = svc.remediation.confirm(request_id, actor_of(body), edited)
        svc.spawn(confirm, "confirm", after_acks=True)

    @app.action(ids.APPROVE_BUTTON)
    async def approve(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        svc.spawn(decide(svc, body, approved=True), "approve", after_acks=True)

    @app.action(ids.REJECT_BUTTON)
    async def reject(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        svc.spawn(decide(svc, body, approved=False), "reject", after_acks=True)

    register_readiness(app, svc)
    register_canary(app, svc)


async def decide(svc: Services, body: dict[str, Any], approved: bool) -> None:
    """Approve or Reject pressed; an unknown request id gets a plain answer."""
    actor = actor_of(body)
    try:
        await svc.remediation.approve(_value(body), actor, approved)
    except UnknownRequest as exc:
        channel = str((body.get("channel") or {}).get("id", ""))
        if channel:
            await svc.outbox.ephemeral(channel, actor.id, refusal(str(exc)))


def actor_of(body: dict[str, Any]) -> Actor:
    user = body.get("user") or {}
    name = str(user.get("username") or user.get("name") or user.get("id", ""))
    return Actor(id=str(user.get("id", "")), name=name)


def _value(body: dict[str, Any]) -> str:
    return str(((body.get("actions") or [{}])[0]).get("value", ""))


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
        svc.metrics.slash_commands.labels("invalid").inc()
        await _reply(svc, command, respond, usage_error(str(exc)))
        return
    svc.metrics.slash_commands.labels(request.verb).inc()
    if request.verb == "help":
        await _reply(svc, command, respond, help_message())
        return
    if request.verb == "runbooks":
        await _reply(svc, command, respond, runbooks_message(list(svc.runbooks.values())))
        return
    if request.verb == "doctor":
        await _reply(svc, command, respond, await doctor(svc))
        return
    if request.verb == "readiness":
        await _reply(svc, command, respond, await readiness_reply(svc, request.scope))
        return
    if request.verb == "canary":
        assert request.target is not None
        channel = command.get("channel_id")
        watch = bool(request.params.get("watch"))
        user = str(command.get("user_id", ""))
        reply = await canary_reply(svc, request.target, request.scope, channel, watch, user)
        await _reply(svc, command, respond, reply)
        return
    if request.verb == "audit":
        events = await asyncio.to_thread(svc.audit.recent, request.count, request.target)
        await _reply(svc, command, respond, audit_message(events, request.target))
        return
    if request.verb == "action":
        await offer_action(svc, command, respond, request)
        return
    assert request.runbook is not None
    runbook = svc.runbooks[request.runbook]
    if request.verb == "runbook":
        await _reply(svc, command, respond, runbook_message(runbook))
        return
    cluster = request.scope.cluster
    if cluster and not svc.settings.is_configured(cluster):
        label = svc.settings.conventions(cluster).cluster_label
        try:  # picked by its label in the default Prometheus: it must be in the data
            await known_cluster(cluster, svc.metrics_for(cluster), label)
        except UnknownCluster as exc:
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


async def doctor(svc: Services) -> Message:
    """`/vllm doctor`: what the default Prometheus holds, and the fix for each problem."""
    settings = svc.settings
    facts = await gather(
        svc.metrics_for(None),
        settings.prometheus_url_for(None),
        settings.conventions(None),
        expected_groups(svc.runbooks),
        tuple(c.name for c in settings.clusters),
    )
    return doctor_message(examine(facts))


async def offer_action(
    svc: Services, command: dict[str, Any], respond: Any, request: SlashRequest
) -> None:
    """`/vllm scale|rollback|restart|drain|uncordon|silence …`: the same plan-and-confirm
    modal as a recommended action's button."""
    assert request.kind is not None and request.target is not None
    asked = Asked(request.kind, request.target, request.params)
    try:
        request_id = await svc.remediation.offer(
            asked,
            reason=f"asked for with /vllm by <@{command.get('user_id', '')}>",
            cluster=request.scope.cluster,
            channel=command.get("channel_id"),
        )
    except (AmbiguousTarget, ConfigError) as exc:
        await _reply(svc, command, respond, refusal(str(exc)))
        return
    view_id = await svc.outbox.open_view(command["trigger_id"], loading_view(request_id))
    if view_id is not None:
        actor = Actor(id=command.get("user_id", ""), name=command.get("user_name", ""))
        await show_preview(svc, request_id, actor, view_id)


async def show_plan(svc: Services, body: dict[str, Any]) -> None:
    """The button's value is an opaque request id: open a modal now, fill in the plan."""
    request_id = _value(body)
    view_id = await svc.outbox.open_view(body["trigger_id"], loading_view(request_id))
    if view_id is not None:
        await show_preview(svc, request_id, actor_of(body), view_id)


async def show_preview(svc: Services, request_id: str, actor: Actor, view_id: str) -> None:
    """Fill the (already open) modal with the live plan and the permission outcome."""
    preview = await svc.remediation.preview(request_id, actor)
    await svc.outbox.update_view(view_id, plan_view(preview))

"""Remediation events → Slack: the running message updated as an action progresses, the
approval request (updated in place once decided), refusals to the person only, and the
verification — all in the thread of the message the request came from."""

from __future__ import annotations

from prometheus_client import Counter

from bot.remediation.events import (
    ApprovalRequested,
    Approved,
    Busy,
    Event,
    Finished,
    Progressed,
    Refused,
    Rejected,
    Started,
    Verified,
    describe_details,
)
from bot.slack.help_blocks import refusal
from bot.slack.outbox import Outbox
from bot.slack.remediation_blocks import approval_message, status_message
from bot.store import ActionRequest

RUNNING = ":hourglass_flowing_sand:"


def thread_of(req: ActionRequest) -> str | None:
    """The thread of the message that offered the request (a diagnosis, an alert post)."""
    origin = req.origin or {}
    thread = origin.get("thread_ts") or origin.get("message_ts")
    return str(thread) if thread else None


def outcome_of(event: Event) -> str | None:
    """The ``outcome`` label an event counts under in ``vllm_chatops_actions_total``."""
    match event:
        case Finished(ok=ok):
            return "succeeded" if ok else "failed"
        case Verified(recovered=recovered):
            return "recovered" if recovered else "not_recovered"
        case Progressed():
            return None
    return {
        Refused: "refused",
        ApprovalRequested: "approval_requested",
        Approved: "approved",
        Rejected: "rejected",
        Busy: "busy",
        Started: "started",
    }.get(type(event))


class SlackReporter:
    def __init__(
        self, outbox: Outbox, default_channel: str | None, actions: Counter | None = None
    ) -> None:
        self.outbox = outbox
        self.default_channel = default_channel or ""
        self.actions = actions  # counted by kind and outcome

    async def report(self, event: Event) -> str | None:
        outcome = outcome_of(event)
        if self.actions is not None and outcome is not None:
            self.actions.labels(event.request.kind, outcome).inc()
        req, actor = event.request, event.actor
        channel = req.channel or self.default_channel
        thread = thread_of(req)
        what = f"{req.kind} {req.target}"

        async def post_or_update(message_ref: str | None, emoji: str, text: str) -> str | None:
            message = status_message(emoji, text)
            if message_ref and await self.outbox.update(channel, message_ref, message):
                return message_ref
            return await self.outbox.post(channel, message, thread)

        match event:
            case Refused(reason=reason):
                if req.channel:  # only the person who clicked needs to know
                    await self.outbox.ephemeral(req.channel, actor.id, refusal(reason))
                return None
            case ApprovalRequested(plan=plan):
                message = approval_message(req.id, actor.id, req.kind, req.target, plan)
                return await self.outbox.post(channel, message, thread)
            case Approved():
                return await post_or_update(
                    event.ref, ":white_check_mark:", f"{actor.name} approved {what}"
                )
            case Rejected():
                return await post_or_update(
                    event.ref, ":no_entry:", f"{actor.name} rejected {what}"
                )
            case Busy(holder=holder, since=since):
                text = f"{req.target} is busy with another action; try again when it is done"
                if holder is not None:
                    who = holder.approved_by or holder.requested_by or "someone"
                    when = f" at {since:%H:%M:%S} UTC" if since else ""
                    text = (
                        f"{req.target} is busy: {holder.kind} started by {who}{when} is still "
                        "running; try again when it is done"
                    )
                return await self.outbox.post(channel, status_message(":lock:", text), thread)
            case Started():
                message = status_message(RUNNING, f"{what}: running")
                return await self.outbox.post(channel, message, thread)
            case Progressed(message=progress):
                if event.ref:
                    message = status_message(RUNNING, f"{what}: {progress}")
                    await self.outbox.update(channel, event.ref, message)
                return event.ref
            case Finished(ok=ok, summary=summary, details=details, verify_in_s=delay):
                lines = [f"by {actor.name}", *describe_details(details)]
                if delay is not None:
                    lines.append(f"verification in {delay:g} s")
                message = status_message(":white_check_mark:" if ok else ":x:", summary, lines)
                if event.ref and await self.outbox.update(channel, event.ref, message):
                    return event.ref
                return await self.outbox.post(channel, message, thread)
            case Verified(recovered=recovered, headline=headline, details=details):
                emoji = ":large_green_circle:" if recovered else ":red_circle:"
                if event.contained:
                    emoji = ":large_yellow_circle:"
                message = status_message(emoji, headline, list(details))
                return await self.outbox.post(channel, message, thread or event.ref)
        return None

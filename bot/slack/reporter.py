"""Remediation events → Slack: the running message updated as an action progresses, the
approval request, refusals to the person only, and the verification in the thread."""

from __future__ import annotations

from bot.remediation.events import (
    ApprovalRequested,
    Busy,
    Event,
    Finished,
    Progressed,
    Refused,
    Rejected,
    Started,
    Verified,
)
from bot.slack.help_blocks import refusal
from bot.slack.outbox import Outbox
from bot.slack.remediation_blocks import approval_message, status_message

RUNNING = ":hourglass_flowing_sand:"


class SlackReporter:
    def __init__(self, outbox: Outbox, default_channel: str | None) -> None:
        self.outbox = outbox
        self.default_channel = default_channel or ""

    async def report(self, event: Event) -> str | None:
        req, actor = event.request, event.actor
        channel = req.channel or self.default_channel
        what = f"{req.kind} {req.target}"
        match event:
            case Refused(reason=reason):
                if req.channel:  # only the person who clicked needs to know
                    await self.outbox.ephemeral(req.channel, actor.id, refusal(reason))
                return None
            case ApprovalRequested(plan=plan):
                message = approval_message(req.id, actor.id, req.kind, req.target, plan)
                return await self.outbox.post(channel, message)
            case Rejected():
                text = f"{actor.name} rejected {what}"
                return await self.outbox.post(channel, status_message(":no_entry:", text))
            case Busy():
                text = f"{req.target} is busy with another action; try again when it is done"
                return await self.outbox.post(channel, status_message(":lock:", text))
            case Started():
                return await self.outbox.post(channel, status_message(RUNNING, f"{what}: running"))
            case Progressed(message=message):
                if event.ref:
                    await self.outbox.update(
                        channel, event.ref, status_message(RUNNING, f"{what}: {message}")
                    )
                return event.ref
            case Finished(ok=ok, summary=summary, details=details, verify_in_s=delay):
                lines = [f"by {actor.name}", *(f"{k}: {v}" for k, v in list(details.items())[:5])]
                if delay is not None:
                    lines.append(f"verification in {delay:g} s")
                message = status_message(":white_check_mark:" if ok else ":x:", summary, lines)
                if event.ref and await self.outbox.update(channel, event.ref, message):
                    return event.ref
                return await self.outbox.post(channel, message)
            case Verified(recovered=recovered, headline=headline, details=details):
                emoji = ":large_green_circle:" if recovered else ":red_circle:"
                message = status_message(emoji, headline, list(details))
                return await self.outbox.post(channel, message, event.ref)
        return None

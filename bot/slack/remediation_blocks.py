"""Messages and the modal of the remediation flow (pure): plan, approval, result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.remediation.events import Preview
from bot.remediation.requests import EDITABLE
from bot.slack import ids
from bot.slack.block_kit import Message
from bot.slack.mrkdwn import code, escape, truncate

SECTION_MAX = 2900
PARAM_BLOCK = "param_"  # block ids of editable parameters: param_<name>


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=truncate(text, SECTION_MAX) or "-")


def _lines(title: str, items: Sequence[str], limit: int = 12) -> str:
    shown = [f"• {escape(i)}" for i in items[:limit]]
    if len(items) > limit:
        shown.append(f"… and {len(items) - limit} more")
    return f"*{title}*\n" + "\n".join(shown)


def confirm_view(
    request_id: str,
    kind: str,
    target: str,
    params: Mapping[str, Any],
    plan_summary: str,
    changes: Sequence[str],
    warnings: Sequence[str],
    *,
    error: str | None = None,
    needs_approval: bool = False,
) -> dict[str, Any]:
    """The plan, computed from the live cluster, with editable parameters and Confirm."""
    blocks: list[Block] = [
        SectionBlock(text=_md(f"*{escape(kind)}* {code(target, 300)}\n{escape(plan_summary)}"))
    ]
    if changes:
        blocks.append(SectionBlock(text=_md(_lines("What will change", list(changes)))))
    if warnings:
        blocks.append(SectionBlock(text=_md(_lines(":warning: Warnings", list(warnings)))))
    for editable in EDITABLE.get(kind, ()) if error is None else ():
        name = editable.name
        blocks.append(
            InputBlock(
                block_id=f"{PARAM_BLOCK}{name}",
                label=PlainTextObject(text=editable.label),
                element=PlainTextInputElement(
                    action_id=name, initial_value=str(params.get(name, "") or "")
                ),
                optional=name not in params,
            )
        )
    note = (
        "A second authorised person must approve before anything changes."
        if needs_approval
        else "Nothing has changed yet: Confirm executes this plan."
    )
    if error:
        note = f":x: {escape(error)}"
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=truncate(note, 1900))]))
    view = View(
        type="modal",
        callback_id=ids.ACTION_PLAN_VIEW,
        private_metadata=request_id,
        title=PlainTextObject(text=truncate(f"Confirm {kind}", 24)),
        # nothing to confirm when the plan failed or the person may not run it
        submit=None
        if error
        else PlainTextObject(text="Request approval" if needs_approval else "Confirm"),
        close=PlainTextObject(text="Cancel"),
        blocks=blocks,
    )
    return cast(dict[str, Any], view.to_dict())


def plan_view(preview: Preview) -> dict[str, Any]:
    """The modal for a request's preview: its live plan, or why it cannot run."""
    req = preview.request
    if req is None:
        return confirm_view(
            preview.request_id, "-", "-", {}, preview.error or "", [], [], error=preview.error
        )
    plan = preview.plan
    return confirm_view(
        req.id,
        req.kind,
        req.target,
        req.params,
        plan.summary if plan else "",
        plan.changes if plan else [],
        plan.warnings if plan else [],
        error=preview.error,
        needs_approval=preview.needs_approval,
    )


def submitted_params(state_values: Mapping[str, Any]) -> dict[str, str]:
    """Editable parameters from a view_submission's ``view.state.values``."""
    out: dict[str, str] = {}
    for block_id, actions in state_values.items():
        if not block_id.startswith(PARAM_BLOCK) or not isinstance(actions, Mapping):
            continue
        for action_id, element in actions.items():
            value = element.get("value") if isinstance(element, Mapping) else None
            if value not in (None, ""):
                out[str(action_id)] = str(value)
    return out


def approval_message(
    request_id: str, requester: str, kind: str, target: str, plan_summary: str
) -> Message:
    text = f"<@{escape(requester)}> asks to {kind} {target}: needs a second person's approval"
    blocks: list[Block] = [
        SectionBlock(
            text=_md(
                f":raised_hand: *Approval needed* — <@{escape(requester)}> asks to "
                f"*{escape(kind)}* {code(target, 300)}\n{escape(plan_summary)}"
            )
        ),
        ActionsBlock(
            elements=[
                ButtonElement(
                    text="Approve", action_id=ids.APPROVE_BUTTON, value=request_id, style="primary"
                ),
                ButtonElement(
                    text="Reject", action_id=ids.REJECT_BUTTON, value=request_id, style="danger"
                ),
            ]
        ),
        ContextBlock(
            elements=[MarkdownTextObject(text="The requester cannot approve their own request.")]
        ),
    ]
    return Message(text=truncate(text, 1000), blocks=[b.to_dict() for b in blocks])


def status_message(emoji: str, headline: str, details: Sequence[str] = ()) -> Message:
    """Progress and results of an execution, and verification reports."""
    body = f"{emoji} {escape(headline)}"
    if details:
        body += "\n" + "\n".join(f"• {escape(d)}" for d in details[:15])
    return Message(
        text=truncate(f"{emoji} {headline}", 1000),
        blocks=[SectionBlock(text=_md(body)).to_dict()],
    )


def loading_view(request_id: str) -> dict[str, Any]:
    """Opened at once (a trigger id lives 3 s); replaced by the plan when it is computed."""
    view = View(
        type="modal",
        callback_id=ids.ACTION_PLAN_VIEW,
        private_metadata=request_id,
        title=PlainTextObject(text="Planned action"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(
                text=_md(":hourglass_flowing_sand: Computing the plan from the live cluster…")
            )
        ],
    )
    return cast(dict[str, Any], view.to_dict())


def audit_message(events: Sequence[Any], about: str | None = None) -> Message:
    """Recent audit records (newest first), one line each."""
    if not events:
        text = "The audit log is empty" + (f" for {escape(about)}" if about else "") + "."
        return Message(text=text, blocks=[SectionBlock(text=_md(text)).to_dict()])
    lines = [
        f"`#{e.seq}` {e.at:%Y-%m-%d %H:%M} UTC · *{escape(e.event)}* · "
        f"{escape(e.actor_name or '-')} · {escape(e.kind)} {code(e.target, 300)}"
        + (f" · {escape(truncate(e.outcome, 120))}" if e.outcome else "")
        for e in events
    ]
    title = "*Audit log*" + (f" for {code(about, 300)}" if about else "")
    blocks = [SectionBlock(text=_md(title + "\n" + "\n".join(lines[:25])))]
    return Message(
        text=truncate(f"Audit log: {len(events)} records", 200),
        blocks=[b.to_dict() for b in blocks],
    )

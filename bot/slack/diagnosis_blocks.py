"""Block Kit rendering of a diagnosis: the live progress and the final report. Pure: no I/O.

The layout mirrors the terminal report: conclusion first, then what to do, then the
numbers, then how to fix it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ConfirmObject,
    DividerBlock,
    MarkdownTextObject,
    PlainTextObject,
)

from bot.diagnosis.checks.base import fmt
from bot.models import (
    CheckResult,
    Diagnosis,
    Finding,
    Offender,
    RecommendedAction,
    Scope,
    Status,
    status_rank,
)
from bot.slack import ids
from bot.slack.block_kit import (
    BUTTON_TEXT_MAX,
    CONFIRM_TEXT_MAX,
    LINKS_MAX_CHARS,
    REMEDIATION_MIN_CHARS,
    STATUS_EMOJI,
    TEXT_BUDGET,
    Message,
    and_more,
    blocks_text_size,
    context,
    fallback,
    finish,
    header,
    links_block,
    pack,
    remediation_blocks,
    section,
)
from bot.slack.mrkdwn import (
    ELLIPSIS,
    SCOPE_VALUE,
    code,
    inline,
    join_bounded,
    pair,
    plain,
    truncate,
)

# Request ids go in button values (2000) and the modal's private_metadata (3000).
MAX_REQUEST_ID = 255

PENDING_EMOJI = ":hourglass_flowing_sand:"
STATUS_WORD: dict[Status, str] = {
    "ok": "OK",
    "warn": "warning",
    "crit": "critical",
    "unknown": "unknown",
}
ACTION_VERB: dict[str, str] = {
    "scale": "Scale",
    "rollback": "Roll back",
    "promote": "Promote",
    "drain": "Drain",
    "restart": "Restart",
    "silence": "Silence",
    "config": "Reconfigure",
}
DANGEROUS_KINDS = frozenset({"drain", "rollback"})

# Budgets (blocks, characters) that keep the report within the limits by construction.
MAX_ACTIONS_SHOWN = 10
MAX_CHECK_BLOCKS = 4
MAX_OFFENDERS_SHOWN = 3
FINDINGS_MAX_CHARS = 1000
ACTIONS_MAX_CHARS = 2500
CHECKS_MAX_CHARS = 1800


def _scope_text(scope: Scope) -> str:
    parts = [pair(k, v) for k, v in sorted(scope.labels.items())]
    if scope.cluster:
        parts.insert(0, pair("cluster", scope.cluster))
    return join_bounded(parts, " ", 400) or "whole fleet"


# --- progress ----------------------------------------------------------------------------


def _check_line(c: CheckResult) -> str:
    return f"{STATUS_EMOJI[c.status]} *{inline(c.title, 80)}* — {inline(c.summary, 250)}"


def progress_message(title: str, scope: Scope, done: Sequence[CheckResult], total: int) -> Message:
    """A diagnosis in progress: one line per finished check, a count of running ones."""
    n = len(done)
    blocks: list[Block] = [
        header(title, prefix=f"{PENDING_EMOJI if n < total else STATUS_EMOJI['ok']} "),
        context(f"Scope: {_scope_text(scope)}  ·  {n}/{max(total, 0)} checks done"),
    ]
    packed, left = pack([_check_line(c) for c in done], max_blocks=MAX_CHECK_BLOCKS, max_chars=6000)
    blocks.extend(packed)
    if left:
        blocks.append(and_more(left, "checks done"))
    if total > n:
        blocks.append(context(f"{PENDING_EMOJI} {total - n} checks still running{ELLIPSIS}"))
    text = f"{' '.join(title.split())}: {n}/{total} checks done"
    return Message(text=fallback(text), blocks=finish(blocks))


# --- diagnosis ---------------------------------------------------------------------------


def _finding_text(f: Finding, limit: int) -> str:
    text = inline(f.summary, limit)
    if f.targets:
        targets = join_bounded([code(t, 60) for t in f.targets], ", ", 200)
        text += f" — on {targets}"
    return text


def _offenders_text(offenders: Sequence[Offender], unit: str) -> str:
    shown = [
        f"{code(o.name(), 40)} {inline(fmt(o.value, unit), 20)}"
        for o in offenders[:MAX_OFFENDERS_SHOWN]
    ]
    if len(offenders) > MAX_OFFENDERS_SHOWN:
        shown.append(f"+{len(offenders) - MAX_OFFENDERS_SHOWN} more")
    return ", ".join(shown)


def _diag_check_line(c: CheckResult) -> str:
    line = (
        f"{STATUS_EMOJI[c.status]} *{inline(c.title, 80)}* · "
        f"{inline(fmt(c.value, c.unit), 30)} — {inline(c.summary, 240)}"
    )
    if c.offenders and c.status in ("warn", "crit"):
        line += f"\n        worst: {_offenders_text(c.offenders, c.unit)}"
    return line


def _verb(kind: str) -> str:
    return ACTION_VERB.get(kind, kind.capitalize())


def action_button(a: RecommendedAction, request_id: str) -> ButtonElement:
    style = "danger" if a.kind in DANGEROUS_KINDS else "primary" if a.kind == "scale" else None
    confirm = None
    if a.kind in DANGEROUS_KINDS:
        confirm = ConfirmObject(
            title=PlainTextObject(text=plain(f"{_verb(a.kind)} {a.target}?", 80), emoji=True),
            text=MarkdownTextObject(
                text=truncate(
                    f"This requests *{a.kind}* of {inline(a.target, 100)}. "
                    "You will see the plan before anything is changed.",
                    CONFIRM_TEXT_MAX,
                )
            ),
            confirm=PlainTextObject(text="Show plan"),
            deny=PlainTextObject(text="Cancel"),
            style="danger",
        )
    return ButtonElement(
        text=PlainTextObject(text=plain(f"{_verb(a.kind)} {a.target}", BUTTON_TEXT_MAX)),
        action_id=ids.ACTION_BUTTON,
        value=request_id,
        style=style,
        confirm=confirm,
    )


def _param_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


def _params(params: Mapping[str, Any], limit: int = 600) -> str:
    shown = [pair(str(k), _param_value(v), 120) for k, v in params.items()]
    return join_bounded(shown, ", ", limit)


def _action_text(a: RecommendedAction) -> str:
    head = f"*{inline(_verb(a.kind), 30)}* {code(a.target, 100)}"
    if a.cluster:
        head += f" in cluster {code(a.cluster, 64)}"
    if a.params:
        head += f" — {_params(a.params, 200)}"
    return f"{head}\n{inline(a.reason, 300)}"


def _check_request_ids(request_ids: Sequence[str], n_actions: int) -> None:
    if len(request_ids) > n_actions:
        raise ValueError(f"{len(request_ids)} request ids for {n_actions} actions")
    for rid in request_ids:
        if len(rid) > MAX_REQUEST_ID:
            raise ValueError(f"request id longer than {MAX_REQUEST_ID} characters")


def diagnosis_message(d: Diagnosis, action_request_ids: Sequence[str] = ()) -> Message:
    """The final report: conclusion, actions (with buttons), checks, remediation, links.

    ``action_request_ids[i]`` is the opaque id behind the button of ``d.actions[i]``; an
    action without an id (or with "") gets no button. Raises ValueError for more ids than
    actions or an id longer than ``MAX_REQUEST_ID``.
    """
    _check_request_ids(action_request_ids, len(d.actions))
    blocks: list[Block] = [
        header(d.title, f"{STATUS_EMOJI[d.status]} ", f": {STATUS_WORD[d.status]}"),
        context(
            f"Scope: {_scope_text(d.scope)}  ·  runbook {code(d.runbook, 80)}"
            f"  ·  {len(d.checks)} checks in {d.duration_s:.1f} s"
        ),
    ]
    if d.workloads:
        names = ", ".join(code(w.split("/", 1)[1], 120) for w in d.workloads)
        blocks.append(context(f"Decided per workload (each on its own replicas' data): {names}"))

    # The conclusion: the top finding prominently, the others compactly.
    if d.findings:
        top = d.findings[0]
        blocks.append(section(f"{STATUS_EMOJI[top.severity]} *{_finding_text(top, 600)}*"))
        others = [f"{STATUS_EMOJI[f.severity]} {_finding_text(f, 300)}" for f in d.findings[1:]]
        packed, left = pack(others, max_blocks=1, max_chars=FINDINGS_MAX_CHARS)
        blocks.extend(packed)
        if left:
            blocks.append(and_more(left, "findings"))
    else:
        blocks.append(section(f"{STATUS_EMOJI[d.status]} No findings."))

    # What to do: one section a action, its button beside it.
    if d.actions:
        blocks += [DividerBlock(), section("*Recommended actions*")]
        used = 0
        for i, a in enumerate(d.actions):
            rid = action_request_ids[i] if i < len(action_request_ids) else ""
            block = section(_action_text(a), action_button(a, rid) if rid else None)
            size = blocks_text_size([block])
            if i >= MAX_ACTIONS_SHOWN or used + size > ACTIONS_MAX_CHARS:
                blocks.append(and_more(len(d.actions) - i, "actions"))
                break
            blocks.append(block)
            used += size

    # The numbers, worst first.
    if d.checks:
        blocks.append(DividerBlock())
        ordered = sorted(d.checks, key=lambda c: -status_rank(c.status))
        packed, left = pack(
            [_diag_check_line(c) for c in ordered],
            max_blocks=MAX_CHECK_BLOCKS,
            max_chars=CHECKS_MAX_CHARS,
            prefix=f"*Checks ({len(d.checks)})*",
        )
        blocks.extend(packed)
        if left:
            blocks.append(and_more(left, "checks"))

    # How to fix it: whatever room is left, at least REMEDIATION_MIN_CHARS.
    hint = f" — `{ids.COMMAND} runbook {d.runbook}`" if SCOPE_VALUE.match(d.runbook) else ""
    room = TEXT_BUDGET - blocks_text_size(blocks) - LINKS_MAX_CHARS - 400
    remediation = remediation_blocks(d.remediation, max(room, REMEDIATION_MIN_CHARS), hint)
    if remediation:
        blocks.append(DividerBlock())
        blocks.extend(remediation)
    links = links_block(list(d.links.items()))
    if links is not None:
        blocks.append(links)

    top_text = f" — {d.findings[0].summary}" if d.findings else ""
    text = f"{d.title}: {STATUS_WORD[d.status]}{top_text}"
    return Message(text=fallback(text), blocks=finish(blocks))

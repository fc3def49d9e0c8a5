"""Block Kit rendering of `/vllm canary NS/DEPLOYMENT`. Pure.

The verdict first (a tripped rollback trigger above all), then one line a gate: its
status, the new revision's number against the previous one's, the rule, and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.models.blocks import Block

from bot.canary.compare import Comparison, Status
from bot.canary.gates import GateStatus, GateVerdict, show
from bot.models import RecommendedAction
from bot.slack import ids
from bot.slack.block_kit import Message, context, fallback, finish, header, section
from bot.slack.diagnosis_blocks import _action_button
from bot.slack.mrkdwn import inline

EMOJI: dict[GateStatus, str] = {
    "pass": ":white_check_mark:",
    "fail": ":red_circle:",
    "wait": ":hourglass_flowing_sand:",
}
VERDICT: dict[Status, str] = {
    "pass": ":white_check_mark: every gate passes",
    "fail": ":red_circle: a gate fails",
    "wait": ":hourglass_flowing_sand: not enough data yet: keep waiting",
    "unknown": ":grey_question: nothing to compare",
}


@dataclass(frozen=True)
class Proposal:
    """A rollback offered through the remediation flow: its request id, or why not."""

    target: str
    request_id: str | None
    refused: str = ""


def _proposal(p: Proposal) -> Block:
    text = f"Roll `{inline(p.target, 200)}` back to the revision before the canary"
    if p.request_id is None:
        return section(f"{text}: cannot be offered here — {inline(p.refused, 400)}")
    action = RecommendedAction(kind="rollback", target=p.target, reason="canary trigger")
    return section(
        f"{text}? The plan is shown before anything changes.", _action_button(action, p.request_id)
    )


def _gate(g: GateVerdict) -> str:
    return (
        f"{EMOJI[g.status]} *{g.title}* — {g.status}: new {show(g.new, g.unit)}, "
        f"previous {show(g.old, g.unit)} (rule: {inline(g.limit, 120)})\n"
        f"_{inline(g.reason, 300)}_"
    )


def canary_message(c: Comparison, rollback: Proposal | None = None) -> Message:
    target = f"{c.namespace}/{c.deployment}"
    blocks: list[Block] = [header(target, f"{ids.COMMAND} canary ")]
    if c.problem:
        blocks.append(section(f"{VERDICT['unknown']}: {inline(c.problem, 600)}"))
        text = f"{ids.COMMAND} canary {target}: nothing to compare"
        return Message(text=fallback(text), blocks=finish(blocks))
    assert c.new is not None and c.old is not None
    tripped = [t for t in c.triggers if t.tripped]
    verdict = VERDICT[c.status]
    if tripped:
        reasons = "; ".join(f"{t.metric} {t.reason}" for t in tripped)
        verdict = f":rotating_light: *roll back now*: {inline(reasons, 400)}"
    blocks.append(
        section(
            f"{verdict}\n`{inline(c.new.replicaset, 120)}` (new) against "
            f"`{inline(c.old.replicaset, 120)}` (previous), over {inline(c.window, 20)}"
        )
    )
    if tripped and rollback is not None:
        blocks.append(_proposal(rollback))
    blocks.extend(section(_gate(g)) for g in c.gates)
    blocks.append(
        context(
            "Both revisions are read from Prometheus over the same window; a gate waits "
            "until the new revision's pods fill it. Rollback triggers: errors above "
            "1 % or latency above 2x SLO (configurable under `canary`)."
        )
    )
    summary = "roll back now" if tripped else c.status
    return Message(
        text=fallback(f"{ids.COMMAND} canary {target}: {summary}"), blocks=finish(blocks)
    )

"""Block Kit rendering of `/vllm canary NS/DEPLOYMENT`. Pure.

The verdict first (a tripped rollback trigger above all), then one line a gate: its
status, the new revision's number against the previous one's, the rule, and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, PlainTextObject

from bot.canary.compare import Comparison, Status
from bot.canary.gates import GateStatus, GateVerdict, show
from bot.canary.watch import Step
from bot.canary.watches import Watch
from bot.config import CanaryPhase
from bot.models import RecommendedAction
from bot.slack import ids
from bot.slack.block_kit import Message, context, fallback, finish, header, section
from bot.slack.diagnosis_blocks import action_button
from bot.slack.mrkdwn import inline, truncate

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
        f"{text}? The plan is shown before anything changes.", action_button(action, p.request_id)
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


# --- a watched canary: one message a phase, updated in place ----------------------------

WATCH_STATE = {
    "done": ":checkered_flag: canary complete: every phase held its gates",
    "rolled_back": ":leftwards_arrow_with_hook: rolled back",
    "stopped": ":black_square_for_stop: no longer watched",
}


@dataclass(frozen=True)
class WatchView:
    """What one phase's message shows: the watch, the step just evaluated, the offer."""

    watch: Watch
    phase: CanaryPhase
    phases: int  # how many phases the canary has
    next_phase: CanaryPhase | None
    step: Step | None  # None: the watch was not evaluated this time (it ended)
    comparison: Comparison | None
    request_id: str | None = None  # the promotion or rollback offered
    note: str = ""  # mrkdwn, escaped: what happened (promoted, rolled back, stopped …)
    evaluated_at: str = ""  # HH:MM:SS UTC
    closed: bool = False  # an earlier phase's message: promoted, the next has its own


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _watch_status(v: WatchView) -> str:
    w, s = v.watch, v.step
    if v.closed:
        return ":white_check_mark: this phase held its gates and was promoted"
    if w.state in WATCH_STATE:
        return WATCH_STATE[w.state]
    if w.state == "rollback":
        reason = inline(s.reason, 400) if s is not None and s.reason else "a trigger tripped"
        return f":rotating_light: *roll back now*: {reason}"
    if s is None:
        return ":hourglass_flowing_sand: first evaluation pending"
    if w.state == "promotable":
        held = f"gates held for {_minutes(s.passed_s)} (needed {_minutes(s.needed_s)})"
        if v.next_phase is None:
            return f":white_check_mark: {held}"
        return (
            f":white_check_mark: {held}: ready to promote to *{inline(v.next_phase.name, 60)}* "
            f"({v.next_phase.traffic_percent} % of traffic)"
        )
    if v.comparison is not None and v.comparison.problem:
        return f"{VERDICT['unknown']}: {inline(v.comparison.problem, 500)}"
    statuses = {g.status for g in s.gates}
    if "fail" in statuses:
        return ":red_circle: a gate fails: the phase's clock starts again once every gate passes"
    if "wait" in statuses or not s.gates:
        return VERDICT["wait"]
    return (
        f":hourglass_flowing_sand: gates passing for {_minutes(s.passed_s)} of "
        f"{_minutes(s.needed_s)}"
    )


def _watch_buttons(v: WatchView) -> list[Block]:
    w = v.watch
    if not w.active or v.closed:
        return []
    elements: list[ButtonElement] = []
    if v.request_id and w.state == "promotable" and v.next_phase is not None:
        action = RecommendedAction(
            kind="promote",
            target=w.workload,
            reason=f"phase {v.phase.name} held its gates",
            params={"traffic_percent": v.next_phase.traffic_percent},
        )
        elements.append(action_button(action, v.request_id))
    if v.request_id and w.state == "rollback":
        action = RecommendedAction(kind="rollback", target=w.workload, reason="canary trigger")
        elements.append(action_button(action, v.request_id))
    elements.append(
        ButtonElement(
            text=PlainTextObject(text="Stop watching"),
            action_id=ids.CANARY_STOP_BUTTON,
            value=str(w.id),
        )
    )
    return [ActionsBlock(elements=elements)]


def watch_message(v: WatchView) -> Message:
    w = v.watch
    blocks: list[Block] = [header(w.target, f"{ids.COMMAND} canary ", " (watched)")]
    blocks.append(
        section(
            f"Phase {w.phase + 1} of {v.phases}: *{inline(v.phase.name, 60)}*, "
            f"{v.phase.traffic_percent} % of traffic, gates must hold for "
            f"{inline(v.phase.duration, 12)}\n{_watch_status(v)}"
        )
    )
    if v.note:
        blocks.append(section(truncate(v.note, 1500)))
    c = v.comparison
    if c is not None and c.new is not None and c.old is not None:
        old = f"`{inline(c.old.replicaset, 120)}` (previous"
        old += ", its last numbers before it stopped serving)" if c.from_baseline else ")"
        blocks.append(
            context(f"`{inline(c.new.replicaset, 120)}` (new) against {old}, over {c.window}")
        )
    if v.step is not None:
        blocks.extend(section(_gate(g)) for g in v.step.gates)
    blocks.extend(_watch_buttons(v))
    when = f"; last evaluated {v.evaluated_at} UTC" if v.evaluated_at else ""
    blocks.append(
        context(
            f"Watch #{w.id}, started by <@{inline(w.started_by, 40)}>{when}. A promotion "
            "goes through the usual plan, permission and approval."
        )
    )
    summary = WATCH_STATE.get(w.state, w.state)
    text = f"{ids.COMMAND} canary {w.target}: phase {v.phase.name}, {summary}"
    return Message(text=fallback(text), blocks=finish(blocks))

"""Watched canaries, one evaluation each every ``canary.evaluate_every_s`` (the scheduler's
one replica): read the gates, step the phase, offer what needs a person, show it.

Each phase has its own message in the watch's channel, posted once (its outbox key is
the watch and the phase, so a restart or a second replica cannot post it twice) and
updated in place at every evaluation. When the phase's gates have held for its whole
duration, a promotion to the next phase is offered as a remediation request — the
**Promote** button opens its plan, and the usual permission, approval and audit apply;
the watch moves on only once that request has run. A tripped rollback trigger offers a
rollback at once, or runs it when ``canary.auto_rollback_namespaces`` covers the
namespace. An offer whose reason went away (the gates stopped passing) is withdrawn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase

from bot.canary.compare import Comparison, compare
from bot.canary.watch import Step, phase_of, promoted, step
from bot.canary.watches import Watch, Watches
from bot.config import CanaryPhase, ConfigError
from bot.models import Scope
from bot.remediation.placement import AmbiguousTarget
from bot.remediation.requests import Asked
from bot.slack.canary_blocks import WatchView, watch_message
from bot.slack.mrkdwn import inline
from bot.slack.services import Services

log = logging.getLogger("bot.canary")
PENDING = ("offered", "awaiting_approval", "executing")


async def run_watches(svc: Services) -> int:
    """Evaluate every active watch once; how many were evaluated. One failing watch
    (Prometheus down, Slack refusing) does not hold up the others."""
    book = Watches(svc.store)
    watches = await asyncio.to_thread(book.active)
    for watch in watches:
        try:
            await evaluate(svc, book, watch)
        except Exception:
            log.exception("canary watch %s of %s failed this round", watch.id, watch.target)
    return len(watches)


def _next_phase(svc: Services, w: Watch) -> CanaryPhase | None:
    phases = svc.settings.canary.phases
    return phases[w.phase + 1] if w.phase + 1 < len(phases) else None


async def evaluate(svc: Services, book: Watches, w: Watch) -> Watch:
    config = svc.settings.canary
    w, note = await _settle(svc, w)
    result: Comparison | None = None
    s: Step | None = None
    if w.active:
        metrics = svc.metrics_for(w.cluster)
        result = await compare(
            metrics,
            Scope(cluster=w.cluster),
            w.namespace,
            w.deployment,
            config,
            baseline=w.baseline,
        )
        s = step(config, w.machine(), result, time.time())
        w = w.moved_to(s.state)
        w = replace(w, baseline=result.baseline() or w.baseline)
        w, offered = await _offer(svc, w, s)
        note = note or offered
    phase = phase_of(config, w.machine())
    view = WatchView(
        w,
        phase,
        len(config.phases),
        _next_phase(svc, w),
        s,
        result,
        w.request_id,
        note,
        datetime.now(UTC).strftime("%H:%M:%S"),
    )
    w = replace(w, summary=_summary(view))
    if not await asyncio.to_thread(book.save, w):
        return w  # stopped meanwhile: the stop's own update shows it
    return await _show(svc, book, w, view)


async def _show(svc: Services, book: Watches, w: Watch, view: WatchView) -> Watch:
    message = watch_message(replace(view, watch=w))
    if w.message_ts is not None:
        await svc.outbox.update(w.channel, w.message_ts, message)
        return w
    ts = await svc.outbox.post(w.channel, message, key=f"canary-watch:{w.id}:{w.phase}")
    if ts is not None:
        w = replace(w, message_ts=ts)
        await asyncio.to_thread(book.save, w)
    return w


def _summary(v: WatchView) -> str:
    w = v.watch
    if v.note:
        return v.note
    if v.step is None:
        return w.summary
    passed = f"gates passed {v.step.passed_s:.0f} of {v.step.needed_s:.0f} s"
    return f"phase {v.phase.name} ({v.phase.traffic_percent} %): {w.state}, {passed}"


async def _settle(svc: Services, w: Watch) -> tuple[Watch, str]:
    """What became of the promotion or rollback offered earlier: a promotion that ran
    moves the watch to the next phase (a new message), a rollback that ran ends it; one
    that expired, failed or was rejected is offered again when still due."""
    if w.request_id is None:
        return w, ""
    req = await asyncio.to_thread(svc.store.action_request, w.request_id)
    if req is None or req.state in PENDING:
        return w, ""
    if req.state != "done":
        return replace(w, request_id=None), ""
    who = f"<@{inline(req.requested_by, 40)}>" if req.requested_by else "policy"
    outcome = inline(req.outcome or "", 600)
    if w.state == "rollback":
        return replace(w, state="rolled_back", request_id=None), f"rolled back by {who}: {outcome}"
    if w.state != "promotable":
        return replace(w, request_id=None), ""
    config = svc.settings.canary
    before = phase_of(config, w.machine())
    await _close_phase(svc, w, f"promoted by {who}: {outcome}")
    after = promoted(config, w.machine())
    w = replace(w.moved_to(after), request_id=None, message_ts=None)
    return w, f"promoted from {before.name} by {who}"


async def _close_phase(svc: Services, w: Watch, note: str) -> None:
    """The finished phase's message keeps its last numbers, says how it ended, and loses
    its buttons (the next phase has its own message)."""
    if w.message_ts is None:
        return
    config = svc.settings.canary
    phase = phase_of(config, w.machine())
    view = WatchView(w, phase, len(config.phases), None, None, None, note=note, closed=True)
    await svc.outbox.update(w.channel, w.message_ts, watch_message(view))


async def _offer(svc: Services, w: Watch, s: Step) -> tuple[Watch, str]:
    """Offer what the step asks of a person (or of the policy); withdraw what it no
    longer asks."""
    if w.state == "rollback" and w.request_id is None:
        return await _offer_rollback(svc, w, s.reason)
    if w.state == "promotable" and w.request_id is None:
        following = _next_phase(svc, w)
        if following is None:  # the last phase held: nothing left to move
            return replace(w, state="done"), "the last phase held its gates: canary complete"
        return await _request(
            svc,
            w,
            Asked("promote", w.workload, {"traffic_percent": following.traffic_percent}),
            f"canary phase {phase_of(svc.settings.canary, w.machine()).name} held its gates",
        )
    if w.state == "watching" and w.request_id is not None:
        withdrawn = await asyncio.to_thread(
            svc.store.transition,
            w.request_id,
            ("offered",),
            "expired",
            outcome="withdrawn: the canary's gates stopped passing",
        )
        if withdrawn:
            return replace(w, request_id=None), "promotion withdrawn: a gate stopped passing"
    return w, ""


async def _offer_rollback(svc: Services, w: Watch, reason: str) -> tuple[Watch, str]:
    w, note = await _request(
        svc, w, Asked("rollback", w.workload), f"canary rollback trigger: {reason}"
    )
    patterns = svc.settings.canary.auto_rollback_namespaces
    if w.request_id is None or not any(fnmatchcase(w.namespace, p) for p in patterns):
        return w, note
    policy = f"canary.auto_rollback_namespaces covers {w.namespace}"
    ran = await svc.remediation.execute_by_policy(w.request_id, policy)
    return w, f"rolled back by policy ({inline(policy, 200)})" if ran else note


async def _request(svc: Services, w: Watch, asked: Asked, reason: str) -> tuple[Watch, str]:
    try:
        request_id = await svc.remediation.offer(
            asked,
            reason=reason,
            cluster=w.cluster,
            channel=w.channel,
            origin={"canary_watch": w.id},
        )
    except (AmbiguousTarget, ConfigError) as exc:
        return w, inline(f"cannot offer {asked.kind} of {w.workload} here: {exc}", 600)
    return replace(w, request_id=request_id), ""

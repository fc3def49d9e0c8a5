"""`/vllm canary NS/DEPLOYMENT [watch]`: acknowledged at once, compared after, a private
reply; with ``watch``, the canary is watched phase by phase in the channel
(:mod:`bot.slack.canary_watch`), and its messages' *Stop watching* button ends that.

When a rollback trigger tripped, the reply proposes the rollback: a request recorded
through the remediation flow and a button that opens its plan, so the usual permission,
approval and audit apply — nothing is rolled back without a person's confirmation.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.canary.compare import compare
from bot.canary.watch import phase_of
from bot.canary.watches import Watch, Watches
from bot.config import ConfigError
from bot.models import Scope
from bot.remediation.placement import AmbiguousTarget
from bot.remediation.requests import Asked
from bot.slack import ids
from bot.slack.block_kit import Message, context, fallback, finish, section
from bot.slack.canary_blocks import Proposal, WatchView, canary_message, watch_message
from bot.slack.mrkdwn import inline
from bot.slack.services import Services

log = logging.getLogger("bot.canary")


async def canary_reply(
    svc: Services,
    target: str,
    scope: Scope,
    channel: str | None = None,
    watch: bool = False,
    user: str = "",
) -> Message:
    """The canary gates of ``target`` (``NS/DEPLOYMENT``, already checked), read now;
    with ``watch``, the watch started in ``channel`` (or the one under way)."""
    if watch:
        return await start_watch(svc, target, scope, channel, user)
    namespace, deployment = target.split("/", 1)
    metrics = svc.metrics_for(scope.cluster)
    result = await compare(metrics, scope, namespace, deployment, svc.settings.canary)
    if not result.rollback:
        return canary_message(result)
    workload = f"deployment/{namespace}/{deployment}"
    tripped = "; ".join(f"{t.metric} {t.reason}" for t in result.triggers if t.tripped)
    try:
        request_id = await svc.remediation.offer(
            Asked("rollback", workload),
            reason=f"canary rollback trigger on the new revision: {tripped}",
            cluster=scope.cluster,
            channel=channel,
        )
    except (AmbiguousTarget, ConfigError) as exc:
        return canary_message(result, Proposal(workload, None, str(exc)))
    return canary_message(result, Proposal(workload, request_id))


async def start_watch(
    svc: Services, target: str, scope: Scope, channel: str | None, user: str
) -> Message:
    cluster = scope.cluster
    problem = ""
    if not channel:
        problem = "a watch posts in a channel; run it from one"
    elif cluster and not svc.settings.is_configured(cluster):
        problem = f"cluster {cluster!r} is not configured, so nothing there can be promoted"
    if problem:
        text = f":warning: cannot watch {inline(target, 300)}: {problem}"
        return Message(text=fallback(text), blocks=finish([section(text)]))
    assert channel is not None
    w, created = await asyncio.to_thread(
        Watches(svc.store).start, target, cluster, channel, user or "someone"
    )
    every = svc.settings.canary.evaluate_every_s
    phases = svc.settings.canary.phases
    if created:
        plan = ", ".join(f"{p.name} {p.traffic_percent} % for {p.duration}" for p in phases)
        text = (
            f":eyes: Watching `{inline(target, 300)}` (watch #{w.id}): its gates are read "
            f"every {every} s and each phase ({inline(plan, 600)}) gets a message in "
            f"<#{channel}>, updated in place. A phase that holds its gates offers a "
            "*Promote* button; a tripped rollback trigger offers a rollback at once."
        )
    else:
        phase = phase_of(svc.settings.canary, w.machine())
        text = (
            f":eyes: `{inline(target, 300)}` is already watched (watch #{w.id}, phase "
            f"{inline(phase.name, 60)}, {w.state}) in <#{w.channel}>"
        )
    return Message(
        text=fallback(f"{ids.COMMAND} canary {target} watch: #{w.id}"),
        blocks=finish([section(text), context(inline(w.summary, 300))]),
    )


async def stop_watch(svc: Services, body: dict[str, Any]) -> Watch | None:
    """The *Stop watching* button: end the watch, and show it on its phase's message."""
    value = str(((body.get("actions") or [{}])[0]).get("value", ""))
    user = str((body.get("user") or {}).get("id", ""))
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        return None
    book = Watches(svc.store)
    stopped = await asyncio.to_thread(book.stop, int(value), f"<@{inline(user, 40)}>")
    if stopped is None:
        return None
    log.info("canary watch %s of %s stopped by %s", stopped.id, stopped.target, user)
    if stopped.message_ts is not None:
        config = svc.settings.canary
        view = WatchView(
            stopped,
            phase_of(config, stopped.machine()),
            len(config.phases),
            None,
            None,
            None,
            note=stopped.summary,
        )
        await svc.outbox.update(stopped.channel, stopped.message_ts, watch_message(view))
    return stopped


def register(app: AsyncApp, svc: Services) -> None:
    @app.action(ids.CANARY_STOP_BUTTON)
    async def stop_button(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        svc.spawn(stop_watch(svc, body), "stop canary watch")

"""Alertmanager notifications → Slack posts, one per group, deduplicated, with diagnosis.

``claim`` runs before the webhook is answered: it records the new alerts in the database
(so a crash after answering loses nothing, and a second bot replica posts nothing twice).
``publish`` then posts in the background: the alert with its runbook, the automatic
diagnosis in the thread, a chart. ``resolve`` closes alerts and updates their post.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.diagnosis.runbooks import Runbook, match_alert
from bot.incidents import digest_of, incident_key
from bot.models import AlertGroup, Scope
from bot.slack.alert_blocks import alert_message, joined_message
from bot.slack.block_kit import Message
from bot.slack.live import diagnose_to_slack
from bot.slack.services import Services
from bot.store import AlertPost, utcnow

log = logging.getLogger(__name__)

# Alert labels that make a diagnosis scope (DCGM's host label becomes `node`).
SCOPE_LABELS = ("namespace", "pod", "model_name", "instance")
NODE_LABELS = ("node", "hostname", "Hostname")


RETRY_S = 5  # a post Slack refused is tried again after this long, by any replica


class NoChannelError(Exception):
    """No route matches and there is no default channel."""


REFRESH_PACE_S = 2.0  # an incident's post is updated at most this often


@dataclass(frozen=True)
class Claim:
    post_id: int
    group: AlertGroup
    received_at: float
    joined: bool = False  # joined an open incident's post: update it, do not post


def scope_of(group: AlertGroup) -> Scope:
    """What the alert is about, from the labels every alert of the group shares."""
    common = dict(group.commonLabels)
    if not common and len(group.alerts) == 1:
        common = dict(group.alerts[0].labels)
    labels = {k: common[k] for k in SCOPE_LABELS if common.get(k)}
    if "pod" in labels:
        # `instance` names the vLLM scrape target; the pod's GPUs are exported under the
        # node exporter's instance, so keeping it would leave every GPU check without data.
        labels.pop("instance", None)
    node = next((common[k] for k in NODE_LABELS if common.get(k)), None)
    if node:
        labels["node"] = node
    return Scope(cluster=common.get("cluster") or None, labels=labels)


def claim(svc: Services, group: AlertGroup) -> list[Claim]:
    """Record the firing alerts not seen before; the posts to publish (blocking DB work)."""
    firing = [a for a in group.alerts if a.status == "firing"]
    if not firing:
        return []
    labels = group.commonLabels or firing[0].labels
    channel = svc.settings.channel_for(labels)
    if channel is None:
        raise NoChannelError("no route matches and no default_channel is set")
    runbook = match_alert(svc.runbooks, labels)
    scope = scope_of(group)
    opened = svc.store.open_post(
        group.groupKey or ",".join(sorted(a.fingerprint for a in firing)),
        channel,
        runbook.id if runbook else None,
        [(a.fingerprint, a.name, a.startsAt) for a in firing],
        group.model_dump(),
        # across groups only what a runbook recognised: unknown alerts share nothing
        incident=incident_key(runbook.id, scope.cluster, scope.describe()) if runbook else None,
    )
    if opened is None:
        return []
    fresh = [a for a in firing if a.fingerprint in opened.fingerprints]
    return [
        Claim(
            opened.post_id,
            group.model_copy(update={"alerts": fresh}),
            time.monotonic(),
            opened.joined,
        )
    ]


def post_key(post: AlertPost) -> str:
    """The idempotency key of an alert post: however often it is tried, one message."""
    return f"alert-post:{post.id}"


def post_message(post: AlertPost, runbook: Runbook | None) -> Message:
    """The post as its incident stands: every alert that joined, tallied."""
    group = AlertGroup.model_validate(json.loads(post.payload))
    tally = (post.alerts_firing or 0, post.alerts_resolved or 0)
    if post.status == "resolved":
        return alert_message(resolved(group), runbook, resolved_after=_duration(post), tally=tally)
    return alert_message(group, runbook, tally=tally)


async def publish(svc: Services, item: Claim) -> None:
    if item.joined:
        await refresh(svc)
        return
    post = svc.store.post(item.post_id)
    if post is None:
        return
    runbook = svc.runbooks.get(post.runbook) if post.runbook else None
    ts = await svc.outbox.post(post.channel, post_message(post, runbook), key=post_key(post))
    if ts is None:
        log.error("alert post %s not accepted by Slack; retried in %ss", item.post_id, RETRY_S)
        svc.store.retry_post_at(item.post_id, utcnow() + timedelta(seconds=RETRY_S))
        return
    svc.metrics.alert_to_post_seconds.observe(time.monotonic() - item.received_at)
    svc.store.set_post_ts(item.post_id, ts)
    # Not marked as shown: the message under this key may be an earlier render (sent by a
    # replica that died before it could say so), so a refresh brings it to the post's state.
    if runbook is not None:
        origin = {
            "alert_group": item.group.groupKey,
            "alert_fingerprints": [a.fingerprint for a in item.group.alerts],
        }
        await diagnose_to_slack(
            svc, post.channel, runbook, scope_of(item.group), thread_ts=ts, origin=origin
        )


async def resolve(svc: Services, group: AlertGroup) -> int:
    """Close resolved alerts; a post whose alerts all resolved is updated and answered."""
    resolved = [a.fingerprint for a in group.alerts if a.status == "resolved"]
    if not resolved:
        return 0
    closed = svc.store.resolve(resolved)
    for post in closed:
        await announce_resolved(svc, post, group)
    return len(closed)


def resolved(group: AlertGroup) -> AlertGroup:
    """``group`` with it and every alert in it resolved."""
    alerts = [a.model_copy(update={"status": "resolved"}) for a in group.alerts]
    return group.model_copy(update={"status": "resolved", "alerts": alerts})


def _duration(post: AlertPost) -> str:
    start = post.created_at if post.created_at.tzinfo else post.created_at.replace(tzinfo=UTC)
    seconds = int((datetime.now(UTC) - start).total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s"


async def announce_resolved(svc: Services, post: AlertPost, group: AlertGroup) -> None:
    if post.ts is None:
        return
    runbook = svc.runbooks.get(post.runbook) if post.runbook else None
    message = post_message(post, runbook)
    if await svc.outbox.update(post.channel, post.ts, message):
        svc.store.mark_shown(post.id, post.version or 1)
    await svc.outbox.post(post.channel, message, thread_ts=post.ts)


async def refresh(svc: Services) -> int:
    """Bring incidents' posts up to date: one ``chat.update`` per post per
    ``REFRESH_PACE_S`` and per channel per pass, plus a thread line naming the alerts
    that joined. Runs every second and after each joining notification, on any replica."""
    due = await asyncio.to_thread(svc.store.claim_refresh)
    pace = timedelta(seconds=REFRESH_PACE_S)
    for post in due:
        assert post.ts is not None
        runbook = svc.runbooks.get(post.runbook) if post.runbook else None
        joined = digest_of(post.digest)  # taken with the claim: told by this pass only
        told = False
        try:
            if not await svc.outbox.update(post.channel, post.ts, post_message(post, runbook)):
                # Slack refused for good (the post was deleted?): stop trying this version
                svc.store.mark_shown(post.id, post.version or 1, next_after=pace)
                continue
            if joined["count"]:
                message = joined_message(joined["count"], joined["alerts"])
                await svc.outbox.post(post.channel, message, thread_ts=post.ts)
            told = True
            svc.store.mark_shown(post.id, post.version or 1, next_after=pace)
        finally:
            if not told:  # refused, failed or cancelled: the next refresh tells them
                svc.store.put_back_digest(post.id, joined)
    return len(due)


async def redrive(svc: Services) -> int:
    """Post what was claimed but never reached Slack: after a crash of the replica that
    claimed it, or a Slack outage. Runs every few seconds on every replica; each post is
    taken by one. A post whose alerts resolved meanwhile is posted as resolved."""
    pending = await asyncio.to_thread(svc.store.claim_unposted)
    for post in pending:
        group = AlertGroup.model_validate(json.loads(post.payload))
        if post.status == "resolved":
            runbook = svc.runbooks.get(post.runbook) if post.runbook else None
            ts = await svc.outbox.post(
                post.channel, post_message(post, runbook), key=post_key(post)
            )
            if ts is not None:
                svc.store.set_post_ts(post.id, ts)
            continue
        await publish(svc, Claim(post.id, group, time.monotonic()))
    return len(pending)

"""A diagnosis that lives in Slack: posted at once, updated as checks finish, then charted."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from bot.diagnosis.checks import REGISTRY
from bot.diagnosis.engine import diagnose
from bot.diagnosis.promql import vllm_selector
from bot.diagnosis.runbooks import Runbook
from bot.models import CheckResult, Diagnosis, Scope
from bot.slack.charts import CHARTS, fill, label_series, render_png
from bot.slack.diagnosis_blocks import diagnosis_message, progress_message
from bot.slack.progress_edits import ProgressEdits
from bot.slack.services import Services
from bot.sources.prometheus import MetricsError, PrometheusSource

log = logging.getLogger(__name__)


async def diagnose_to_slack(
    svc: Services,
    channel: str,
    runbook: Runbook,
    scope: Scope,
    thread_ts: str | None = None,
    origin: dict[str, Any] | None = None,
) -> tuple[Diagnosis, str | None]:
    """Post progress, update it in place as checks finish, end with the full report.

    Returns the diagnosis and the ts of its message (None if Slack refused every post).
    """
    metrics = svc.metrics_for(scope.cluster)
    total = len(runbook.checks)
    # one message: while the progress post has not reached Slack, the report replaces it
    key = f"diagnosis:{uuid.uuid4().hex}"
    ts = await svc.outbox.post(
        channel, progress_message(runbook.title, scope, [], total), thread_ts, key=key
    )
    done: list[CheckResult] = []
    progress = None
    if ts is not None:
        shown = ts
        progress = ProgressEdits(lambda message: svc.outbox.update(channel, shown, message))

    def on_check(result: CheckResult, finished: int, count: int) -> None:
        done.append(result)
        if progress is not None and finished < count:
            progress.show(progress_message(runbook.title, scope, done, total))

    started = time.monotonic()
    try:
        d = await diagnose(runbook, scope, metrics, svc.options, on_check)
    finally:
        if progress is not None:
            await progress.aclose()
    svc.metrics.diagnosis_seconds.labels(runbook.id).observe(time.monotonic() - started)
    # each action offered in the cluster whose data justified it, refused anywhere else
    request_ids = [
        await svc.remediation.offer_recommended(
            a,
            runbook=runbook.id,
            scope=scope,
            channel=channel,
            origin={"channel": channel, "message_ts": ts, "thread_ts": thread_ts, **(origin or {})},
        )
        for a in d.actions
    ]
    final = diagnosis_message(d, request_ids)
    if ts is None:
        ts = await svc.outbox.post(channel, final, thread_ts, key=key)
    if ts is not None and not await svc.outbox.update(channel, ts, final):
        ts = await svc.outbox.post(channel, final, thread_ts)  # the progress post is gone
    chart_thread = thread_ts or ts
    if chart_thread:
        await post_chart(svc, metrics, channel, chart_thread, d, runbook)
    return d, ts


def _chart_check(d: Diagnosis) -> CheckResult | None:
    """The check worth a picture: the worst one that has a chart."""
    rank = {"crit": 0, "warn": 1, "unknown": 3, "ok": 2}
    charted = [c for c in d.checks if c.id in CHARTS]
    return min(charted, key=lambda c: rank[c.status]) if charted else None


async def post_chart(
    svc: Services,
    metrics: PrometheusSource,
    channel: str,
    thread_ts: str,
    d: Diagnosis,
    runbook: Runbook,
) -> bool:
    """The last hour of the key series, with the critical level, uploaded into the thread."""
    check = _chart_check(d)
    if check is None:
        return False
    spec = CHARTS[check.id]
    params = runbook.check_params(check.id, svc.settings.thresholds)
    thresholds_of = REGISTRY[check.id].thresholds
    threshold = thresholds_of(params).crit if thresholds_of else None
    try:
        selector = vllm_selector(d.scope)
        rows = await metrics.query_range(fill(spec.query, selector), seconds=3600)
    except (MetricsError, ValueError) as exc:
        log.warning("no chart for %s: %s", check.id, exc)
        return False
    series = label_series(rows, default_label=spec.title)
    png = await asyncio.to_thread(
        render_png, spec.title, spec.unit, series, threshold, "critical" if threshold else ""
    )
    return await svc.outbox.upload_png(
        channel, thread_ts, png, f"{check.id}.png", f"{spec.title} — last hour"
    )

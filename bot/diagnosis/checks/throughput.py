"""Demand against capacity: completed and arriving requests per second, for sizing."""

import asyncio

from bot.diagnosis.checks.base import (
    Check,
    CheckContext,
    fmt,
    replica_labels,
    stats,
    unknown,
)
from bot.diagnosis.metric_names import REQUEST_SUCCESS, RUNNING, WAITING
from bot.diagnosis.promql import vllm
from bot.models import CheckResult, Status

ID, TITLE = "throughput", "Throughput vs demand"


async def run(ctx: CheckContext) -> CheckResult:
    s, w = ctx.scope, ctx.window
    completed = f"sum({ctx.rate(REQUEST_SUCCESS, replica_labels(ctx.scope))})"
    growth = f"sum(deriv({vllm(WAITING, s)}[{w}]))"
    queued = f"sum({vllm(WAITING, s)})"
    replicas = f"count(max by ({replica_labels(ctx.scope)}) ({vllm(RUNNING, s)}))"
    query = " or ".join(
        f'label_replace({expr}, "stat", "{name}", "", "")'
        for name, expr in (
            ("completed", completed),
            ("growth", growth),
            ("queued", queued),
            ("replicas", replicas),
        )
    )
    gap, (rows,) = await asyncio.gather(ctx.history_gap(), ctx.query_all(query))
    if gap:
        return unknown(ctx, ID, TITLE, ctx.too_new("Throughput", gap))
    values = stats(rows)
    if "replicas" not in values or "completed" not in values:
        return unknown(ctx, ID, TITLE, f"no {REQUEST_SUCCESS} traffic in scope over {w}")
    n = int(values["replicas"])
    done = values["completed"]
    growth_rps = max(0.0, values.get("growth", 0.0))
    queued_now = values.get("queued", 0.0)
    arrival = done + growth_rps
    # Saturated: a queue that keeps growing means replicas serve at their capacity, so the
    # measured per-replica rate is the capacity the sizing rule needs.
    saturated = growth_rps > 0.05 * max(done, 1e-9) and queued_now > n
    status: Status = "warn" if saturated else "ok"
    summary = f"{fmt(done, 'req/s')} served by {n} replicas"
    if saturated:
        summary += f"; demand {fmt(arrival, 'req/s')} (queue growing {growth_rps:.1f}/s)"
    return CheckResult(
        id=ID,
        title=TITLE,
        status=status,
        value=arrival,
        unit="req/s",
        summary=summary,
        queries=list(ctx.queries),
        facts={
            "replicas": n,
            "completed_rps": done,
            "arrival_rps": arrival,
            "queue_growth_rps": growth_rps,
            "queued": queued_now,
            "per_replica_rps": done / n if n else 0.0,
            "saturated": saturated,
        },
    )


CHECK = Check(ID, TITLE, run, {}, thresholds=None)

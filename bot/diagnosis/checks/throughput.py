"""Demand against capacity: served, abandoned and arriving requests per second, for sizing.

Demand is what arrived over the window: the requests served, those aborted (clients that
gave up waiting — ``vllm:request_success_total{finished_reason="abort"}``) and those still
queued (the queue's growth). Once a saturated replica's queue is as long as its clients
will wait, it stops growing and the unmet demand shows only as aborts: without them,
demand would read as what the replicas serve, and a scale sized on it would fall short.
Capacity is what a saturated replica serves (aborts took none of it).
"""

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
ABORT = 'finished_reason="abort"'
NOT_ABORT = 'finished_reason!="abort"'
# Queue growth or aborts above this share of what is served mean demand exceeds capacity
# (a few aborts are ordinary: clients cancel).
SATURATION_SHARE = 0.05


async def run(ctx: CheckContext) -> CheckResult:
    s, w = ctx.scope, ctx.window
    by = replica_labels(ctx.scope)
    served = f"sum({ctx.rate(REQUEST_SUCCESS, by, NOT_ABORT)})"
    aborted = f"sum({ctx.rate(REQUEST_SUCCESS, by, ABORT)})"
    growth = f"sum(deriv({vllm(WAITING, s)}[{w}]))"
    queued = f"sum({vllm(WAITING, s)})"
    replicas = f"count(max by ({by}) ({vllm(RUNNING, s)}))"
    query = " or ".join(
        f'label_replace({expr}, "stat", "{name}", "", "")'
        for name, expr in (
            ("served", served),
            ("aborted", aborted),
            ("growth", growth),
            ("queued", queued),
            ("replicas", replicas),
        )
    )
    gap, (rows,) = await asyncio.gather(ctx.history_gap(), ctx.query_all(query))
    if gap:
        return unknown(ctx, ID, TITLE, ctx.too_new("Throughput", gap))
    values = stats(rows)
    if "replicas" not in values or ("served" not in values and "aborted" not in values):
        return unknown(ctx, ID, TITLE, f"no {REQUEST_SUCCESS} traffic in scope over {w}")
    n = int(values["replicas"])
    done = values.get("served", 0.0)
    aborted_rps = values.get("aborted", 0.0)
    growth_rps = max(0.0, values.get("growth", 0.0))
    queued_now = values.get("queued", 0.0)
    arrival = done + aborted_rps + growth_rps
    # Saturated: a queue that keeps growing, or one long enough that clients abandon it,
    # means replicas serve at their capacity, so the measured per-replica rate is the
    # capacity the sizing rule needs.
    unmet = max(growth_rps, aborted_rps)
    saturated = unmet > SATURATION_SHARE * max(done, 1e-9) and queued_now > n
    status: Status = "warn" if saturated else "ok"
    summary = f"{fmt(done, 'req/s')} served by {n} replicas"
    if saturated:
        unmet_parts = [
            f"{label} {rate:.1f}/s"
            for label, rate in (("queue growing", growth_rps), ("abandoned", aborted_rps))
            if rate >= 0.05
        ]
        summary += f"; demand {fmt(arrival, 'req/s')} ({', '.join(unmet_parts)})"
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
            "aborted_rps": aborted_rps,
            "arrival_rps": arrival,
            "queue_growth_rps": growth_rps,
            "queued": queued_now,
            "per_replica_rps": done / n if n else 0.0,
            "saturated": saturated,
        },
    )


CHECK = Check(ID, TITLE, run, {}, thresholds=None)

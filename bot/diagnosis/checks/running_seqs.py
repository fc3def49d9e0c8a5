"""Running sequences against max_num_seqs: a batch pinned at a limit while requests queue."""

import asyncio

from bot.diagnosis.checks.base import (
    TOP_K,
    Check,
    CheckContext,
    Thresholds,
    fmt,
    offenders_from,
    replica_gauge,
    replica_identity,
    replica_labels,
    unknown,
)
from bot.diagnosis.metric_names import RUNNING, WAITING
from bot.diagnosis.promql import vllm
from bot.models import CheckResult, Status

ID, TITLE = "running_seqs", "Running sequences vs max_num_seqs"


async def run(ctx: CheckContext) -> CheckResult:
    running = vllm(RUNNING, ctx.scope)
    window = ctx.window
    same = f"on ({replica_identity(ctx.scope)})"
    # A batch is "pinned" when it did not move over the window while requests waited:
    # the scheduler is at its limit, whatever that limit is configured to.
    pinned = (
        f"max by ({replica_labels(ctx.scope)}) (max_over_time({running}[{window}])) "
        f"and {same} "
        f"(max by ({replica_labels(ctx.scope)}) (max_over_time({running}[{window}]) "
        f"- min_over_time({running}[{window}])) <= 1) "
        f"and {same} (max by ({replica_labels(ctx.scope)}) "
        f"(min_over_time({vllm(WAITING, ctx.scope)}[{window}])) > 0)"
    )
    per_replica, pinned_rows = await asyncio.gather(
        replica_gauge(ctx, RUNNING), ctx.query(f"topk(5, {pinned})")
    )
    if not per_replica:
        return unknown(ctx, ID, TITLE, f"no {RUNNING} series in scope: is vLLM scraped?")
    top = sorted(per_replica, key=lambda s: s.value, reverse=True)[:TOP_K]
    max_num_seqs = ctx.number("max_num_seqs")
    replicas = len(per_replica)
    busiest = top[0].value
    status: Status = "ok"
    summary = (
        f"at most {busiest:.0f} running sequences per replica (max_num_seqs {max_num_seqs:.0f})"
    )
    offenders = offenders_from(top, Thresholds(max_num_seqs * 0.9, max_num_seqs))
    if busiest >= max_num_seqs:
        status = "crit"
        summary = f"{fmt(busiest, '')} running sequences: at max_num_seqs {max_num_seqs:.0f}"
    if pinned_rows:
        limit = min(r.value for r in pinned_rows)
        status = "crit" if status == "crit" else "warn"
        summary = (
            f"batch pinned at {limit:.0f} running sequences on {len(pinned_rows)}"
            f"{'+' if len(pinned_rows) == 5 else ''}/{replicas} replicas while requests wait"
        )
        offenders = offenders_from(pinned_rows, Thresholds(max_num_seqs * 0.9, max_num_seqs))
    return CheckResult(
        id=ID,
        title=TITLE,
        status=status,
        value=busiest,
        unit="seqs",
        summary=summary,
        offenders=offenders,
        queries=list(ctx.queries),
        facts={
            "max_num_seqs": max_num_seqs,
            "replicas": replicas,
            "pinned_replicas": len(pinned_rows),
            "pinned_at": min((r.value for r in pinned_rows), default=None),
        },
    )


CHECK = Check(ID, TITLE, run, {"max_num_seqs": 256}, thresholds=None)

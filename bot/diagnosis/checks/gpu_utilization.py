"""GPU utilisation of the GPUs serving vLLM: low while latency is high = scheduling problem."""

from bot.diagnosis.checks.base import (
    Check,
    CheckContext,
    Thresholds,
    fmt,
    gpu_missing,
    gpu_target,
    offenders_from,
    stats,
    stats_query,
    unknown,
)
from bot.diagnosis.metric_names import GPU_UTIL
from bot.diagnosis.promql import conventions_of, dcgm
from bot.models import CheckResult, Status

ID, TITLE = "gpu_utilization", "GPU utilisation"


async def run(ctx: CheckContext) -> CheckResult:
    workload = conventions_of(ctx.scope).gpu_label
    assigned = dcgm(GPU_UTIL, ctx.scope, assigned=True)
    per_replica = f"avg by ({workload('namespace')}, {workload('pod')}) ({assigned})"
    fleet, lowest = await ctx.query_all(
        stats_query(per_replica, avg="avg", min="min", max="max", count="count"),
        f"bottomk(5, {per_replica})",
    )
    values = stats(fleet)
    if "avg" not in values:
        return unknown(ctx, ID, TITLE, gpu_missing(ctx.scope, GPU_UTIL))
    avg = values["avg"]
    low, high = ctx.number("low"), ctx.number("high")
    status: Status = "ok"
    summary = f"GPUs {fmt(avg, '%')} busy on average across {int(values['count'])} replicas"
    if avg < low:
        status = "warn"
        summary += f" (under-utilised: below {fmt(low, '%')})"
    elif avg >= high:
        status = "warn"
        summary += f" (saturated: at or above {fmt(high, '%')})"
    return CheckResult(
        id=ID,
        title=TITLE,
        status=status,
        value=avg,
        unit="%",
        summary=summary,
        offenders=offenders_from(lowest, Thresholds(low, 0, above=False), gpu_target(ctx.scope)),
        queries=list(ctx.queries),
        facts={
            "avg": avg,
            "min": values.get("min"),
            "max": values.get("max"),
            "saturated": avg >= high,
            "underutilized": avg < low,
        },
    )


CHECK = Check(ID, TITLE, run, {"low": 20, "high": 95}, thresholds=None)

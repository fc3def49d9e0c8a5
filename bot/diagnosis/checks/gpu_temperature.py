"""GPU temperature from DCGM: hot GPUs throttle their clocks, then fail."""

from bot.diagnosis.checks.base import Check, CheckContext, gauge_check, gpu_missing, gpu_target
from bot.diagnosis.metric_names import GPU_TEMP
from bot.diagnosis.promql import dcgm, gpu_by
from bot.models import CheckResult

ID, TITLE = "gpu_temperature", "GPU temperature"


async def run(ctx: CheckContext) -> CheckResult:
    return await gauge_check(
        ctx,
        check_id=ID,
        title=TITLE,
        what="GPU temperature",
        expr=f"max by ({gpu_by(ctx.scope)}) ({dcgm(GPU_TEMP, ctx.scope)})",
        unit="°C",
        noun="GPUs",
        target=gpu_target(ctx.scope),
        missing=gpu_missing(ctx.scope, GPU_TEMP),
    )


CHECK = Check(ID, TITLE, run, {"warn": 80, "crit": 85})

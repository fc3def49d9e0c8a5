"""GPU temperature from DCGM: hot GPUs throttle their clocks, then fail."""

from bot.diagnosis.checks.base import GPU_LABELS, Check, CheckContext, gauge_check
from bot.diagnosis.metric_names import GPU_TEMP
from bot.diagnosis.promql import dcgm
from bot.models import CheckResult

ID, TITLE = "gpu_temperature", "GPU temperature"


async def run(ctx: CheckContext) -> CheckResult:
    return await gauge_check(
        ctx,
        check_id=ID,
        title=TITLE,
        what="GPU temperature",
        expr=f"max by ({GPU_LABELS}) ({dcgm(GPU_TEMP, ctx.scope)})",
        unit="°C",
        noun="GPUs",
        missing=f"no {GPU_TEMP} series in scope: is dcgm-exporter scraped?",
    )


CHECK = Check(ID, TITLE, run, {"warn": 80, "crit": 85})

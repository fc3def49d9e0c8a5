"""Requests waiting per replica: a growing queue means demand above capacity."""

from bot.diagnosis.checks.base import Check, CheckContext, gauge_check
from bot.diagnosis.metric_names import WAITING
from bot.models import CheckResult

ID, TITLE = "queue_depth", "Queue depth"


async def run(ctx: CheckContext) -> CheckResult:
    return await gauge_check(
        ctx,
        check_id=ID,
        title=TITLE,
        what="Queue",
        gauge=WAITING,
        unit="requests",
        missing=f"no {WAITING} series in scope: is vLLM scraped?",
    )


CHECK = Check(ID, TITLE, run, {"warn": 50, "crit": 200})

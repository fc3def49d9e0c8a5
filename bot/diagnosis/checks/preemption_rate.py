"""Preemptions per minute per replica: the engine evicting sequences for lack of KV cache."""

from bot.diagnosis.checks.base import Check, CheckContext, gauge_check, replica_labels
from bot.diagnosis.metric_names import PREEMPTIONS
from bot.models import CheckResult

ID, TITLE = "preemption_rate", "Preemption rate"


async def run(ctx: CheckContext) -> CheckResult:
    return await gauge_check(
        ctx,
        check_id=ID,
        title=TITLE,
        what="Preemptions",
        expr=f"({ctx.rate(PREEMPTIONS, replica_labels(ctx.scope))} * 60)",
        unit="/min",
        rates=True,
        missing=f"no {PREEMPTIONS} series in scope: is vLLM scraped?",
    )


CHECK = Check(ID, TITLE, run, {"warn": 5, "crit": 20})

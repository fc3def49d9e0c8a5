"""Prompt-length percentiles: very long prompts block the queue behind their prefill."""

from bot.diagnosis.checks.base import Check, CheckContext, quantile_check, replica_labels
from bot.diagnosis.metric_names import PROMPT_LEN_BUCKET
from bot.models import CheckResult

ID, TITLE = "long_prefills", "Long prefills"


async def run(ctx: CheckContext) -> CheckResult:
    q = ctx.number("quantile")
    return await quantile_check(
        ctx,
        check_id=ID,
        title=TITLE,
        what=f"p{q * 100:g} prompt length",
        fleet_expr=ctx.quantile(q, PROMPT_LEN_BUCKET),
        per_target_expr=ctx.quantile(q, PROMPT_LEN_BUCKET, replica_labels(ctx.scope)),
        thresholds=ctx.thresholds(),
        unit="tokens",
        missing=f"no {PROMPT_LEN_BUCKET} samples in scope over {ctx.window}",
    )


CHECK = Check(ID, TITLE, run, {"warn": 32768, "crit": 65536, "quantile": 0.99})

"""Prompt-length percentiles: very long prompts block the queue behind their prefill."""

from bot.diagnosis.checks.base import Check, CheckContext, quantile_check, replica_labels
from bot.diagnosis.metric_names import PROMPT_LEN_BUCKET
from bot.models import CheckResult

ID, TITLE = "long_prefills", "Long prefills"


async def run(ctx: CheckContext) -> CheckResult:
    q = ctx.number("quantile")
    per_replica = ctx.rate(PROMPT_LEN_BUCKET, replica_labels(ctx.scope) + ", le")
    return await quantile_check(
        ctx,
        check_id=ID,
        title=TITLE,
        what=f"p{q * 100:g} prompt length",
        fleet_expr=f"histogram_quantile({q}, {ctx.rate(PROMPT_LEN_BUCKET, 'le')})",
        per_target_expr=f"histogram_quantile({q}, {per_replica})",
        thresholds=ctx.thresholds(),
        unit="tokens",
        missing=f"no {PROMPT_LEN_BUCKET} samples in scope over {ctx.window}",
    )


CHECK = Check(ID, TITLE, run, {"warn": 32768, "crit": 65536, "quantile": 0.99})

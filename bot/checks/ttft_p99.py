"""p99 time to first token against the SLO (warning 1.5x, critical 2x)."""

from bot.checks.base import REPLICA_LABELS, Check, CheckContext, quantile_check, slo_thresholds
from bot.metric_names import TTFT_BUCKET
from bot.models import CheckResult

ID, TITLE = "ttft_p99", "TTFT p99"


async def run(ctx: CheckContext) -> CheckResult:
    q = ctx.number("quantile")
    return await quantile_check(
        ctx,
        check_id=ID,
        title=TITLE,
        what=f"p{q * 100:g} TTFT",
        fleet_expr=f"histogram_quantile({q}, {ctx.rate(TTFT_BUCKET, 'le')})",
        per_target_expr=f"histogram_quantile({q}, "
        f"{ctx.rate(TTFT_BUCKET, REPLICA_LABELS + ', le')})",
        thresholds=slo_thresholds(ctx.params),
        unit="s",
        missing=f"no {TTFT_BUCKET} samples in scope over {ctx.window}",
        facts={"slo_s": ctx.number("slo_s")},
    )


CHECK = Check(
    ID,
    TITLE,
    run,
    {"slo_s": 2.0, "warn_factor": 1.5, "crit_factor": 2.0, "quantile": 0.99},
    thresholds=slo_thresholds,
)

"""p99 time per output token (inter-token latency) against the SLO (1.5x warn, 2x crit)."""

from bot.checks.base import REPLICA_LABELS, Check, CheckContext, quantile_check, slo_thresholds
from bot.metric_names import TPOT_BUCKET
from bot.models import CheckResult

ID, TITLE = "tpot_p99", "TPOT p99"


async def run(ctx: CheckContext) -> CheckResult:
    q = ctx.number("quantile")
    return await quantile_check(
        ctx,
        check_id=ID,
        title=TITLE,
        what=f"p{q * 100:g} TPOT",
        fleet_expr=f"histogram_quantile({q}, {ctx.rate(TPOT_BUCKET, 'le')})",
        per_target_expr=f"histogram_quantile({q}, "
        f"{ctx.rate(TPOT_BUCKET, REPLICA_LABELS + ', le')})",
        thresholds=slo_thresholds(ctx.params),
        unit="s",
        missing=f"no {TPOT_BUCKET[0]} (nor {TPOT_BUCKET[1]}) samples in scope over {ctx.window}",
        facts={"slo_s": ctx.number("slo_s")},
    )


CHECK = Check(
    ID,
    TITLE,
    run,
    {"slo_s": 0.1, "warn_factor": 1.5, "crit_factor": 2.0, "quantile": 0.99},
    thresholds=slo_thresholds,
)

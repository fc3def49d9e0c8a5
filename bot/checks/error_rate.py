"""Share of finished requests that ended in error or abort, per replica."""

from bot.checks.base import REPLICA_LABELS, Check, CheckContext, gauge_check
from bot.checks.names import REQUEST_SUCCESS
from bot.models import CheckResult
from bot.promql import rate_by

ID, TITLE = "error_rate", "Error rate"


async def run(ctx: CheckContext) -> CheckResult:
    failed = rate_by(
        REQUEST_SUCCESS, ctx.scope, ctx.window, REPLICA_LABELS, 'finished_reason=~"error|abort"'
    )
    finished = rate_by(REQUEST_SUCCESS, ctx.scope, ctx.window, REPLICA_LABELS)
    return await gauge_check(
        ctx,
        check_id=ID,
        title=TITLE,
        what="Errors",
        expr=f"({failed} / {finished})",
        unit="ratio",
        missing=f"no {REQUEST_SUCCESS} traffic in scope over {ctx.window}",
    )


CHECK = Check(ID, TITLE, run, {"warn": 0.005, "crit": 0.02})

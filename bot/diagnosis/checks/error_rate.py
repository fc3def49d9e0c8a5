"""Share of requests failing on the server side, per replica.

Server errors as clients see them (HTTP 5xx on the OpenAI endpoints); replicas without
the HTTP instrumentator fall back to engine outcomes (``finished_reason`` error/abort).
Client aborts alone are not errors: people close tabs.
"""

from bot.diagnosis.checks.base import Check, CheckContext, gauge_check, replica_identity
from bot.diagnosis.metric_names import HTTP_REQUESTS, REQUEST_SUCCESS
from bot.models import CheckResult

ID, TITLE = "error_rate", "Error rate"
API = 'handler=~"/v1/.*"'


async def run(ctx: CheckContext) -> CheckResult:
    w = ctx.window
    # HTTP series carry no model_name: both ratios share one label set to merge per replica.
    by = replica_identity(ctx.scope)
    http_failed = ctx.rate(HTTP_REQUESTS, by, f'{API},status="5xx"')
    http_all = ctx.rate(HTTP_REQUESTS, by, API)
    engine_failed = ctx.rate(REQUEST_SUCCESS, by, 'finished_reason=~"error|abort"')
    engine_all = ctx.rate(REQUEST_SUCCESS, by)
    return await gauge_check(
        ctx,
        check_id=ID,
        title=TITLE,
        what="Errors",
        expr=f"(({http_failed} / {http_all}) or ({engine_failed} / {engine_all}))",
        unit="ratio",
        rates=True,
        missing=f"no {HTTP_REQUESTS} nor {REQUEST_SUCCESS} traffic in scope over {w}",
    )


CHECK = Check(ID, TITLE, run, {"warn": 0.005, "crit": 0.02})

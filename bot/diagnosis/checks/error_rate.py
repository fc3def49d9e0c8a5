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


def ratio(ctx: CheckContext, extra: str = "") -> str:
    """The failing share of each replica's requests over the window (one series each);
    ``extra``: more matchers for the replicas' series."""
    # HTTP series carry no model_name: both ratios share one label set to merge per replica.
    by = replica_identity(ctx.scope)

    def rate(metric: str, matchers: str = "") -> str:
        return ctx.rate(metric, by, ",".join(m for m in (matchers, extra) if m))

    http_failed = rate(HTTP_REQUESTS, f'{API},status="5xx"')
    http_all = rate(HTTP_REQUESTS, API)
    engine_failed = rate(REQUEST_SUCCESS, 'finished_reason=~"error|abort"')
    engine_all = rate(REQUEST_SUCCESS)
    return f"(({http_failed} / {http_all}) or ({engine_failed} / {engine_all}))"


async def run(ctx: CheckContext) -> CheckResult:
    w = ctx.window
    return await gauge_check(
        ctx,
        check_id=ID,
        title=TITLE,
        what="Errors",
        expr=ratio(ctx),
        unit="ratio",
        rates=True,
        missing=f"no {HTTP_REQUESTS} nor {REQUEST_SUCCESS} traffic in scope over {w}",
    )


CHECK = Check(ID, TITLE, run, {"warn": 0.005, "crit": 0.02})

"""Engine configuration facts from vllm:cache_config_info (memory headroom, prefix caching)."""

from bot.diagnosis.checks.base import Check, CheckContext, replica_labels, replica_target, unknown
from bot.diagnosis.metric_names import CACHE_CONFIG
from bot.diagnosis.promql import regex_quote, vllm
from bot.models import CheckResult, Offender, Status

ID, TITLE = "engine_config", "Engine configuration"
GMU, PREFIX = "gpu_memory_utilization", "enable_prefix_caching"


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


async def run(ctx: CheckContext) -> CheckResult:
    series = vllm(CACHE_CONFIG, ctx.scope)
    (groups,) = await ctx.query_all(f"count by ({GMU}, {PREFIX}) ({series})")
    if not groups:
        return unknown(ctx, ID, TITLE, f"no {CACHE_CONFIG} series in scope: is vLLM scraped?")
    limit = ctx.number("max_gpu_memory_utilization")
    risky = sorted(
        {g.labels.get(GMU, "") for g in groups if (_float(g.labels.get(GMU, "")) or 0) > limit}
    )
    no_prefix = sum(int(g.value) for g in groups if g.labels.get(PREFIX) == "False")
    replicas = sum(int(g.value) for g in groups)
    highest = max((_float(g.labels.get(GMU, "")) or 0.0) for g in groups)
    offenders: list[Offender] = []
    status: Status = "ok"
    findings = []
    if risky:
        status = "warn"
        values = "|".join(regex_quote(v)[1:-1] for v in risky)
        risky_series = vllm(CACHE_CONFIG, ctx.scope, f'{GMU}=~"{values}"')
        (rows,) = await ctx.query_all(
            f"topk(5, max by ({replica_labels(ctx.scope)}, {GMU}) ({risky_series}))"
        )
        offenders = [
            Offender(
                target=replica_target(ctx.scope)(r.labels) | {GMU: r.labels.get(GMU, "")},
                value=_float(r.labels.get(GMU, "")) or 0.0,
                status="warn",
            )
            for r in rows
        ]
        count = sum(int(g.value) for g in groups if g.labels.get(GMU, "") in risky)
        findings.append(
            f"{GMU}={'/'.join(risky)} on {count}/{replicas} replicas (recommended <= {limit:g})"
        )
    if no_prefix:
        findings.append(f"prefix caching disabled on {no_prefix}/{replicas} replicas")
        status = "warn"
    summary = (
        "; ".join(findings) or f"{GMU} <= {limit:g} and prefix caching on, {replicas} replicas"
    )
    return CheckResult(
        id=ID,
        title=TITLE,
        status=status,
        value=highest,
        unit="",
        summary=summary,
        offenders=offenders,
        queries=list(ctx.queries),
        facts={
            "max_gpu_memory_utilization": highest,
            "risky_values": risky,
            "prefix_caching_disabled": no_prefix,
            "replicas": replicas,
            "configs": [dict(g.labels) | {"replicas": int(g.value)} for g in groups],
        },
    )


CHECK = Check(ID, TITLE, run, {"max_gpu_memory_utilization": 0.9}, thresholds=None)

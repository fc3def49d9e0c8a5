"""KV-cache usage per replica (fraction 0..1): memory pressure precedes preemptions."""

from bot.diagnosis.checks.base import Check, CheckContext, gauge_check
from bot.diagnosis.metric_names import KV_USAGE
from bot.models import CheckResult

ID, TITLE = "kv_cache_usage", "KV-cache usage"


async def run(ctx: CheckContext) -> CheckResult:
    return await gauge_check(
        ctx,
        check_id=ID,
        title=TITLE,
        what="KV cache",
        gauge=KV_USAGE,
        unit="ratio",
        missing="no vllm:kv_cache_usage_perc (nor pre-0.11 vllm:gpu_cache_usage_perc) "
        "series in scope: is vLLM scraped?",
    )


CHECK = Check(ID, TITLE, run, {"warn": 0.85, "crit": 0.95})

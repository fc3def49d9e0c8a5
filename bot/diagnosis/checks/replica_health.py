"""Replica health: scrape targets down, engines restarting (counter resets), flapping."""

from bot.diagnosis.checks.base import (
    Check,
    CheckContext,
    replica_labels,
    replica_target,
    target_clusters,
    unknown,
)
from bot.diagnosis.metric_names import PROMPT_TOKENS
from bot.diagnosis.promql import quote, vllm
from bot.models import CheckResult, Offender, Status

ID, TITLE = "replica_health", "Replica health"


async def run(ctx: CheckContext) -> CheckResult:
    job = f"job=~{quote(str(ctx.params['job']))}"
    up = vllm("up", ctx.scope, job)
    w = ctx.window
    target = replica_target(ctx.scope)
    resets = f"resets({vllm(PROMPT_TOKENS, ctx.scope)}[{w}])"
    down, restarts, flaps, total = await ctx.query_all(
        f"bottomk(5, {up} == 0)",
        f"topk(5, sum by ({replica_labels(ctx.scope)}) ({resets}) > 0)",
        f"topk(5, changes({up}[{w}]) > 0)",
        f"count({up})",
    )
    if not total:
        return unknown(
            ctx,
            ID,
            TITLE,
            f"no `up` series for job=~{ctx.params['job']!r} in scope: set the check's `job` "
            "parameter to your vLLM scrape job",
        )
    replicas = int(total[0].value)
    crit_restarts = ctx.number("restarts_crit")
    restart_count = {
        s.labels.get("pod") or s.labels.get("instance", "?"): s.value for s in restarts
    }
    flap_count = {s.labels.get("pod") or s.labels.get("instance", "?"): s.value for s in flaps}
    offenders: list[Offender] = []
    for s in down:
        offenders.append(
            Offender(
                target=target(s.labels) | {"state": "down"},
                value=0,
                status="crit",
            )
        )
    down_names = {o.name() for o in offenders}
    for name in sorted(set(restart_count) | set(flap_count)):
        if name in down_names:
            continue
        events = max(restart_count.get(name, 0), flap_count.get(name, 0) / 2)
        sample = next(
            s
            for s in [*restarts, *flaps]
            if (s.labels.get("pod") or s.labels.get("instance")) == name
        )
        status: Status = "crit" if events >= crit_restarts else "warn"
        offenders.append(
            Offender(
                target=target(sample.labels) | {"state": "restarting"},
                value=events,
                status=status,
            )
        )
    pods = [
        (f"pod/{o.target.get('namespace', 'default')}/{o.target['pod']}", o.target)
        for o in offenders
        if "pod" in o.target
    ]
    status_all: Status = "ok"
    if offenders:
        status_all = "crit" if any(o.status == "crit" for o in offenders) else "warn"
    parts = []
    if down:
        parts.append(f"{len(down)} down ({', '.join(o.name() for o in offenders[: len(down)])})")
    restarting = [o for o in offenders if o.target.get("state") == "restarting"]
    if restarting:
        listed = ", ".join(f"{o.name()} x{o.value:.0f}" for o in restarting)
        parts.append(f"{len(restarting)} restarting ({listed})")
    summary = f"{replicas} replicas: " + ("; ".join(parts) if parts else "all up, no restarts")
    return CheckResult(
        id=ID,
        title=TITLE,
        status=status_all,
        value=len(down),
        unit="down",
        summary=summary,
        offenders=offenders[:5],
        queries=list(ctx.queries),
        facts={
            "replicas": replicas,
            "down": len(down),
            "restarting": len(restarting),
            "restart_targets": [name for name, _ in pods],
            "target_clusters": target_clusters(pods),
        },
    )


CHECK = Check(ID, TITLE, run, {"job": ".*vllm.*", "restarts_crit": 2}, thresholds=None)

"""Xid errors from DCGM, decoded: fatal hardware Xids mean drain, application Xids restart."""

from bot.diagnosis.checks.base import (
    Check,
    CheckContext,
    gpu_missing,
    gpu_target,
    target_clusters,
    unknown,
)
from bot.diagnosis.metric_names import XID
from bot.diagnosis.promql import dcgm, gpu_by
from bot.diagnosis.xid import decode
from bot.models import CheckResult, Offender, Status

ID, TITLE = "xid_errors", "Xid errors"


async def run(ctx: CheckContext) -> CheckResult:
    series = dcgm(XID, ctx.scope)
    seen, present = await ctx.query_all(
        f"max by ({gpu_by(ctx.scope)}) ({series}) > 0", f"count({series})"
    )
    if not present:
        return unknown(ctx, ID, TITLE, gpu_missing(ctx.scope, XID))
    gpus = int(present[0].value)
    if not seen:
        return CheckResult(
            id=ID,
            title=TITLE,
            status="ok",
            value=0,
            summary=f"no Xid on {gpus} GPUs",
            queries=list(ctx.queries),
            facts={"gpus": gpus, "xids": []},
        )
    target_of = gpu_target(ctx.scope)
    decoded = []
    offenders: list[Offender] = []
    drain: list[str] = []
    restart: list[str] = []
    named: list[tuple[str, dict[str, str]]] = []
    for sample in sorted(seen, key=lambda s: (-decode(int(s.value)).gpu_is_faulty, s.value)):
        info = decode(int(sample.value))
        target = target_of(sample.labels)
        status: Status = "crit" if info.gpu_is_faulty else "warn"
        offenders.append(
            Offender(target=target | {"xid": str(info.code)}, value=info.code, status=status)
        )
        decoded.append(
            {
                **target,
                "xid": info.code,
                "meaning": info.meaning,
                "class": info.kind,
                "remedy": info.remedy,
                "action": info.action,
            }
        )
        if info.gpu_is_faulty and target.get("node"):
            drain.append(f"node/{target['node']}")
            named.append((drain[-1], target))
        elif info.remedy == "restart" and target.get("pod"):
            restart.append(f"pod/{target.get('namespace', 'default')}/{target['pod']}")
            named.append((restart[-1], target))
    worst = decode(int(offenders[0].value))
    where = offenders[0].name()
    node = offenders[0].target.get("node")
    summary = (
        f"Xid {worst.code} ({worst.meaning}, {worst.kind}) on {node + ' ' if node else ''}"
        f"{'GPU ' + offenders[0].target['gpu'] if 'gpu' in offenders[0].target else where}: "
        f"{worst.action}"
    )
    if len(offenders) > 1:
        summary += f"; {len(offenders) - 1} more GPU(s) with Xids"
    return CheckResult(
        id=ID,
        title=TITLE,
        status=offenders[0].status,
        value=worst.code,
        summary=summary,
        offenders=offenders[:5],
        queries=list(ctx.queries),
        facts={
            "gpus": gpus,
            "xids": decoded,
            "drain_targets": sorted(set(drain)),
            "restart_targets": sorted(set(restart)),
            "target_clusters": target_clusters(named),
            "fatal": bool(drain) or any(d["remedy"] == "reset" for d in decoded),
        },
    )


CHECK = Check(ID, TITLE, run, {}, thresholds=None)

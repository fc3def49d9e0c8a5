"""ECC and row-remap state from DCGM: uncorrectable memory errors retire a GPU."""

from bot.diagnosis.checks.base import (
    Check,
    CheckContext,
    gpu_missing,
    gpu_target,
    target_clusters,
    unknown,
)
from bot.diagnosis.metric_names import ECC_DBE, REMAP_FAILURE, UNCORRECTABLE_REMAP
from bot.diagnosis.promql import dcgm, dcgm_over, gpu_by
from bot.models import CheckResult, Offender, Status

ID, TITLE = "ecc_errors", "ECC / row remapping"

# kind → (status, meaning)
_KINDS: dict[str, tuple[Status, str]] = {
    "remap_failure": ("crit", "row remapping failed: reset the GPU, RMA candidate"),
    "dbe": ("crit", "double-bit (uncorrectable) ECC errors: drain and reset the GPU"),
    "uncorrectable_remap": (
        "warn",
        "rows remapped after uncorrectable errors: reset when convenient",
    ),
}


async def run(ctx: CheckContext) -> CheckResult:
    s = ctx.scope
    by = gpu_by(s)
    target_of = gpu_target(s)
    found = " or ".join(
        [
            f"label_replace(max by ({by}) ({dcgm(REMAP_FAILURE, s)}) > 0, "
            '"kind", "remap_failure", "", "")',
            f"label_replace(max by ({by}) "
            f'({dcgm_over("increase", ECC_DBE, s, ctx.window)}) > 0, "kind", "dbe", "", "")',
            f"label_replace(max by ({by}) ({dcgm(UNCORRECTABLE_REMAP, s)}) > 0, "
            '"kind", "uncorrectable_remap", "", "")',
        ]
    )
    present_expr = f"count({dcgm(UNCORRECTABLE_REMAP, s)} or {dcgm(ECC_DBE, s)})"
    bad, present = await ctx.query_all(found, present_expr)
    if not present:
        missing = gpu_missing(ctx.scope, f"{UNCORRECTABLE_REMAP} or {ECC_DBE}")
        return unknown(ctx, ID, TITLE, missing)
    offenders = sorted(
        (
            Offender(
                target=target_of(b.labels) | {"kind": b.labels["kind"]},
                value=b.value,
                status=_KINDS[b.labels["kind"]][0],
            )
            for b in bad
        ),
        key=lambda o: (o.status != "crit", o.name()),
    )
    if not offenders:
        return CheckResult(
            id=ID,
            title=TITLE,
            status="ok",
            value=0,
            summary=f"no uncorrectable ECC errors or remaps on {int(present[0].value)} GPUs",
            queries=list(ctx.queries),
        )
    drains = [
        (f"node/{o.target['node']}", o.target)
        for o in offenders
        if o.status == "crit" and "node" in o.target
    ]
    first = offenders[0]
    meaning = _KINDS[first.target["kind"]][1]
    return CheckResult(
        id=ID,
        title=TITLE,
        status=first.status,
        value=len({o.name() for o in offenders}),
        unit="GPUs",
        summary=f"{first.target.get('node', '?')} GPU {first.target.get('gpu', '?')}: {meaning}",
        offenders=offenders[:5],
        queries=list(ctx.queries),
        facts={
            "drain_targets": sorted({name for name, _ in drains}),
            "target_clusters": target_clusters(drains),
        },
    )


CHECK = Check(ID, TITLE, run, {}, thresholds=None)

"""Decide per workload: a healthy Deployment sharing a scope must not hide a sick one.

Scope-wide aggregates mix workloads (GPU utilisation averaged over a saturated model and
an idle one reads "not saturated"), so when a scope holds several Deployments and some
look unwell, the runbook's rules are evaluated again for each of those Deployments on
its own. Discovery is one query; the split costs one more round of the runbook's
queries per unwell Deployment (at most ``MAX_SPLIT``) and nothing when all is well.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.diagnosis.metric_names import RUNNING
from bot.diagnosis.promql import DEPLOYMENT_KEY, vllm
from bot.diagnosis.workloads import workload_of_pod
from bot.models import CheckResult, Finding, Scope, status_rank
from bot.sources.prometheus import MetricsSource

MAX_SPLIT = 4


async def workloads_in(scope: Scope, metrics: MetricsSource) -> set[str]:
    """The workloads (``deployment/NS/NAME``, …) whose vLLM replicas the scope holds."""
    if DEPLOYMENT_KEY in scope.labels or "pod" in scope.labels:
        return set()
    rows = await metrics.query(f"group by (namespace, pod) ({vllm(RUNNING, scope)})")
    return {
        workload_of_pod(r.labels.get("namespace", ""), r.labels["pod"])
        for r in rows
        if r.labels.get("pod")
    }


def unwell(results: Iterable[CheckResult], workloads: set[str], scope: Scope) -> list[str]:
    """Deployments to decide on their own: those owning a bad offender, worst first.

    Only when the scope holds several workloads, all of them Deployments (a pod-name
    pattern selects a Deployment's replicas; other kinds are decided scope-wide).
    """
    if len(workloads) < 2 or not all(w.startswith("deployment/") for w in workloads):
        return []
    ranked: dict[str, int] = {}
    default_ns = scope.labels.get("namespace", "")
    for result in results:
        for offender in result.offenders:
            pod = offender.target.get("pod")
            if offender.status in ("ok", "unknown") or not pod:
                continue
            workload = workload_of_pod(offender.target.get("namespace", default_ns), pod)
            if workload in workloads:
                rank = status_rank(offender.status)
                ranked[workload] = max(ranked.get(workload, 0), rank)
    ordered = sorted(ranked, key=lambda w: (-ranked[w], w))
    return ordered[:MAX_SPLIT]


def scope_of(workload: str, scope: Scope) -> Scope:
    """The scope narrowed to one Deployment (``deployment/NS/NAME``)."""
    _, namespace, name = workload.split("/", 2)
    labels = {**scope.labels, "namespace": namespace, DEPLOYMENT_KEY: name}
    return scope.model_copy(update={"labels": labels})


def labelled(workload: str, findings: Iterable[Finding]) -> list[Finding]:
    """A workload's matched findings, said to be about it (fallbacks stay scope-wide)."""
    name = workload.split("/", 1)[1]
    return [
        f.model_copy(update={"summary": f"{name}: {f.summary}", "workload": workload})
        for f in findings
        if f.id not in FALLBACK_IDS
    ]


FALLBACK_IDS = frozenset({"healthy", "inconclusive", "unexplained", "blind_spots"})


def fallbacks(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.id in FALLBACK_IDS]

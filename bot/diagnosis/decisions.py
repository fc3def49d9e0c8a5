"""Turn check results into conclusions: a runbook's decision rules → findings and actions.

Pure: results in, findings and recommended actions out. Every diagnosis ends with a
conclusion — a matched rule, an explicit "healthy", or "no rule explains this" with the
signals that need a human — never numbers alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.diagnosis import sizing
from bot.diagnosis.checks.base import fmt, is_context
from bot.diagnosis.rules import PLACEHOLDER, TARGET_FORMS, ActionSpec, Condition, Rule
from bot.diagnosis.runbooks import Runbook
from bot.diagnosis.workloads import workload_of_pod
from bot.models import (
    CheckResult,
    Finding,
    Offender,
    RecommendedAction,
    Scope,
    Status,
    status_rank,
    worst,
)

MAX_TARGETS_PER_ACTION = 3


@dataclass(frozen=True)
class SizingPolicy:
    headroom: float = 0.3  # the checklist: size for peak plus 30 %
    kv_target: float = 0.75


def _holds(cond: Condition, results: Mapping[str, CheckResult]) -> bool:
    result = results.get(cond.check)
    if result is None:
        return False
    if cond.status is not None and result.status not in cond.status:
        return False
    value: Any = result.facts.get(cond.fact) if cond.fact else result.value
    if cond.equals is not None and value != cond.equals:
        return False
    if cond.above is not None or cond.below is not None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if cond.above is not None and not value > cond.above:
            return False
        if cond.below is not None and not value < cond.below:
            return False
    return True


def _bad_offenders(result: CheckResult) -> list[str]:
    bad = [o.name() for o in result.offenders if o.status != "ok"]
    return bad or [o.name() for o in result.offenders]


def render(template: str, results: Mapping[str, CheckResult]) -> str:
    """Fill ``{check.field}`` placeholders; a missing check renders as 'n/a'."""

    def field(match: Any) -> str:
        check, name, sub = match.group(1), match.group(2), match.group(3)
        result = results.get(check)
        if result is None:
            return "n/a"
        if name == "value":
            return fmt(result.value, result.unit)
        if name == "summary":
            return result.summary
        if name == "status":
            return result.status
        if name == "offenders":
            return ", ".join(_bad_offenders(result)) or "none"
        if name == "count":
            return str(result.facts.get("warn", sum(o.status != "ok" for o in result.offenders)))
        value = result.facts.get(sub or "")
        if isinstance(value, float):
            return f"{value:.3g}"
        return "n/a" if value is None else str(value)

    return PLACEHOLDER.sub(field, template)


def _severity(rule: Rule, results: Mapping[str, CheckResult]) -> Status:
    if rule.severity != "checks":
        return rule.severity
    statuses = [results[c.check].status for c in rule.when if c.check in results]
    level = worst([s for s in statuses if s != "unknown"])
    return "warn" if status_rank(level) < status_rank("warn") else level


# An action's target and the cluster whose data named it (None: the data has no cluster).
Placed = tuple[str, str | None]


def _scope_workload(scope: Scope, results: Mapping[str, CheckResult]) -> Placed | None:
    namespace = scope.labels.get("namespace", "default")
    if "deployment" in scope.labels:
        return f"deployment/{namespace}/{scope.labels['deployment']}", scope.cluster
    for result in results.values():
        for offender in result.offenders:
            if "pod" in offender.target:
                t = offender.target
                pod = workload_of_pod(t.get("namespace", namespace), t["pod"])
                return pod, t.get("cluster", scope.cluster)
    return None


def _targets(spec: ActionSpec, scope: Scope, results: Mapping[str, CheckResult]) -> list[Placed]:
    m = TARGET_FORMS.match(spec.target)
    assert m is not None, "validated when the runbook loaded"
    if m.group("scope"):
        found = _scope_workload(scope, results)
        return [found] if found else []
    result = results.get(m.group("check"))
    if result is None:
        return []
    if m.group("fact"):
        value = result.facts.get(m.group("fact")) or []
        if not isinstance(value, list):
            return []
        where = result.facts.get("target_clusters") or {}
        placed = [
            (str(v), cluster) for v in value for cluster in (where.get(str(v)) or [scope.cluster])
        ]
        return placed[:MAX_TARGETS_PER_ACTION]
    kind = m.group("kind")
    # Act on what crossed a threshold; a workload may still come from the worst few.
    ranked = [o for o in result.offenders if o.status != "ok"]
    if kind == "deployment" and not ranked:
        ranked = list(result.offenders)
    ranked.sort(key=lambda o: -status_rank(o.status))
    out: list[Placed] = []
    for offender in ranked:
        t = offender.target
        namespace = t.get("namespace", scope.labels.get("namespace", "default"))
        cluster = t.get("cluster", scope.cluster)
        if kind == "node" and "node" in t:
            out.append((f"node/{t['node']}", cluster))
        elif kind == "pod" and "pod" in t:
            out.append((f"pod/{namespace}/{t['pod']}", cluster))
        elif kind == "deployment" and "pod" in t:
            out.append((workload_of_pod(namespace, t["pod"]), cluster))
    if kind == "deployment" and not out:
        found = _scope_workload(scope, results)
        out = [found] if found else []
    # workloads repeat across replicas: keep the first of each
    return list(dict.fromkeys(out))[: 1 if kind == "deployment" else MAX_TARGETS_PER_ACTION]


def _sized(
    spec: ActionSpec, results: Mapping[str, CheckResult], policy: SizingPolicy
) -> tuple[dict[str, Any], str]:
    """Parameters and an explanation for a scale action, from measured numbers."""
    params = dict(spec.params)
    throughput = results.get("throughput")
    kv = results.get("kv_cache_usage")
    plan = None
    if spec.sizing == "throughput" and throughput and throughput.facts.get("saturated"):
        f = throughput.facts
        plan = sizing.for_throughput(
            int(f["replicas"]),
            float(f["arrival_rps"]),
            float(f["per_replica_rps"]),
            policy.headroom,
        )
    if plan is None and kv and kv.value is not None and spec.sizing in ("throughput", "kv"):
        plan = sizing.for_kv(int(kv.facts.get("targets", 0)), kv.value, policy.kv_target)
    if plan is None:
        return params, "capacity not measurable now (no saturated replica): add replicas stepwise"
    params |= {"replicas": plan.replicas, "current_replicas": plan.current}
    return params, f"scale {plan.current} → {plan.replicas}: {plan.why}"


def _pods(offenders: list[Offender]) -> set[tuple[str, str]]:
    # By name and cluster alone: pod names carry a random suffix, and GPU series may name
    # the namespace differently from vLLM's (exporter relabelling); names repeat across
    # clusters.
    return {(o.target.get("cluster", ""), o.target["pod"]) for o in offenders if "pod" in o.target}


def _evidence(rule: Rule, results: Mapping[str, CheckResult]) -> list[Offender]:
    """The targets an action's rule acts on: the bad offenders of its target check."""
    check = rule.action.target_check if rule.action else None
    result = results.get(check or "")
    return [o for o in result.offenders if o.status != "ok"] if result else []


def _explained_by_hardware(
    matched: list[Rule], results: Mapping[str, CheckResult]
) -> dict[str, str]:
    """Rules whose workload action only addresses symptoms of a GPU being drained.

    When every replica behind a scale or configuration change runs on a GPU that a drain
    takes out of service, the drain is the fix: a fault localised to some replicas must
    not become a change to the whole workload. Maps rule id → the drain rule's id.
    """
    faulty: dict[tuple[str, str], str] = {}
    for rule in matched:
        if rule.action and rule.action.kind == "drain":
            for pod in _pods(_evidence(rule, results)):
                faulty.setdefault(pod, rule.id)
    explained: dict[str, str] = {}
    for rule in matched:
        if not faulty or rule.action is None or rule.action.kind not in ("scale", "config"):
            continue
        bad = _evidence(rule, results)
        result = results.get(rule.action.target_check or "")
        counted = result.facts.get("warn") if result else None
        if isinstance(counted, int) and counted > len(bad):
            continue  # more replicas are affected than the report lists
        pods = _pods(bad)
        if bad and len(pods) == len(bad) and pods <= faulty.keys():
            explained[rule.id] = faulty[next(iter(pods))]
    return explained


def evaluate(
    runbook: Runbook,
    results: Mapping[str, CheckResult],
    scope: Scope,
    policy: SizingPolicy | None = None,
) -> tuple[list[Finding], list[RecommendedAction]]:
    policy = policy or SizingPolicy()
    findings: list[Finding] = []
    actions: dict[tuple[str, str, str, str], RecommendedAction] = {}
    matched = [rule for rule in runbook.rules if all(_holds(c, results) for c in rule.when)]
    explained = _explained_by_hardware(matched, results)
    for rule in matched:
        targets = [
            name
            for c in rule.when
            if c.check in results and results[c.check].status in ("warn", "crit")
            for name in _bad_offenders(results[c.check])
        ]
        summary = render(rule.summary, results)
        severity = _severity(rule, results)
        if rule.id in explained:
            summary += f" — on the replicas of the faulty GPU ({explained[rule.id]}): no change"
            severity = "warn"
        findings.append(
            Finding(
                id=rule.id,
                severity=severity,
                summary=summary,
                targets=list(dict.fromkeys(targets))[:5],
            )
        )
        if rule.action is None or rule.id in explained:
            continue
        params, sizing_note = (
            _sized(rule.action, results, policy)
            if rule.action.kind == "scale"
            else (dict(rule.action.params), "")
        )
        reason = render(rule.action.reason, results)
        if sizing_note:
            reason = f"{reason} ({sizing_note})"
        change = str(params.get("change", ""))
        for target, cluster in _targets(rule.action, scope, results):
            actions.setdefault(
                (rule.action.kind, target, change, cluster or ""),
                RecommendedAction(
                    kind=rule.action.kind,
                    target=target,
                    params=params,
                    reason=reason,
                    cluster=cluster,
                ),
            )
    findings.extend(_fallback_findings(runbook, results, bool(findings)))
    findings.sort(key=lambda f: -status_rank(f.severity))
    return findings, list(actions.values())


def overall_status(results: Sequence[CheckResult]) -> Status:
    """The worst check status; a context check's unknown does not count (Check.context)."""
    counted = [r.status for r in results if r.status != "unknown" or not is_context(r.id)]
    return worst(counted or [r.status for r in results])


def _fallback_findings(
    runbook: Runbook, results: Mapping[str, CheckResult], matched: bool
) -> list[Finding]:
    out: list[Finding] = []
    blind = [r for r in results.values() if r.status == "unknown" and not is_context(r.id)]
    bad = sorted(
        (r for r in results.values() if r.status in ("warn", "crit")),
        key=lambda r: -status_rank(r.status),
    )
    if not matched and bad:
        listed = "; ".join(f"{r.title}: {r.summary}" for r in bad[:3])
        out.append(
            Finding(
                id="unexplained",
                severity=bad[0].status,
                summary=f"No rule of '{runbook.title}' explains these signals — look at: {listed}",
                targets=[n for r in bad for n in _bad_offenders(r)][:5],
            )
        )
    # Healthy only when every check that could show the runbook's fault read data.
    could_show = {c.check for rule in runbook.rules for c in rule.when}
    unseen = [r for r in blind if r.id in could_show]
    if not matched and not bad and unseen:
        out.append(
            Finding(
                id="inconclusive",
                severity="unknown",
                summary=f"Cannot rule out '{runbook.title}': "
                f"{', '.join(r.title for r in unseen)} read no data",
            )
        )
    elif not matched and not bad and len(blind) < len(results):
        out.append(
            Finding(
                id="healthy",
                severity="ok",
                summary=f"No sign of '{runbook.title}': "
                f"{len(results) - len(blind)} checks within thresholds",
            )
        )
    if blind:
        listed = "; ".join(f"{r.title}: {r.summary}" for r in blind[:3])
        out.append(
            Finding(
                id="blind_spots",
                severity="unknown",
                summary=f"Could not evaluate {len(blind)}/{len(results)} checks — {listed}",
            )
        )
    return out

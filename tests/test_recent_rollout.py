"""The recent_rollout check's verdicts, on answers scripted per query (what it concludes
from a real Prometheus scraping the fleet twin is tests/test_rollout_e2e.py's)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.diagnosis.checks import REGISTRY
from bot.diagnosis.checks.base import PART_LABEL, CheckContext, parts_of
from bot.diagnosis.checks.recent_rollout import (
    CHECK,
    KSM_MISSING,
    Revision,
    age_text,
    judge,
)
from bot.diagnosis.checks.recent_rollout import run as run_check
from bot.diagnosis.decisions import evaluate
from bot.diagnosis.metric_names import RUNNING
from bot.diagnosis.runbooks import load_runbooks
from bot.models import CheckResult, Offender, Scope, Status
from bot.sources.prometheus import Sample

NS, DEP = "prod", "vllm-llama"
NEW, OLD = f"{DEP}-7c9d8f5b6d", f"{DEP}-5f6d7c8b9a"
# which of the check's queries each scripted answer is for
PROBES: list[tuple[str, Callable[[str], bool]]] = [
    ("before", lambda q: "offset" in q),
    ("present", lambda q: q.startswith("count(kube_replicaset_created")),
    ("revisions", lambda q: q.startswith("((time() -")),
    ("tpot", lambda q: q.startswith("quantile by") and "histogram_quantile" in q),
    ("errors", lambda q: q.startswith("quantile by (namespace, owner_name")),
    ("pods", lambda q: q.startswith("topk by (namespace, owner_name")),
]


class Scripted:
    """Answers each of the check's queries by what it asks for; nothing else."""

    def __init__(self, **answers: list[Sample]) -> None:
        self.answers = answers
        self.queries: list[str] = []

    async def query(self, promql: str) -> list[Sample]:
        parts = parts_of(promql)
        if len(parts) > 1:  # several queries sent as one: answer each, tagged
            answers = [await self.query(part) for part in parts]
            return [
                Sample({**s.labels, PART_LABEL: str(i)}, s.value)
                for i, answer in enumerate(answers)
                for s in answer
            ]
        self.queries.append(promql)
        if promql.startswith(f"count({RUNNING}") and "offset" in promql:
            return [Sample({}, 1.0)]  # plenty of history
        if "min_over_time(timestamp(" in promql:
            return [Sample({}, 3600.0)]  # plenty of history
        for key, probe in PROBES:
            if probe(promql):
                return self.answers.get(key, [])
        raise AssertionError(f"unexpected query {promql}")


def rs(name: str, value: float, **extra: str) -> Sample:
    labels = {"namespace": NS, "owner_name": name, **extra}
    return Sample(labels, value)


def revision(name: str, age_s: float) -> Sample:
    labels = {"namespace": NS, "replicaset": name, "owner_kind": "Deployment", "owner_name": DEP}
    return Sample(labels, age_s)


def run(source: Scripted) -> CheckResult:
    ctx = CheckContext(metrics=source, scope=Scope(), window="5m", params=CHECK.defaults)
    return asyncio.run(run_check(ctx))


def test_without_kube_state_metrics_it_is_unknown_and_says_how_to_fix_it() -> None:
    result = run(Scripted())
    assert result.status == "unknown"
    assert result.summary == KSM_MISSING
    assert "deploy kube-state-metrics and scrape it" in result.summary
    assert result.queries  # what found nothing is reported


def test_kube_state_metrics_without_the_pods_workload_is_unknown_too() -> None:
    result = run(Scripted(present=[Sample({}, 12.0)]))
    assert result.status == "unknown"
    assert "knows no Deployment or Argo Rollout owning the vLLM pods" in result.summary


def test_an_old_revision_is_no_rollout_to_blame() -> None:
    result = run(
        Scripted(
            present=[Sample({}, 3.0)],
            revisions=[revision(NEW, 5 * 3600)],
            errors=[rs(NEW, 0.08)],
        )
    )
    assert result.status == "ok"
    assert result.facts["recent"] is False and result.facts["rollback_targets"] == []
    assert result.summary == (
        f"deployment/{NS}/{DEP}: revision {NEW} rolled out 5.0 h ago, none in the last 60 min"
    )


def test_a_canary_erroring_more_than_the_revision_it_replaces_is_implicated() -> None:
    pod = f"{NEW}-abcde"
    result = run(
        Scripted(
            present=[Sample({}, 3.0)],
            revisions=[revision(OLD, 20 * 86400), revision(NEW, 300)],
            errors=[rs(NEW, 0.05), rs(OLD, 0.001)],
            tpot=[rs(NEW, 0.05), rs(OLD, 0.05)],
            pods=[rs(NEW, 0.06, pod=pod, instance=f"{pod}:8000"), rs(OLD, 0.001, pod="x")],
        )
    )
    assert result.status == "crit"
    assert result.facts["rollback_targets"] == [f"deployment/{NS}/{DEP}"]
    assert (result.facts["revision"], result.facts["age"]) == (NEW, "5 min")
    assert f"0.1 % on {OLD}, the revision before it" in result.facts["evidence"]
    assert [o.target["pod"] for o in result.offenders] == [pod]


def test_one_revision_is_judged_against_the_window_before_it_rolled_out() -> None:
    source = Scripted(
        present=[Sample({}, 3.0)],
        revisions=[revision(NEW, 120)],
        errors=[rs(NEW, 0.004)],
        tpot=[rs(NEW, 0.09)],
        before=[Sample({"stat": "errors"}, 0.004), Sample({"stat": "tpot"}, 0.05)],
    )
    result = run(source)
    assert result.status == "warn"  # slower decoding alone: errors were as they are
    assert (
        "p99 TPOT 90 ms on its replicas, 50 ms before the rollout (x1.8)"
        in (result.facts["evidence"])
    )
    (before,) = [q for q in source.queries if "offset" in q and not q.startswith("count(")]
    assert "offset 121s" in before and f'owner_name="{DEP}"' in before


def test_a_recent_revision_doing_as_well_as_before_is_fine() -> None:
    result = run(
        Scripted(
            present=[Sample({}, 3.0)],
            revisions=[revision(NEW, 600)],
            errors=[rs(NEW, 0.001)],
            tpot=[rs(NEW, 0.05)],
            before=[Sample({"stat": "errors"}, 0.001), Sample({"stat": "tpot"}, 0.05)],
        )
    )
    assert result.status == "ok"
    assert result.facts["recent"] is True and result.facts["implicated"] is False
    assert "its replicas do no worse" in result.summary


def test_errors_since_a_rollout_with_nothing_recorded_before_it_implicate_it() -> None:
    ctx = CheckContext(metrics=Scripted(), scope=Scope(), window="5m", params=CHECK.defaults)
    new = Revision(NS, "Rollout", DEP, NEW, "east", 60.0, errors=0.01, tpot_s=None)
    verdict = judge(ctx, [new], None)
    assert (verdict.status, verdict.implicated) == ("warn", True)
    assert verdict.evidence == "errors 1.0 % on its replicas, none recorded before the rollout"
    assert new.target == f"rollout/{NS}/{DEP}"


def test_rule_bad_rollout_rolls_back_and_replica_errors_yields() -> None:
    runbooks = load_runbooks()
    for runbook_id in ("high_error_rate", "tpot_slo", "fleet_status", "model_quality_regression"):
        rules = {r.id for r in runbooks[runbook_id].rules}
        assert "bad_rollout" in rules, runbook_id
    restart = next(r for r in runbooks["high_error_rate"].rules if r.id == "replica_errors")
    assert {"check": "recent_rollout", "status": ["ok", "unknown"]} in [
        c.model_dump(exclude_none=True) for c in restart.when
    ]
    assert REGISTRY["recent_rollout"] is CHECK
    assert [age_text(s) for s in (30, 600, 5 * 3600, 3 * 86400)] == [
        "30 s",
        "10 min",
        "5.0 h",
        "3 d",
    ]


def test_the_same_errors_roll_back_a_recent_revision_and_restart_otherwise() -> None:
    runbook = load_runbooks()["high_error_rate"]
    pod = f"{NEW}-abcde"
    offender = Offender(target={"namespace": NS, "pod": pod}, value=0.05, status="crit")

    def results(rollout: Status, facts: dict[str, object]) -> dict[str, CheckResult]:
        out = {
            check: CheckResult(id=check, title=check, status="ok", summary=check)
            for check in ("xid_errors", "replica_health", "engine_config")
        }
        out["error_rate"] = CheckResult(
            id="error_rate", title="Errors", status="crit", summary="5 %", offenders=[offender]
        )
        out["recent_rollout"] = CheckResult(
            id="recent_rollout", title="Rollout", status=rollout, summary="rollout", facts=facts
        )
        return out

    blamed: dict[str, object] = {
        "revision": NEW,
        "age": "4 min",
        "evidence": "errors 5.0 % on its replicas, 0.0 % before the rollout",
        "rollback_targets": [f"deployment/{NS}/{DEP}"],
    }
    findings, actions = evaluate(runbook, results("crit", blamed), Scope())
    assert findings[0].id == "bad_rollout"
    assert "replica_errors" not in {f.id for f in findings}
    assert [(a.kind, a.target) for a in actions] == [("rollback", f"deployment/{NS}/{DEP}")]
    assert actions[0].reason.startswith(f"revision {NEW} rolled out 4 min ago, and since then")
    statuses: tuple[Status, ...] = ("ok", "unknown")
    for rollout in statuses:
        findings, actions = evaluate(runbook, results(rollout, {}), Scope())
        assert findings[0].id == "replica_errors", rollout
        assert [(a.kind, a.target) for a in actions] == [("restart", f"pod/{NS}/{pod}")]

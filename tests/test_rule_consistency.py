"""The same evidence gets the same recommendation whichever runbook sees it.

Each rule's evidence (check results that satisfy its conditions, nothing else) is given to
every runbook that runs those checks; all of them must recommend the same actions. And a
finding kind names one recommendation everywhere it can be produced.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from bot.diagnosis.decisions import evaluate
from bot.diagnosis.rules import Rule, RuleCatalogue, load_rule_catalogue
from bot.diagnosis.runbooks import Runbook, RunbookError, load_runbooks, with_shared_rules
from bot.diagnosis.yaml_source import parse_yaml_model
from bot.models import CheckResult, Offender, Scope, Status

NAMESPACE, POD, NODE = "prod", "llama-7b-7d9f8b6c5d-abcde", "gpu-node-1"
SCOPE = Scope(labels={"namespace": NAMESPACE})


def evidence_for(rule: Rule) -> dict[str, CheckResult]:
    """Results for exactly the checks ``rule`` reads, satisfying every condition."""
    statuses: dict[str, Status] = {}
    values: dict[str, float] = {}
    facts: dict[str, dict[str, Any]] = defaultdict(dict)
    for cond in rule.when:
        if cond.status:
            statuses[cond.check] = cond.status[0]
        number = (
            cond.above + 1
            if cond.above is not None
            else cond.below - 1
            if cond.below is not None
            else None
        )
        if cond.fact:
            facts[cond.check][cond.fact] = cond.equals if cond.equals is not None else number
        elif number is not None:
            values[cond.check] = number
    out: dict[str, CheckResult] = {}
    for check in sorted(rule.checks):
        status = statuses.get(check, "warn")
        target = {"namespace": NAMESPACE, "pod": POD, "node": NODE, "gpu": "0"}
        offender_status: Status = "warn" if status in ("ok", "unknown") else status
        out[check] = CheckResult(
            id=check,
            title=check,
            status=status,
            value=values.get(check, 1.0),
            summary=f"{check} evidence",
            offenders=[Offender(target=target, value=1.0, status=offender_status)],
            facts={
                "drain_targets": [f"node/{NODE}"],
                "restart_targets": [f"pod/{NAMESPACE}/{POD}"],
                **facts[check],
            },
        )
    return out


def recommendations(runbook: Runbook, results: dict[str, CheckResult]) -> set[tuple[str, str]]:
    _, actions = evaluate(runbook, results, SCOPE)
    return {(a.kind, a.target) for a in actions}


def inconsistencies(runbooks: dict[str, Runbook]) -> list[str]:
    rules = {rule.id: rule for rb in runbooks.values() for rule in rb.rules}
    problems = []
    for rule in rules.values():
        evidence = evidence_for(rule)
        seen: dict[frozenset[tuple[str, str]], list[str]] = defaultdict(list)
        for runbook in runbooks.values():
            if rule.applies_to(ref.id for ref in runbook.checks):
                seen[frozenset(recommendations(runbook, evidence))].append(runbook.id)
        if len(seen) > 1:
            problems.append(f"{rule.id}'s evidence: " + " vs ".join(map(str, seen.items())))
    return problems


def test_every_shipped_runbook_recommends_the_same_on_the_same_evidence() -> None:
    assert inconsistencies(load_runbooks()) == []


def test_a_finding_kind_has_one_recommendation_everywhere() -> None:
    kinds: dict[str, set[str | None]] = defaultdict(set)
    for runbook in load_runbooks().values():
        for rule in runbook.rules:
            kinds[rule.id].add(rule.action.kind if rule.action else None)
    assert {k: v for k, v in kinds.items() if len(v) > 1} == {}


def test_a_throttling_gpu_is_drained_by_every_runbook_that_sees_it() -> None:
    """The issue's example: 89 °C and throttling was a drain in two runbooks and a
    finding with no action in gpu_hardware_failure."""
    runbooks = load_runbooks()
    hot = CheckResult(
        id="gpu_temperature",
        title="GPU temperature",
        status="crit",
        value=89.0,
        summary="GPU temperature 89 °C",
        offenders=[
            Offender(target={"node": NODE, "gpu": "3", "pod": POD}, value=89, status="crit")
        ],
    )
    seeing = [rb for rb in runbooks.values() if "gpu_temperature" in {c.id for c in rb.checks}]
    assert {rb.id for rb in seeing} >= {"gpu_thermal", "tpot_slo", "gpu_hardware_failure"}
    for runbook in seeing:
        assert ("drain", f"node/{NODE}") in recommendations(runbook, {"gpu_temperature": hot}), (
            runbook.id
        )


def test_the_check_catches_a_runbook_rule_that_contradicts_another_runbook(
    tmp_path: Path,
) -> None:
    """A runbook's own rule that acts differently on evidence another runbook also reads
    is reported (the test above cannot pass vacuously)."""
    catalogue = load_rule_catalogue(Path(__file__).resolve().parents[1] / "runbooks")
    shipped = load_runbooks()
    own = parse_yaml_model(
        """
rules:
  - id: warm_means_restart
    when:
      - {check: gpu_temperature, status: [warn]}
    summary: "{gpu_temperature.summary}"
    action: {kind: restart, target: gpu_temperature.offenders:pod, reason: "hot"}
""",
        "own.yaml",
        RuleCatalogue,
        "",
    ).rules
    thermal = shipped["gpu_thermal"]
    contrary = thermal.model_copy(update={"rules": [*thermal.rules, *own]})
    problems = inconsistencies({**shipped, "gpu_thermal": contrary})
    assert any(p.startswith("warm_means_restart's evidence") for p in problems), problems
    # …and a runbook cannot redefine a catalogue rule's id to change its action.
    clash = thermal.model_copy(update={"rules": [own[0].model_copy(update={"id": "gpu_warm"})]})
    with pytest.raises(RunbookError, match=r"gpu_warm.*shared rule catalogue"):
        with_shared_rules(clash, catalogue)

"""Decision rules: check results in, conclusions and sized actions out (pure)."""

from __future__ import annotations

from typing import Any

from bot.diagnosis.decisions import SizingPolicy, evaluate, render
from bot.diagnosis.runbooks import Runbook, parse_runbook
from bot.models import CheckResult, Offender, Scope, Status

RUNBOOK = """
id: demo
title: Demo latency
summary: s
severity: critical
checks:
  - id: queue_depth
  - id: gpu_utilization
  - id: kv_cache_usage
  - id: throughput
  - id: xid_errors
rules:
  - id: under_provisioned
    when:
      - {check: queue_depth, status: [warn, crit]}
      - {check: gpu_utilization, fact: saturated, equals: true}
    summary: "queue {queue_depth.value} on {queue_depth.count} replicas: {queue_depth.offenders}"
    action:
      kind: scale
      target: queue_depth.offenders:deployment
      sizing: throughput
      reason: "demand {throughput.facts.arrival_rps} req/s"
  - id: fatal_xid
    when:
      - {check: xid_errors, status: [crit]}
    summary: "{xid_errors.summary}"
    action:
      kind: drain
      target: xid_errors.facts.drain_targets
      reason: "hardware"
  - id: hot_cache
    when:
      - {check: kv_cache_usage, above: 0.9}
    severity: warn
    summary: "kv {kv_cache_usage.value}"
remediation: "scale"
"""

POD_A = "vllm-llama-7d9f8c6b5d-aaaaa"
POD_B = "vllm-llama-7d9f8c6b5d-bbbbb"


def runbook() -> Runbook:
    return parse_runbook(RUNBOOK, "demo.yaml")


def result(
    check_id: str,
    status: Status = "ok",
    value: float | None = None,
    unit: str = "",
    offenders: list[Offender] | None = None,
    **facts: Any,
) -> CheckResult:
    return CheckResult(
        id=check_id, title=check_id, status=status, value=value, unit=unit,
        summary=f"{check_id} summary", offenders=offenders or [], facts=facts,
    )  # fmt: skip


def pod(name: str, value: float, status: Status) -> Offender:
    return Offender(target={"namespace": "prod", "pod": name}, value=value, status=status)


def healthy() -> dict[str, CheckResult]:
    return {
        "queue_depth": result("queue_depth", "ok", 0, "requests", [pod(POD_A, 0, "ok")]),
        "gpu_utilization": result("gpu_utilization", "ok", 60, "%", saturated=False),
        "kv_cache_usage": result("kv_cache_usage", "ok", 0.4, "ratio", targets=8),
        "throughput": result("throughput", "ok", 40, "req/s", saturated=False),
        "xid_errors": result("xid_errors", "ok", 0),
    }


def test_all_ok_concludes_healthy_without_actions() -> None:
    findings, actions = evaluate(runbook(), healthy(), Scope())
    assert [(f.id, f.severity) for f in findings] == [("healthy", "ok")]
    assert actions == []


def test_matched_rule_names_cause_targets_and_sizes_the_scale() -> None:
    results = healthy() | {
        "queue_depth": result(
            "queue_depth", "crit", 240, "requests",
            [pod(POD_A, 240, "crit"), pod(POD_B, 120, "warn")], warn=2, crit=1,
        ),
        "gpu_utilization": result("gpu_utilization", "warn", 99, "%", saturated=True),
        "throughput": result(
            "throughput", "warn", 128, "req/s", saturated=True, replicas=8,
            arrival_rps=128.0, per_replica_rps=10.0,
        ),
    }  # fmt: skip
    findings, actions = evaluate(runbook(), results, Scope(), SizingPolicy(headroom=0.3))
    top = findings[0]
    assert (top.id, top.severity) == ("under_provisioned", "crit")
    assert top.summary == f"queue 240 requests on 2 replicas: {POD_A}, {POD_B}"
    assert top.targets == [POD_A, POD_B]
    (scale,) = actions
    assert scale.kind == "scale"
    assert scale.target == "deployment/prod/vllm-llama"
    assert scale.params == {"replicas": 17, "current_replicas": 8}
    assert "demand 128 req/s" in scale.reason and "8 → 17" in scale.reason


def test_scale_falls_back_to_kv_sizing_then_to_stepwise() -> None:
    base = healthy() | {
        "queue_depth": result("queue_depth", "warn", 60, "", [pod(POD_A, 60, "warn")]),
        "gpu_utilization": result("gpu_utilization", "warn", 99, "%", saturated=True),
    }
    _, actions = evaluate(runbook(), base | {"kv_cache_usage": result(
        "kv_cache_usage", "ok", 0.97, "ratio", targets=8)}, Scope())  # fmt: skip
    assert actions[0].params["replicas"] == 11
    no_numbers = base | {"kv_cache_usage": result("kv_cache_usage", "unknown")}
    _, actions = evaluate(runbook(), no_numbers, Scope())
    assert "replicas" not in actions[0].params
    assert "add replicas stepwise" in actions[0].reason


def test_fact_list_targets_make_one_action_each() -> None:
    results = healthy() | {
        "xid_errors": result("xid_errors", "crit", 48, drain_targets=["node/gpu-1", "node/gpu-2"])
    }
    findings, actions = evaluate(runbook(), results, Scope())
    assert findings[0].id == "fatal_xid"
    assert [(a.kind, a.target) for a in actions] == [
        ("drain", "node/gpu-1"),
        ("drain", "node/gpu-2"),
    ]


def test_actions_carry_the_cluster_whose_data_named_them() -> None:
    # the same node name in two clusters, fatal in both: one drain each, each in its own
    where = {"node/gpu-1": ["east", "west"], "node/gpu-2": ["west"]}
    results = healthy() | {
        "xid_errors": result(
            "xid_errors", "crit", 48, drain_targets=["node/gpu-1", "node/gpu-2"],
            target_clusters=where,
        )
    }  # fmt: skip
    _, actions = evaluate(runbook(), results, Scope())
    assert [(a.target, a.cluster) for a in actions] == [
        ("node/gpu-1", "east"),
        ("node/gpu-1", "west"),
        ("node/gpu-2", "west"),
    ]
    # no cluster in the data: the scope's
    plain = healthy() | {"xid_errors": result("xid_errors", "crit", 48, drain_targets=["node/x"])}
    _, actions = evaluate(runbook(), plain, Scope(cluster="prod"))
    assert [(a.target, a.cluster) for a in actions] == [("node/x", "prod")]


def test_value_condition_and_fixed_severity() -> None:
    results = healthy() | {"kv_cache_usage": result("kv_cache_usage", "warn", 0.93, "ratio")}
    findings, _ = evaluate(runbook(), results, Scope())
    assert [(f.id, f.severity, f.summary) for f in findings] == [("hot_cache", "warn", "kv 93 %")]


def test_unexplained_signals_and_blind_spots_are_said_so() -> None:
    results = healthy() | {
        "queue_depth": result("queue_depth", "crit", 300, "", [pod(POD_A, 300, "crit")]),
        "throughput": result("throughput", "unknown"),
    }
    findings, actions = evaluate(runbook(), results, Scope())
    assert [f.id for f in findings] == ["unexplained", "blind_spots"]
    assert "queue_depth summary" in findings[0].summary
    assert findings[0].targets == [POD_A]
    assert "1/5 checks" in findings[1].summary
    assert actions == []


def test_render_missing_check_and_facts() -> None:
    results = {"throughput": result("throughput", "ok", 1.5, "req/s", replicas=3)}
    assert render("{throughput.value} {throughput.facts.replicas} {nope.value}", results) == (
        "1.5 req/s 3 n/a"
    )


def test_a_check_that_could_show_the_fault_reading_nothing_is_not_healthy() -> None:
    """Unknown is never "healthy": the KV check (a rule's evidence) read no series."""
    results = healthy() | {"kv_cache_usage": result("kv_cache_usage", "unknown")}
    findings, actions = evaluate(runbook(), results, Scope())
    assert [f.id for f in findings] == ["inconclusive", "blind_spots"]
    assert findings[0].severity == "unknown"
    assert "Cannot rule out" in findings[0].summary and "kv_cache_usage" in findings[0].summary
    assert actions == []
    # a blind check no rule reads does not stop the conclusion
    results = healthy() | {"throughput": result("throughput", "unknown")}
    assert {f.id for f in evaluate(runbook(), results, Scope())[0]} == {"healthy", "blind_spots"}

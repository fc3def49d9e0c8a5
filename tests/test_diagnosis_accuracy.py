"""Proof of accuracy: for every simulator scenario, the matching runbook's diagnosis —
run against a real Prometheus scraping a mixed-version fleet — names the right cause,
the right replica/node/GPU, and recommends the right action. A healthy fleet draws no
critical result from any runbook.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fleet_stack import FleetStack, eventually, start_stack

from bot.cli import main
from bot.diagnosis.checks.recent_rollout import KSM_MISSING
from bot.diagnosis.engine import DiagnosisOptions, diagnose
from bot.diagnosis.runbooks import Runbook, load_runbooks
from bot.diagnosis.workloads import workload_of_pod
from bot.models import Diagnosis, Scope
from bot.simulator.scenarios import SCENARIOS, GroundTruth
from bot.sources.prometheus import PrometheusSource

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

WINDOW = "20s"  # the fleet is scraped every second; production default is 5m
RUNBOOKS = load_runbooks()


@pytest.fixture(scope="module")
def stack(prometheus_binary: str) -> Iterator[FleetStack]:
    s = start_stack(prometheus_binary, legacy_fraction=0.5, seed=11, history_s=20)
    yield s
    s.prometheus.stop()
    s.server.stop()


def run(stack: FleetStack, runbook: Runbook, scope: Scope | None = None) -> Diagnosis:
    source = PrometheusSource(stack.prometheus.url, timeout_s=10)
    try:
        return asyncio.run(
            diagnose(runbook, scope or Scope(), source, DiagnosisOptions(window=WINDOW))
        )
    finally:
        source.close()


def fault_names(truth: GroundTruth) -> set[str]:
    """Every way a correct diagnosis may name a faulty thing."""
    names: set[str] = set()
    for f in truth.faults:
        if f.pod:
            names |= {
                f.pod,
                f"pod/{f.namespace}/{f.pod}",
                workload_of_pod(f.namespace or "", f.pod),
            }
        if f.node:
            names.add(f"node/{f.node}")
        if f.node and f.gpu:
            names.add(f"{f.node} GPU {f.gpu}")
    return names


def assert_names_the_fault(d: Diagnosis, truth: GroundTruth) -> None:
    ids = [f.id for f in d.findings]
    assert truth.cause in ids, f"{truth.scenario}: expected {truth.cause}, got {ids}"
    top = d.findings[0]
    assert top.id == truth.cause, f"{truth.scenario}: top finding {top.id}, all {ids}"
    expected = fault_names(truth)
    assert top.targets and set(top.targets) <= expected, (top.targets, expected)
    if truth.scenario in ("xid_48", "xid_79", "xid_13", "thermal"):
        (fault,) = truth.faults
        assert f"{fault.node} GPU {fault.gpu}" in top.targets
    kinds = {a.kind for a in d.actions}
    assert truth.action in kinds, f"{truth.scenario}: actions {[a.kind for a in d.actions]}"
    for action in d.actions:
        if action.kind == truth.action:
            assert action.target in expected, (action.target, expected)
    if truth.scenario == "xid_13":
        assert "drain" not in kinds, "an application Xid must not drain a healthy GPU"


def test_healthy_fleet_draws_no_critical_from_any_runbook(stack: FleetStack) -> None:
    stack.switch("healthy", seed=11)
    time.sleep(3)

    def quiet() -> None:
        for runbook in RUNBOOKS.values():
            d = run(stack, runbook)
            crit = [c.id for c in d.checks if c.status == "crit"]
            assert not crit, f"{runbook.id}: critical {crit}"
            # ECC counters are off in dcgm-exporter's default set; no fleet twin, so no
            # kube-state-metrics, and recent_rollout says how to get it
            blind = [c for c in d.checks if c.status == "unknown"]
            assert {c.id for c in blind} <= {"ecc_errors", "recent_rollout"}, [
                (c.id, c.summary) for c in blind
            ]
            assert all(c.summary == KSM_MISSING for c in blind if c.id == "recent_rollout")
            if {c.id for c in blind} == {"recent_rollout"}:
                # a context check: without kube-state-metrics a healthy fleet stays healthy
                assert d.status == "ok", (runbook.id, d.status)
                assert d.findings[0].id == "healthy", (runbook.id, d.findings[0])
            assert not d.actions, f"{runbook.id}: recommends {d.actions} on a healthy fleet"

    eventually(quiet, timeout_s=60, interval_s=2)


SCENARIO_ORDER = [
    "kv_cache_pressure",
    "xid_48",
    "xid_13",
    "xid_79",
    "thermal",
    "thermal_tpot",
    "error_burst",
    "long_prefill",
    "underutilized",
    "underprovisioned",
    "oom_crash_loop",
]


@pytest.mark.parametrize("scenario", SCENARIO_ORDER)
def test_diagnosis_names_cause_target_and_action(stack: FleetStack, scenario: str) -> None:
    truth = stack.switch(scenario, seed=11)
    assert truth.runbook is not None
    runbook = RUNBOOKS[truth.runbook]
    d = eventually(lambda: _diagnosed(stack, runbook, truth), timeout_s=75, interval_s=3)
    assert d.status in ("warn", "crit")


def _diagnosed(stack: FleetStack, runbook: Runbook, truth: GroundTruth) -> Diagnosis:
    d = run(stack, runbook)
    assert_names_the_fault(d, truth)
    return d


def test_every_scenario_with_a_runbook_is_covered() -> None:
    # mixed_load needs several models in a namespace: tests/test_per_workload.py.
    # bad_rollout needs the cluster's objects (kube-state-metrics, from a fleet twin):
    # tests/test_rollout_e2e.py diagnoses it and rolls it back. The canary scenarios need
    # the twin too: tests/test_canary_e2e.py judges their gates.
    covered = set(SCENARIO_ORDER) | {"healthy", "fleet_scale", "mixed_load", "bad_rollout"}
    covered |= {"canary_bad", "canary_good"}
    assert covered == set(SCENARIOS)


def test_scope_by_node_narrows_to_that_node(stack: FleetStack) -> None:
    truth = stack.switch("kv_cache_pressure", seed=11)
    hot = truth.faults[0]
    other_nodes = {n.name for n in stack.simulator.fleet.nodes} - {f.node for f in truth.faults}
    assert hot.node is not None and other_nodes
    runbook = RUNBOOKS["kv_cache_pressure"]

    def on_hot_node() -> None:
        d = run(stack, runbook, Scope(labels={"node": hot.node}))
        kv = next(c for c in d.checks if c.id == "kv_cache_usage")
        assert kv.status == "crit"
        pods_on_node = {r.pod for r in stack.simulator.fleet.replicas if r.gpus[0].node == hot.node}
        assert {o.target["pod"] for o in kv.offenders} <= pods_on_node

    eventually(on_hot_node, timeout_s=30)
    cool = run(stack, runbook, Scope(labels={"node": sorted(other_nodes)[0]}))
    assert next(c for c in cool.checks if c.id == "kv_cache_usage").status == "ok"


def test_prometheus_down_makes_checks_unknown_not_a_crash() -> None:
    source = PrometheusSource("http://127.0.0.1:9", timeout_s=1)
    try:
        d = asyncio.run(diagnose(RUNBOOKS["high_latency"], Scope(), source))
    finally:
        source.close()
    assert d.status == "unknown"
    assert all(c.status == "unknown" for c in d.checks)
    assert all("cannot reach Prometheus" in c.summary for c in d.checks)
    # blind is not healthy: the checks that could show the fault read nothing
    assert {f.id for f in d.findings} == {"inconclusive", "blind_spots"}


def test_cli_diagnose_json_and_exit_codes(
    stack: FleetStack, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = stack.switch("kv_cache_pressure", seed=11)
    argv = ["diagnose", "kv_cache_pressure", "--prometheus", stack.prometheus.url,
            "--format", "json", "--window", WINDOW, "--scope", "namespace=inference"]  # fmt: skip

    def critical() -> dict[str, Any]:
        code = main(argv)
        out = json.loads(capsys.readouterr().out)
        assert code == 1 and out["status"] == "crit"
        # the rate window still holds the previous scenario for a while: wait it out
        assert out["findings"][0]["id"] == truth.cause
        return dict(out)

    out = eventually(critical, timeout_s=30)
    assert set(out) >= {"runbook", "scope", "status", "checks", "findings", "actions"}
    assert out["scope"] == {"namespace": "inference"}
    for check in out["checks"]:
        assert set(check) >= {"id", "status", "value", "unit", "summary", "offenders", "query"}
        assert 'namespace="inference"' in check["query"]
    assert out["findings"][0]["id"] == truth.cause
    assert {"kind", "target", "params", "reason"} <= set(out["actions"][0])

    stack.switch("healthy", seed=11)

    def quiet() -> None:
        assert main(["diagnose", "gpu_thermal", "--prometheus", stack.prometheus.url,
                     "--window", WINDOW]) == 0  # fmt: skip
        text = capsys.readouterr().out
        assert "No sign of 'GPU temperature'" in text
        assert "Remediation" in text

    eventually(quiet, timeout_s=30)


def test_cli_diagnose_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "no_such_runbook"]) == 2
    err = capsys.readouterr().err
    assert "unknown runbook 'no_such_runbook'; known:" in err and "gpu_hardware_failure" in err
    assert main(["diagnose", "high_latency", "--scope", "oops"]) == 2
    assert "is not KEY=VALUE" in capsys.readouterr().err
    assert main(["diagnose", "high_latency", "--window", "5 minutes"]) == 2
    assert "not a PromQL duration" in capsys.readouterr().err
    # a cluster=NAME no configuration names is looked for in the data's cluster label:
    # refused when absent (tests/test_two_clusters.py)


def test_cli_diagnose_prometheus_down_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["diagnose", "replica_down", "--prometheus", "http://127.0.0.1:9", "--format", "json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["status"] == "unknown"
    assert "cannot reach Prometheus" in out["checks"][0]["summary"]


def test_a_localised_slow_replica_gets_no_fleet_wide_batch_change(stack: FleetStack) -> None:
    """One throttling GPU makes TPOT breach: drain its node; the batches are small, so
    reducing max_num_seqs for the whole Deployment would address nothing."""
    truth = stack.switch("thermal_tpot", seed=11)
    (fault,) = truth.faults

    def diagnosed() -> Diagnosis:
        # (until the previous scenario's rates have left the window)
        d = run(stack, RUNBOOKS["tpot_slo"])
        assert d.checks[0].status in ("warn", "crit"), d.checks[0].summary  # TPOT breached
        assert [(a.kind, a.target) for a in d.actions] == [("drain", f"node/{fault.node}")], (
            d.findings
        )
        return d

    d = eventually(diagnosed, timeout_s=60)
    running = next(c for c in d.checks if c.id == "running_seqs")
    assert running.status == "ok", running.summary  # far from max_num_seqs


def test_every_runbook_that_sees_a_hot_gpu_drains_its_node(stack: FleetStack) -> None:
    """The same evidence, the same recommendation: a throttling GPU was a drain in
    gpu_thermal and tpot_slo but a finding with no action in gpu_hardware_failure."""
    truth = stack.switch("thermal", seed=11)
    (fault,) = truth.faults
    seeing = [rb for rb in RUNBOOKS.values() if "gpu_temperature" in {c.id for c in rb.checks}]
    assert {rb.id for rb in seeing} >= {"gpu_thermal", "tpot_slo", "gpu_hardware_failure"}

    def drained() -> None:
        for runbook in seeing:
            d = run(stack, runbook)
            found = {(a.kind, a.target) for a in d.actions}
            assert ("drain", f"node/{fault.node}") in found, (runbook.id, d.findings)

    eventually(drained, timeout_s=40)


def test_a_model_scope_reaches_the_gpus_that_serve_it(stack: FleetStack) -> None:
    """DCGM series carry no model name: a model_name= scope finds its GPUs through the pods
    that serve the model, instead of reading every GPU check as unknown."""
    truth = stack.switch("xid_48", seed=11)
    (fault,) = truth.faults
    model = stack.simulator.fleet.replicas[0].model

    def diagnosed() -> Diagnosis:
        d = run(stack, RUNBOOKS["gpu_hardware_failure"], Scope(labels={"model_name": model}))
        xid = next(c for c in d.checks if c.id == "xid_errors")
        assert xid.status == "crit", xid.summary
        return d

    d = eventually(diagnosed, timeout_s=40)
    gpu_checks = [c for c in d.checks if c.id in ("xid_errors", "ecc_errors", "gpu_temperature")]
    assert all(c.status != "unknown" for c in gpu_checks), [c.summary for c in gpu_checks]
    assert ("drain", f"node/{fault.node}") in [(a.kind, a.target) for a in d.actions]
    other = run(stack, RUNBOOKS["gpu_hardware_failure"], Scope(labels={"model_name": "absent"}))
    assert all(c.status == "unknown" for c in other.checks if c.id == "xid_errors")

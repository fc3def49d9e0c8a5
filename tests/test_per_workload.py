"""A healthy workload does not hide a sick one: decisions per Deployment within a scope.

Two models share one namespace; one is saturated (queue growing, GPUs ~98 % busy) and
one nearly idle. Scope-wide, GPU utilisation averages to "not saturated"; decided per
Deployment, the saturated one is under-provisioned and gets its scale.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fleet_stack import FleetStack, eventually, start_stack

from bot.diagnosis.engine import DiagnosisOptions, diagnose
from bot.diagnosis.per_workload import scope_of, unwell
from bot.diagnosis.runbooks import load_runbooks
from bot.models import CheckResult, Diagnosis, Offender, Scope
from bot.sources.prometheus import PrometheusSource

WINDOW = "20s"
RUNBOOKS = load_runbooks()
MODELS = ("llama-3.1-70b-instruct", "qwen2.5-7b-instruct")


@pytest.fixture(scope="module")
def two_models(prometheus_binary: str) -> Iterator[FleetStack]:
    stack = start_stack(prometheus_binary, models=MODELS, seed=5, history_s=20)
    yield stack
    stack.prometheus.stop()
    stack.server.stop()


def run(stack: FleetStack, runbook: str, scope: Scope) -> Diagnosis:
    source = PrometheusSource(stack.prometheus.url, timeout_s=10)
    try:
        return asyncio.run(
            diagnose(RUNBOOKS[runbook], scope, source, DiagnosisOptions(window=WINDOW))
        )
    finally:
        source.close()


@pytest.mark.prometheus
@pytest.mark.slow
@pytest.mark.parametrize("runbook", ["high_latency", "queue_backlog"])
def test_the_saturated_model_is_scaled_though_the_namespace_averages_fine(
    two_models: FleetStack, runbook: str
) -> None:
    truth = two_models.switch("mixed_load", seed=5)
    fleet = two_models.simulator.fleet
    saturated, idle = (f"deployment/{fleet.namespace}/{d}" for d in fleet.deployments)
    assert truth.action_target == saturated
    scope = Scope(labels={"namespace": fleet.namespace})

    def decided() -> Diagnosis:
        d = run(two_models, runbook, scope)
        gpu = next(c for c in d.checks if c.id == "gpu_utilization")
        assert gpu.value is not None and gpu.value < 95, gpu.summary  # the average hides it
        assert ("scale", saturated) in {(a.kind, a.target) for a in d.actions}, d.findings
        return d

    d = eventually(decided, timeout_s=60, interval_s=3)
    assert d.workloads[0] == saturated  # worst first; the idle one reads "under-used"
    # the idle model gets no capacity change from the saturated one's queue (its own few
    # requests may still show something of their own, e.g. a long prompt now and then)
    assert not [a for a in d.actions if a.target == idle and a.kind == "scale"], d.actions
    # no batch change for either: the queue wants replicas, not different batches
    batch = [a for a in d.actions if "max_num_seqs" in str(a.params.get("change", ""))]
    assert not batch, d.actions
    top = d.findings[0]
    assert (top.id, top.workload) == ("under_provisioned", saturated)
    assert top.summary.startswith(saturated.split("/", 1)[1])


def _result(check: str, *pods: tuple[str, str]) -> CheckResult:
    return CheckResult(
        id=check,
        title=check,
        status="crit",
        summary="",
        offenders=[
            Offender(target={"namespace": "ns", "pod": pod}, value=1, status=status)
            for pod, status in pods
        ],
    )


def test_only_workloads_owning_a_bad_replica_are_split_out_worst_first() -> None:
    a, b, c = (f"deployment/ns/{n}" for n in "abc")
    results = [
        _result("queue_depth", ("a-7d9f8b6c5d-aaaaa", "warn"), ("b-7d9f8b6c5d-bbbbb", "ok")),
        _result("kv_cache_usage", ("c-7d9f8b6c5d-ccccc", "crit")),
    ]
    assert unwell(results, {a, b, c}, Scope()) == [c, a]
    # one workload in scope, or a kind a pod pattern cannot select: decided scope-wide
    assert unwell(results, {a}, Scope()) == []
    assert unwell(results, {a, "statefulset/ns/db"}, Scope()) == []
    narrowed = scope_of(a, Scope(labels={"model_name": "m"}))
    assert narrowed.labels == {"model_name": "m", "namespace": "ns", "deployment": "a"}

"""kube-prometheus-stack labels: dcgm-exporter scraped with honor_labels: false (the
ServiceMonitor default) puts the GPU's workload in exported_pod/exported_namespace while
pod/namespace name the exporter's own pod. The diagnosis detects this, says so, and scope
words keep their meaning. And with plain labels, a GPU no workload uses (it carries the
exporter's own pod) is never taken for a workload.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleet_stack import FleetStack, eventually, start_stack

from bot.cli import main
from bot.commands.terminal import as_json
from bot.config import LabelConventions
from bot.diagnosis.engine import DiagnosisOptions, diagnose, resolve_scope
from bot.diagnosis.promql import conventions_of, with_conventions
from bot.diagnosis.runbooks import load_runbooks
from bot.models import Diagnosis, Scope
from bot.simulator.server import EXPORTER_NAMESPACE, exporter_pod
from bot.sources.prometheus import PrometheusSource

pytestmark = [pytest.mark.prometheus]

# 7 replicas of 4 GPUs on nodes of 8: the last node has 4 GPUs no workload uses.
FLEET: dict[str, Any] = {"replicas": 7, "gpus_per_replica": 4, "seed": 13}


@pytest.fixture(scope="module")
def kps(prometheus_binary: str) -> Iterator[FleetStack]:
    stack = start_stack(prometheus_binary, honor_labels=False, **FLEET)
    yield stack
    stack.prometheus.stop()
    stack.server.stop()


@pytest.fixture(scope="module")
def plain(prometheus_binary: str) -> Iterator[FleetStack]:
    stack = start_stack(prometheus_binary, **FLEET)
    yield stack
    stack.prometheus.stop()
    stack.server.stop()


def run(stack: FleetStack, runbook: str, scope: Scope) -> Diagnosis:
    source = PrometheusSource(stack.prometheus.url, timeout_s=10)
    try:
        return asyncio.run(
            diagnose(load_runbooks()[runbook], scope, source, DiagnosisOptions(window="20s"))
        )
    finally:
        source.close()


def resolved(stack: FleetStack, scope: Scope) -> Scope:
    source = PrometheusSource(stack.prometheus.url, timeout_s=10)
    try:
        return asyncio.run(resolve_scope(scope, source))
    finally:
        source.close()


def test_the_stack_labels_gpus_the_kube_prometheus_stack_way(kps: FleetStack) -> None:
    rows = kps.vector('DCGM_FI_DEV_GPU_UTIL{exported_namespace="inference"}')
    assert rows
    assert {labels["namespace"] for labels, _ in rows} == {EXPORTER_NAMESPACE}
    assert all(labels["pod"].startswith("nvidia-dcgm-exporter-") for labels, _ in rows)


def test_namespace_scope_finds_the_gpu_with_a_fatal_xid(kps: FleetStack) -> None:
    truth = kps.switch("xid_48")
    (fault,) = truth.faults

    def diagnosed() -> Diagnosis:
        d = run(kps, "gpu_hardware_failure", Scope(labels={"namespace": "inference"}))
        xid = next(c for c in d.checks if c.id == "xid_errors")
        assert xid.status == "crit", xid.summary
        return d

    d = eventually(diagnosed, timeout_s=30)
    xid = next(c for c in d.checks if c.id == "xid_errors")
    worst = xid.offenders[0].target
    assert (worst["node"], worst["gpu"]) == (fault.node, fault.gpu)
    assert worst["namespace"] == "inference" and worst["pod"] == fault.pod  # the workload's
    assert "healthy" not in [f.id for f in d.findings]
    assert f"node/{fault.node}" in {a.target for a in d.actions if a.kind == "drain"}
    labels = as_json(d)["labels"]
    assert "exported_namespace/exported_pod (detected)" in labels


def test_gpu_and_vllm_checks_keep_the_same_namespace_scope(kps: FleetStack) -> None:
    kps.switch("healthy")
    d = run(kps, "high_latency", Scope(labels={"namespace": "inference"}))
    by_id = {c.id: c for c in d.checks}
    assert by_id["gpu_utilization"].status != "unknown", by_id["gpu_utilization"].summary
    assert by_id["gpu_utilization"].facts["avg"] > 0
    assert by_id["queue_depth"].status != "unknown"


def test_configured_plain_labels_on_exported_data_read_nothing_and_say_why(
    kps: FleetStack,
) -> None:
    configured = with_conventions(
        Scope(labels={"namespace": "inference"}), LabelConventions(gpu_workload_labels="plain")
    )
    d = run(kps, "gpu_hardware_failure", configured)
    xid = next(c for c in d.checks if c.id == "xid_errors")
    assert xid.status == "unknown"
    assert "namespace/pod" in xid.summary and "doctor" in xid.summary


@pytest.mark.parametrize("form", ["plain", "kps"])
def test_node_pods_are_the_workloads_never_the_exporter(
    form: str, request: pytest.FixtureRequest
) -> None:
    stack: FleetStack = request.getfixturevalue(form)
    fleet = stack.simulator.fleet
    node = fleet.nodes[-1]
    on_node = {g.replica.pod for g in node.gpus if g.replica is not None}
    assert on_node and any(g.replica is None for g in node.gpus)  # the node has idle GPUs
    scope = resolved(stack, Scope(labels={"node": node.name}))
    assert conventions_of(scope).gpu_workload_labels == ("plain" if form == "plain" else "exported")
    assert set(scope.pods or ()) == on_node
    assert exporter_pod(node.name) not in (scope.pods or ())


def test_idle_gpus_keep_their_series_without_the_exporter_pod(plain: FleetStack) -> None:
    node = plain.simulator.fleet.nodes[-1]
    d = run(plain, "gpu_thermal", Scope(labels={"node": node.name}))
    temp = next(c for c in d.checks if c.id == "gpu_temperature")
    assert temp.facts["targets"] == len(node.gpus)  # idle GPUs still counted
    pods = {o.target.get("pod") for c in d.checks for o in c.offenders}
    assert exporter_pod(node.name) not in pods


def test_configured_labels_reach_the_diagnosis_from_the_config_file(
    kps: FleetStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kps.switch("healthy")
    config = tmp_path / "config.yaml"
    config.write_text("labels:\n  gpu_workload_labels: plain\n")
    main(
        ["--config", str(config), "diagnose", "gpu_hardware_failure", "--format", "json",
         "--prometheus", kps.prometheus.url, "--scope", "namespace=inference", "--window", "20s"]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert "namespace/pod (configured)" in report["labels"], report["labels"]
    xid = next(c for c in report["checks"] if c["id"] == "xid_errors")
    assert xid["status"] == "unknown" and "namespace/pod" in xid["summary"]

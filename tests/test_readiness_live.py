"""The scorecard against a real Prometheus scraping the fleet twin and the Kubernetes API
stand-in: every measurable item reads right on a prepared fleet, and each flips when its
evidence is removed (then the fleet is put back)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fleet_stack import eventually
from readiness_stack import (
    CANARY,
    ReadinessStack,
    readiness_stack,
    record_rollback,
    without_gpu_alerts,
)

from bot.diagnosis.runbooks import load_runbooks
from bot.readiness.decide import Decision
from bot.remediation.audit import AuditLog
from bot.sources.kubernetes import Obj

pytestmark = [pytest.mark.prometheus]

MEASURED = (
    "fleet_headroom",
    "multi_zone",
    "gpu_memory_utilization",
    "max_model_len_explicit",
    "metrics_collection",
    "alert_rules",
    "runbooks_top_failures",
    "rollback_tested",
    "canary_pipeline",
    "rollback_under_1m",
)


@pytest.fixture(scope="module")
def stack(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReadinessStack]:
    with readiness_stack(prometheus_binary, tmp_path_factory.mktemp("readiness")) as s:
        yield s


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    """An audit log holding a rollback done 2 days ago in 8 s."""
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    record_rollback(log, datetime.now(UTC) - timedelta(days=2), 8.0)
    return log


def status(d: Decision) -> str:
    return f"{d.status}: {d.how} | {'; '.join(d.evidence)}"


def test_every_measurable_item_passes_on_a_prepared_fleet(
    stack: ReadinessStack, audit: AuditLog
) -> None:
    def all_pass() -> dict[str, Decision]:
        got = stack.decisions(audit)
        wrong = {i: status(got[i]) for i in MEASURED if got[i].status != "pass"}
        assert not wrong, wrong
        return got

    got = eventually(all_pass, timeout_s=40)
    assert "2 zones" in " ".join(got["multi_zone"].evidence)
    assert got["metrics_collection"].evidence[0].startswith("4/4 ready vLLM pods")
    assert "in 8.0 s" in got["rollback_under_1m"].evidence[0]
    # what only a person can know is asked, not guessed
    unattested = [i for i, d in got.items() if i not in MEASURED]
    assert len(unattested) == 10
    assert all(got[i].status == "unknown" for i in unattested)


def test_capacity_fails_when_demand_outgrows_the_fleet(
    stack: ReadinessStack, audit: AuditLog
) -> None:
    stack.fleet.switch("underprovisioned")
    try:

        def short() -> Decision:
            d = stack.decisions(audit)["fleet_headroom"]
            assert d.status == "fail", status(d)
            return d

        eventually(short, timeout_s=30)
    finally:
        stack.fleet.switch("healthy")


def test_zone_spread_fails_when_every_node_is_in_one_zone(
    stack: ReadinessStack, audit: AuditLog
) -> None:
    kube = stack.twin.kubernetes
    before = {n["metadata"]["name"]: dict(n["metadata"]["labels"]) for n in kube.list("nodes")}

    def one_zone(node: Obj) -> None:
        node["metadata"]["labels"]["topology.kubernetes.io/zone"] = "zone-a"

    for name in before:
        kube.update("nodes", None, name, one_zone)
    try:
        d = stack.decisions(audit)["multi_zone"]
        assert d.status == "fail", status(d)
        assert "1 zone (zone-a)" in " ".join(d.evidence)
    finally:
        for name, labels in before.items():

            def put_back(node: Obj, kept: dict[str, str] = labels) -> None:
                node["metadata"]["labels"] = kept

            kube.update("nodes", None, name, put_back)


def test_memory_utilisation_above_limit_fails(stack: ReadinessStack, audit: AuditLog) -> None:
    sim = stack.fleet.simulator
    replica = sim.fleet.replicas[0]
    with sim.lock:
        replica.profile.gpu_memory_utilization = "0.95"
    try:

        def over() -> Decision:
            d = stack.decisions(audit)["gpu_memory_utilization"]
            assert d.status == "fail", status(d)
            return d

        d = eventually(over, timeout_s=20)
        assert "1/4 replicas above 0.9" in d.evidence
    finally:
        with sim.lock:
            replica.profile.gpu_memory_utilization = "0.9"


def test_prefix_caching_off_fails(stack: ReadinessStack, audit: AuditLog) -> None:
    sim = stack.fleet.simulator
    replica = sim.fleet.replicas[1]
    with sim.lock:
        replica.profile.enable_prefix_caching = "False"
    try:

        def off() -> None:
            d = stack.decisions(audit)["gpu_memory_utilization"]
            assert d.status == "fail" and "prefix caching on on 3/4" in d.evidence, status(d)

        eventually(off, timeout_s=20)
    finally:
        with sim.lock:
            replica.profile.enable_prefix_caching = "True"


def test_max_model_len_missing_from_a_pods_args_fails(
    stack: ReadinessStack, audit: AuditLog
) -> None:
    kube = stack.twin.kubernetes
    pod = stack.fleet.simulator.fleet.replicas[2]
    saved: list[str] = []

    def drop_flag(obj: Obj) -> None:
        container = obj["spec"]["containers"][0]
        saved[:] = container["args"]
        i = container["args"].index("--max-model-len")
        container["args"] = container["args"][:i] + container["args"][i + 2 :]

    kube.update("pods", pod.namespace, pod.pod, drop_flag)
    try:
        d = stack.decisions(audit)["max_model_len_explicit"]
        assert d.status == "fail", status(d)
        assert d.evidence == (
            "3/4 vLLM pods set --max-model-len",
            f"without it: {pod.namespace}/{pod.pod}",
        )
    finally:

        def restore(obj: Obj) -> None:
            obj["spec"]["containers"][0]["args"] = saved

        kube.update("pods", pod.namespace, pod.pod, restore)


def test_a_replica_prometheus_cannot_scrape_fails(stack: ReadinessStack, audit: AuditLog) -> None:
    sim = stack.fleet.simulator
    replica = sim.fleet.replicas[3]
    with sim.lock:
        replica.permanently_down = True
    try:

        def down() -> None:
            d = stack.decisions(audit)["metrics_collection"]
            assert d.status == "fail", status(d)
            assert f"replicas down: {replica.pod}" in d.evidence, status(d)

        eventually(down, timeout_s=20)
    finally:
        with sim.lock:
            replica.permanently_down = False


def test_alert_rules_fail_without_gpu_alerts(stack: ReadinessStack, audit: AuditLog) -> None:
    exported = stack.rules.read_text()
    stack.write_rules(without_gpu_alerts(exported))
    try:
        d = stack.decisions(audit)["alert_rules"]
        assert d.status == "fail", status(d)
        assert "GPU health: no alerting rule" in d.evidence
        assert any(e.startswith("error rate: VLLMHighErrorRate") for e in d.evidence)
    finally:
        stack.write_rules(exported)


def test_runbooks_fail_when_a_top_failure_mode_has_none(
    stack: ReadinessStack, audit: AuditLog
) -> None:
    loaded = frozenset(load_runbooks()) - {"oom_crashes"}
    d = stack.decisions(audit, runbooks=loaded)["runbooks_top_failures"]
    assert (d.status, d.evidence) == ("fail", ("4/5 loaded", "missing: oom_crashes"))


def test_rollback_items_read_the_audit_log(stack: ReadinessStack, tmp_path: Path) -> None:
    empty = AuditLog(f"sqlite:///{tmp_path / 'empty.db'}")
    got = stack.decisions(empty)
    assert got["rollback_tested"].status == got["rollback_under_1m"].status == "fail"
    slow = AuditLog(f"sqlite:///{tmp_path / 'slow.db'}")
    now = datetime.now(UTC)
    record_rollback(slow, now - timedelta(days=40), 5.0)  # outside the lookback
    record_rollback(slow, now - timedelta(hours=3), 95.0)
    got = stack.decisions(slow)
    assert got["rollback_tested"].status == "pass"
    assert got["rollback_under_1m"].status == "fail"
    assert "in 95.0 s" in got["rollback_under_1m"].evidence[0]
    failed = AuditLog(f"sqlite:///{tmp_path / 'failed.db'}")
    record_rollback(failed, now - timedelta(hours=1), 3.0, ok=False)
    d = stack.decisions(failed)["rollback_tested"]
    assert (d.status, d.evidence[-1]) == ("fail", "1 failed rollback")


def test_canary_fails_without_a_rollout(stack: ReadinessStack, audit: AuditLog) -> None:
    kube = stack.twin.kubernetes
    saved = kube.get("rollouts", *CANARY)
    assert saved is not None
    kube.delete_object("rollouts", *CANARY)
    try:
        d = stack.decisions(audit)["canary_pipeline"]
        assert d.status == "fail", status(d)
    finally:
        kube.add_rollout(*CANARY, "vllm/vllm-openai:v0.11.0", replicas=0)

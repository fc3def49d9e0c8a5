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
    ITEMS,
    ReadinessStack,
    readiness_stack,
    record_rollback,
    without_gpu_alerts,
)

from bot.diagnosis.runbooks import load_runbooks
from bot.models import Scope
from bot.readiness.attestations import attest, current
from bot.readiness.decide import Decision
from bot.remediation.audit import AuditLog
from bot.simulator.readiness_evidence import Evidence

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


FLIPS = [
    # (evidence taken away, the item that must fail, a fact its evidence must hold)
    ("headroom", "fleet_headroom", "needed"),
    ("zones", "multi_zone", "1 zone (zone-a)"),
    ("memory_utilization", "gpu_memory_utilization", "1/4 replicas above 0.9"),
    ("prefix_caching", "gpu_memory_utilization", "prefix caching on on 3/4"),
    ("max_model_len", "max_model_len_explicit", "3/4 vLLM pods set --max-model-len"),
    ("scrape", "metrics_collection", "3/4 replica targets up"),
    ("canary", "canary_pipeline", "no Argo Rollout with a canary or blue-green strategy"),
]


@pytest.mark.parametrize(("evidence", "item", "fact"), FLIPS, ids=[f[0] for f in FLIPS])
def test_each_item_flips_when_its_evidence_is_removed(
    stack: ReadinessStack, audit: AuditLog, evidence: Evidence, item: str, fact: str
) -> None:
    def reads(expected: str) -> Decision:
        d = stack.decisions(audit)[item]
        assert d.status == expected, status(d)
        return d

    stack.evidence.set(evidence, False)
    try:
        d = eventually(lambda: reads("fail"), timeout_s=30)
        assert any(fact in e for e in d.evidence), status(d)
    finally:
        stack.evidence.set(evidence, True)
    if evidence != "headroom":  # the peak stays in the lookback a while
        eventually(lambda: reads("pass"), timeout_s=20)


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


def test_an_attestation_counts_until_it_expires(stack: ReadinessStack, audit: AuditLog) -> None:
    item = next(i for i in ITEMS if i.id == "on_call_rotation")
    now = datetime.now(UTC)

    def on_call() -> Decision:
        card = stack.scorecard(audit, attestations=current(audit))
        return next(r.decision for r in card.rows if r.item.id == item.id)

    attest(
        audit,
        item,
        by="U1",
        by_name="ada",
        link="https://rota",
        days=1,
        now=now - timedelta(days=2),
    )
    d = on_call()
    assert d.status == "unknown" and d.evidence[0].startswith("attestation expired on"), status(d)
    attest(audit, item, by="U2", by_name="grace", days=30, now=now)
    d = on_call()
    assert d.status == "attested" and d.evidence[0].startswith("by grace on "), status(d)
    assert [e.actor_name for e in audit.of_kind("readiness")] == ["ada", "grace"]


def test_a_deployment_scope_reads_only_its_own_pods(stack: ReadinessStack, audit: AuditLog) -> None:
    fleet = stack.fleet.simulator.fleet
    llama, qwen = fleet.replicas[0].deployment, fleet.replicas[-1].deployment
    stack.evidence.set("scrape", False)  # a replica of the other Deployment goes down
    try:

        def fleet_fails() -> None:
            d = stack.decisions(audit)["metrics_collection"]
            assert d.status == "fail", status(d)

        eventually(fleet_fails, timeout_s=20)
        got = stack.decisions(audit, scope=Scope(labels={"deployment": llama}))
        assert got["metrics_collection"].status == "pass", status(got["metrics_collection"])
        assert got["multi_zone"].evidence == (f"{llama}: 2 zones (zone-a, zone-b)",)
        other = stack.decisions(audit, scope=Scope(labels={"deployment": qwen}))
        assert other["metrics_collection"].status == "fail"
    finally:
        stack.evidence.set("scrape", True)

    def scraped_again() -> None:  # the next test finds the fleet whole
        assert stack.decisions(audit)["metrics_collection"].status == "pass"

    eventually(scraped_again, timeout_s=20)

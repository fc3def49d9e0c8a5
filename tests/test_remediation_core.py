"""The chat-neutral remediation core on its own: events in the product's terms, reported to
any front end; verification re-checks persisted and claimed once across replicas."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from remediation_helpers import Recorder, cluster, granted, remediation_on

from bot.models import RecommendedAction, Scope
from bot.remediation.audit import AuditLog
from bot.remediation.events import Actor, Busy, Finished, Progressed, Refused, Started
from bot.remediation.flow import Remediation
from bot.remediation.requests import Asked
from bot.simulator.kubernetes_api import KubernetesStandIn
from bot.store import Store, utcnow


@pytest.fixture
def kube() -> Iterator[KubernetesStandIn]:
    with KubernetesStandIn() as fake:
        fake.add_deployment("ml", "llama", "vllm:0.11.0", replicas=2)
        yield fake


def core(database_url: str, kube: KubernetesStandIn, recorder: Recorder) -> Remediation:
    clusters = [cluster("a", kube)]
    return remediation_on(
        database_url, clusters, granted("scale"), recorder, verification_delay_s=30
    )


def test_a_confirmed_scale_reports_its_steps_in_order(
    tmp_path: Path, kube: KubernetesStandIn
) -> None:
    recorder = Recorder()
    remediation = core(f"sqlite:///{tmp_path / 's.db'}", kube, recorder)
    request_id = asyncio.run(
        remediation.offer(
            Asked("scale", "deployment/ml/llama", {"replicas": 4}), reason="test", runbook="rb"
        )
    )
    alice = Actor("U1", "alice")
    preview = asyncio.run(remediation.preview(request_id, alice))
    assert preview.executable and preview.plan is not None
    assert "from 2 to 4 replicas" in preview.plan.summary
    asyncio.run(remediation.confirm(request_id, alice, {}))

    kinds = [type(e) for e in recorder.events]
    assert kinds[0] is Started and kinds[-1] is Finished
    assert set(kinds[1:-1]) <= {Progressed}
    finished = recorder.events[-1]
    assert isinstance(finished, Finished) and finished.ok and finished.ref == "ref-1"
    assert finished.verify_in_s == 30  # it came from a runbook: a re-check is due
    assert all(e.actor == alice and e.request.id == request_id for e in recorder.events)
    # the re-check is in the database, not in a process: not due yet, then due once
    assert remediation.store.claim_due_verifications() == []
    later = utcnow() + timedelta(seconds=31)
    assert remediation.store.claim_due_verifications(later) == [(request_id, "ref-1")]
    assert remediation.store.claim_due_verifications(later) == []


def test_refusals_reach_only_the_front_end(tmp_path: Path, kube: KubernetesStandIn) -> None:
    recorder = Recorder()
    remediation = core(f"sqlite:///{tmp_path / 's.db'}", kube, recorder)
    request_id = asyncio.run(
        remediation.offer(Asked("scale", "deployment/ml/llama", {"replicas": 4}), reason="test")
    )
    asyncio.run(remediation.confirm(request_id, Actor("U2", "mallory"), {}))
    (refused,) = recorder.events
    assert isinstance(refused, Refused) and "may not scale" in refused.reason
    assert refused.actor.id == "U2"
    deployment = kube.get("deployments", "ml", "llama")
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    assert [e.event for e in remediation.audit.for_request(request_id)] == ["denied"]


def test_a_busy_target_runs_nothing(tmp_path: Path, kube: KubernetesStandIn) -> None:
    recorder = Recorder()
    remediation = core(f"sqlite:///{tmp_path / 's.db'}", kube, recorder)
    request_id = asyncio.run(
        remediation.offer(Asked("scale", "deployment/ml/llama", {"replicas": 4}), reason="test")
    )
    assert remediation.store.lock_target("deployment/ml/llama", "someone-else")
    asyncio.run(remediation.confirm(request_id, Actor("U1", "alice"), {}))
    assert [type(e) for e in recorder.events] == [Busy]
    deployment = kube.get("deployments", "ml", "llama")
    assert deployment is not None and deployment["spec"]["replicas"] == 2


def test_a_due_verification_is_claimed_by_exactly_one_replica(database_url: str) -> None:
    stores = [Store(database_url) for _ in range(4)]
    request_id = stores[0].create_action_request(
        kind="scale",
        target="deployment/ml/llama",
        params={},
        reason="test",
        runbook="rb",
        channel=None,
        ttl=timedelta(minutes=5),
    )
    stores[0].schedule_verification(request_id, utcnow() - timedelta(seconds=1), "1700.1")
    claims: list[list[tuple[str, str | None]]] = []
    barrier = threading.Barrier(len(stores))

    def claim(store: Store) -> None:
        barrier.wait()
        claims.append(store.claim_due_verifications())

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claims, key=len) == [[], [], [], [(request_id, "1700.1")]]


def two_clusters(database_url: str, a: KubernetesStandIn, b: KubernetesStandIn) -> Remediation:
    clusters = [cluster("a", a), cluster("b", b)]
    return remediation_on(database_url, clusters, granted("drain"), Recorder())


def test_a_recommendation_never_acts_outside_the_cluster_of_its_evidence(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    alice = Actor("U1", "alice")
    with KubernetesStandIn() as a, KubernetesStandIn() as b:
        for kube in (a, b):
            kube.add_node("gpu-node-1")  # the same name in both clusters
        remediation = two_clusters(db, a, b)
        drain = Asked("drain", "node/gpu-node-1")

        def offered(cluster: str | None = None, evidence_cluster: str | None = None) -> str:
            return asyncio.run(
                remediation.offer(
                    drain,
                    reason="Xid 48",
                    runbook="gpu_hardware_failure",
                    cluster=cluster,
                    evidence_cluster=evidence_cluster,
                )
            )

        # evidence from b, asked to run in a: shown as refused, then refused and audited
        wrong = offered(cluster="a", evidence_cluster="b")
        preview = asyncio.run(remediation.preview(wrong, alice))
        assert (
            preview.error and "from cluster b" in preview.error and "in cluster a" in preview.error
        )
        assert "cluster=b" in preview.error  # the fix: diagnose b to act there
        asyncio.run(remediation.confirm(wrong, alice, {}))
        refused = remediation.reporter.events[-1]  # type: ignore[attr-defined]
        assert isinstance(refused, Refused) and "from cluster b" in refused.reason
        # evidence from a cluster no configuration names: recorded, never run anywhere
        unconfigured = offered(cluster="west")
        preview = asyncio.run(remediation.preview(unconfigured, alice))
        assert preview.error and "configure cluster west" in preview.error
        asyncio.run(remediation.confirm(unconfigured, alice, {}))
        # evidence from b and no cluster named: it acts in b, where the data justified it
        right = offered(evidence_cluster="b")
        assert asyncio.run(remediation.preview(right, alice)).error is None
        # a diagnosis's recommendation from an unscoped diagnosis: it acts where its data is
        recommended = RecommendedAction(kind="drain", target=drain.target, reason="x", cluster="b")
        offer = remediation.offer_recommended(recommended, runbook="rb", scope=Scope())
        placed = remediation.store.action_request(asyncio.run(offer))
        assert placed is not None and placed.cluster == "b"
        for kube in (a, b):  # nothing changed; only b was asked for a plan (a dry run)
            writes = [r for r in kube.requests if r.method in ("PATCH", "POST", "DELETE")]
            assert all("dryRun" in r.query for r in writes)
            assert bool(writes) == (kube is b)
    denied = [r for r in AuditLog(db).recent(20) if r.event == "denied"]
    assert {r.request_id for r in denied} == {wrong, unconfigured}
    assert all("evidence" in r.outcome for r in denied)
    assert {r.origin.get("evidence_cluster") for r in denied} == {"b", "west"}


class BrokenAudit(AuditLog):
    """An audit log whose database refuses writes (full disk, lost connection)."""

    def append(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        raise OSError("disk full")


@pytest.mark.parametrize("by_policy", [False, True])
def test_a_request_the_audit_log_cannot_record_never_runs(
    tmp_path: Path, kube: KubernetesStandIn, by_policy: bool
) -> None:
    recorder = Recorder()
    remediation = core(f"sqlite:///{tmp_path / 's.db'}", kube, recorder)
    remediation.audit = BrokenAudit(f"sqlite:///{tmp_path / 's.db'}")
    asked = Asked("scale", "deployment/ml/llama", {"replicas": 4})
    request_id = asyncio.run(remediation.offer(asked, reason="test"))
    if by_policy:
        assert not asyncio.run(remediation.execute_by_policy(request_id, "a test policy"))
    else:
        asyncio.run(remediation.confirm(request_id, Actor("U1", "alice"), {}))
    req = remediation.store.action_request(request_id)
    assert req is not None and (req.state, req.outcome) == ("failed", "audit log unavailable")
    deployment = kube.get("deployments", "ml", "llama")
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    assert not [e for e in recorder.events if isinstance(e, Started)]


def test_a_policy_runs_an_offered_request_as_the_bot_and_says_why(
    tmp_path: Path, kube: KubernetesStandIn
) -> None:
    recorder = Recorder()
    remediation = core(f"sqlite:///{tmp_path / 's.db'}", kube, recorder)
    asked = Asked("scale", "deployment/ml/llama", {"replicas": 3})
    request_id = asyncio.run(remediation.offer(asked, reason="test"))
    assert asyncio.run(remediation.execute_by_policy(request_id, "canary policy X"))
    assert not asyncio.run(remediation.execute_by_policy(request_id, "canary policy X"))  # once
    deployment = kube.get("deployments", "ml", "llama")
    assert deployment is not None and deployment["spec"]["replicas"] == 3
    events = remediation.audit.for_request(request_id)
    requested = next(e for e in events if e.event == "requested")
    assert requested.actor_name == "vllm-chatops" and "by policy: canary policy X" in requested.plan
    assert [e.event for e in events][-1] == "executed"
    # a plan that fails never runs: it is recorded as denied, and nothing changes
    gone = asyncio.run(
        remediation.offer(Asked("scale", "deployment/ml/absent", {"replicas": 1}), reason="t")
    )
    assert not asyncio.run(remediation.execute_by_policy(gone, "canary policy X"))
    assert [e.event for e in remediation.audit.for_request(gone)] == ["denied"]
    assert remediation.store.action_request(gone).state == "offered"  # type: ignore[union-attr]

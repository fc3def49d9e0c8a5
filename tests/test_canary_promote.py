"""Promoting a canary made by pausing a Deployment's rollout, through lightkube over HTTP
against the API stand-in: pods move from the previous revision's ReplicaSet to the new
one (new first), the rollout stays paused; at 100 % the rollout resumes and the
controller finishes it. Anything that is not such a canary is refused with the reason."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fleet_stack import eventually

from bot.remediation.actions import ACTIONS, ActionError
from bot.remediation.actions.promote import Move, split
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn
from bot.simulator.twin_canary import start_canary
from bot.sources.kubernetes import KubeClient

NS = "ml"


@pytest.fixture
def fake() -> Iterator[KubernetesStandIn]:
    kube = KubernetesStandIn().start()
    kube.add_deployment(NS, "llama", "vllm:0.6.1", replicas=4)
    yield kube
    kube.stop()


def client(fake: KubernetesStandIn) -> KubeClient:
    return KubeClient.for_server(fake.url, ADMIN_TOKEN, namespace=NS)


def serving(fake: KubernetesStandIn) -> dict[str, int]:
    """Image → replicas asked of its ReplicaSet, for those asking for any."""
    out: dict[str, int] = {}
    for rs in fake.list("replicasets", NS):
        count = int(rs["spec"].get("replicas") or 0)
        if count:
            image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
            out[image] = out.get(image, 0) + count
    return out


def replica_writes(fake: KubernetesStandIn) -> list[str]:
    return [
        r.path.rsplit("/", 1)[-1]
        for r in fake.requests
        if r.method == "PATCH" and "/replicasets/" in r.path and "dryRun" not in r.query
    ]


def test_split_keeps_one_pod_on_each_side_below_100() -> None:
    assert split(4, 5) == Move(1, 3, resume=False)
    assert split(4, 25) == Move(1, 3, resume=False)
    assert split(4, 50) == Move(2, 2, resume=False)
    assert split(4, 99) == Move(3, 1, resume=False)
    assert split(10, 33) == Move(4, 6, resume=False)
    assert split(4, 100) == Move(4, 0, resume=True)
    assert split(2, 5) == Move(1, 1, resume=False)


async def test_promote_moves_pods_then_resumes_at_100(fake: KubernetesStandIn) -> None:
    stable = start_canary(fake, NS, "llama", "vllm:0.7.0", replicas=1)
    assert stable is not None
    assert serving(fake) == {"vllm:0.6.1": 3, "vllm:0.7.0": 1}
    action = ACTIONS["promote"]
    async with client(fake) as kube:
        fake.clear_requests()
        plan = await action.plan(kube, f"deployment/{NS}/llama", {"traffic_percent": 50})
        assert plan.dry_run_ok, plan.warnings
        assert plan.details["new_pods"] == 2 and plan.details["previous_pods"] == 2
        assert any("1 → 2 pod(s)" in c for c in plan.changes), plan.changes
        assert serving(fake) == {"vllm:0.6.1": 3, "vllm:0.7.0": 1}  # a plan changes nothing

        outcome = await action.execute(kube, f"deployment/{NS}/llama", {"traffic_percent": 50})
        assert outcome.ok and "2 of 4 pods" in outcome.summary
        assert serving(fake) == {"vllm:0.6.1": 2, "vllm:0.7.0": 2}
        new_rs = plan.details["new_replicaset"]
        assert replica_writes(fake) == [new_rs, stable]  # up first, then down
        assert fake.get("deployments", NS, "llama")["spec"]["paused"] is True  # type: ignore[index]

        plan = await action.plan(kube, f"deployment/{NS}/llama", {"traffic_percent": 100})
        assert any("paused rollout is resumed" in c for c in plan.changes), plan.changes
        outcome = await action.execute(kube, f"deployment/{NS}/llama", {"traffic_percent": 100})
        assert outcome.ok
    assert not fake.get("deployments", NS, "llama")["spec"].get("paused")  # type: ignore[index]
    eventually(lambda: serving(fake) == {"vllm:0.7.0": 4} or None, timeout_s=10)


async def test_promote_refuses_what_is_not_a_paused_canary(fake: KubernetesStandIn) -> None:
    action = ACTIONS["promote"]
    async with client(fake) as kube:
        with pytest.raises(ActionError, match="not paused mid-rollout"):
            await action.plan(kube, f"deployment/{NS}/llama", {"traffic_percent": 50})
        with pytest.raises(ActionError, match="deployment targets, not statefulset"):
            await action.plan(kube, f"statefulset/{NS}/llama", {"traffic_percent": 50})
        start_canary(fake, NS, "llama", "vllm:0.7.0", replicas=1)
        for bad, message in ((0, "at least 1"), (101, "at most 100"), ("x", "integer")):
            with pytest.raises(ActionError, match=message):
                await action.plan(kube, f"deployment/{NS}/llama", {"traffic_percent": bad})
        with pytest.raises(ActionError, match="missing parameter"):
            await action.execute(kube, f"deployment/{NS}/llama", {})
    assert serving(fake) == {"vllm:0.6.1": 3, "vllm:0.7.0": 1}  # nothing moved

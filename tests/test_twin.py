"""The fleet twin: the Kubernetes API stand-in and the simulated fleet are one world.

Each test drives the stand-in over its socket (raw HTTP, or the bot's own actions through
lightkube) and reads the fleet back through the simulator's HTTP endpoints.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fleet_stack import eventually
from simulator.promtext import value
from twin_stack import act, serving_twin, two_model_fleet

from bot.diagnosis.sizing import for_kv
from bot.diagnosis.workloads import workload_of_pod
from bot.simulator.fleet import CURRENT_VERSION, PREVIOUS_VERSION, VLLM_IMAGE
from bot.simulator.kube_objects import HASH_LABEL, REVISION_ANNOTATION, pod_ready
from bot.simulator.server import Simulator
from bot.simulator.serving import BackgroundServer
from bot.simulator.twin import FleetTwin
from bot.simulator.twin_seed import template_hash_of

NS = "inference"
DELAY_S = 0.3
Obj = dict[str, Any]


@dataclass
class World:
    sim: Simulator
    server: BackgroundServer
    twin: FleetTwin
    kube: httpx.Client  # the stand-in, as the admin

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.server.url}{path}", timeout=5)
        response.raise_for_status()
        return response.json()

    def text(self, path: str) -> str:
        return httpx.get(f"{self.server.url}{path}", timeout=5).text

    def items(self, path: str) -> list[Obj]:
        response = self.kube.get(path)
        response.raise_for_status()
        items: list[Obj] = response.json()["items"]
        return items

    def pods(self, deployment: str | None = None) -> list[Obj]:
        selector = {"labelSelector": f"app={deployment}"} if deployment else {}
        response = self.kube.get(f"/api/v1/namespaces/{NS}/pods", params=selector)
        items: list[Obj] = response.json()["items"]
        return items

    def targets(self) -> set[str]:
        return {t["labels"]["pod"] for t in self.get("/sd/vllm")}

    def deployment(self, name: str) -> Obj:
        return next(d for d in self.get("/fleet")["deployments"] if d["name"] == name)

    def act(self, kind: str, target: str, params: dict[str, Any]) -> tuple[bool, str]:
        return act(self.twin, kind, target, params)


@pytest.fixture
def world() -> Iterator[World]:
    """Two models, 2 replicas of 2 GPUs each on 4-GPU nodes, and 2 spare nodes."""
    sim = Simulator(two_model_fleet(), "healthy", 3)
    with serving_twin(sim, startup_delay_s=DELAY_S, resync_s=0.1) as (server, twin):
        headers = {"Authorization": f"Bearer {twin.token}"}
        with httpx.Client(base_url=twin.kubernetes.url, headers=headers, timeout=5) as kube:
            yield World(sim, server, twin, kube)


def running(world: World, pod: str) -> float:
    return value(world.text(f"/replicas/{pod}/metrics"), "vllm:num_requests_running")


def test_the_cluster_is_seeded_from_the_fleet(world: World) -> None:
    fleet = world.sim.fleet
    assert [n["metadata"]["name"] for n in world.items("/api/v1/namespaces")] == [
        "gpu-operator",
        NS,
    ]
    nodes = {n["metadata"]["name"]: n for n in world.items("/api/v1/nodes")}
    assert set(nodes) == {n.name for n in fleet.nodes} and len(nodes) == 4
    for node in nodes.values():
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == node["metadata"]["name"]
        assert labels["topology.kubernetes.io/zone"].startswith("zone-")
        assert node["status"]["capacity"]["nvidia.com/gpu"] == "4"
    pods = {p["metadata"]["name"]: p for p in world.pods()}
    assert set(pods) == {r.pod for r in fleet.replicas}
    for replica in fleet.replicas:
        pod = pods[replica.pod]
        assert pod["spec"]["nodeName"] == replica.node and pod_ready(pod)
        assert pod["metadata"]["labels"][HASH_LABEL] == template_hash_of(replica)
    for name in fleet.deployments:
        dep = world.kube.get(f"/apis/apps/v1/namespaces/{NS}/deployments/{name}").json()
        assert dep["spec"]["selector"]["matchLabels"] == {"app": name}
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        assert container["name"] == "vllm"
        assert container["image"] == f"{VLLM_IMAGE}:{CURRENT_VERSION}"
        for flag in ("--max-model-len", "--gpu-memory-utilization", "--max-num-seqs"):
            assert flag in container["args"]
        assert dep["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
        assert dep["status"]["readyReplicas"] == dep["spec"]["replicas"] == 2
        rss = world.items(f"/apis/apps/v1/namespaces/{NS}/replicasets?labelSelector=app={name}")
        by_revision = {r["metadata"]["annotations"][REVISION_ANNOTATION]: r for r in rss}
        assert set(by_revision) == {"1", "2"}
        current_hash = by_revision["2"]["metadata"]["labels"][HASH_LABEL]
        assert {template_hash_of(r) for r in fleet.replicas if r.deployment == name} == {
            current_hash
        }
        old = by_revision["1"]["spec"]["template"]["spec"]["containers"][0]["image"]
        assert old == f"{VLLM_IMAGE}:{PREVIOUS_VERSION}"
        assert by_revision["1"]["spec"]["replicas"] == 0
        pdb = world.kube.get(f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{name}")
        assert pdb.json()["spec"]["maxUnavailable"] == 1
    (hpa,) = world.items(f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers")
    assert hpa["spec"]["scaleTargetRef"]["name"] == fleet.deployments[0]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    exporters = world.items("/api/v1/namespaces/gpu-operator/pods")
    assert {p["spec"]["nodeName"] for p in exporters} == set(nodes)


def test_scaling_out_adds_serving_replicas_after_the_delay_and_spreads_the_load(
    world: World,
) -> None:
    name = world.sim.fleet.deployments[1]  # no HPA on this one
    before = {r.pod for r in world.sim.fleet.replicas if r.deployment == name}
    busy = min(running(world, pod) for pod in before)
    response = world.kube.patch(
        f"/apis/apps/v1/namespaces/{NS}/deployments/{name}/scale",
        json={"spec": {"replicas": 4}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200
    new = {p["metadata"]["name"] for p in world.pods(name)} - before
    assert len(new) == 2
    starting = world.deployment(name)
    assert (starting["desired"], starting["serving"]) == (4, 2)
    assert not new & world.targets(), "not a scrape target while the model loads"

    def serving() -> None:
        assert new <= world.targets()
        deployment = world.deployment(name)
        assert (deployment["desired"], deployment["ready"], deployment["serving"]) == (4, 4, 4)
        assert all(pod_ready(p) for p in world.pods(name))

    eventually(serving, timeout_s=5, interval_s=0.1)
    time.sleep(0.2)  # let the engines settle at their new share
    after = max(running(world, pod) for pod in before | new)
    assert after < 0.75 * busy, (busy, after)  # the same demand over twice the replicas


def test_pods_that_do_not_fit_stay_pending_and_go_first(world: World) -> None:
    name = world.sim.fleet.deployments[1]
    world.kube.patch(
        f"/apis/apps/v1/namespaces/{NS}/deployments/{name}/scale",
        json={"spec": {"replicas": 7}},  # 2 spare nodes hold 4 more replicas, not 5
        headers={"Content-Type": "application/merge-patch+json"},
    )

    def placed() -> list[Obj]:
        pending = [p for p in world.pods(name) if not p["spec"].get("nodeName")]
        assert len(pending) == 1
        assert pending[0]["status"]["conditions"][0]["reason"] == "Unschedulable"
        return pending

    def six_serve() -> None:
        assert world.deployment(name)["serving"] == 6

    eventually(placed, timeout_s=5, interval_s=0.1)
    eventually(six_serve, timeout_s=5, interval_s=0.1)
    serving = set(world.deployment(name)["pods"])
    world.kube.patch(  # back to 6: the pod that never ran goes first
        f"/apis/apps/v1/namespaces/{NS}/deployments/{name}/scale",
        json={"spec": {"replicas": 6}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert {p["metadata"]["name"] for p in world.pods(name)} == serving


def test_a_drain_moves_the_replicas_off_the_node_and_the_hot_gpu_cools(world: World) -> None:
    truth = world.sim.switch("thermal", seed=3)
    (fault,) = truth.faults
    assert truth.action_target == f"node/{fault.node}"
    on_node = {r.pod for r in world.sim.fleet.replicas if r.node == fault.node}
    assert len(on_node) == 2
    ok, summary = world.act(
        "drain", truth.action_target, {"retry_interval_s": 0.1, "timeout_s": 20}
    )
    assert ok, summary

    def moved() -> None:
        fleet = world.get("/fleet")
        (node,) = [n for n in fleet["nodes"] if n["name"] == fault.node]
        assert node["schedulable"] is False
        assert all(g["pod"] is None for g in node["gpus"])
        assert sum(d["serving"] for d in fleet["deployments"]) == 4
        assert not on_node & world.targets() and len(world.targets()) == 4

    eventually(moved, timeout_s=10, interval_s=0.1)
    for pod in world.pods():
        assert pod["spec"]["nodeName"] != fault.node
    assert all(r.profile.tpot_factor == 1.0 for r in world.sim.fleet.replicas)
    text = world.text(f"/nodes/{fault.node}/metrics")
    temp = value(text, "DCGM_FI_DEV_GPU_TEMP", gpu=str(fault.gpu))
    assert temp < 80, "with no workload the GPU with the cooling fault is not hot"


def test_rolling_back_a_bad_rollout_restores_the_previous_numbers(world: World) -> None:
    truth = world.sim.switch("bad_rollout", seed=3)
    assert (truth.runbook, truth.action) == ("high_error_rate", "rollback")
    name = truth.action_target.rsplit("/", 1)[1] if truth.action_target else ""
    bad = [r for r in world.sim.fleet.replicas if r.deployment == name]
    assert bad and all(r.profile.error_fraction == 0.05 for r in bad)
    ok, summary = world.act("rollback", str(truth.action_target), {})
    assert ok, summary
    assert f"{VLLM_IMAGE}:{PREVIOUS_VERSION}" in summary

    def rolled_back() -> list[str]:
        deployment = world.deployment(name)
        assert (deployment["revision"], deployment["serving"]) == ("3", 2)
        assert deployment["image"] == f"{VLLM_IMAGE}:{PREVIOUS_VERSION}"
        pods: list[str] = deployment["pods"]
        assert not {r.pod for r in bad} & set(pods)
        return pods

    pods = eventually(rolled_back, timeout_s=10, interval_s=0.1)
    rss = world.items(f"/apis/apps/v1/namespaces/{NS}/replicasets?labelSelector=app={name}")
    previous = next(r for r in rss if r["metadata"]["annotations"][REVISION_ANNOTATION] == "3")
    assert {p.split("-")[-2] for p in pods} == {previous["metadata"]["labels"][HASH_LABEL]}
    for pod in pods:
        replica = world.sim.fleet.replica(pod)
        assert replica is not None and replica.image.endswith(PREVIOUS_VERSION)
        assert (replica.profile.error_fraction, replica.profile.tpot_factor) == (0.0005, 1.0)


def test_a_rollout_restart_clears_an_application_xid(world: World) -> None:
    truth = world.sim.switch("xid_13", seed=3)
    (fault,) = truth.faults
    assert fault.pod and fault.namespace and fault.gpu
    node = world.sim.fleet.node(str(fault.node))
    assert node is not None and node.gpus[int(fault.gpu)].xid == 13
    target = workload_of_pod(fault.namespace, fault.pod)
    ok, summary = world.act("restart", target, {})
    assert ok, summary
    name = target.rsplit("/", 1)[1]

    def restarted() -> None:
        deployment = world.deployment(name)
        assert (deployment["serving"], deployment["revision"]) == (2, "3")
        assert fault.pod not in deployment["pods"]
        text = world.text(f"/nodes/{fault.node}/metrics")
        assert value(text, "DCGM_FI_DEV_XID_ERRORS", gpu=str(fault.gpu)) == 0

    eventually(restarted, timeout_s=10, interval_s=0.1)


def test_deleting_the_pod_hit_by_an_application_xid_clears_it(world: World) -> None:
    (fault,) = world.sim.switch("xid_13", seed=3).faults
    assert world.kube.delete(f"/api/v1/namespaces/{NS}/pods/{fault.pod}").is_success
    deployment = str(fault.deployment)

    def replaced() -> None:
        assert world.deployment(deployment)["serving"] == 2
        assert fault.pod not in world.targets()
        assert world.get("/fleet")["nodes"] and all(
            "Xid 13 (application)" not in g["faults"]
            for n in world.get("/fleet")["nodes"]
            for g in n["gpus"]
        )

    eventually(replaced, timeout_s=10, interval_s=0.1)


def test_a_rollout_restart_replaces_erroring_replicas_with_clean_ones(world: World) -> None:
    truth = world.sim.switch("error_burst", seed=3)
    assert truth.action == "restart" and truth.action_target
    name = truth.action_target.rsplit("/", 1)[1]
    sick = {f.pod for f in truth.faults}
    ok, summary = world.act("restart", truth.action_target, {})
    assert ok, summary

    def clean() -> None:
        pods = set(world.deployment(name)["pods"])
        assert len(pods) == 2 and not pods & sick
        for pod in pods:
            replica = world.sim.fleet.replica(pod)
            assert replica is not None and replica.profile.error_fraction == 0.0005

    eventually(clean, timeout_s=10, interval_s=0.1)


def test_scaling_as_sized_relieves_kv_cache_pressure(world: World) -> None:
    truth = world.sim.switch("kv_cache_pressure", seed=3)
    assert truth.action == "scale" and truth.action_target
    (fault,) = truth.faults
    kv = value(world.text(f"/replicas/{fault.pod}/metrics"), "vllm:kv_cache_usage_perc")
    assert kv >= 0.95
    plan = for_kv(len(world.sim.fleet.replicas), kv)  # what the diagnosis recommends
    assert plan is not None
    ok, summary = world.act("scale", truth.action_target, {"replicas": plan.replicas})
    assert ok, summary

    def relieved() -> None:
        assert world.deployment(str(fault.deployment))["serving"] == plan.replicas
        text = world.text(f"/replicas/{fault.pod}/metrics")
        assert value(text, "vllm:kv_cache_usage_perc") < 0.85  # under the warning level

    eventually(relieved, timeout_s=10, interval_s=0.1)

"""kube-state-metrics from the fleet twin: the stand-in's objects under kube-state-metrics'
own metric names, labels and values, served by the simulator while a twin runs and
discovered by the simulator's scrape configuration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fleet_stack import eventually
from simulator.promtext import declared_types, series, value

from bot.simulator import kube_state_metrics as ksm
from bot.simulator.fleet import build_fleet
from bot.simulator.kube_objects import HASH_LABEL, REVISION_ANNOTATION
from bot.simulator.server import KUBE_STATE_METRICS_PATH, Simulator, make_app
from bot.simulator.serving import BackgroundServer
from bot.simulator.twin import FleetTwin
from bot.simulator.twin_seed import ROLLED_OUT_S, template_hash_of

NS = "inference"


@dataclass
class World:
    sim: Simulator
    server: BackgroundServer
    twin: FleetTwin

    def metrics(self) -> str:
        response = httpx.get(f"{self.server.url}{KUBE_STATE_METRICS_PATH}", timeout=5)
        response.raise_for_status()
        return response.text

    def replicasets(self, deployment: str) -> dict[str, dict[str, str]]:
        """revision → the ReplicaSet's name and pod-template-hash."""
        out = {}
        for rs in self.twin.kubernetes.list("replicasets", NS):
            if rs["metadata"]["labels"].get("app") == deployment:
                revision = rs["metadata"]["annotations"][REVISION_ANNOTATION]
                out[revision] = {
                    "name": rs["metadata"]["name"],
                    "hash": rs["metadata"]["labels"][HASH_LABEL],
                }
        return out


@pytest.fixture
def world() -> Iterator[World]:
    """4 single-GPU replicas of one Deployment on one node, and a spare node."""
    fleet = build_fleet(
        replicas=4, gpus_per_replica=1, gpus_per_node=4, spare_nodes=1, seed=9, now=time.time()
    )
    sim = Simulator(fleet, "healthy", 9)
    server = BackgroundServer(make_app(sim)).start()
    twin = FleetTwin(sim, startup_delay_s=0.2, resync_s=0.1).start()
    try:
        yield World(sim, server, twin)
    finally:
        twin.stop()
        server.stop()


def test_pods_replicasets_and_deployments_under_their_real_names(world: World) -> None:
    text = world.metrics()
    assert set(declared_types(text).values()) == {"gauge"}
    fleet = world.sim.fleet
    (deployment,) = fleet.deployments
    revisions = world.replicasets(deployment)
    current, previous = revisions["2"]["name"], revisions["1"]["name"]
    assert revisions["2"]["hash"] == template_hash_of(fleet.replicas[0])
    for replica in fleet.replicas:
        owner = series(text, "kube_pod_owner", namespace=NS, pod=replica.pod)
        assert [labels for labels, _ in owner] == [
            {
                "namespace": NS,
                "pod": replica.pod,
                "uid": owner[0][0]["uid"],
                "owner_kind": "ReplicaSet",
                "owner_name": current,
                "owner_is_controller": "true",
            }
        ]
        assert value(text, "kube_pod_info", pod=replica.pod, node=replica.node) == 1
        assert value(text, "kube_pod_status_ready", pod=replica.pod, condition="true") == 1
        assert value(text, "kube_pod_status_phase", pod=replica.pod, phase="Running") == 1
    for name in (current, previous):
        assert series(text, "kube_replicaset_owner", replicaset=name) == [
            (
                {
                    "namespace": NS,
                    "replicaset": name,
                    "owner_kind": "Deployment",
                    "owner_name": deployment,
                    "owner_is_controller": "true",
                },
                1.0,
            )
        ]
    assert value(text, "kube_replicaset_spec_replicas", replicaset=current) == 4
    assert value(text, "kube_replicaset_spec_replicas", replicaset=previous) == 0
    assert value(text, "kube_replicaset_status_ready_replicas", replicaset=current) == 4
    # a seeded fleet rolled out its revision hours ago, the one before well before that
    now = time.time()
    rolled_out = value(text, "kube_replicaset_created", namespace=NS, replicaset=current)
    assert rolled_out <= now - ROLLED_OUT_S
    assert rolled_out <= min(r.started_at for r in fleet.replicas)
    assert value(text, "kube_replicaset_created", replicaset=previous) < rolled_out - 86400
    for name, expected in (
        ("kube_deployment_spec_replicas", 4),
        ("kube_deployment_status_replicas_available", 4),
        ("kube_deployment_metadata_generation", 2),
        ("kube_deployment_status_observed_generation", 2),
    ):
        assert value(text, name, namespace=NS, deployment=deployment) == expected, name
    # the dcgm-exporter DaemonSet's pods, and the nodes
    exporters = series(text, "kube_pod_owner", owner_kind="DaemonSet")
    assert len(exporters) == len(fleet.nodes)
    assert {labels["namespace"] for labels, _ in exporters} == {"gpu-operator"}
    for node in fleet.nodes:
        assert series(text, "kube_node_spec_unschedulable", node=node.name) == [
            ({"node": node.name}, 0.0)
        ]


def test_a_cordon_and_a_rollout_show_at_the_next_scrape(world: World) -> None:
    node = world.sim.fleet.nodes[0].name
    world.twin.kubernetes.update(
        "nodes", None, node, lambda n: n["spec"].update(unschedulable=True)
    )
    assert value(world.metrics(), "kube_node_spec_unschedulable", node=node) == 1
    (deployment,) = world.sim.fleet.deployments

    def bump(d: dict[str, object]) -> None:
        d["spec"]["template"]["metadata"]["annotations"] = {"restartedAt": "now"}  # type: ignore[index]

    world.twin.kubernetes.update("deployments", NS, deployment, bump)
    new = world.replicasets(deployment)["3"]["name"]
    text = world.metrics()
    assert value(text, "kube_deployment_metadata_generation", deployment=deployment) == 3
    assert value(text, "kube_deployment_status_observed_generation", deployment=deployment) == 3
    assert time.time() - value(text, "kube_replicaset_created", replicaset=new) < 60
    assert value(text, "kube_replicaset_owner", replicaset=new, owner_name=deployment) == 1


def test_a_bad_revision_rolled_out_when_its_scenario_began(world: World) -> None:
    seeded = world.metrics()
    truth = world.sim.switch("bad_rollout", seed=9)
    (deployment,) = world.sim.fleet.deployments
    current = world.replicasets(deployment)["2"]["name"]
    began = float(int(truth.started_at))  # API timestamps have whole seconds

    def dated() -> str:
        text = world.metrics()
        assert value(text, "kube_replicaset_created", replicaset=current) == began
        return text

    text = eventually(dated, timeout_s=5, interval_s=0.1)
    for fault in truth.faults:
        assert value(text, "kube_pod_created", pod=str(fault.pod)) == began
        assert value(text, "kube_pod_start_time", pod=str(fault.pod)) == began
    world.sim.switch("healthy", seed=9)

    def restored() -> None:
        text = world.metrics()
        for name in ("kube_replicaset_created", "kube_pod_created", "kube_pod_start_time"):
            assert series(text, name, namespace=NS) == series(seeded, name, namespace=NS), name

    eventually(restored, timeout_s=5, interval_s=0.1)


def test_served_and_discovered_only_while_a_twin_runs(world: World) -> None:
    sd = httpx.get(f"{world.server.url}/sd/kube-state-metrics", timeout=5).json()
    assert [t["labels"]["__metrics_path__"] for t in sd] == [KUBE_STATE_METRICS_PATH]
    world.twin.stop()
    assert httpx.get(f"{world.server.url}/sd/kube-state-metrics", timeout=5).json() == []
    assert httpx.get(f"{world.server.url}{KUBE_STATE_METRICS_PATH}", timeout=5).status_code == 404


def test_an_object_without_an_owner_says_none() -> None:
    rs = {"metadata": {"name": "orphan", "namespace": NS}, "spec": {"replicas": 2}}
    owner = [s for s in ksm.replicaset_samples(rs) if s[0] is ksm.RS_OWNER]
    assert owner == [
        (
            ksm.RS_OWNER,
            {
                "namespace": NS,
                "replicaset": "orphan",
                "owner_kind": "<none>",
                "owner_name": "<none>",
                "owner_is_controller": "<none>",
            },
            1.0,
        )
    ]
    assert ksm.unix("1970-01-01T00:01:40Z") == 100.0

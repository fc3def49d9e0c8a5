"""Replicas join and leave a running fleet; demand and scenario conditions follow them."""

from __future__ import annotations

from bot.simulator.fleet import Fleet, build_fleet
from bot.simulator.fleet_view import fleet_view
from bot.simulator.scenarios import apply_scenario

T0 = 1_700_000_000.0


def make(spare_nodes: int = 1) -> Fleet:
    return build_fleet(
        replicas=4, gpus_per_replica=2, gpus_per_node=4, spare_nodes=spare_nodes, seed=5, now=T0
    )


def test_spare_nodes_add_empty_nodes_and_change_nothing_else() -> None:
    plain, spare = make(0), make(2)
    assert [(r.pod, r.legacy, r.node) for r in plain.replicas] == [
        (r.pod, r.legacy, r.node) for r in spare.replicas
    ]
    extra = spare.nodes[len(plain.nodes) :]
    assert len(extra) == 2 and all(g.replica is None for n in extra for g in n.gpus)


def test_join_and_leave_keep_lookups_and_spread_the_demand() -> None:
    fleet = make()
    (deployment,) = fleet.deployments
    gpus = fleet.free_slot()
    assert gpus is not None and {g.node for g in gpus} == {fleet.nodes[-1].name}
    replica = fleet.join(f"{deployment}-abc-xyz12", deployment, gpus, T0 + 1)
    assert fleet.replica(replica.pod) is replica and replica in fleet.replicas
    assert all(g.replica is replica for g in gpus)
    assert {r.load_share for r in fleet.replicas} == {4 / 5}
    assert replica.started_at == T0 + 1  # a fresh process: counters from zero
    assert fleet.leave(replica.pod) is replica
    assert fleet.replica(replica.pod) is None and all(g.replica is None for g in gpus)
    assert {r.load_share for r in fleet.replicas} == {1.0}
    assert fleet.leave(replica.pod) is None


def test_no_slot_on_cordoned_nodes_or_faulty_gpus() -> None:
    fleet = make()
    spare = fleet.nodes[-1]
    spare.gpus[0].xid = 79
    spare.gpus[1].fell_off_bus = True
    gpus = fleet.free_slot()
    assert gpus is not None and [g.index for g in gpus] == [2, 3]
    spare.schedulable = False
    assert fleet.free_slot() is None


def test_an_application_xid_leaves_with_its_process_a_hardware_one_stays() -> None:
    fleet = make()
    truth = apply_scenario(fleet, "xid_13", 5, T0)
    (fault,) = truth.faults
    node = fleet.node(str(fault.node))
    assert node is not None
    gpu = node.gpus[int(str(fault.gpu))]
    fleet.leave(str(fault.pod))
    assert gpu.xid == 0 and gpu.allocatable
    truth = apply_scenario(fleet, "xid_48", 5, T0)
    (fault,) = truth.faults
    node = fleet.node(str(fault.node))
    assert node is not None
    gpu = node.gpus[int(str(fault.gpu))]
    fleet.leave(str(fault.pod))
    assert gpu.xid == 48 and not gpu.allocatable


def test_replicas_joining_later_meet_the_running_scenario() -> None:
    fleet = make()
    (deployment,) = fleet.deployments
    apply_scenario(fleet, "underprovisioned", 5, T0)
    gpus = fleet.free_slot()
    assert gpus is not None
    late = fleet.join(f"{deployment}-abc-late1", deployment, gpus, T0 + 1)
    assert late.profile.arrival_rps == fleet.replicas[0].profile.arrival_rps == 16.0
    apply_scenario(fleet, "healthy", 5, T0 + 2)
    assert late.profile.arrival_rps == 6.0
    truth = apply_scenario(fleet, "bad_rollout", 5, T0 + 3)
    assert all(r.profile.error_fraction == 0.05 for r in fleet.replicas)
    fleet.leave(late.pod)
    gpus = fleet.free_slot()
    assert gpus is not None and truth.action == "rollback"
    rolled_back = fleet.join(
        f"{deployment}-def-old12", deployment, gpus, T0 + 4, image="vllm/vllm-openai:v0.10.2"
    )
    assert rolled_back.profile.error_fraction == 0.0005, "the previous image is healthy"


def test_the_fleet_view_without_a_cluster() -> None:
    fleet = make()
    truth = apply_scenario(fleet, "thermal", 5, T0)
    view = fleet_view(fleet, truth, T0 + 1)
    (deployment,) = view["deployments"]
    assert (deployment["desired"], deployment["ready"], deployment["serving"]) == (4, 4, 4)
    assert deployment["revision"] is None and len(deployment["pods"]) == 4
    (fault,) = truth.faults
    (node,) = [n for n in view["nodes"] if n["name"] == fault.node]
    assert node["schedulable"] is True
    gpu = node["gpus"][int(str(fault.gpu))]
    assert gpu["pod"] == fault.pod and gpu["faults"] == ["cooling fault (87 °C under load)"]
    assert view["scenario"]["scenario"] == "thermal"

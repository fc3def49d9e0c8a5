"""Queues as production serving has them: clients give up, the balancer avoids long queues.

Time is driven explicitly (``step`` and ``Replica.advance`` with increasing ``now``);
nothing sleeps.
"""

from __future__ import annotations

import math

import pytest

from bot.simulator.engine import EngineProfile, step
from bot.simulator.fleet import Fleet, Replica, build_fleet
from bot.simulator.scenarios import apply_scenario

T0 = 1_700_000_000.0


def overloaded(timeout_s: float = 60.0) -> EngineProfile:
    return EngineProfile(arrival_rps=16.0, capacity_rps=10.0, client_timeout_s=timeout_s)


def test_clients_abandon_a_backlog_longer_than_their_timeout() -> None:
    profile, waiting = overloaded(timeout_s=20.0), 0.0
    for _ in range(60):
        state = step(profile, waiting, 1.0, 1.0)
        waiting = state.waiting
    # the queue holds what the engine can start within the timeout; the rest is aborted
    assert waiting == pytest.approx(10.0 * 20.0)
    assert state.served_rps == pytest.approx(10.0)
    assert state.aborted_rps == pytest.approx(6.0)
    assert state.queue_wait_s == pytest.approx(20.0)


def test_a_draining_engine_runs_a_full_batch_and_serves_what_leaves_its_queue() -> None:
    profile = overloaded()
    busy = step(profile, 600.0, 1.0, 1.0)
    idle = step(profile, 600.0, 0.0, 1.0)  # no new arrivals: the queue feeds the batch
    assert idle.running == pytest.approx(busy.running, rel=0.1)
    assert idle.gpu_util_pct == busy.gpu_util_pct == 100.0
    assert idle.waiting == pytest.approx(590.0) and idle.served_rps == pytest.approx(10.0)
    assert idle.aborted_rps == 0.0
    last = step(profile, 5.0, 0.0, 1.0)  # the last of the backlog is served, not lost
    assert last.served_rps == pytest.approx(5.0) and last.waiting == 0.0


def test_the_time_to_first_token_of_a_finished_request_stays_within_the_timeout() -> None:
    fleet = build_fleet(replicas=1, gpus_per_replica=1, gpus_per_node=1, seed=3, now=T0)
    (replica,) = fleet.replicas
    replica.profile = overloaded(timeout_s=20.0)
    for t in range(1, 120):
        replica.advance(T0 + t)
    ttft = replica.histograms["ttft"]
    below = dict(zip(ttft.bounds, ttft.cumulative(), strict=False))
    assert below[20.0] > 0 and below[40.0] == ttft.cumulative()[-1]


def make(replicas: int = 4, spare_nodes: int = 2) -> Fleet:
    return build_fleet(
        replicas=replicas,
        gpus_per_replica=1,
        gpus_per_node=4,
        spare_nodes=spare_nodes,
        seed=7,
        now=T0,
    )


def scale_out(fleet: Fleet, to: int, now: float) -> list[Replica]:
    (deployment,) = fleet.deployments
    joined = []
    for i in range(to - len(fleet.replicas)):
        gpus = fleet.free_slot()
        assert gpus is not None
        joined.append(fleet.join(f"{deployment}-new-{i}", deployment, gpus, now))
    return joined


def waiting(replicas: list[Replica]) -> list[float]:
    return [r.state.waiting if r.state else 0.0 for r in replicas]


def test_alike_queues_share_the_demand_evenly() -> None:
    fleet = make()
    apply_scenario(fleet, "healthy", 7, T0)
    for t in range(1, 30):
        for replica in fleet.replicas:
            replica.advance(T0 + t)
    assert {r.load_share for r in fleet.replicas} == {1.0}


def test_after_a_scale_out_new_replicas_take_the_arrivals_while_old_ones_drain() -> None:
    fleet = make()
    apply_scenario(fleet, "underprovisioned", 7, T0)
    old = list(fleet.replicas)
    t = 0
    while min(waiting(old)) < 599.0:  # every queue as long as its clients wait
        t += 1
        for replica in old:
            replica.advance(T0 + t)
    assert sum(r.state.aborted_rps for r in old if r.state) > 15.0
    new = scale_out(fleet, 9, T0 + t)
    start = t
    for t in range(start + 1, start + 11):
        for replica in fleet.replicas:
            replica.advance(T0 + t)
    # the old replicas got almost nothing new: each drained at about its full capacity
    assert all(q < 600.0 - 0.9 * 10.0 * 10 for q in waiting(old)), waiting(old)
    assert all(r.load_share < 0.05 for r in old)
    assert sum(r.load_share for r in fleet.replicas) == pytest.approx(4.0)
    drained_at = None
    for t in range(start + 11, start + 200):
        for replica in fleet.replicas:
            replica.advance(T0 + t)
        if drained_at is None and max(waiting(fleet.replicas)) < 10:
            drained_at = t - start
    # 4 queues of 600 drain at the fleet's spare capacity, 90 - 64 req/s: about 90 s
    assert drained_at is not None and drained_at < 120, drained_at
    assert max(waiting(new + old)) < 10
    assert sum(r.load_share for r in fleet.replicas) == pytest.approx(4.0)
    assert all(math.isclose(r.load_share, 4 / 9) for r in fleet.replicas)


def test_a_fleets_client_timeout_holds_through_scenarios_and_new_replicas() -> None:
    fleet = build_fleet(
        replicas=2, gpus_per_replica=4, spare_nodes=1, client_timeout_s=15.0, now=1000.0
    )
    assert {r.profile.client_timeout_s for r in fleet.replicas} == {15.0}
    apply_scenario(fleet, "underprovisioned", 0, 1001.0)
    assert {r.profile.client_timeout_s for r in fleet.replicas} == {15.0}
    spare = fleet.nodes[-1].gpus[:4]
    joined = fleet.join("vllm-x-abc-new", fleet.replicas[0].deployment, spare, 1002.0)
    assert joined.profile.client_timeout_s == 15.0
    # the backlog a replica keeps is bounded by what its clients wait for
    for t in range(1003, 1300):
        joined.advance(float(t))
    assert joined.state is not None
    assert joined.state.waiting <= joined.profile.capacity_rps * 15.0 + 1

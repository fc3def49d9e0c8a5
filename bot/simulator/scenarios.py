"""Fault scenarios: each one bends a healthy fleet and says exactly what it broke.

A scenario is a function that takes a fleet reset to health, a seeded RNG and the time,
changes the conditions of some replicas/GPUs, and returns the ground truth: the runbook
that should catch it, the cause it should name, the action it should recommend and the
precise faulty targets. A fault of a whole Deployment, a revision or a GPU (not of one
process) is a standing condition: replicas that join later meet it too.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, Field

from bot.simulator.fleet import Condition, Fleet, Gpu, Replica, unchanged

ActionKind = str  # scale | rollback | drain | restart | silence | config | none
# A fault of a revision: the pods running it rolled out when the scenario began (a fleet
# twin dates their ReplicaSet so).
BAD_REVISION = "bad_revision"
# A canary: a new revision of one Deployment serving beside the previous one (a paused
# rollout); the fleet twin makes it in the cluster. Its replicas run CANARY_IMAGE.
CANARY_REVISION = "canary_revision"
CANARY_IMAGE = "vllm/vllm-openai:v0.11.1"
CANARY_LEAK_MIB_PER_S = 2.0  # ~7 GiB an hour: fills the GPU's headroom in about an hour


class Fault(BaseModel):
    """One faulty thing, named the way the diagnosis should name it."""

    kind: str
    pod: str | None = None
    deployment: str | None = None
    namespace: str | None = None
    node: str | None = None
    gpu: str | None = None
    uuid: str | None = None
    detail: str = ""


class GroundTruth(BaseModel):
    scenario: str
    seed: int
    description: str
    runbook: str | None = Field(description="The runbook that should diagnose this scenario.")
    cause: str = Field(description="Finding id the diagnosis should conclude.")
    action: ActionKind = Field(description="Kind of the recommended remediation.")
    action_target: str | None = Field(
        default=None, description="kind/namespace/name or node/name the action applies to."
    )
    faults: list[Fault] = Field(default_factory=list)
    started_at: float


@dataclass(frozen=True)
class Outcome:
    runbook: str | None
    cause: str
    action: ActionKind
    action_target: str | None
    faults: list[Fault]
    conditions: Condition = unchanged  # what replicas joining later meet


ScenarioFn = Callable[[Fleet, random.Random, float], Outcome]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    apply: ScenarioFn


def _deployment_target(fleet: Fleet, replica: Replica) -> str:
    return f"deployment/{fleet.namespace}/{replica.deployment}"


def _replica_fault(kind: str, replica: Replica, detail: str) -> Fault:
    return Fault(
        kind=kind,
        pod=replica.pod,
        deployment=replica.deployment,
        namespace=replica.namespace,
        node=replica.gpus[0].node,
        detail=detail,
    )


def _gpu_fault(kind: str, gpu: Gpu, detail: str) -> Fault:
    replica = gpu.replica
    return Fault(
        kind=kind,
        pod=replica.pod if replica else None,
        deployment=replica.deployment if replica else None,
        namespace=replica.namespace if replica else None,
        node=gpu.node,
        gpu=str(gpu.index),
        uuid=gpu.uuid,
        detail=detail,
    )


def _standing(fleet: Fleet, condition: Condition) -> Condition:
    """Impose ``condition`` on every replica now; returned for the ones joining later."""
    for replica in fleet.replicas:
        condition(replica)
    return condition


def _pick(fleet: Fleet, rng: random.Random, fraction: float) -> list[Replica]:
    """About ``fraction`` of the replicas, all of one Deployment (the one the ground
    truth's action acts on, so that the action can fix them all)."""
    count = max(1, round(len(fleet.replicas) * fraction))
    picked = rng.sample(fleet.replicas, count)
    return [r for r in picked if r.deployment == picked[0].deployment]


def _pick_gpu(fleet: Fleet, rng: random.Random) -> Gpu:
    replica = rng.choice(fleet.replicas)
    return rng.choice(replica.gpus)


def healthy(fleet: Fleet, rng: random.Random, now: float) -> Outcome:
    return Outcome(runbook=None, cause="healthy", action="none", action_target=None, faults=[])


def underprovisioned(fleet: Fleet, rng: random.Random, now: float) -> Outcome:
    """The Deployment's demand is 1.6 times what its replicas serve: more replicas fix it
    (the demand is spread over the replicas serving, see ``Fleet.rebalance``)."""
    deployment = fleet.replicas[0].deployment

    def overloaded(r: Replica) -> None:
        if r.deployment == deployment:
            r.profile.arrival_rps = r.profile.capacity_rps * 1.6

    conditions = _standing(fleet, overloaded)
    victims = [r for r in fleet.replicas if r.deployment == deployment]
    return Outcome(
        runbook="high_latency",
        cause="under_provisioned",
        action="scale",
        action_target=_deployment_target(fleet, victims[0]),
        faults=[_replica_fault("queue_backlog", r, "arrivals at 1.6x capacity") for r in victims],
        conditions=conditions,
    )


def mixed_load(fleet: Fleet, rng: random.Random, now: float) -> Outcome:
    """Two models in one namespace: the first saturated, the others nearly idle, so
    scope-wide averages read "not saturated" while one Deployment needs more replicas."""
    outcome = underprovisioned(fleet, rng, now)
    saturated = fleet.replicas[0].deployment

    def idle(r: Replica) -> None:
        if r.deployment != saturated:
            r.profile.arrival_rps = r.profile.capacity_rps * 0.1

    _standing(fleet, idle)

    def both(r: Replica) -> None:
        outcome.conditions(r)
        idle(r)

    return dataclasses.replace(outcome, conditions=both)


def long_prefill(fleet: Fleet, rng: random.Random, now: float) -> Outcome:
    def long_prompts(r: Replica) -> None:
        r.profile.prompt_sigma = 1.7
        r.profile.queue_floor = 25.0
        r.profile.arrival_rps = 3.5

    conditions = _standing(fleet, long_prompts)
    return Outcome(
        runbook="high_latency",
        cause="long_prefills",
        action="config",
        action_target=_deployment_target(fleet, fleet.replicas[0]),
        faults=[
            _replica_fault("long_prefill", r, "prompt p99 above 50k tokens") for r in fleet.replicas
        ],
        conditions=conditions,
    )


def kv_cache_pressure(fleet: Fleet, rng: random.Random, now: float) -> Outcome:
    victims = _pick(fleet, rng, 0.25)
    for r in victims:
        r.profile.kv_floor = 0.97
    return Outcome(
        runbook="kv_cache_pressure",
        cause="memory_pressure",
        action="scale",
        action_target=_deployment_target(fleet, victims[0]),
        faults=[_replica_fault("kv_cache_pressure", r, "KV cache >= 0.95") for r in victims],
    )


def underutilized(fleet: Fleet, rng: random.Random, now: float) -> Outcome:
    def batch_capped(r: Replica) -> None:
        r.profile.scheduler_seq_cap = 8
        r.profile.max_num_seqs = 8

    conditions = _standing(fleet, batch_capped)
    return Outcome(
        runbook="high_latency",
        cause="scheduling_limited",
        action="config",
        action_target=_deployment_target(fleet, fleet.replicas[0]),
        faults=[
            _replica_fault("batch_limited", r, "max_num_seqs=8: GPUs idle, queue grows")
            for r in fleet.replicas
        ],
        conditions=conditions,
    )


def _xid(code: int, *, fatal: bool) -> ScenarioFn:
    def apply(fleet: Fleet, rng: random.Random, now: float) -> Outcome:
        gpu = _pick_gpu(fleet, rng)
        gpu.xid = code
        replica = gpu.replica
        assert replica is not None
        if code == 48:
            gpu.ecc_dbe += 1
            gpu.uncorrectable_remaps += 1
            replica.restart(now)
            replica.profile.error_fraction = 0.2
        elif code == 79:
            gpu.fell_off_bus = True
            replica.permanently_down = True
        else:  # application error: the engine died and came back; the GPU is fine
            replica.restart(now)
            gpu.xid_held_by_process = True  # a new process on the GPU starts clean
        node_target = f"node/{gpu.node}"
        return Outcome(
            runbook="gpu_hardware_failure",
            cause="fatal_xid" if fatal else "application_xid",
            action="drain" if fatal else "restart",
            action_target=node_target if fatal else f"pod/{replica.namespace}/{replica.pod}",
            faults=[_gpu_fault("xid", gpu, f"Xid {code}")],
        )

    return apply


def _throttle(
    temp_c: float, clock_factor: float, tpot_factor: float, runbook: str, cause: str
) -> Callable[[Fleet, random.Random, float], Outcome]:
    """One hot GPU whose clocks throttle, slowing its replica's decode by ``tpot_factor``."""

    def apply(fleet: Fleet, rng: random.Random, now: float) -> Outcome:
        gpu = _pick_gpu(fleet, rng)
        assert gpu.replica is not None
        gpu.temp_override_c = temp_c
        gpu.clock_factor = clock_factor

        def slowed(r: Replica) -> None:  # whichever replica runs on the hot GPU
            if gpu in r.gpus:
                r.profile.tpot_factor = tpot_factor

        return Outcome(
            runbook=runbook,
            cause=cause,
            action="drain",
            action_target=f"node/{gpu.node}",
            faults=[_gpu_fault("thermal", gpu, f"{temp_c:g} C, SM clock at {clock_factor:.0%}")],
            conditions=_standing(fleet, slowed),
        )

    return apply


thermal = _throttle(87.0, 0.72, 1.35, "gpu_thermal", "gpu_overheating")
# A localised TPOT fault: throttled hard enough that this replica alone breaches the TPOT
# SLO, while every batch stays small (nothing to gain from a smaller max_num_seqs).
thermal_tpot = _throttle(91.0, 0.45, 3.0, "tpot_slo", "gpu_overheating")


def error_burst(fleet: Fleet, rng: random.Random, now: float) -> Outcome:
    victims = _pick(fleet, rng, 0.25)
    for r in victims:
        r.profile.error_fraction = 0.08
        r.profile.abort_fraction = 0.05
    return Outcome(
        runbook="high_error_rate",
        cause="replica_errors",
        action="restart",
        action_target=_deployment_target(fleet, victims[0]),
        faults=[_replica_fault("errors", r, "8% errors, 5% aborts") for r in victims],
    )


def bad_rollout(fleet: Fleet, rng: random.Random, now: float) -> Outcome:
    """The image one Deployment runs now is a bad build: 5 % of its requests fail and it
    decodes 1.6 times slower. Its replicas restarted nothing (the rollout made new pods);
    going back to the previous revision's image fixes it, restarting does not."""
    deployment, bad_image = fleet.replicas[0].deployment, fleet.replicas[0].image

    def bad_build(r: Replica) -> None:
        if r.deployment == deployment and r.image == bad_image:
            r.profile.error_fraction = 0.05
            r.profile.tpot_factor = 1.6

    conditions = _standing(fleet, bad_build)
    victims = [r for r in fleet.replicas if r.deployment == deployment and r.image == bad_image]
    return Outcome(
        runbook="high_error_rate",
        cause="bad_rollout",
        action="rollback",
        action_target=_deployment_target(fleet, victims[0]),
        faults=[
            _replica_fault(BAD_REVISION, r, f"{bad_image}: 5% errors, TPOT x1.6") for r in victims
        ],
        conditions=conditions,
    )


def _canary(regressed: bool) -> ScenarioFn:
    """A canary of one Deployment: its first replica moves to a new revision (the fleet
    twin rolls it out and pauses). A regressed build errs (3 %), decodes 1.6x slower and
    leaks GPU memory; a good one serves like the revision before it."""

    def apply(fleet: Fleet, rng: random.Random, now: float) -> Outcome:
        deployment = fleet.replicas[0].deployment

        def canary_build(r: Replica) -> None:
            if r.deployment != deployment or r.image != CANARY_IMAGE:
                return
            # the Deployment's traffic is spread evenly: a canary pod takes the stable
            # pods' average share, not whatever share its random load bias would give it
            peers = [
                p.load_bias
                for p in fleet.replicas
                if p.deployment == deployment and p.image != CANARY_IMAGE
            ]
            if peers:
                r.load_bias = sum(peers) / len(peers)
            if regressed:
                r.profile.error_fraction = 0.03
                r.profile.tpot_factor = 1.6
                r.profile.fb_leak_mib_per_s = CANARY_LEAK_MIB_PER_S

        detail = (
            f"{CANARY_IMAGE}: 3% errors, TPOT x1.6, GPU memory +{CANARY_LEAK_MIB_PER_S:g} MiB/s"
            if regressed
            else f"{CANARY_IMAGE}: serves like the revision before it"
        )
        target = f"deployment/{fleet.namespace}/{deployment}"
        fault = Fault(
            kind=CANARY_REVISION, deployment=deployment, namespace=fleet.namespace, detail=detail
        )
        return Outcome(
            runbook="high_error_rate" if regressed else None,
            cause="bad_canary" if regressed else "good_canary",
            action="rollback" if regressed else "none",
            action_target=target if regressed else None,
            faults=[fault],
            conditions=_standing(fleet, canary_build),
        )

    return apply


def oom_crash_loop(fleet: Fleet, rng: random.Random, now: float) -> Outcome:
    replica = rng.choice(fleet.replicas)
    replica.profile.gpu_memory_utilization = "0.98"
    replica.crash_period_s = 30.0
    replica.crash_down_s = 10.0
    replica.crash_epoch = now
    replica.restart(now)
    return Outcome(
        runbook="oom_crashes",
        cause="oom_crash_loop",
        action="config",
        action_target=_deployment_target(fleet, replica),
        faults=[
            _replica_fault(
                "crash_loop", replica, "gpu_memory_utilization=0.98; restarts every 30 s"
            )
        ],
    )


def fleet_scale(fleet: Fleet, rng: random.Random, now: float) -> Outcome:
    """A large healthy fleet hiding one replica under memory pressure (a needle to find)."""
    needle = rng.choice(fleet.replicas)
    needle.profile.kv_floor = 0.98
    return Outcome(
        runbook="kv_cache_pressure",
        cause="memory_pressure",
        action="scale",
        action_target=_deployment_target(fleet, needle),
        faults=[_replica_fault("kv_cache_pressure", needle, "KV cache 0.98 on one replica")],
    )


_CATALOGUE: tuple[tuple[str, str, ScenarioFn], ...] = (
    ("healthy", "Nominal load, no faults.", healthy),
    (
        "underprovisioned",
        "Arrivals exceed capacity: queue grows, TTFT up, GPUs busy.",
        underprovisioned,
    ),
    (
        "mixed_load",
        "Several models in one namespace: one saturated, the others nearly idle.",
        mixed_load,
    ),
    ("long_prefill", "Huge prompts: TTFT up, queue moderate.", long_prefill),
    (
        "kv_cache_pressure",
        "KV cache >= 0.95 on some replicas, preemptions climbing.",
        kv_cache_pressure,
    ),
    (
        "underutilized",
        "max_num_seqs too small: low GPU utilisation, high latency.",
        underutilized,
    ),
    ("xid_48", "Double-bit ECC error on one GPU of one node.", _xid(48, fatal=True)),
    (
        "xid_13",
        "Graphics engine exception (application error); GPU healthy.",
        _xid(13, fatal=False),
    ),
    ("xid_79", "A GPU fell off the bus; its replica is down.", _xid(79, fatal=True)),
    ("thermal", "One GPU at 87 C, clocks throttled.", thermal),
    (
        "thermal_tpot",
        "One GPU throttled hard: its replica alone breaches the TPOT SLO.",
        thermal_tpot,
    ),
    ("error_burst", "Errors and aborted requests on some replicas.", error_burst),
    (
        "bad_rollout",
        "The newest revision of one Deployment: more errors, slower decoding.",
        bad_rollout,
    ),
    (
        "oom_crash_loop",
        "One replica OOM-crashing: counters reset, target flapping.",
        oom_crash_loop,
    ),
    ("fleet_scale", "Thousands of healthy replicas; one under memory pressure.", fleet_scale),
    (
        "canary_bad",
        "A canary of one Deployment that regresses: errors, slower TPOT, a GPU memory leak.",
        _canary(regressed=True),
    ),
    ("canary_good", "A canary of one Deployment that serves as well as before.", _canary(False)),
)
SCENARIOS: dict[str, Scenario] = {name: Scenario(name, text, fn) for name, text, fn in _CATALOGUE}


def reset(fleet: Fleet) -> None:
    """Return every replica and GPU to health; counters keep counting, queues start empty."""
    for replica in fleet.replicas:
        replica.profile = fleet.profile()
        if replica.state is not None:
            replica.state.waiting = 0.0
        replica.crash_period_s = None
        replica.permanently_down = False
    fleet.conditions = unchanged
    for node in fleet.nodes:
        for gpu in node.gpus:
            gpu.xid = 0
            gpu.xid_held_by_process = False
            gpu.fell_off_bus = False
            gpu.temp_override_c = None
            gpu.clock_factor = 1.0


def apply_scenario(fleet: Fleet, name: str, seed: int, now: float) -> GroundTruth:
    """Reset the fleet to health, then inject scenario ``name``; raises KeyError if unknown."""
    scenario = SCENARIOS[name]
    reset(fleet)
    outcome = scenario.apply(fleet, random.Random(f"{seed}/{name}"), now)
    fleet.conditions = outcome.conditions
    return GroundTruth(
        scenario=name,
        seed=seed,
        description=scenario.description,
        runbook=outcome.runbook,
        cause=outcome.cause,
        action=outcome.action,
        action_target=outcome.action_target,
        faults=outcome.faults,
        started_at=now,
    )

"""A watched canary's phases: promotable only after its gates pass for the phase's whole
duration, then advanced only by a person's promotion; a rollback asked for at the first
evaluation that sees a trigger tripped. Pure (synthetic comparisons), then on the fleet
twin with a real Prometheus: the good canary is promoted phase by phase, the bad one
asks for a rollback within one evaluation interval of its trigger's window filling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from fleet_stack import FleetStack
from twin_stack import twin_stack

from bot.canary.compare import Comparison, Revision, compare
from bot.canary.gates import Reading, judge, triggers
from bot.canary.watch import WatchState, promoted, step
from bot.config import CanaryGate, CanaryRollback, CanarySettings
from bot.models import Scope
from bot.simulator.fleet import build_fleet
from bot.simulator.server import Simulator
from bot.sources.prometheus import PrometheusSource

PHASES = [
    {"name": n, "traffic_percent": p, "duration": "3s", "gates": ["error_rate", "tpot_p99"]}
    for n, p in (("canary", 5), ("progressive-25", 25), ("progressive-50", 50), ("full", 100))
]
CONFIG = CanarySettings(
    window="15s", rollback=CanaryRollback(window="8s"), phases=PHASES, min_requests=50
)
SEED = 4


def synthetic(errors: float, covered: float = 60.0, trigger_errors: float = 0.0) -> Comparison:
    c = Comparison("inference", "llama", "15s", "pass")
    c.new, c.old = Revision("llama-new", 2.0, 1), Revision("llama-old", 1.0, 3)
    c.gates = [
        judge(CanaryGate(metric="error_rate", max=0.001), Reading(errors, 0.0, covered, 15)),
        judge(CanaryGate(metric="tpot_p99", max_ratio=1.1), Reading(0.02, 0.02, covered, 15)),
    ]
    c.triggers = triggers(CanaryRollback(), trigger_errors, 0.5, 0.02, 60, 60)
    return c


def test_a_phase_is_promotable_only_after_passing_for_its_whole_duration() -> None:
    state, t = WatchState(), 1000.0
    s = step(CONFIG, state, synthetic(0.0, covered=5.0), t)  # too little data: no count
    assert (s.state.status, s.state.passing_since) == ("watching", None)
    s = step(CONFIG, s.state, synthetic(0.0), t + 1)
    assert s.event == "progress" and s.passed_s == 0.0
    s = step(CONFIG, s.state, synthetic(0.0), t + 2.5)
    assert s.state.status == "watching" and s.passed_s == 1.5
    s = step(CONFIG, s.state, synthetic(0.05), t + 4)  # a failure restarts the count
    assert s.state.passing_since is None
    for now in (t + 5, t + 7):
        s = step(CONFIG, s.state, synthetic(0.0), now)
    assert s.state.status == "watching" and s.passed_s == 2.0
    s = step(CONFIG, s.state, synthetic(0.0), t + 8)
    assert (s.event, s.state.status) == ("promotable", "promotable")
    again = step(CONFIG, s.state, synthetic(0.0), t + 10)
    assert (again.event, again.state.status) == ("progress", "promotable")  # said once
    nxt = promoted(CONFIG, again.state)
    assert (nxt.phase, nxt.status, nxt.passing_since) == (1, "watching", None)
    with pytest.raises(ValueError, match="not promotable"):
        promoted(CONFIG, nxt)


def test_a_tripped_trigger_asks_for_a_rollback_at_once() -> None:
    s = step(CONFIG, WatchState(phase=2), synthetic(0.0), 1.0)
    s = step(CONFIG, s.state, synthetic(0.05, trigger_errors=0.05), 2.0)
    assert (s.event, s.state.status) == ("rollback", "rollback")
    assert "error_rate" in s.reason
    assert step(CONFIG, s.state, synthetic(0.0), 3.0).event == "progress"  # asked once


def test_the_last_promotion_ends_the_watch() -> None:
    state = WatchState(phase=len(CONFIG.phases) - 1, status="promotable")
    assert promoted(CONFIG, state).status == "done"


# --- on the fleet twin --------------------------------------------------------------------


@pytest.fixture
def stack(prometheus_binary: str) -> Iterator[FleetStack]:
    fleet = build_fleet(
        replicas=4, gpus_per_replica=1, gpus_per_node=4, spare_nodes=1, seed=SEED, now=time.time()
    )
    sim = Simulator(fleet, "healthy", SEED)
    running = twin_stack(sim, prometheus_binary, startup_delay_s=0.3, resync_s=0.1, extra_targets=1)
    with running as (stack, _):
        yield stack


def evaluate(stack: FleetStack, namespace: str, deployment: str) -> Comparison:
    source = PrometheusSource(stack.prometheus.url, timeout_s=10)
    try:
        return asyncio.run(compare(source, Scope(), namespace, deployment, CONFIG))
    finally:
        source.close()


def target(stack: FleetStack, scenario: str) -> tuple[str, str]:
    (fault,) = stack.switch(scenario, seed=SEED).faults
    return str(fault.namespace), str(fault.deployment)


@pytest.mark.prometheus
@pytest.mark.slow
def test_the_good_canary_is_promoted_phase_by_phase(stack: FleetStack) -> None:
    namespace, deployment = target(stack, "canary_good")
    state, promotions = WatchState(), []
    deadline = time.monotonic() + 50
    while state.status != "done" and time.monotonic() < deadline:
        s = step(CONFIG, state, evaluate(stack, namespace, deployment), time.time())
        assert s.event != "rollback", s.reason
        state = s.state
        if s.event == "promotable":  # the person's confirmation, in the bot a button
            assert s.passed_s >= s.needed_s
            promotions.append(CONFIG.phases[state.phase].name)
            state = promoted(CONFIG, state)
        time.sleep(0.5)
    assert promotions == [p.name for p in CONFIG.phases]
    assert state.status == "done"


@pytest.mark.prometheus
@pytest.mark.slow
def test_the_bad_canary_asks_for_a_rollback_within_one_interval(stack: FleetStack) -> None:
    namespace, deployment = target(stack, "canary_bad")
    interval = 1.0  # the evaluation interval here (canary.evaluate_every_s in the bot)
    state, filled_at = WatchState(), None
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        c = evaluate(stack, namespace, deployment)
        now = time.monotonic()
        errors = next((t for t in c.triggers if t.metric == "error_rate"), None)
        if filled_at is None and errors is not None and errors.reason != "not enough data yet":
            filled_at = now  # the trigger's window is filled: it can be crossed from here
            assert errors.value is not None and errors.value > CONFIG.rollback.error_rate
        s = step(CONFIG, state, c, time.time())
        state = s.state
        if s.event == "rollback":
            assert filled_at is not None and now - filled_at <= interval
            assert "error_rate" in s.reason
            return
        assert state.status != "promotable"
        time.sleep(interval)
    pytest.fail("no rollback asked for")

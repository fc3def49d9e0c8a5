"""The phases of a watched canary as a pure state machine: a comparison in, the next
state and what to tell people out. The scheduler that calls it every
``canary.evaluate_every_s`` stores the state between calls, so a restart resumes.

* A phase is *promotable* once its own gates have passed without a break for its whole
  duration; then a person promotes it (:func:`promoted`), never this module.
* A failing or waiting gate restarts the count: time with too little data never counts.
* A tripped rollback trigger asks for a rollback at once, at the first evaluation that
  sees it, whatever the phase.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from bot.canary.compare import Comparison
from bot.canary.gates import GateVerdict, overall
from bot.config import CanaryPhase, CanarySettings
from bot.diagnosis.promql import window_seconds

WatchStatus = Literal["watching", "promotable", "rollback", "done"]
Event = Literal["progress", "promotable", "rollback", "done"]


@dataclass(frozen=True)
class WatchState:
    phase: int = 0  # index into the configured phases
    status: WatchStatus = "watching"
    passing_since: float | None = None  # when the phase's gates last started passing


@dataclass(frozen=True)
class Step:
    state: WatchState
    event: Event  # "progress" unless something changed that needs a person
    gates: list[GateVerdict]  # the phase's own gates
    passed_s: float  # how long the phase's gates have passed without a break
    needed_s: float  # the phase's duration
    reason: str = ""


def phase_of(config: CanarySettings, state: WatchState) -> CanaryPhase:
    return config.phases[min(state.phase, len(config.phases) - 1)]


def step(config: CanarySettings, state: WatchState, result: Comparison, now: float) -> Step:
    """One evaluation of the current phase on ``result`` at ``now`` (unix seconds)."""
    phase = phase_of(config, state)
    gates = [g for g in result.gates if g.metric in phase.gates]
    needed = window_seconds(phase.duration)
    if state.status in ("rollback", "done"):
        return Step(state, "progress", gates, 0.0, needed)
    if result.rollback:
        tripped = "; ".join(f"{t.metric} {t.reason}" for t in result.triggers if t.tripped)
        return Step(replace(state, status="rollback"), "rollback", gates, 0.0, needed, tripped)
    passing = not result.problem and bool(gates) and overall(gates) == "pass"
    if not passing:
        return Step(
            replace(state, status="watching", passing_since=None), "progress", gates, 0.0, needed
        )
    since = state.passing_since if state.passing_since is not None else now
    passed = now - since
    if passed >= needed:
        event: Event = "promotable" if state.status != "promotable" else "progress"
        return Step(
            replace(state, status="promotable", passing_since=since), event, gates, passed, needed
        )
    return Step(
        replace(state, status="watching", passing_since=since), "progress", gates, passed, needed
    )


def promoted(config: CanarySettings, state: WatchState) -> WatchState:
    """After a person confirmed the promotion: the next phase, counted from zero."""
    if state.status != "promotable":
        raise ValueError(f"phase {phase_of(config, state).name} is not promotable ({state.status})")
    if state.phase + 1 >= len(config.phases):
        return WatchState(phase=state.phase, status="done")
    return WatchState(phase=state.phase + 1)

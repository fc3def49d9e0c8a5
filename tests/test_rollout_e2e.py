"""A bad rollout, end to end on one world: the fleet twin's kube-state-metrics tells a real
Prometheus which revision each replica runs and when it rolled out; the high_error_rate
diagnosis blames the new revision and recommends rolling it back, not restarting; the
bot's own rollback, carried out against the Kubernetes API stand-in, ends the errors and
the re-diagnosis reads healthy. Errors with no new revision still mean a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from functools import partial

import pytest
from fleet_stack import FleetStack, eventually
from twin_stack import diagnose_stack, execute, twin_stack

from bot.diagnosis.checks.base import HISTORY_FILL
from bot.diagnosis.checks.recent_rollout import CHECK
from bot.diagnosis.engine import DiagnosisOptions, resolve_scope, run_check
from bot.diagnosis.promql import history_query
from bot.diagnosis.runbooks import load_runbooks
from bot.models import CheckResult, Diagnosis, RecommendedAction, Scope
from bot.simulator.fleet import PREVIOUS_VERSION, build_fleet
from bot.simulator.server import Simulator
from bot.simulator.twin import FleetTwin
from bot.sources.prometheus import PrometheusSource

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

WINDOW, WINDOW_S = "6s", 6.0  # scraped every second; the short window keeps the test short
SEED = 5
RUNBOOK = load_runbooks()["high_error_rate"]


@pytest.fixture
def world(prometheus_binary: str) -> Iterator[tuple[FleetStack, FleetTwin]]:
    """4 single-GPU replicas of one Deployment on one node, a spare node to roll onto;
    healthy, with a window of history."""
    fleet = build_fleet(
        replicas=4, gpus_per_replica=1, gpus_per_node=4, spare_nodes=1, seed=SEED, now=time.time()
    )
    sim = Simulator(fleet, "healthy", SEED)
    # every replica and node exporter, and kube-state-metrics
    running = twin_stack(sim, prometheus_binary, startup_delay_s=0.3, resync_s=0.1, extra_targets=1)
    with running as (stack, twin):
        wait_for_window(stack)
        yield stack, twin


def wait_for_window(stack: FleetStack) -> None:
    """Until the diagnosis window holds data (read at one-second steps)."""

    def filled() -> None:
        rows = stack.vector(history_query(Scope(), WINDOW))
        assert rows and rows[0][1] >= HISTORY_FILL * WINDOW_S, rows

    eventually(filled, timeout_s=30, interval_s=0.5)


def run(stack: FleetStack) -> Diagnosis:
    return diagnose_stack(stack, RUNBOOK, WINDOW)


def check(d: Diagnosis, check_id: str = "recent_rollout") -> CheckResult:
    return next(c for c in d.checks if c.id == check_id)


def blames(stack: FleetStack, scope: Scope) -> CheckResult:
    """recent_rollout in ``scope``, once it implicates a revision."""
    source = PrometheusSource(stack.prometheus.url, timeout_s=10)

    async def go() -> CheckResult:
        resolved = await resolve_scope(scope, source)
        options = DiagnosisOptions(window=WINDOW)
        return await run_check("recent_rollout", CHECK.defaults, resolved, source, options)

    try:
        result = asyncio.run(go())
    finally:
        source.close()
    assert result.status in ("warn", "crit"), (scope, result.summary)
    return result


def test_a_bad_rollout_is_rolled_back_and_the_errors_end(
    world: tuple[FleetStack, FleetTwin],
) -> None:
    stack, twin = world
    truth = stack.switch("bad_rollout", seed=SEED)
    assert (truth.cause, truth.action) == ("bad_rollout", "rollback")
    bad_pods = {str(f.pod) for f in truth.faults}
    replicaset = next(iter(bad_pods)).rsplit("-", 1)[0]

    def recommended() -> tuple[Diagnosis, RecommendedAction]:
        d = run(stack)
        findings = [(f.id, f.summary) for f in d.findings]
        assert d.findings[0].id == "bad_rollout", findings
        assert "replica_errors" not in {f.id for f in d.findings}, findings
        assert {a.kind for a in d.actions} == {"rollback"}, d.actions
        # decoding slows at once; wait for the errors too, the runbook's own signal
        assert check(d, "error_rate").status in ("warn", "crit"), check(d, "error_rate")
        assert "errors" in check(d).facts["evidence"], check(d).summary
        (rollback,) = d.actions
        return d, rollback

    d, action = eventually(recommended, timeout_s=30, interval_s=1)
    assert action.target == truth.action_target
    rollout = check(d)
    assert rollout.status in ("warn", "crit"), rollout.summary  # crit once errors fill the window
    assert rollout.facts["revision"] == replicaset
    assert rollout.facts["age_s"] < 60 and rollout.facts["recent"] is True
    assert f"revision {replicaset} rolled out" in action.reason
    assert rollout.facts["age"] in action.reason and "before the rollout" in action.reason
    assert rollout.offenders and {o.target["pod"] for o in rollout.offenders} <= bad_pods

    # however narrow the scope, the revision is judged whole
    bad = next(r for r in stack.simulator.fleet.replicas if r.pod in bad_pods)
    for key, value in (
        ("namespace", bad.namespace),
        ("pod", bad.pod),
        ("deployment", bad.deployment),
        ("model_name", bad.model),
        ("node", bad.node),
    ):
        scope = Scope(labels={key: value})
        narrowed = eventually(partial(blames, stack, scope), timeout_s=10)
        assert narrowed.facts["rollback_targets"] == [truth.action_target], scope

    ok, summary = execute(twin, action)
    assert ok, summary
    assert PREVIOUS_VERSION in summary

    def recovered() -> Diagnosis:
        d = run(stack)
        statuses = [(c.id, c.status, c.summary) for c in d.checks]
        assert d.status == "ok", statuses
        assert [f.id for f in d.findings] == ["healthy"], statuses
        return d

    d = eventually(recovered, timeout_s=45, interval_s=1)
    after = check(d)
    assert after.facts["recent"] is False  # the revision serving again is the old one
    assert after.facts["revision"] != replicaset


def test_errors_without_a_new_revision_still_mean_a_restart(
    world: tuple[FleetStack, FleetTwin],
) -> None:
    stack, _ = world
    truth = stack.switch("error_burst", seed=SEED)
    assert (truth.cause, truth.action) == ("replica_errors", "restart")
    victims = {f"pod/{f.namespace}/{f.pod}" for f in truth.faults}

    def restarted() -> Diagnosis:
        d = run(stack)
        assert d.findings[0].id == "replica_errors", [(f.id, f.summary) for f in d.findings]
        kinds = {a.kind for a in d.actions}
        assert kinds == {"restart"}, d.actions
        assert {a.target for a in d.actions} <= victims
        return d

    d = eventually(restarted, timeout_s=30, interval_s=1)
    rollout = check(d)
    assert rollout.status == "ok", rollout.summary
    assert rollout.facts["recent"] is False and rollout.facts["rollback_targets"] == []
    assert "none in the last 60 min" in rollout.summary

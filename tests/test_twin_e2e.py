"""End to end on one world: the runbook's diagnosis, read from a real Prometheus scraping
the twin's fleet, recommends a scale; the bot's own executor carries it out against the
Kubernetes API stand-in; the re-diagnosis reads healthy, as the verification would."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fleet_stack import FleetStack, eventually
from twin_stack import diagnose_stack, execute, twin_stack

from bot.diagnosis.runbooks import load_runbooks
from bot.models import Diagnosis, RecommendedAction
from bot.simulator.fleet import build_fleet
from bot.simulator.server import Simulator
from bot.simulator.twin import FleetTwin

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

WINDOW = "8s"  # scraped every second; the short window keeps the backlog small


@pytest.fixture
def world(prometheus_binary: str) -> Iterator[tuple[FleetStack, FleetTwin]]:
    """4 single-GPU replicas on one node, 2 spare nodes; arrivals at 1.6x capacity."""
    fleet = build_fleet(
        replicas=4, gpus_per_replica=1, gpus_per_node=4, spare_nodes=2, seed=7, now=time.time()
    )
    sim = Simulator(fleet, "underprovisioned", 7)
    with twin_stack(sim, prometheus_binary, startup_delay_s=1.0, resync_s=0.2) as (stack, twin):
        yield stack, twin


def run(stack: FleetStack) -> Diagnosis:
    return diagnose_stack(stack, load_runbooks()["high_latency"], WINDOW)


def test_the_recommended_scale_fixes_an_underprovisioned_deployment(
    world: tuple[FleetStack, FleetTwin],
) -> None:
    stack, twin = world
    stack.wait_for_history(8)

    def recommended() -> RecommendedAction:
        d = run(stack)
        assert d.findings and d.findings[0].id == "under_provisioned", d.findings
        scale = [a for a in d.actions if a.kind == "scale"]
        assert scale and "replicas" in scale[0].params, d.actions
        return scale[0]

    action = eventually(recommended, timeout_s=30, interval_s=1)
    wanted = int(action.params["replicas"])
    assert wanted > 4
    ok, summary = execute(twin, action)
    assert ok, summary
    assert "minReplicas 4 → " in summary  # the HPA owns the count: its floor moved

    def scraped() -> None:
        assert stack.scalar('count(up{job="vllm"} == 1)') == wanted

    eventually(scraped, timeout_s=20, interval_s=0.5)

    def recovered() -> Diagnosis:
        d = run(stack)
        assert d.status in ("ok", "warn"), [(c.id, c.status, c.summary) for c in d.checks]
        assert "under_provisioned" not in {f.id for f in d.findings}
        return d

    eventually(recovered, timeout_s=60, interval_s=1)

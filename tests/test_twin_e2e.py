"""End to end on one world: the runbook's diagnosis, read from a real Prometheus scraping
the twin's fleet, recommends a scale; the bot's own executor carries it out against the
Kubernetes API stand-in; the re-diagnosis reads healthy, as the verification would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from fleet_stack import FleetStack, eventually

from bot.diagnosis.engine import DiagnosisOptions, diagnose
from bot.diagnosis.runbooks import load_runbooks
from bot.models import Diagnosis, RecommendedAction, Scope
from bot.remediation.actions import get_action
from bot.simulator.fleet import build_fleet
from bot.simulator.prometheus_runner import PrometheusRunner
from bot.simulator.server import Simulator, make_app
from bot.simulator.serving import BackgroundServer
from bot.simulator.twin import FleetTwin
from bot.sources.kubernetes import KubeClient
from bot.sources.prometheus import PrometheusSource

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

WINDOW = "8s"  # scraped every second; the short window keeps the backlog small


@pytest.fixture
def world(prometheus_binary: str) -> Iterator[tuple[FleetStack, FleetTwin]]:
    """4 single-GPU replicas on one node, 2 spare nodes; arrivals at 1.6x capacity."""
    fleet = build_fleet(
        replicas=4, gpus_per_replica=1, gpus_per_node=4, spare_nodes=2, seed=7, now=time.time()
    )
    sim = Simulator(fleet, "underprovisioned", 7)
    server = BackgroundServer(make_app(sim)).start()
    twin = FleetTwin(sim, startup_delay_s=1.0, resync_s=0.2).start()
    prometheus = PrometheusRunner(server.url, scrape_interval_s=1.0, binary=prometheus_binary)
    try:
        prometheus.start()
        prometheus.wait_for_targets(len(fleet.replicas) + len(fleet.nodes))
        yield FleetStack(sim, server, prometheus), twin
    finally:
        prometheus.stop()
        twin.stop()
        server.stop()


def run(stack: FleetStack) -> Diagnosis:
    source = PrometheusSource(stack.prometheus.url, timeout_s=10)
    runbook = load_runbooks()["high_latency"]
    try:
        return asyncio.run(diagnose(runbook, Scope(), source, DiagnosisOptions(window=WINDOW)))
    finally:
        source.close()


def execute(twin: FleetTwin, action: RecommendedAction) -> tuple[bool, str]:
    async def go() -> tuple[bool, str]:
        client = KubeClient.for_server(twin.kubernetes.url, twin.token, twin.fleet.namespace)
        try:
            outcome = await get_action(action.kind).execute(client, action.target, action.params)
        finally:
            await client.close()
        return outcome.ok, outcome.summary

    return asyncio.run(go())


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

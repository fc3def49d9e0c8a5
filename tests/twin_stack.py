"""Test helpers: the fleet twin (simulated fleet + Kubernetes API stand-in as one world),
served over HTTP, optionally with a real Prometheus scraping it; the bot's diagnosis and
executor run against it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fleet_stack import FleetStack

from bot.diagnosis.engine import DiagnosisOptions, diagnose
from bot.diagnosis.runbooks import Runbook
from bot.models import Diagnosis, RecommendedAction, Scope
from bot.remediation.actions import get_action
from bot.simulator.fleet import Fleet, build_fleet
from bot.simulator.prometheus_runner import PrometheusRunner
from bot.simulator.server import Simulator, make_app
from bot.simulator.serving import BackgroundServer
from bot.simulator.twin import FleetTwin
from bot.sources.kubernetes import KubeClient
from bot.sources.prometheus import PrometheusSource


def two_model_fleet() -> Fleet:
    """Two models, 2 replicas of 2 GPUs each on 4-GPU nodes, and 2 spare nodes (seed 3)."""
    return build_fleet(
        replicas=4,
        gpus_per_replica=2,
        gpus_per_node=4,
        models=("llama-3.1-8b", "qwen2.5-7b"),
        spare_nodes=2,
        seed=3,
        now=time.time(),
    )


@contextmanager
def serving_twin(
    sim: Simulator, startup_delay_s: float, resync_s: float
) -> Iterator[tuple[BackgroundServer, FleetTwin]]:
    """``sim`` served over HTTP and its fleet twin running; both stopped on the way out."""
    server = BackgroundServer(make_app(sim)).start()
    try:
        twin = FleetTwin(sim, startup_delay_s=startup_delay_s, resync_s=resync_s).start()
        try:
            yield server, twin
        finally:
            twin.stop()
    finally:
        server.stop()


@contextmanager
def twin_stack(
    sim: Simulator,
    binary: str,
    startup_delay_s: float,
    resync_s: float,
    extra_targets: int = 0,
) -> Iterator[tuple[FleetStack, FleetTwin]]:
    """The fleet twin of ``sim`` and a real Prometheus scraping it every second, once it
    has scraped every replica and node exporter (and ``extra_targets`` more)."""
    with serving_twin(sim, startup_delay_s, resync_s) as (server, twin):
        prometheus = PrometheusRunner(server.url, scrape_interval_s=1.0, binary=binary)
        try:
            prometheus.start()
            fleet = sim.fleet
            prometheus.wait_for_targets(len(fleet.replicas) + len(fleet.nodes) + extra_targets)
            yield FleetStack(sim, server, prometheus), twin
        finally:
            prometheus.stop()


def diagnose_stack(stack: FleetStack, runbook: Runbook, window: str) -> Diagnosis:
    """``runbook``'s diagnosis of the whole fleet, read from the stack's Prometheus."""
    source = PrometheusSource(stack.prometheus.url, timeout_s=10)
    try:
        return asyncio.run(diagnose(runbook, Scope(), source, DiagnosisOptions(window=window)))
    finally:
        source.close()


def act(twin: FleetTwin, kind: str, target: str, params: dict[str, Any]) -> tuple[bool, str]:
    """The bot's own executor for ``kind`` against the twin's Kubernetes API: (ok, summary)."""

    async def go() -> tuple[bool, str]:
        client = KubeClient.for_server(twin.kubernetes.url, twin.token, twin.fleet.namespace)
        try:
            outcome = await get_action(kind).execute(client, target, params)
        finally:
            await client.close()
        return outcome.ok, outcome.summary

    return asyncio.run(go())


def execute(twin: FleetTwin, action: RecommendedAction) -> tuple[bool, str]:
    """A recommended action, carried out by the bot's executor against the twin."""
    return act(twin, action.kind, action.target, action.params)

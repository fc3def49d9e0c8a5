"""The scorecard on a stack whose GPU series carry the workload in ``exported_*`` labels
(kube-prometheus-stack's ``honor_labels: false``) and without Kubernetes access: capacity
is still read, scrape coverage is judged on ``up`` alone, Kubernetes items are unknown."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fleet_stack import FleetStack, start_stack

from bot.models import Scope
from bot.readiness.decide import Decision
from bot.readiness.evidence import Missing
from bot.readiness.items import load_items
from bot.readiness.scorecard import Sources, evaluate
from bot.sources.prometheus import PrometheusSource

pytestmark = [pytest.mark.prometheus]


@pytest.fixture(scope="module")
def exported(prometheus_binary: str) -> Iterator[FleetStack]:
    stack = start_stack(prometheus_binary, honor_labels=False, history_s=12, seed=11)
    yield stack
    stack.prometheus.stop()
    stack.server.stop()


def test_exported_gpu_labels_and_no_kubernetes(exported: FleetStack) -> None:
    async def go() -> dict[str, Decision]:
        prometheus = PrometheusSource(exported.prometheus.url, timeout_s=10)
        try:
            sources = Sources(
                scope=Scope(),
                prometheus=prometheus,
                kube=Missing("Kubernetes not configured"),
                audit=Missing("no database"),
                runbooks=frozenset(),
                window="10s",
                lookback="20s",
            )
            card = await evaluate(load_items(), sources, {}, datetime.now(UTC))
        finally:
            await prometheus.aclose()
        return {r.item.id: r.decision for r in card.rows}

    got = asyncio.run(go())
    headroom = got["fleet_headroom"]
    assert headroom.status == "pass", headroom
    assert "GPU busy" in headroom.evidence[1]
    scrape = got["metrics_collection"]
    assert scrape.status == "pass" and "judged on up alone" in scrape.evidence[0], scrape
    for item in ("multi_zone", "max_model_len_explicit"):
        assert (got[item].status, got[item].evidence) == ("unknown", ("Kubernetes not configured",))
    canary = got["canary_pipeline"]  # nor the database, where the canary watches are
    assert (canary.status, canary.evidence) == (
        "unknown",
        ("Kubernetes not configured", "canary watches not read: no database given"),
    )
    assert got["rollback_tested"].evidence == ("no database",)

"""Shared fixtures: a simulated fleet served over HTTP and a real Prometheus scraping it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fleet_stack import FleetStack, require_binary, start_stack

from bot.simulator.prometheus_runner import find_prometheus


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_binary("prometheus", find_prometheus())


@pytest.fixture(scope="module")
def mixed_fleet(prometheus_binary: str) -> Iterator[FleetStack]:
    """8 replicas on 4 nodes, half on old vLLM names and the old DCGM `Hostname` label."""
    stack = start_stack(prometheus_binary, legacy_fraction=0.5)
    yield stack
    stack.prometheus.stop()
    stack.server.stop()

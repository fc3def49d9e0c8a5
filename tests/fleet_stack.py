"""Test helpers: a simulated fleet served over HTTP with a real Prometheus scraping it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.diagnosis.promql import history_query
from bot.models import Scope
from bot.simulator.fleet import build_fleet
from bot.simulator.prometheus_runner import PrometheusRunner
from bot.simulator.scenarios import GroundTruth
from bot.simulator.server import Simulator, make_app
from bot.simulator.serving import BackgroundServer

T = TypeVar("T")


def require_binary(name: str, found: str | None) -> str:
    """Under CI a missing binary is a failure; on a workstation it skips with the fix."""
    if found:
        return found
    package = {"promtool": "prometheus"}.get(name, name)
    message = f"'{name}' is not installed (Debian package {package}); scripts/install.sh does it"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def eventually(check: Callable[[], T], timeout_s: float = 30.0, interval_s: float = 0.5) -> T:
    """Retry ``check`` until it stops raising AssertionError (or returns), then return its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(interval_s)


@dataclass
class FleetStack:
    simulator: Simulator
    server: BackgroundServer
    prometheus: PrometheusRunner

    def switch(self, scenario: str, seed: int = 7) -> GroundTruth:
        truth: GroundTruth = self.server.call(lambda: self.simulator.switch(scenario, seed))
        return truth

    def vector(self, promql: str) -> list[tuple[dict[str, str], float]]:
        return [(r["metric"], float(r["value"][1])) for r in self.prometheus.query(promql)]

    def scalar(self, promql: str) -> float:
        result = self.vector(promql)
        assert len(result) == 1, f"{promql} returned {len(result)} series: {result}"
        return result[0][1]

    def history_s(self) -> float:
        """Seconds of fleet data Prometheus holds (what a diagnosis checks its window against)."""
        rows = self.vector(history_query(Scope(), "10m"))
        return rows[0][1] if rows else 0.0

    def wait_for_history(self, seconds: float) -> None:
        """Until a rate over ``seconds`` is a fact, not 'not enough history'."""

        def filled() -> None:
            assert self.history_s() >= seconds, f"{self.history_s():.0f} s of {seconds:g} s"

        eventually(filled, timeout_s=seconds + 30)


def start_stack(
    binary: str,
    rule_files: list[Path] | None = None,
    alertmanagers: list[str] | None = None,
    history_s: float = 0.0,
    honor_labels: bool = True,
    **fleet_args: Any,
) -> FleetStack:
    """A fleet and a Prometheus scraping it; ``history_s``: wait until it holds that much."""
    args: dict[str, Any] = {"replicas": 8, "gpus_per_replica": 4, "seed": 7} | fleet_args
    fleet = build_fleet(now=time.time(), **args)
    simulator = Simulator(fleet, "healthy", args["seed"])
    server = BackgroundServer(make_app(simulator)).start()
    prometheus = PrometheusRunner(
        server.url,
        scrape_interval_s=1.0,
        binary=binary,
        rule_files=rule_files,
        alertmanagers=alertmanagers,
        honor_labels=honor_labels,
    )
    try:
        prometheus.start()
        prometheus.wait_for_targets(len(fleet.replicas) + len(fleet.nodes))
    except Exception:
        prometheus.stop()
        server.stop()
        raise
    stack = FleetStack(simulator, server, prometheus)
    if history_s:
        stack.wait_for_history(history_s)
    return stack

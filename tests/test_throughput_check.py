"""The throughput check counts what clients abandoned as demand, and sizes on it.

The metrics source here answers the check's PromQL from a handful of fleet-wide numbers
(served and aborted completions per second, queue growth, queue, replicas), reading each
expression for what it asks: ``request_success_total`` with ``finished_reason="abort"``
is the abandoned rate, with ``!="abort"`` the served one, with no reason both. What the
check concludes from real engines is proven against a real Prometheus in
test_twin_abandon.py and test_diagnosis_accuracy.py.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass

from bot.diagnosis import sizing
from bot.diagnosis.engine import DiagnosisOptions, run_check
from bot.diagnosis.metric_names import REQUEST_SUCCESS, WAITING
from bot.models import CheckResult, Scope
from bot.sources.prometheus import Sample

PART = re.compile(r'label_replace\((?P<expr>.+?), "stat", "(?P<name>\w+)", "", ""\)')


@dataclass
class Fleet:
    served: float  # completions per second that were served (stop, length, error)
    aborted: float  # completions per second that were aborts
    growth: float  # queue growth, requests per second
    queued: float
    replicas: int

    async def query(self, promql: str) -> list[Sample]:
        if "min_over_time(timestamp(" in promql:
            return [Sample({}, 3600.0)]  # the window is full of history
        return [Sample({"stat": m["name"]}, self.value(m["expr"])) for m in PART.finditer(promql)]

    def value(self, expr: str) -> float:
        if "deriv(" in expr:
            return self.growth
        if expr.startswith("count("):
            return float(self.replicas)
        if REQUEST_SUCCESS in expr:
            if 'finished_reason="abort"' in expr:
                return self.aborted
            if 'finished_reason!="abort"' in expr:
                return self.served
            return self.served + self.aborted
        if WAITING in expr:
            return self.queued
        raise AssertionError(f"unexpected expression {expr}")


def throughput(fleet: Fleet) -> CheckResult:
    return asyncio.run(run_check("throughput", {}, Scope(), fleet, DiagnosisOptions(window="1m")))


def test_demand_counts_abandoned_requests_once_the_queue_stops_growing() -> None:
    # 4 replicas of 10 req/s, arrivals at 1.6x: each queue is as long as its clients
    # wait, so it no longer grows; the 24 req/s beyond capacity are aborted
    result = throughput(Fleet(served=40.0, aborted=24.0, growth=0.0, queued=2400, replicas=4))
    assert result.status == "warn", result.summary
    f = result.facts
    assert f["saturated"] is True
    assert math.isclose(f["arrival_rps"], 64.0) and math.isclose(result.value or 0, 64.0)
    assert math.isclose(f["aborted_rps"], 24.0)
    assert math.isclose(f["per_replica_rps"], 10.0), "capacity is what replicas serve"
    assert "abandoned 24.0/s" in result.summary and "demand 64.0 req/s" in result.summary
    plan = sizing.for_throughput(f["replicas"], f["arrival_rps"], f["per_replica_rps"])
    assert plan is not None and plan.replicas >= math.ceil(4 * 1.6), plan
    assert plan.replicas == 9  # 64 req/s x 1.3 / 10 req/s


def test_demand_is_served_plus_aborted_plus_queue_growth() -> None:
    # on the way to the abandon regime: the queue grows, the first clients give up
    result = throughput(Fleet(served=40.0, aborted=6.0, growth=18.0, queued=1200, replicas=4))
    assert result.facts["saturated"] is True
    assert math.isclose(result.facts["arrival_rps"], 64.0)
    assert "queue growing 18.0/s" in result.summary and "abandoned 6.0/s" in result.summary


def test_a_healthy_fleet_with_ordinary_cancellations_is_not_saturated() -> None:
    result = throughput(Fleet(served=24.0, aborted=0.05, growth=0.0, queued=1.0, replicas=4))
    assert result.status == "ok" and result.facts["saturated"] is False
    assert math.isclose(result.facts["arrival_rps"], 24.05)
    assert result.summary == "24.0 req/s served by 4 replicas"


def test_aborts_without_a_queue_are_not_saturation() -> None:
    # clients cancelling (or an engine failing them) with nothing waiting: not capacity
    result = throughput(Fleet(served=20.0, aborted=2.0, growth=0.0, queued=0.0, replicas=4))
    assert result.facts["saturated"] is False

"""Deadlines hold: a diagnosis against a Prometheus that answers some queries late returns,
and the CLI exits, within its deadline plus start-up; the late queries are cancelled (the
connection is closed at the deadline), never retried, and ``duration_s`` is the wall time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from delaying_proxy import DelayingProxy
from fleet_stack import FleetStack

pytestmark = [pytest.mark.prometheus]

DELAY_S = 15.0
DEADLINE_S = 3.0
START_UP_S = 2.5  # interpreter, imports and the report, on a loaded 2-core machine


@pytest.fixture
def proxy(mixed_fleet: FleetStack) -> Iterator[DelayingProxy]:
    p = DelayingProxy(mixed_fleet.prometheus.url, DELAY_S, "histogram_quantile").start()
    yield p
    p.stop()


def test_cli_exits_within_its_deadline_and_cancels_late_queries(proxy: DelayingProxy) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "diagnose", "high_latency", "--format", "json",
         "--prometheus", proxy.url, "--timeout", f"{DEADLINE_S:g}", "--window", "30s"],
        capture_output=True, text=True, timeout=DELAY_S * 3,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert elapsed < DEADLINE_S + START_UP_S, f"exited after {elapsed:.1f}s"
    assert report["duration_s"] <= DEADLINE_S + 0.5
    assert report["duration_s"] >= DEADLINE_S - 0.1  # the wall time, late checks included
    checks = {c["id"]: c for c in report["checks"]}
    for late in ("ttft_p99", "tpot_p99", "long_prefills"):
        assert checks[late]["status"] == "unknown"
        assert f"{DEADLINE_S:g}s" in checks[late]["summary"], checks[late]["summary"]
    assert checks["queue_depth"]["status"] != "unknown"  # quick queries still answer
    slow = proxy.slow_queries()
    assert slow, "the late queries reached Prometheus"
    # each late query sent once (no retry), and its connection closed at the deadline
    assert len({s.query for s in slow}) == len(slow)
    for s in slow:
        assert s.hung_up is not None, f"still waiting for: {s.query[:80]}"
        assert s.hung_up - s.arrived < DEADLINE_S + 0.5

"""Little history: on a fleet seconds old, a rate or quantile over a window the data does
not fill is reported as 'not enough history (N s of W)', not as a number; gauges count.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest
from fleet_stack import FleetStack, start_stack

from bot.diagnosis.engine import DiagnosisOptions, diagnose
from bot.diagnosis.runbooks import load_runbooks
from bot.models import Scope
from bot.sources.prometheus import PrometheusSource

pytestmark = [pytest.mark.prometheus]


@pytest.fixture(scope="module")
def young(prometheus_binary: str) -> Iterator[FleetStack]:
    """A fleet whose Prometheus has held its series for a few seconds only."""
    stack = start_stack(prometheus_binary, seed=21)
    yield stack
    stack.prometheus.stop()
    stack.server.stop()


def test_rates_over_an_unfilled_window_are_not_reported_as_numbers(young: FleetStack) -> None:
    source = PrometheusSource(young.prometheus.url, timeout_s=10)
    runbook = load_runbooks()["high_latency"]
    d = asyncio.run(diagnose(runbook, Scope(), source, DiagnosisOptions(window="5m")))
    source.close()
    by_id = {c.id: c for c in d.checks}
    for rated in ("throughput", "ttft_p99", "tpot_p99", "long_prefills"):
        check = by_id[rated]
        assert check.status == "unknown", (rated, check.summary)
        found = re.search(r"not enough history \((\d+) s of 300 s\)", check.summary)
        assert found, check.summary
        assert 0 <= int(found.group(1)) < 120
        assert check.value is None
    for gauge in ("queue_depth", "kv_cache_usage"):
        assert by_id[gauge].status != "unknown", by_id[gauge].summary  # gauges still count
        assert by_id[gauge].value is not None

"""How many PromQL queries each shipped runbook sends, against a real Prometheus.

A diagnosis' time on a large fleet is its Prometheus work, so the number of queries per
runbook is budgeted here: a change that sends more fails, and one that sends fewer must
lower the budget (so the gain is kept). Each distinct query is sent once per diagnosis.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest
from fleet_stack import FleetStack, start_stack

from bot.diagnosis.checks.base import CheckContext, is_context, parts_of
from bot.diagnosis.engine import DiagnosisOptions, diagnose
from bot.diagnosis.runbooks import load_runbooks
from bot.models import Scope
from bot.sources.prometheus import PrometheusSource, Sample

WINDOW = "20s"
# runbook → queries one diagnosis sends on a healthy fleet with enough history
BUDGET = {
    "fleet_status": 12,
    "gpu_hardware_failure": 6,
    "gpu_thermal": 6,
    "high_error_rate": 8,
    "high_latency": 10,
    "kv_cache_pressure": 7,
    "model_quality_regression": 7,
    "oom_crashes": 7,
    "preemption_storm": 6,
    "queue_backlog": 7,
    "replica_down": 5,
    "tpot_slo": 9,
    "ttft_slo": 8,
}


class CountingSource:
    """Prometheus, counting what reaches it."""

    def __init__(self, url: str) -> None:
        self.prometheus = PrometheusSource(url, timeout_s=20)
        self.sent: Counter[str] = Counter()

    async def query(self, promql: str) -> list[Sample]:
        self.sent[promql] += 1
        return await self.prometheus.query(promql)


@pytest.fixture(scope="module")
def fleet(prometheus_binary: str) -> Iterator[FleetStack]:
    stack = start_stack(prometheus_binary, legacy_fraction=0.5, history_s=25)
    yield stack
    stack.prometheus.stop()
    stack.server.stop()


def sent_by(runbook_id: str, fleet: FleetStack) -> Counter[str]:
    source = CountingSource(fleet.prometheus.url)
    options = DiagnosisOptions(window=WINDOW, check_timeout_s=30)
    diagnosis = asyncio.run(diagnose(load_runbooks()[runbook_id], Scope(), source, options))
    # every check answered (so none stopped early); this stack has no kube-state-metrics
    blind = [(c.id, c.summary) for c in diagnosis.checks if c.status == "unknown"]
    assert all(is_context(check_id) for check_id, _ in blind), blind
    return source.sent


def test_every_shipped_runbook_has_a_budget() -> None:
    assert set(BUDGET) == set(load_runbooks())


@pytest.mark.parametrize("runbook_id", sorted(BUDGET))
def test_queries_per_diagnosis_within_budget(runbook_id: str, fleet: FleetStack) -> None:
    sent = sent_by(runbook_id, fleet)
    repeated = {q: n for q, n in sent.items() if n > 1}
    assert not repeated, f"sent more than once in one diagnosis: {repeated}"
    count = sum(sent.values())
    assert count <= BUDGET[runbook_id], (
        f"{runbook_id} sends {count} queries, budget {BUDGET[runbook_id]}:\n" + "\n".join(sent)
    )
    assert count == BUDGET[runbook_id], (
        f"{runbook_id} now sends {count} queries: lower its budget to keep the gain"
    )


def test_combined_queries_split_back_into_their_parts(fleet: FleetStack) -> None:
    """Parts answered as one query are the same series as each asked alone."""
    parts = ("topk(2, vllm:num_requests_running)", "count(vllm:num_requests_running)", "up")
    source = CountingSource(fleet.prometheus.url)
    ctx = CheckContext(metrics=source, scope=Scope(), window=WINDOW, params={})
    combined = asyncio.run(ctx.query_all(*parts))
    assert list(source.sent) == [ctx.queries[0]] and parts_of(ctx.queries[0]) == list(parts)
    for part, answer in zip(parts, combined, strict=True):
        alone = asyncio.run(source.prometheus.query(part))
        assert sorted(str(s.labels) for s in answer) == sorted(str(s.labels) for s in alone)
        assert answer, part

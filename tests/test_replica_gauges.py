"""Per-replica gauges read from one shared selector: the right name wins, levels count."""

from __future__ import annotations

import asyncio

import pytest

from bot.diagnosis.checks.base import (
    CheckContext,
    Thresholds,
    gauges_query,
    per_target_of,
    replica_gauge,
)
from bot.diagnosis.metric_names import KV_USAGE, WAITING
from bot.models import Scope
from bot.sources.prometheus import Sample


class OneAnswer:
    """Prometheus answering the gauges query, and nothing else."""

    def __init__(self, rows: list[Sample]) -> None:
        self.rows = rows
        self.sent: list[str] = []

    async def query(self, promql: str) -> list[Sample]:
        self.sent.append(promql)
        assert promql == gauges_query(Scope()), promql
        return self.rows


def row(name: str, pod: str, value: float) -> Sample:
    return Sample({"__name__": name, "namespace": "prod", "pod": pod}, value)


def test_a_replica_exposing_both_names_counts_once_with_the_new_one() -> None:
    new, old = KV_USAGE
    source = OneAnswer(
        [row(old, "a", 0.2), row(new, "a", 0.9), row(old, "b", 0.5), row(WAITING, "a", 7)]
    )
    ctx = CheckContext(metrics=source, scope=Scope(), window="5m", params={})
    kv = asyncio.run(replica_gauge(ctx, KV_USAGE))
    assert sorted((s.labels["pod"], s.value) for s in kv) == [("a", 0.9), ("b", 0.5)]
    assert all("__name__" not in s.labels for s in kv)
    waiting = asyncio.run(replica_gauge(ctx, WAITING))
    assert [(s.labels["pod"], s.value) for s in waiting] == [("a", 7)]


def test_a_metric_outside_the_shared_selector_is_refused() -> None:
    ctx = CheckContext(metrics=OneAnswer([]), scope=Scope(), window="5m", params={})
    with pytest.raises(ValueError, match="not an instant gauge"):
        asyncio.run(replica_gauge(ctx, "vllm:num_preemptions_total"))


def test_levels_are_counted_over_every_replica_not_only_the_worst_few() -> None:
    values = [0.99, 0.97, 0.96, 0.9, 0.88, 0.86, 0.5, 0.1]
    samples = [Sample({"pod": f"p{i}"}, v) for i, v in enumerate(values)]
    result = per_target_of(samples, Thresholds(warn=0.85, crit=0.95))
    assert result is not None
    assert (result.total, result.warn, result.crit) == (8, 6, 3)
    assert [o.value for o in result.offenders] == values[:5]
    assert per_target_of([], Thresholds(warn=1, crit=2)) is None
    low = per_target_of(samples, Thresholds(warn=0.5, crit=0.2, above=False))
    assert low is not None and (low.warn, low.crit, low.worst) == (2, 1, 0.1)

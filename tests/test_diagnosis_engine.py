"""The diagnosis engine's guarantees: concurrent, streaming, bounded, never crashing.

The metrics source here is a stand-in implementing the MetricsSource protocol with
controllable latency and failures; what the checks conclude from real data is proven
against a real Prometheus in test_diagnosis_accuracy.py.
"""

from __future__ import annotations

import asyncio
import time

from bot.diagnosis.checks.base import gauges_query
from bot.diagnosis.engine import DiagnosisOptions, diagnose
from bot.diagnosis.metric_names import WAITING
from bot.diagnosis.runbooks import load_runbooks
from bot.models import CheckResult, Scope
from bot.sources.prometheus import MetricsError, Sample

RUNBOOKS = load_runbooks()


class SlowSource:
    """Answers every query with nothing after ``delay`` seconds, or fails as told."""

    def __init__(self, delay: float = 0.0, fail: str | None = None, boom: str | None = None):
        self.delay = delay
        self.fail = fail
        self.boom = boom
        self.queries: list[str] = []

    async def query(self, promql: str) -> list[Sample]:
        self.queries.append(promql)
        await asyncio.sleep(self.delay)
        if self.fail and self.fail in promql:
            raise MetricsError("Prometheus at http://prom refused the query: bad_data")
        if self.boom and self.boom in promql:
            raise RuntimeError("bug in a check")
        return []


def test_checks_run_concurrently_and_stream_as_they_finish() -> None:
    runbook = RUNBOOKS["high_latency"]
    seen: list[tuple[str, int, int]] = []

    def on_check(result: CheckResult, done: int, total: int) -> None:
        seen.append((result.id, done, total))

    start = time.monotonic()
    d = asyncio.run(diagnose(runbook, Scope(), SlowSource(delay=0.3), on_check=on_check))
    elapsed = time.monotonic() - start
    n = len(runbook.checks)
    assert [x[1] for x in seen] == list(range(1, n + 1))
    assert {x[0] for x in seen} == {c.id for c in runbook.checks}
    assert all(x[2] == n for x in seen)
    assert elapsed < 0.3 * n / 2, f"{elapsed:.2f}s: checks did not overlap"
    assert [c.id for c in d.checks] == [c.id for c in runbook.checks]  # runbook order


def test_missing_metrics_are_unknown_with_the_reason() -> None:
    d = asyncio.run(diagnose(RUNBOOKS["kv_cache_pressure"], Scope(), SlowSource()))
    kv = next(c for c in d.checks if c.id == "kv_cache_usage")
    assert kv.status == "unknown"
    assert "vllm:kv_cache_usage_perc" in kv.summary and "vllm:gpu_cache_usage_perc" in kv.summary
    assert kv.queries, "the queries that found nothing are reported"


def test_slow_prometheus_times_out_checks_instead_of_hanging() -> None:
    options = DiagnosisOptions(check_timeout_s=0.2)
    start = time.monotonic()
    d = asyncio.run(diagnose(RUNBOOKS["gpu_thermal"], Scope(), SlowSource(delay=5), options))
    assert time.monotonic() - start < 2
    assert all(c.status == "unknown" and "timed out" in c.summary for c in d.checks)


def test_refused_query_and_a_crashing_check_only_affect_themselves() -> None:
    source = SlowSource(fail="DCGM_FI_DEV_GPU_TEMP", boom="DCGM_FI_DEV_XID_ERRORS")
    d = asyncio.run(diagnose(RUNBOOKS["gpu_thermal"], Scope(), source))
    by_id = {c.id: c for c in d.checks}
    assert "refused the query" in by_id["gpu_temperature"].summary
    assert "failed unexpectedly (RuntimeError)" in by_id["xid_errors"].summary
    assert by_id["tpot_p99"].status == "unknown"  # no data, but ran
    assert d.findings[-1].id == "blind_spots"


class QueuedSource(SlowSource):
    """Every replica has 8 requests waiting (far below the shipped warning level of 50)."""

    async def query(self, promql: str) -> list[Sample]:
        await super().query(promql)
        if promql != gauges_query(Scope()):
            return []
        return [Sample({"__name__": WAITING, "pod": f"p{i}"}, 8.0) for i in range(3)]


def test_config_overrides_win_over_runbook_and_defaults() -> None:
    def queue(options: DiagnosisOptions) -> CheckResult:
        d = asyncio.run(diagnose(RUNBOOKS["queue_backlog"], Scope(), QueuedSource(), options))
        return next(c for c in d.checks if c.id == "queue_depth")

    assert queue(DiagnosisOptions()).status == "ok"
    overridden = queue(DiagnosisOptions(overrides={"queue_depth": {"warn": 7, "crit": 9}}))
    assert overridden.status == "warn"
    assert "warning on 3/3 replicas (warning >= 7" in overridden.summary

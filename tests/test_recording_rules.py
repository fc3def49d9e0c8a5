"""Recording rules: the checks read Prometheus-maintained per-replica rates and conclude
exactly what they conclude from raw series."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fleet_stack import FleetStack, eventually, start_stack

from bot.config import Settings
from bot.diagnosis.engine import DiagnosisOptions, diagnose, options_from_settings
from bot.diagnosis.recording import RECORDINGS, recording_group
from bot.diagnosis.runbooks import load_runbooks
from bot.models import Diagnosis, Scope
from bot.sources.prometheus import PrometheusSource

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

WINDOW = "20s"
RUNBOOKS = load_runbooks()


@pytest.fixture(scope="module")
def stack(prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetStack]:
    rules = tmp_path_factory.mktemp("rules") / "recording.yml"
    rules.write_text(yaml.safe_dump({"groups": [recording_group(WINDOW)]}))
    s = start_stack(
        prometheus_binary, rule_files=[rules], legacy_fraction=0.5, seed=3, history_s=20
    )
    yield s
    s.prometheus.stop()
    s.server.stop()


def run(stack: FleetStack, runbook_id: str, recorded: bool) -> Diagnosis:
    source = PrometheusSource(stack.prometheus.url)
    options = DiagnosisOptions(window=WINDOW, recorded_window=WINDOW if recorded else None)
    try:
        return asyncio.run(diagnose(RUNBOOKS[runbook_id], Scope(), source, options))
    finally:
        source.close()


def test_every_recording_is_evaluated_without_error(stack: FleetStack) -> None:
    names = [rule["record"] for rule in recording_group(WINDOW)["rules"]]

    def recorded() -> None:
        for name in names:
            series = stack.vector(f"count({name})")
            assert series and series[0][1] > 0, f"{name} has no series"

    eventually(recorded, timeout_s=30)


@pytest.mark.parametrize(
    ("scenario", "runbook"),
    [("underprovisioned", "high_latency"), ("error_burst", "high_error_rate"),
     ("kv_cache_pressure", "preemption_storm")],
)  # fmt: skip
def test_recorded_and_raw_reach_the_same_conclusion(
    stack: FleetStack, scenario: str, runbook: str
) -> None:
    truth = stack.switch(scenario, seed=3)

    def same() -> None:
        raw = run(stack, runbook, recorded=False)
        fast = run(stack, runbook, recorded=True)
        assert truth.cause in [f.id for f in raw.findings] or runbook == "preemption_storm"
        assert [f.id for f in fast.findings] == [f.id for f in raw.findings]
        assert {(a.kind, a.target) for a in fast.actions} == {
            (a.kind, a.target) for a in raw.actions
        }
        assert [c.status for c in fast.checks] == [c.status for c in raw.checks]
        used = " ".join(q for c in fast.checks for q in c.queries)
        assert "vllm_chatops:" in used
        if runbook == "high_latency":  # quantiles from one series a replica, not a bucket
            assert "vllm_chatops:ttft_seconds:p99_rate" in used
            assert "vllm_chatops_model:ttft_seconds_bucket:rate" in used
        assert "vllm_chatops:" not in " ".join(q for c in raw.checks for q in c.queries)

    eventually(same, timeout_s=60, interval_s=2)


def test_scope_on_a_label_the_recording_drops_falls_back_to_raw(stack: FleetStack) -> None:
    source = PrometheusSource(stack.prometheus.url)
    options = DiagnosisOptions(window=WINDOW, recorded_window=WINDOW)
    try:
        d = asyncio.run(
            diagnose(RUNBOOKS["ttft_slo"], Scope(labels={"job": "vllm"}), source, options)
        )
    finally:
        source.close()
    ttft = next(c for c in d.checks if c.id == "ttft_p99")
    assert ttft.status != "unknown"
    assert all("vllm_chatops:" not in q for q in ttft.queries)


def test_recording_group_is_valid_prometheus(tmp_path: Path) -> None:
    group = recording_group("5m")
    names = [r["record"] for r in group["rules"]]
    histograms = [r for r in RECORDINGS if r.histogram]
    assert len(names) == len(set(names)) == len(RECORDINGS) + 2 * len(histograms) > 6
    assert all(n.startswith("vllm_chatops") and n.endswith("rate5m") for n in names)


def test_by_default_recorded_rates_are_read_where_prometheus_has_them(
    stack: FleetStack, mixed_fleet: FleetStack
) -> None:
    """`recording_rules: auto` (the default): read them where loaded, raw series elsewhere."""
    settings = Settings(diagnosis_window=WINDOW)
    assert settings.recording_rules == "auto"
    options = options_from_settings(settings)

    def queries(fleet: FleetStack) -> str:
        source = PrometheusSource(fleet.prometheus.url)
        try:
            d = asyncio.run(diagnose(RUNBOOKS["high_latency"], Scope(), source, options))
        finally:
            source.close()
        return " ".join(q for c in d.checks for q in c.queries)

    assert "vllm_chatops:" in queries(stack)  # this Prometheus loads the recording rules
    assert "vllm_chatops:" not in queries(mixed_fleet)  # this one does not
    never = options_from_settings(Settings(diagnosis_window=WINDOW, recording_rules=False))
    source = PrometheusSource(stack.prometheus.url)
    try:
        d = asyncio.run(diagnose(RUNBOOKS["high_latency"], Scope(), source, never))
    finally:
        source.close()
    assert "vllm_chatops:" not in " ".join(q for c in d.checks for q in c.queries)

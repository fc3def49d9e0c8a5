"""Canary gates as pure rules: both numbers, the bound that failed, and waiting — never a
pass — while the new revision's data does not fill the window."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bot.canary.compare import revisions_of
from bot.canary.gates import Reading, judge, overall, triggers
from bot.canary.target import TargetError, parse_target
from bot.config import CanaryGate, CanaryRollback, CanarySettings, Settings
from bot.sources.prometheus import Sample

FULL = 600.0


def reading(new: float | None, old: float | None, covered: float = FULL) -> Reading:
    return Reading(new, old, covered, FULL)


def test_the_defaults_are_the_checklists() -> None:
    config = Settings().canary
    errors = config.gate("error_rate")
    assert errors is not None and errors.max == 0.001
    for latency in ("ttft_p99", "tpot_p99"):
        gate = config.gate(latency)
        assert gate is not None and gate.max_ratio == 1.1
    phases = [(p.name, p.traffic_percent, p.duration) for p in config.phases]
    assert phases[0] == ("canary", 5, "1h")
    assert [p[1:] for p in phases[1:]] == [(25, "30m"), (50, "30m"), (100, "30m")]
    assert "gpu_memory_leak" in config.phases[0].gates
    assert {"throughput", "kv_usage"} <= set(config.phases[2].gates)  # "same + GPU metrics"
    assert config.rollback.error_rate == 0.01 and config.rollback.slo_factor == 2.0


def test_settings_refuse_a_phase_naming_an_unconfigured_gate() -> None:
    with pytest.raises(ValidationError, match="no gate configured for throughput"):
        CanarySettings(
            gates=[CanaryGate(metric="error_rate", max=0.01)],
            phases=[
                {"name": "one", "traffic_percent": 5, "duration": "1h", "gates": ["throughput"]}
            ],
        )
    with pytest.raises(ValidationError, match="set max, max_ratio"):
        CanaryGate(metric="kv_usage")


def test_a_gate_passes_with_both_numbers() -> None:
    verdict = judge(CanaryGate(metric="tpot_p99", max_ratio=1.1), reading(0.021, 0.020))
    assert (verdict.status, verdict.new, verdict.old) == ("pass", 0.021, 0.020)


def test_a_gate_fails_naming_the_bound() -> None:
    slow = judge(CanaryGate(metric="tpot_p99", max_ratio=1.1), reading(0.032, 0.020))
    assert slow.status == "fail" and "x1.60" in slow.reason and "1.1x" in slow.reason
    errors = judge(CanaryGate(metric="error_rate", max=0.001), reading(0.05, 0.0005))
    assert errors.status == "fail" and "5.00 %" in errors.reason
    leak = judge(CanaryGate(metric="gpu_memory_leak", max_increase=256), reading(9000.0, 0.0))
    assert leak.status == "fail" and "9000 MiB/h" in leak.reason
    slower = judge(CanaryGate(metric="throughput", min_ratio=0.9), reading(80.0, 100.0))
    assert slower.status == "fail" and "floor 0.9x" in slower.reason


def test_a_gate_waits_on_a_window_the_data_does_not_fill() -> None:
    gate = CanaryGate(metric="error_rate", max=0.001)
    young = judge(gate, reading(0.5, 0.0, covered=120.0))  # even a bad number waits
    assert young.status == "wait"
    assert young.reason == "not enough data yet (2 min of 10 min on the new revision)"
    assert judge(gate, reading(None, 0.0)).status == "wait"
    relative = CanaryGate(metric="ttft_p99", max_ratio=1.1)
    assert judge(relative, reading(0.5, None)).status == "wait"


def test_overall_and_triggers() -> None:
    gate = CanaryGate(metric="error_rate", max=0.001)
    ok, bad = judge(gate, reading(0.0, 0.0)), judge(gate, reading(0.1, 0.0))
    waiting = judge(gate, reading(0.0, 0.0, covered=1.0))
    assert overall([ok]) == "pass" and overall([ok, waiting]) == "wait"
    assert overall([waiting, bad]) == "fail"
    tripped = triggers(CanaryRollback(), 0.05, 0.5, 0.25, 60.0, 60.0)
    assert [t.tripped for t in tripped] == [True, False, True]  # TPOT 0.25 s > 2 x 0.1 s
    early = triggers(CanaryRollback(), 0.05, 0.5, 0.25, 10.0, 60.0)
    assert not any(t.tripped for t in early)


def test_revisions_newest_serving_first() -> None:
    created = [
        Sample({"replicaset": "d-old"}, 100.0),
        Sample({"replicaset": "d-new"}, 300.0),
        Sample({"replicaset": "d-gone"}, 200.0),
    ]
    replicas = [
        Sample({"replicaset": "d-old"}, 3),
        Sample({"replicaset": "d-new"}, 1),
        Sample({"replicaset": "d-gone"}, 0),
    ]
    assert [r.replicaset for r in revisions_of(created, replicas)] == ["d-new", "d-old"]


def test_targets() -> None:
    assert parse_target("inference/llama-3-1-8b") == ("inference", "llama-3-1-8b")
    assert parse_target("deployment/prod/x") == ("prod", "x")
    for bad in ("llama", "a/b/c", "Prod/x", 'ns/x"}'):
        with pytest.raises(TargetError):
            parse_target(bad)


def test_an_unreachable_prometheus_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    url = "http://127.0.0.1:1"  # nothing listens on port 1
    assert main(["canary", "inference/x", "--prometheus", url, "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "unknown" and "Prometheus did not answer" in out["problem"]


def test_a_p99_waits_for_enough_requests() -> None:
    gate = CanaryGate(metric="ttft_p99", max_ratio=1.1)
    few = Reading(0.9, 0.5, FULL, FULL, new_requests=40, old_requests=5000)
    verdict = judge(gate, few, min_requests=200)
    assert verdict.status == "wait"
    assert (
        verdict.reason == "not enough data yet (40 of 200 requests on the new revision for a p99)"
    )
    enough = Reading(0.9, 0.5, FULL, FULL, new_requests=400, old_requests=5000)
    assert judge(gate, enough, min_requests=200).status == "fail"
    errors = CanaryGate(metric="error_rate", max=0.001)  # a rate needs no sample count
    assert judge(errors, Reading(0.0, 0.0, FULL, FULL, 3, 3), min_requests=200).status == "pass"

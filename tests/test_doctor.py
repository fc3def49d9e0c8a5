"""`vllm-chatops doctor` against real Prometheus servers: a healthy fleet with the exported
rules loaded reports no problem (exit 0); one with a target down and no rules reports
those problems, each with its fix (exit 1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleet_stack import FleetStack, eventually, start_stack

from bot.cli import main
from bot.diagnosis.alert_rules import render_rules_yaml
from bot.diagnosis.runbooks import load_runbooks

pytestmark = [pytest.mark.prometheus]


@pytest.fixture(scope="module")
def with_rules(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FleetStack]:
    rules = tmp_path_factory.mktemp("doctor") / "rules.yml"
    rules.write_text(render_rules_yaml(load_runbooks()))
    stack = start_stack(prometheus_binary, rule_files=[rules], seed=21)
    yield stack
    stack.prometheus.stop()
    stack.server.stop()


@pytest.fixture(scope="module")
def without_rules(prometheus_binary: str) -> Iterator[FleetStack]:
    stack = start_stack(prometheus_binary, seed=22)
    yield stack
    stack.prometheus.stop()
    stack.server.stop()


@pytest.fixture(autouse=True)
def no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VLLM_CHATOPS_CONFIG", "PROMETHEUS_URL"):
        monkeypatch.delenv(name, raising=False)


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["doctor", "--format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def found(report: dict[str, Any]) -> str:
    return "\n".join(f"{f['topic']}: {f['found']}" for f in report["found"])


def test_a_healthy_stack_has_no_problem(
    with_rules: FleetStack, capsys: pytest.CaptureFixture[str]
) -> None:
    with_rules.switch("healthy")
    code, report = doctor(capsys, "--prometheus", with_rules.prometheus.url)
    assert code == 0 and report["problems"] == [], report
    text = found(report)
    assert "targets: job vllm: 8 up, 0 down" in text
    assert "targets: job dcgm-exporter: 4 up, 0 down" in text
    assert "vLLM names: current (vLLM ≥ 0.11) on 8 replicas" in text
    assert "DCGM: 32 GPUs" in text
    assert "namespace/pod (detected)" in text
    assert "no cluster label" in text
    groups = sum(1 for rb in load_runbooks().values() if rb.alerts)
    assert f"rules: {groups}/{groups} vllm-chatops groups loaded" in text


def test_a_target_down_and_no_rules_are_problems_with_their_fixes(
    without_rules: FleetStack, capsys: pytest.CaptureFixture[str]
) -> None:
    without_rules.switch("xid_79")  # a GPU fell off the bus: its replica's target is down

    def down() -> tuple[int, dict[str, Any]]:
        code, report = doctor(capsys, "--prometheus", without_rules.prometheus.url)
        assert "job vllm: 7 up, 1 down" in found(report), found(report)
        return code, report

    code, report = eventually(down, timeout_s=30)
    assert code == 1
    problems = {p["problem"]: p["fix"] for p in report["problems"]}
    assert problems.get("1 of 8 targets of job vllm are down", "").startswith("open Prometheus")
    (rules,) = [p for p in problems if p.startswith("alerting rules not loaded")]
    assert "rules export" in problems[rules]
    assert len(problems) == 2, problems


def test_mixed_metric_generations_are_named_not_a_problem(
    mixed_fleet: FleetStack, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed_fleet.switch("healthy")
    _, report = doctor(capsys, "--prometheus", mixed_fleet.prometheus.url)
    assert "mixed: 4 replicas on current names, 4 on pre-0.11 names" in found(report)
    problems = [p["problem"] for p in report["problems"]]
    assert all("names" not in p for p in problems)


def test_config_after_the_command_and_plain_text(
    with_rules: FleetStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"prometheus_url: {with_rules.prometheus.url}\nlabels:\n  gpu_workload_labels: exported\n"
    )
    code = main(["doctor", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 1
    assert "configured gpu_workload_labels: exported, but the data uses plain" in out
    assert "fix: set labels.gpu_workload_labels: auto" in out


def test_an_unreachable_prometheus_is_a_problem(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = doctor(capsys, "--prometheus", "http://127.0.0.1:9")
    assert code == 1
    (problem,) = report["problems"]
    assert "127.0.0.1:9" in problem["problem"] and "--prometheus" in problem["fix"]

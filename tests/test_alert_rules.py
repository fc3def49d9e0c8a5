"""Alert rules exported from the runbooks: valid for promtool, and right against a real Prometheus.

The live tests load the exported rule file into a real Prometheus scraping the simulated
fleet (``for`` forced to 0s), check every rule evaluates without error, that a healthy
fleet raises no critical alert, and that KV-cache pressure fires on exactly the faulty pods
with the label routing it back to its runbook.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fleet_stack import eventually, require_binary

from bot.diagnosis.alert_rules import export_rules, render_rules_yaml
from bot.diagnosis.checks import REGISTRY
from bot.diagnosis.promql import ScopeError
from bot.diagnosis.runbooks import Runbook, load_runbooks, match_alert, parse_runbook
from bot.simulator.fleet import build_fleet
from bot.simulator.prometheus_runner import PrometheusRunner
from bot.simulator.server import Simulator, make_app
from bot.simulator.serving import BackgroundServer

Rule = dict[str, Any]
WARM_UP_SCRAPES = 20  # young series make noisy ratios; `for: 0s` would fire on them


@pytest.fixture(scope="module")
def runbooks() -> dict[str, Runbook]:
    return load_runbooks()


def all_rules(exported: dict[str, Any]) -> list[Rule]:
    return [rule for group in exported["groups"] for rule in group["rules"]]


def rules_named(exported: dict[str, Any], name: str) -> dict[str, Rule]:
    """The rules of alert ``name`` by severity (each severity exactly once)."""
    found = [r for r in all_rules(exported) if r["alert"] == name]
    by_severity = {r["labels"]["severity"]: r for r in found}
    assert len(by_severity) == len(found), f"{name}: a severity appears twice"
    return by_severity


# --- the rule file ---------------------------------------------------------------------


@pytest.mark.prometheus
def test_promtool_accepts_the_exported_rules(runbooks: dict[str, Runbook], tmp_path: Path) -> None:
    promtool = require_binary("promtool", shutil.which("promtool"))
    path = tmp_path / "vllm-chatops.rules.yml"
    path.write_text(render_rules_yaml(runbooks))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    count = len(all_rules(export_rules(runbooks)))
    assert f"SUCCESS: {count} rules found" in done.stdout + done.stderr


def test_yaml_is_the_export_with_a_do_not_edit_header(runbooks: dict[str, Runbook]) -> None:
    text = render_rules_yaml(runbooks, {"kv_cache_usage": {"crit": 0.9}}, "1m")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert header, "the rule file starts with a comment"
    assert "vllm-chatops rules export" in header[0]
    assert "not edit by hand" in " ".join(header).lower()
    assert text.splitlines()[0].startswith("#")
    assert yaml.safe_load(text) == export_rules(runbooks, {"kv_cache_usage": {"crit": 0.9}}, "1m")


def test_one_group_per_runbook_with_alerts_sorted_by_id(runbooks: dict[str, Runbook]) -> None:
    exported = export_rules(runbooks)
    assert set(exported) == {"groups"}
    names = [g["name"] for g in exported["groups"]]
    with_alerts = sorted(r.id for r in runbooks.values() if r.alerts)
    assert names == [f"vllm-chatops-{rid}" for rid in with_alerts]
    assert "vllm-chatops-model_quality_regression" not in names  # it has no alerts
    for group in exported["groups"]:
        assert group["rules"], group["name"]
        runbook_id = group["name"].removeprefix("vllm-chatops-")
        assert {r["labels"]["runbook"] for r in group["rules"]} == {runbook_id}
    # Order of the input mapping does not matter.
    reversed_input = dict(reversed(list(runbooks.items())))
    assert export_rules(reversed_input) == exported


def test_every_rule_is_labelled_and_annotated(runbooks: dict[str, Runbook]) -> None:
    exported = export_rules(runbooks)
    rules = all_rules(exported)
    specs = [(rb, spec) for rb in runbooks.values() for spec in rb.alerts]
    expected = sum(len(spec.levels) for _, spec in specs)
    assert len(rules) == expected > 0
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
        labels = rule["labels"]
        assert set(labels) == {"severity", "runbook"}, rule["alert"]
        assert labels["severity"] in ("warning", "critical")
        runbook = runbooks[labels["runbook"]]
        assert rule["alert"] in {a.name for a in runbook.alerts}
        spec = next(a for a in runbook.alerts if a.name == rule["alert"])
        assert rule["for"] == spec.for_
        assert rule["annotations"] == {
            "summary": spec.summary,
            "description": spec.description or runbook.summary,
            "runbook": runbook.id,
            "runbook_title": runbook.title,
        }
        assert "{threshold}" not in rule["expr"]
        assert rule["expr"] == " ".join(rule["expr"].split()), "whitespace normalised"
        assert "\n" not in rule["expr"]
        # Alertmanager routes the alert back to the runbook that exported it.
        routed = match_alert(runbooks, {"alertname": rule["alert"], **labels})
        assert routed is runbook
    for runbook, spec in specs:
        got = rules_named(exported, spec.name)
        assert sorted(got) == sorted(spec.levels), spec.name
        assert {r["labels"]["runbook"] for r in got.values()} == {runbook.id}


def test_thresholds_are_the_checks_levels(runbooks: dict[str, Runbook]) -> None:
    exported = export_rules(runbooks)
    kv = rules_named(exported, "VLLMKVCachePressure")
    assert kv["warning"]["expr"].endswith(">= 0.85")
    assert kv["critical"]["expr"].endswith(">= 0.95")
    assert kv["critical"]["expr"] == (
        "max by (namespace, pod, instance, model_name) "
        "(vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc) >= 0.95"
    )
    ttft = rules_named(exported, "VLLMTTFTAboveSLO")
    assert ttft["warning"]["expr"].endswith(">= 3")  # 2.0 s SLO x 1.5
    assert ttft["critical"]["expr"].endswith(">= 4")  # 2.0 s SLO x 2
    temp = rules_named(exported, "VLLMGPUTemperature")
    assert temp["warning"]["expr"].endswith(">= 80")
    assert temp["critical"]["expr"].endswith(">= 85")
    # Every check-backed rule uses exactly the check's levels from the runbook's params.
    for runbook in runbooks.values():
        for spec in runbook.alerts:
            if spec.check is None:
                continue
            check = REGISTRY[spec.check]
            assert check.thresholds is not None
            levels = check.thresholds({**check.defaults, **runbook.check_params(spec.check)})
            got = rules_named(exported, spec.name)
            assert got["warning"]["expr"] == " ".join(
                spec.expr.replace("{threshold}", f"{levels.warn:g}").split()
            )
            assert got["critical"]["expr"] == " ".join(
                spec.expr.replace("{threshold}", f"{levels.crit:g}").split()
            )


def test_promql_braces_survive(runbooks: dict[str, Runbook]) -> None:
    errors = rules_named(export_rules(runbooks), "VLLMHighErrorRate")
    assert (
        'vllm:request_success_total{finished_reason=~"error|abort"}[5m]'
        in (errors["critical"]["expr"])
    )
    assert errors["critical"]["expr"].endswith(">= 0.02")
    down = rules_named(export_rules(runbooks), "VLLMReplicaDown")
    assert down["critical"]["expr"] == 'up{job=~".*vllm.*"} == 0'


def test_runbook_params_override_check_defaults() -> None:
    text = """\
id: hot
title: Hot
summary: KV hot.
severity: critical
match: {alertnames: [HotKV]}
checks:
  - id: kv_cache_usage
    params: {crit: 0.97}
  - id: ttft_p99
    params: {slo_s: 0.5}
remediation: x
alerts:
  - name: HotKV
    check: kv_cache_usage
    expr: "max(vllm:kv_cache_usage_perc{namespace=\\"a\\"}) >= {threshold}"
    levels: [critical]
    summary: hot
    description: The KV cache is hot.
  - name: SlowTTFT
    check: ttft_p99
    expr: ttft >= {threshold}
    for: 1m
    summary: slow
"""
    runbook = parse_runbook(text, "hot.yaml")
    exported = export_rules({"hot": runbook})
    hot = rules_named(exported, "HotKV")
    assert list(hot) == ["critical"]
    assert hot["critical"]["expr"] == 'max(vllm:kv_cache_usage_perc{namespace="a"}) >= 0.97'
    assert hot["critical"]["annotations"]["description"] == "The KV cache is hot."
    assert hot["critical"]["for"] == "5m"
    slow = rules_named(exported, "SlowTTFT")
    assert slow["warning"]["expr"] == "ttft >= 0.75"
    assert slow["critical"]["expr"] == "ttft >= 1"
    assert slow["critical"]["for"] == "1m"
    # Config overrides win over the runbook's params, per parameter.
    exported = export_rules({"hot": runbook}, {"ttft_p99": {"crit_factor": 3}})
    slow = rules_named(exported, "SlowTTFT")
    assert slow["warning"]["expr"] == "ttft >= 0.75"
    assert slow["critical"]["expr"] == "ttft >= 1.5"
    # ... also over a parameter the runbook itself sets (crit: 0.97).
    exported = export_rules({"hot": runbook}, {"kv_cache_usage": {"crit": 0.9}})
    assert rules_named(exported, "HotKV")["critical"]["expr"].endswith(">= 0.9")


def test_overrides_change_thresholds(runbooks: dict[str, Runbook]) -> None:
    before = export_rules(runbooks)
    exported = export_rules(runbooks, {"kv_cache_usage": {"crit": 0.9}})
    kv = rules_named(exported, "VLLMKVCachePressure")
    assert ">= 0.9" in kv["critical"]["expr"] and ">= 0.95" not in kv["critical"]["expr"]
    assert kv["critical"]["expr"].endswith(">= 0.9")
    assert kv["warning"]["expr"].endswith(">= 0.85")  # only crit was overridden
    ttft = rules_named(export_rules(runbooks, {"ttft_p99": {"slo_s": 1.0}}), "VLLMTTFTAboveSLO")
    assert ttft["warning"]["expr"].endswith(">= 1.5")
    assert ttft["critical"]["expr"].endswith(">= 2")
    # Overrides of one check leave every other rule alone.
    changed = [
        r["alert"] for r, b in zip(all_rules(exported), all_rules(before), strict=True) if r != b
    ]
    assert changed == ["VLLMKVCachePressure"]
    assert export_rules(runbooks, {"kv_cache_usage": {}}) == before


def test_for_override_replaces_every_for(runbooks: dict[str, Runbook]) -> None:
    assert {r["for"] for r in all_rules(export_rules(runbooks))} >= {"0m", "5m"}
    for value in ("0s", "30s", "10m", "1h"):
        rules = all_rules(export_rules(runbooks, for_override=value))
        assert {r["for"] for r in rules} == {value}


@pytest.mark.parametrize("bad", ["5", "5d", "m", "five minutes", "-1m", "1.5m", "5m\n", ""])
def test_bad_for_override_raises(runbooks: dict[str, Runbook], bad: str) -> None:
    with pytest.raises(ValueError, match="for"):
        export_rules(runbooks, for_override=bad)
    with pytest.raises(ValueError):
        render_rules_yaml(runbooks, for_override=bad)


def test_no_runbooks_no_groups() -> None:
    assert export_rules({}) == {"groups": []}


# --- against a real Prometheus ---------------------------------------------------------


@dataclass
class RulesStack:
    simulator: Simulator
    server: BackgroundServer
    prometheus: PrometheusRunner
    exported: dict[str, Any]

    def switch(self, scenario: str, seed: int = 7) -> Any:
        return self.server.call(lambda: self.simulator.switch(scenario, seed))

    def api(self, path: str) -> Any:
        response = httpx.get(f"{self.prometheus.url}{path}", timeout=10.0)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("/api/v1/alerts")["alerts"]
        return alerts


@pytest.fixture(scope="module")
def rules_stack(
    prometheus_binary: str,
    runbooks: dict[str, Runbook],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RulesStack]:
    """8 replicas (half on old metric names), Prometheus evaluating the exported rules."""
    exported = export_rules(runbooks, for_override="0s")
    path = tmp_path_factory.mktemp("rules") / "vllm-chatops.rules.yml"
    path.write_text(render_rules_yaml(runbooks, for_override="0s"))
    fleet = build_fleet(
        replicas=8, gpus_per_replica=4, seed=7, legacy_fraction=0.5, now=time.time()
    )
    simulator = Simulator(fleet, "healthy", 7)
    server = BackgroundServer(make_app(simulator)).start()
    prometheus = PrometheusRunner(
        server.url, scrape_interval_s=1.0, binary=prometheus_binary, rule_files=[path]
    )
    assert prometheus.config()["global"]["evaluation_interval"] == "1s"
    try:
        prometheus.start()
        prometheus.wait_for_targets(len(fleet.replicas) + len(fleet.nodes))
        yield RulesStack(simulator, server, prometheus, exported)
    finally:
        prometheus.stop()
        server.stop()


@pytest.mark.prometheus
@pytest.mark.slow
def test_prometheus_evaluates_every_rule_without_error(rules_stack: RulesStack) -> None:
    exported_names = {r["alert"] for r in all_rules(rules_stack.exported)}
    exported_groups = {g["name"] for g in rules_stack.exported["groups"]}

    def evaluated() -> list[dict[str, Any]]:
        groups = rules_stack.api("/api/v1/rules")["groups"]
        assert {g["name"] for g in groups} == exported_groups
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == len(all_rules(rules_stack.exported))
        for rule in rules:
            assert rule["type"] == "alerting"
            assert rule["health"] == "ok", (rule["name"], rule["health"], rule.get("lastError"))
        return rules

    rules = eventually(evaluated, timeout_s=40)
    assert {r["name"] for r in rules} == exported_names
    for rule in rules:
        assert rule["labels"]["runbook"] in {
            g.removeprefix("vllm-chatops-") for g in exported_groups
        }
        assert rule["duration"] == 0


@pytest.mark.prometheus
@pytest.mark.slow
def test_kv_cache_pressure_fires_on_exactly_the_faulty_pods(rules_stack: RulesStack) -> None:
    # Healthy first. Rates over a target's first two or three samples are extrapolated
    # from almost nothing (the engine error ratio of one replica can read 5 % at start),
    # and with `for: 0s` that would fire; so let every target be scraped ten times, then
    # no critical alert may fire for several evaluations.
    eventually(lambda: rules_evaluated(rules_stack), timeout_s=40)

    def warmed_up() -> None:
        scrapes = rules_stack.prometheus.query("min(count_over_time(up[1m]))")
        assert scrapes and float(scrapes[0]["value"][1]) >= WARM_UP_SCRAPES

    eventually(warmed_up, timeout_s=60)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        critical = [
            (a["labels"]["alertname"], a["labels"].get("pod"), a["state"])
            for a in rules_stack.alerts()
            if a["labels"].get("severity") == "critical"
        ]
        assert critical == [], f"healthy fleet raised critical alerts: {critical}"
        time.sleep(1.0)

    truth = rules_stack.switch("kv_cache_pressure", 7)
    faulty = {f.pod for f in truth.faults}
    assert faulty and None not in faulty
    assert truth.runbook == "kv_cache_pressure"

    def firing() -> list[dict[str, Any]]:
        alerts = [
            a
            for a in rules_stack.alerts()
            if a["labels"]["alertname"] == "VLLMKVCachePressure"
            and a["labels"].get("severity") == "critical"
            and a["state"] == "firing"
        ]
        assert {a["labels"]["pod"] for a in alerts} == faulty
        return alerts

    alerts = eventually(firing, timeout_s=40)
    assert len(alerts) == len(faulty)  # one alert per pod
    for alert in alerts:
        assert alert["labels"]["runbook"] == "kv_cache_pressure"
        assert alert["annotations"]["runbook"] == "kv_cache_pressure"
        assert float(alert["value"]) >= 0.95
        assert alert["annotations"]["summary"].startswith("KV cache ")
        assert alert["labels"]["pod"] in alert["annotations"]["summary"]


def rules_evaluated(stack: RulesStack) -> None:
    """Every rule has been evaluated at least once, without error."""
    groups = stack.api("/api/v1/rules")["groups"]
    assert groups
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule
            assert not rule["lastEvaluation"].startswith("0001-"), rule["name"]


def test_recording_rules_ride_along_for_the_diagnosis_window(
    runbooks: dict[str, Runbook], tmp_path: Path
) -> None:
    exported = export_rules(runbooks, recording_window="5m")
    recording = [g for g in exported["groups"] if g["name"].startswith("vllm-chatops-recording")]
    assert len(recording) == 1
    records = {r["record"] for r in recording[0]["rules"]}
    assert "vllm_chatops:ttft_seconds_bucket:rate5m" in records
    path = tmp_path / "rules.yml"
    path.write_text(render_rules_yaml(runbooks, recording_window="5m"))
    promtool = require_binary("promtool", shutil.which("promtool"))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    with pytest.raises(ScopeError):
        export_rules(runbooks, recording_window="five minutes")

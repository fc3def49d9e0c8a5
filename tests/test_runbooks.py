"""Runbooks: the shipped ones load, lint errors point at file, line and field, alerts route."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.diagnosis.checks import REGISTRY
from bot.diagnosis.rules import PLACEHOLDER, TARGET_FORMS
from bot.diagnosis.runbooks import (
    DEFAULT_RUNBOOK_DIR,
    Runbook,
    RunbookError,
    load_runbook_file,
    load_runbooks,
    match_alert,
    parse_runbook,
)
from bot.slack.slash import STATUS_RUNBOOK

EXPECTED_RUNBOOKS = {
    "high_latency",
    "oom_crashes",
    "model_quality_regression",
    "gpu_hardware_failure",
    "kv_cache_pressure",
    "queue_backlog",
    "ttft_slo",
    "tpot_slo",
    "high_error_rate",
    "preemption_storm",
    "gpu_thermal",
    "replica_down",
}

# A valid runbook; each lint test breaks exactly one thing in it.
VALID = """\
id: sample
title: Sample
summary: A sample runbook.
severity: warning
match:
  alertnames: [SampleAlert]
checks:
  - id: kv_cache_usage
    params: {crit: 0.9}
  - id: queue_depth
rules:
  - id: pressure
    when:
      - {check: kv_cache_usage, status: [warn, crit]}
    summary: "KV {kv_cache_usage.value} on {kv_cache_usage.offenders}"
    action:
      kind: scale
      target: kv_cache_usage.offenders:deployment
      reason: "full"
remediation: |
  Scale.
"""


def line_of(text: str, needle: str) -> int:
    """1-based number of the only line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) == 1, f"{needle!r} found on lines {hits}"
    return hits[0]


def broken(old: str, new: str) -> str:
    assert VALID.count(old) == 1, f"{old!r} must occur once in VALID"
    return VALID.replace(old, new)


def lint(tmp_path: Path, text: str, name: str = "sample") -> tuple[str, str]:
    """Write ``text`` as ``<name>.yaml`` and return (file path, the RunbookError message)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    with pytest.raises(RunbookError) as info:
        load_runbook_file(path)
    return str(path), str(info.value)


@pytest.fixture(scope="module")
def shipped() -> dict[str, Runbook]:
    return load_runbooks()


# --- the shipped runbooks --------------------------------------------------------------


def test_valid_sample_loads(tmp_path: Path) -> None:
    path = tmp_path / "sample.yaml"
    path.write_text(VALID)
    runbook = load_runbook_file(path)
    assert runbook.id == "sample"
    # defaults, then the runbook's own, then configuration overrides
    assert runbook.check_params("kv_cache_usage") == {"warn": 0.85, "crit": 0.9}
    assert runbook.check_params("queue_depth") == {"warn": 50, "crit": 200}
    overrides = {"kv_cache_usage": {"crit": 0.97}}
    assert runbook.check_params("kv_cache_usage", overrides) == {"warn": 0.85, "crit": 0.97}


def test_shipped_runbooks_load_with_ids_equal_to_file_names(shipped: dict[str, Runbook]) -> None:
    files = sorted(DEFAULT_RUNBOOK_DIR.glob("*.yaml"))
    assert {p.stem for p in files} == set(shipped)
    for runbook_id, runbook in shipped.items():
        assert runbook.id == runbook_id
    assert set(shipped) >= EXPECTED_RUNBOOKS, sorted(EXPECTED_RUNBOOKS - set(shipped))


def test_shipped_rules_reference_checks_the_runbook_runs(shipped: dict[str, Runbook]) -> None:
    for runbook in shipped.values():
        listed = {c.id for c in runbook.checks}
        assert listed <= set(REGISTRY), runbook.id
        assert len(listed) == len(runbook.checks), f"{runbook.id}: a check is listed twice"
        for rule in runbook.rules:
            where = f"{runbook.id}.{rule.id}"
            for cond in rule.when:
                assert cond.check in listed, f"{where}: condition on {cond.check}"
            texts = [rule.summary]
            if rule.action is not None:
                texts.append(rule.action.reason)
                m = TARGET_FORMS.match(rule.action.target)
                assert m is not None, f"{where}: target {rule.action.target}"
                if m.group("check"):
                    assert m.group("check") in listed, f"{where}: target {rule.action.target}"
                else:
                    assert m.group("scope") == "deployment"
            for text in texts:
                for check, _field, _ in PLACEHOLDER.findall(text):
                    assert check in listed, f"{where}: placeholder {{{check}.{_field}}}"
        for alert in runbook.alerts:
            if alert.check is not None:
                # The thresholds come from the runbook's params for this check.
                assert alert.check in listed, f"{runbook.id}: alert {alert.name}"


def test_every_runbook_is_reachable_from_an_alert(shipped: dict[str, Runbook]) -> None:
    for runbook in shipped.values():
        if runbook.id == STATUS_RUNBOOK:  # the `/vllm status` overview: asked for, not alerted
            continue
        assert runbook.match.alertnames, f"{runbook.id} has no alertnames to match"
        for alert in runbook.alerts:
            assert alert.name in runbook.match.alertnames, f"{runbook.id}: {alert.name}"


def test_load_runbooks_reports_every_bad_file(tmp_path: Path) -> None:
    (tmp_path / "sample.yaml").write_text(VALID)
    (tmp_path / "one.yaml").write_text(VALID.replace("id: sample", "id: one"))
    (tmp_path / "two.yaml").write_text("- a list\n")
    (tmp_path / "three.yaml").write_text(VALID)  # id says sample
    with pytest.raises(RunbookError) as info:
        load_runbooks(tmp_path)
    message = str(info.value)
    assert f"{tmp_path / 'two.yaml'}:1:" in message
    assert f"{tmp_path / 'three.yaml'}:1: id:" in message
    assert "one.yaml" not in message and f"{tmp_path / 'sample.yaml'}" not in message
    (tmp_path / "two.yaml").unlink()
    (tmp_path / "three.yaml").unlink()
    assert sorted(load_runbooks(tmp_path)) == ["one", "sample"]


# --- lint errors: file, line, field, fix -----------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    text = broken("severity: warning\n", "severity: warning\ncolour: blue\n")
    path, message = lint(tmp_path, text)
    assert f"{path}:{line_of(text, 'colour:')}: colour: unknown key" in message


def test_unknown_nested_key(tmp_path: Path) -> None:
    text = broken('      reason: "full"\n', '      reason: "full"\n      urgency: high\n')
    path, message = lint(tmp_path, text)
    assert f"{path}:{line_of(text, 'urgency')}: rules.0.action.urgency: unknown key" in message


def test_missing_top_level_key(tmp_path: Path) -> None:
    text = broken("remediation: |\n  Scale.\n", "")
    path, message = lint(tmp_path, text)
    assert message == f"{path}:1: remediation: required key is missing; add it"


def test_missing_nested_key_points_at_its_parent(tmp_path: Path) -> None:
    text = broken('    summary: "KV {kv_cache_usage.value} on {kv_cache_usage.offenders}"\n', "")
    path, message = lint(tmp_path, text)
    line = line_of(text, "- id: pressure")
    assert message == f"{path}:{line}: rules.0.summary: required key is missing; add it"


def test_unknown_check_lists_known_checks(tmp_path: Path) -> None:
    text = broken("  - id: queue_depth", "  - id: queue_dpth")
    path, message = lint(tmp_path, text)
    at = f"{path}:{line_of(text, 'queue_dpth')}: checks.1.id: unknown check 'queue_dpth'"
    assert at in message
    known = message.split("known: ", 1)[1]
    assert known.split(", ") == sorted(REGISTRY)


def test_unknown_check_parameter_lists_known_params(tmp_path: Path) -> None:
    text = broken("{crit: 0.9}", "{critical: 0.9}")
    path, message = lint(tmp_path, text)
    line = line_of(text, "{critical: 0.9}")
    at = f"{path}:{line}: checks.0.params.critical: check kv_cache_usage has no parameter"
    assert at in message
    assert message.endswith("known: crit, warn")


def test_invalid_status_value_points_at_it(tmp_path: Path) -> None:
    text = broken("status: [warn, crit]", "status: [warm]")
    path, message = lint(tmp_path, text)
    line = line_of(text, "status: [warm]")
    assert f"{path}:{line}: rules.0.when.0.status.0:" in message
    assert "'warn'" in message and "'crit'" in message


def test_condition_on_a_check_not_run(tmp_path: Path) -> None:
    text = broken("{check: kv_cache_usage, status", "{check: gpu_temperature, status")
    path, message = lint(tmp_path, text)
    assert message.startswith(f"{path}:")
    assert "rule pressure: condition uses check 'gpu_temperature'" in message
    assert "does not run; add it to checks" in message


def test_condition_on_a_check_not_run_names_its_line_and_field(tmp_path: Path) -> None:
    text = broken("{check: kv_cache_usage, status", "{check: gpu_temperature, status")
    path, message = lint(tmp_path, text)
    line = line_of(text, "check: gpu_temperature")
    assert f"{path}:{line}: rules.0.when.0.check:" in message


def test_action_target_of_a_wrong_form(tmp_path: Path) -> None:
    text = broken("kv_cache_usage.offenders:deployment", "kv_cache_usage.offenders:cluster")
    path, message = lint(tmp_path, text)
    line = line_of(text, "offenders:cluster")
    assert f"{path}:{line}: rules.0.action.target: target must be " in message
    assert "CHECK.offenders:deployment|pod|node" in message
    assert "got 'kv_cache_usage.offenders:cluster'" in message


def test_action_target_on_a_check_not_run(tmp_path: Path) -> None:
    text = broken("kv_cache_usage.offenders:deployment", "gpu_temperature.offenders:node")
    path, message = lint(tmp_path, text)
    assert message.startswith(f"{path}:")
    assert "rule pressure: action target uses check 'gpu_temperature'" in message


def test_placeholder_with_a_bogus_field(tmp_path: Path) -> None:
    text = broken("{kv_cache_usage.value}", "{kv_cache_usage.bogus}")
    path, message = lint(tmp_path, text)
    assert message.startswith(f"{path}:")
    assert "rule pressure: {kv_cache_usage.bogus}: field must be one of " in message
    assert "value, summary, offenders, count, status, facts" in message


def test_placeholder_with_a_bogus_field_names_its_line_and_field(tmp_path: Path) -> None:
    text = broken("{kv_cache_usage.value}", "{kv_cache_usage.bogus}")
    path, message = lint(tmp_path, text)
    line = line_of(text, "kv_cache_usage.bogus")
    assert f"{path}:{line}: rules.0.summary:" in message


def test_placeholder_naming_a_check_not_run(tmp_path: Path) -> None:
    text = broken("{kv_cache_usage.offenders}", "{xid_errors.offenders}")
    _, message = lint(tmp_path, text)
    assert "rule pressure: {xid_errors.offenders} names a check the runbook does not run" in (
        message
    )


def test_id_must_equal_file_name(tmp_path: Path) -> None:
    path, message = lint(tmp_path, VALID, name="other")
    assert message == f"{path}:1: id: 'sample' must equal the file name 'other'"


def test_id_mismatch_names_the_line_of_the_id(tmp_path: Path) -> None:
    text = "# Sample runbook\n\n" + VALID
    path, message = lint(tmp_path, text, name="other")
    assert message.startswith(f"{path}:{line_of(text, 'id: sample')}: id:")


def test_invalid_yaml(tmp_path: Path) -> None:
    text = broken("    when:\n", "    when: [\n")
    path, message = lint(tmp_path, text)
    assert message.startswith(
        f"{path}:{line_of(text, '- {check: kv_cache_usage')}: not valid YAML:"
    )
    # PyYAML's own position (0-based internally, printed 1-based) is kept in the text.
    assert f"line {line_of(text, '- {check: kv_cache_usage')}," in message


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    text = broken("    when:\n", "    when: [\n")
    path, message = lint(tmp_path, text)
    assert message.startswith(f"{path}:{line_of(text, '- {check: kv_cache_usage')}:")


def test_top_level_list(tmp_path: Path) -> None:
    path, message = lint(tmp_path, "- id: sample\n  title: Sample\n")
    assert message.startswith(f"{path}:1: a runbook is a YAML mapping")


def test_empty_file(tmp_path: Path) -> None:
    path, message = lint(tmp_path, "")
    assert message.startswith(f"{path}:1: a runbook is a YAML mapping")


def test_every_problem_in_a_file_is_reported(tmp_path: Path) -> None:
    text = broken("severity: warning\n", "severity: urgent\ncolour: blue\n")
    path, message = lint(tmp_path, text)
    lines = message.splitlines()
    assert len(lines) == 2, message
    assert f"{path}:{line_of(text, 'severity:')}: severity: " in lines[0] + lines[1]
    assert f"{path}:{line_of(text, 'colour:')}: colour: unknown key" in lines[0] + lines[1]


def test_alert_threshold_needs_a_check_with_levels() -> None:
    alerts = (
        "alerts:\n"
        "  - name: SampleAlert\n"
        "    check: queue_depth\n"
        "    expr: vllm:num_requests_waiting >= 5\n"
        "    summary: s\n"
    )
    with pytest.raises(RunbookError, match=r"expr must contain \{threshold\}"):
        parse_runbook(VALID + alerts, "x.yaml")
    with pytest.raises(RunbookError, match=r"check 'throughput' has no thresholds; use one of"):
        parse_runbook(VALID + alerts.replace("queue_depth", "throughput"), "x.yaml")
    with pytest.raises(RunbookError, match=r"without a check, give exactly one level"):
        parse_runbook(VALID + alerts.replace("    check: queue_depth\n", ""), "x.yaml")
    runbook = parse_runbook(VALID + alerts.replace(">= 5", ">= {threshold}"), "x.yaml")
    assert runbook.alerts[0].levels == ("warning", "critical")


def test_invalid_match_regex(tmp_path: Path) -> None:
    text = broken("  alertnames: [SampleAlert]\n", '  labels: {container: "~vllm("}\n')
    path, message = lint(tmp_path, text)
    assert f"{path}:{line_of(text, 'labels:')}: match.labels: label container: invalid regex" in (
        message
    )


# --- routing alerts to runbooks --------------------------------------------------------


def test_runbook_label_wins(shipped: dict[str, Runbook]) -> None:
    labels = {"alertname": "VLLMKVCachePressure", "runbook": "ttft_slo"}
    matched = match_alert(shipped, labels)
    assert matched is not None and matched.id == "ttft_slo"


def test_alertname_match(shipped: dict[str, Runbook]) -> None:
    for alertname, runbook_id in [
        ("VLLMKVCachePressure", "kv_cache_pressure"),
        ("VLLMQueueBacklog", "queue_backlog"),
        ("VLLMGPUFatalXid", "gpu_hardware_failure"),
        ("TargetDown", "replica_down"),
    ]:
        matched = match_alert(shipped, {"alertname": alertname, "severity": "critical"})
        assert matched is not None and matched.id == runbook_id, alertname


def test_regex_label_match(shipped: dict[str, Runbook]) -> None:
    # oom_crashes: alertnames [VLLMReplicaRestarting, KubePodCrashLooping], container ~vllm.*
    crash = {"alertname": "KubePodCrashLooping", "container": "vllm-engine"}
    matched = match_alert(shipped, crash)
    assert matched is not None and matched.id == "oom_crashes"
    assert match_alert(shipped, {**crash, "container": "sidecar-vllm"}) is None  # fullmatch
    assert match_alert(shipped, {"alertname": "KubePodCrashLooping"}) is None
    assert match_alert(shipped, {"container": "vllm"}) is None  # alertname must match too


def test_no_match_is_none(shipped: dict[str, Runbook]) -> None:
    assert match_alert(shipped, {"alertname": "DiskFull", "severity": "critical"}) is None
    assert match_alert(shipped, {}) is None


def test_unknown_runbook_label_falls_back_to_match_rules(shipped: dict[str, Runbook]) -> None:
    matched = match_alert(shipped, {"alertname": "VLLMQueueBacklog", "runbook": "no_such"})
    assert matched is not None and matched.id == "queue_backlog"
    assert match_alert(shipped, {"alertname": "DiskFull", "runbook": "no_such"}) is None


def test_empty_match_never_matches() -> None:
    runbook = parse_runbook(broken("match:\n  alertnames: [SampleAlert]\n", ""), "x.yaml")
    assert match_alert({"sample": runbook}, {"alertname": "SampleAlert"}) is None
    assert match_alert({"sample": runbook}, {"runbook": "sample"}) is runbook


def test_exact_and_regex_labels_together() -> None:
    runbook = parse_runbook(
        broken(
            "  alertnames: [SampleAlert]\n",
            '  labels: {team: ml, namespace: "~inference-.*"}\n',
        ),
        "x.yaml",
    )
    runbooks = {"sample": runbook}
    assert match_alert(runbooks, {"team": "ml", "namespace": "inference-eu"}) is runbook
    assert match_alert(runbooks, {"team": "ml", "namespace": "batch"}) is None
    assert match_alert(runbooks, {"team": "ops", "namespace": "inference-eu"}) is None


def test_link_placeholders_are_filled_from_the_scope_and_encoded() -> None:
    from bot.diagnosis.runbooks import Link

    link = Link(title="Dashboard", url="https://g/d?ns={namespace}&m={model_name}&x={missing}")
    assert link.render({"namespace": "prod", "model_name": "a b&c"}) == (
        "https://g/d?ns=prod&m=a+b%26c&x="
    )

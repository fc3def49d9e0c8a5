"""`canary export-analysis`: an Argo Rollouts AnalysisTemplate whose metrics are the gates
(success conditions) and the rollback triggers (failure conditions), its PromQL valid."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from fleet_stack import require_binary

from bot.canary.analysis import analysis_template
from bot.cli import main
from bot.config import CanarySettings


def test_the_template_has_argo_rollouts_shape(tmp_path: Path) -> None:
    out = tmp_path / "analysis.yaml"
    assert main(["canary", "export-analysis", "inference/llama", "-o", str(out)]) == 0
    doc = yaml.safe_load(out.read_text())
    assert doc["apiVersion"] == "argoproj.io/v1alpha1" and doc["kind"] == "AnalysisTemplate"
    assert doc["metadata"] == {
        "name": "llama-canary-gates",
        "namespace": "inference",
        "labels": {"app.kubernetes.io/managed-by": "vllm-chatops"},
    }
    assert [a["name"] for a in doc["spec"]["args"]] == ["canary-hash", "stable-hash"]
    metrics = {m["name"]: m for m in doc["spec"]["metrics"]}
    assert metrics["error-rate-max"]["successCondition"] == "result[0] <= 0.001"
    # a p99 is judged on enough requests: until then -1, neither success nor failure
    assert metrics["ttft-p99-ratio"]["successCondition"] == "result[0] >= 0 && result[0] <= 1.1"
    assert metrics["ttft-p99-ratio"]["failureCondition"] == "result[0] >= 0 && result[0] > 1.1"
    assert "vllm:request_success_total" in metrics["ttft-p99-ratio"]["provider"]["prometheus"][
        "query"
    ] and metrics["ttft-p99-ratio"]["provider"]["prometheus"]["query"].endswith("vector(-1)")
    assert "failureCondition" not in metrics["error-rate-max"]
    assert metrics["throughput-floor"]["successCondition"] == "result[0] >= 0.9"
    assert metrics["gpu-memory-leak-increase"]["successCondition"] == "result[0] <= 256"
    assert metrics["rollback-error-rate"]["failureCondition"] == "result[0] > 0.01"
    assert metrics["rollback-tpot-p99"]["failureCondition"] == "result[0] > 0.2"
    for metric in metrics.values():
        assert set(metric) <= {
            "name", "initialDelay", "interval", "failureLimit", "successCondition",
            "failureCondition", "provider",
        }  # fmt: skip
        query = metric["provider"]["prometheus"]["query"]
        assert "{{args.canary-hash}}" in query
        assert "CANARYREPLICASET" not in query and "STABLEREPLICASET" not in query
        if not metric["name"].startswith("rollback-"):
            assert metric["initialDelay"] == "10m"  # never judged before the window fills
    assert metrics["rollback-error-rate"]["failureLimit"] == 0
    assert metrics["rollback-error-rate"]["interval"] == "30s"  # acted on within a minute


def test_without_a_request_floor_a_p99_gate_is_plain() -> None:
    doc = analysis_template(CanarySettings(min_requests=0), "inference", "llama")
    (ratio,) = [m for m in doc["spec"]["metrics"] if m["name"] == "ttft-p99-ratio"]
    assert ratio["successCondition"] == "result[0] <= 1.1" and "failureCondition" not in ratio
    assert "vector(-1)" not in ratio["provider"]["prometheus"]["query"]


def test_a_phase_narrows_the_gates() -> None:
    doc = analysis_template(CanarySettings(), "inference", "llama", gates=["error_rate"])
    names = [m["name"] for m in doc["spec"]["metrics"]]
    assert names == [
        "error-rate-max",
        "rollback-error-rate",
        "rollback-ttft-p99",
        "rollback-tpot-p99",
    ]


def test_promtool_accepts_every_query(tmp_path: Path) -> None:
    promtool = require_binary("promtool", shutil.which("promtool"))
    doc = analysis_template(CanarySettings(), "inference", "llama")
    rules = [
        {
            "record": f"canary:{m['name'].replace('-', '_')}",
            "expr": m["provider"]["prometheus"]["query"],
        }
        for m in doc["spec"]["metrics"]
    ]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "canary", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_export_refuses_a_bad_target(capsys: object) -> None:
    assert main(["canary", "export-analysis", "not-a-target"]) == 2

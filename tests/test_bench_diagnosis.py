"""`vllm-chatops bench`: the diagnosis and start-up sections in their quick form (the CI
smoke that keeps the benchmark running; figures are never judged here, only present)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fleet_stack import require_binary

from bot.bench import diagnosis
from bot.bench.options import BenchOptions
from bot.diagnosis.runbooks import load_runbooks
from bot.simulator.prometheus_runner import find_prometheus


def test_diagnosis_section_compares_every_runbook_with_its_slowest_query(tmp_path: Path) -> None:
    require_binary("prometheus", find_prometheus())
    options = BenchOptions.quick_run(tmp_path, replicas=(4,))
    seen: list[str] = []
    section = diagnosis.run(options, seen.append)
    assert any("waiting for" in line for line in seen)  # progress is reported
    by_name = {f.name: f for f in section.figures}
    for mode in ("raw series", "recording rules"):
        name = f"4 replicas, {mode}: high_latency ("
        (latency,) = [f for n, f in by_name.items() if n.startswith(name)]
        assert latency.timing is not None and latency.timing.n == options.repetitions
        assert latency.ratio is not None and latency.ratio > 0
        assert latency.timing.median <= latency.timing.p99
        assert "slowest query alone" in latency.versus
    for note in section.notes:  # every runbook's ratio, in both modes
        assert all(f"{runbook} " in note for runbook in load_runbooks()), note
    assert len(section.notes) == 2


def test_bench_command_writes_the_report(tmp_path: Path) -> None:
    require_binary("prometheus", find_prometheus())
    output = tmp_path / "BENCHMARKS.md"
    command = [sys.executable, "-m", "bot", "bench", "--quick", "--section", "startup"]
    done = subprocess.run(
        [*command, "--repetitions", "2", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CLI start-up" in done.stdout
    report = output.read_text()
    assert report.startswith("# Benchmarks")
    assert f"`vllm-chatops bench --quick --section startup --repetitions 2 --output {output}`" in (
        report
    )
    assert "**Prometheus**: prometheus, version" in report
    rows = [line for line in report.splitlines() if line.startswith("| `vllm-chatops diagnose")]
    assert len(rows) == 1 and "(n=2)" in rows[0], report
    assert "## What the profiles showed" in report

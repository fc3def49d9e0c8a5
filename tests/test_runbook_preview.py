"""`vllm-chatops runbooks preview FILE`: the runbook's real post, or a clear refusal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bot.demo.preview import scenario_for
from bot.simulator.prometheus_runner import free_port

RUNBOOK = """\
id: hot_gpus
title: Hot GPUs (draft)
summary: GPUs running hot, as a runbook author drafts it.
severity: warning
checks:
  - id: gpu_temperature
remediation: Drain the node whose GPU runs hot.
"""


def _preview(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "runbooks", "preview", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_a_runbook_that_does_not_load_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "hot_gpus.yaml"
    bad.write_text(RUNBOOK.replace("severity: warning", "severity: loud"))
    process = _preview(str(bad))
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 2, out
    assert re.search(r"hot_gpus\.yaml:4", out), out


def test_the_scenario_is_found_from_the_ground_truth() -> None:
    assert scenario_for("gpu_thermal") == "thermal"
    assert scenario_for("no_such_runbook") is None


def test_the_preview_links_to_the_bots_post_about_the_runbook(tmp_path: Path) -> None:
    draft = tmp_path / "hot_gpus.yaml"
    draft.write_text(RUNBOOK)
    port = free_port()
    process = _preview(
        str(draft),
        "--scenario",
        "thermal",
        "--port",
        str(port),
        "--scrape-interval",
        "1",
        "--duration",
        "20",
    )
    assert process.stdout is not None
    lines: list[str] = []
    link = None
    deadline = time.monotonic() + 240
    try:
        while link is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            lines.append(line)
            if found := re.search(rf"Open (http://127\.0\.0\.1:{port}/#(C\w+)/([\d.]+))", line):
                link = found
        assert link is not None, "".join(lines)
        state = httpx.get(
            f"http://127.0.0.1:{port}/console/state", params={"user": "U0ONCALL"}, timeout=30
        ).json()
        post = next(i for i in state["items"] if i.get("ts") == link.group(3))
        assert post["channel"] == link.group(2)
        assert "Hot GPUs (draft)" in str(post["blocks"])
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

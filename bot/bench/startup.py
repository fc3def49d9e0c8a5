"""CLI start-up: `vllm-chatops diagnose` as a process, against the diagnosis it reports.

Everything the process does besides the diagnosis (the interpreter, imports, reading
runbooks and config, printing) is start-up overhead: the wall time an on-call engineer
waits minus the ``duration_s`` the diagnosis reports.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from bot.bench.fleet import simulated_fleet
from bot.bench.options import BenchOptions, Progress
from bot.bench.report import Figure, Section, ms
from bot.bench.stats import Timing, percentile

RUNBOOK = "gpu_hardware_failure"
GOAL_S = 0.4


def _diagnose(prometheus_url: str, window: str) -> tuple[float, float]:
    """(wall seconds, the diagnosis' own seconds) of one `diagnose` process."""
    command = [
        sys.executable, "-m", "bot", "diagnose", RUNBOOK, "--prometheus", prometheus_url,
        "--window", window, "--format", "json",
    ]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}  # no config from the caller's environment
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: the diagnosis found a problem
        raise RuntimeError(f"diagnose exited {done.returncode}: {done.stderr[-1000:]}")
    return wall, float(json.loads(done.stdout)["duration_s"])


def run(options: BenchOptions, progress: Progress) -> Section:
    walls: list[float] = []
    own: list[float] = []
    with simulated_fleet(
        options.work_dir / "startup-fleet",
        8,
        progress,
        window=options.window,
        scrape_interval_s=options.scrape_interval_s,
        scenario="healthy",
        gpus_per_replica=4,
    ) as url:
        for i in range(options.repetitions):
            progress(f"diagnose {RUNBOOK} as a process, {i + 1}/{options.repetitions}")
            wall, duration = _diagnose(url, options.window)
            walls.append(wall)
            own.append(duration)
    overheads = [w - d for w, d in zip(walls, own, strict=True)]
    worst = percentile(overheads, 0.99)
    return Section(
        title="CLI start-up",
        figures=[
            Figure(
                name=f"`vllm-chatops diagnose {RUNBOOK}`, wall time, 8 replicas",
                timing=Timing.of(walls),
                versus=f"the diagnosis it reports: median {ms(statistics.median(own))}",
                goal=f"wall ≤ diagnosis + {ms(GOAL_S)}",
                met=worst <= GOAL_S,
            ),
            Figure(
                name="start-up overhead (wall minus diagnosis)",
                timing=Timing.of(overheads),
                goal=f"≤ {ms(GOAL_S)} at p99",
                met=worst <= GOAL_S,
            ),
        ],
        how=(
            "A new process per repetition (`python -m bot diagnose … --format json`, no "
            "config file), timed from spawn to exit; the diagnosis' own time is the "
            "`duration_s` it prints."
        ),
    )

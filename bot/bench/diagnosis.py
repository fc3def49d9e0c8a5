"""Diagnosis time against its limit: the slowest of its own queries, issued alone.

For every shipped runbook, at each fleet size, on raw series and on recording rules:
each repetition runs the full diagnosis (fresh data: a new diagnosis shares nothing with
the last) and then each distinct query it sent, one at a time, so both figures come from
the same minutes of the same run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import defaultdict

from bot.bench.fleet import simulated_fleet
from bot.bench.options import BenchOptions, Progress
from bot.bench.report import Figure, Section, ms
from bot.bench.stats import Timing
from bot.diagnosis.engine import DiagnosisOptions, diagnose
from bot.diagnosis.runbooks import Runbook, load_runbooks
from bot.models import Scope
from bot.sources.prometheus import MetricsSource, PrometheusSource, Sample

GOAL = 1.25


class Recorder:
    """Prometheus, remembering the distinct queries a diagnosis sent."""

    def __init__(self, metrics: MetricsSource) -> None:
        self.metrics = metrics
        self.sent: dict[str, None] = {}

    async def query(self, promql: str) -> list[Sample]:
        self.sent.setdefault(promql)
        return await self.metrics.query(promql)


async def _timed(metrics: MetricsSource, promql: str) -> float:
    started = time.perf_counter()
    await metrics.query(promql)
    return time.perf_counter() - started


async def _measure(
    runbook: Runbook, url: str, window: str, recorded: bool, repetitions: int
) -> tuple[list[float], dict[str, list[float]]]:
    """Diagnosis wall times, and each of its queries' times alone, interleaved."""
    source = PrometheusSource(url, timeout_s=60)
    options = DiagnosisOptions(
        window=window, check_timeout_s=60, recorded_window=window if recorded else None
    )
    walls: list[float] = []
    singles: dict[str, list[float]] = defaultdict(list)
    try:
        for _ in range(repetitions):
            recorder = Recorder(source)
            started = time.perf_counter()
            await diagnose(runbook, Scope(), recorder, options)
            walls.append(time.perf_counter() - started)
            for promql in recorder.sent:
                singles[promql].append(await _timed(source, promql))
    finally:
        await source.aclose()
    return walls, singles


def _figure(replicas: int, mode: str, runbook: str, walls: list[float], slowest: float,
            queries: int) -> Figure:  # fmt: skip
    ratio = statistics.median(walls) / slowest
    return Figure(
        name=f"{replicas} replicas, {mode}: {runbook} ({queries} queries)",
        timing=Timing.of(walls),
        versus=f"its slowest query alone {ms(slowest)}",
        ratio=ratio,
        goal=f"≤ {GOAL} ×",
        met=ratio <= GOAL,
    )


def run(options: BenchOptions, progress: Progress) -> Section:
    runbooks = load_runbooks()
    figures: list[Figure] = []
    notes: list[str] = []
    for replicas in options.replicas:
        fleet = simulated_fleet(
            options.work_dir / f"fleet-{replicas}",
            replicas,
            progress,
            window=options.window,
            scrape_interval_s=options.scrape_interval_s,
        )
        with fleet as url:
            for recorded, mode in ((False, "raw series"), (True, "recording rules")):
                ratios: dict[str, float] = {}
                worst: Figure | None = None
                for runbook in runbooks.values():
                    progress(f"{replicas} replicas, {mode}: {runbook.id}")
                    walls, singles = asyncio.run(
                        _measure(runbook, url, options.window, recorded, options.repetitions)
                    )
                    slowest = max(statistics.median(t) for t in singles.values())
                    figure = _figure(replicas, mode, runbook.id, walls, slowest, len(singles))
                    ratios[runbook.id] = figure.ratio or 0.0
                    if worst is None or (figure.ratio or 0.0) > (worst.ratio or 0.0):
                        worst = figure
                    if runbook.id == "high_latency":
                        figures.append(figure)
                if worst is not None and worst not in figures:
                    figures.append(worst)
                listing = ", ".join(f"{k} {v:.2f}" for k, v in sorted(ratios.items()))
                notes.append(f"{replicas} replicas, {mode}, ratio per runbook: {listing}")
    return Section(
        title="Diagnosis vs its slowest query",
        figures=figures,
        how=(
            f"Scenario fleet_scale (one replica under KV pressure, 30 % on pre-0.11 metric "
            f"names), scraped every {options.scrape_interval_s:g} s; window {options.window}. "
            "Per repetition: the full diagnosis (all checks concurrently), then each "
            "distinct query it sent, alone. Ratio = "
            "median diagnosis ÷ the largest per-query median. Shown: high_latency and the "
            "runbook with the worst ratio at each size and mode; every runbook's ratio is "
            "listed below."
        ),
        notes=notes,
    )

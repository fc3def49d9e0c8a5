"""Section "Throughput and memory": alerts accepted per second to durable storage (SQLite
and PostgreSQL), and the bot's RSS growth over a soak."""

from __future__ import annotations

from bot.bench import intake_load, memory_soak
from bot.bench.intake_load import IntakePlan, IntakeResult
from bot.bench.memory_soak import SoakResult
from bot.bench.options import BenchOptions, Progress
from bot.bench.report import Figure, Section
from bot.bench.scratch_schema import scratch_schema
from bot.bench.stats import Timing

TITLE = "Throughput and memory"
GROWTH_GOAL_PERCENT = 5.0


def plan(options: BenchOptions) -> IntakePlan:
    return IntakePlan(notifications=100 if options.quick else 2000)


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def _rate(result: IntakeResult) -> str:
    return f"{result.alerts_per_s:,.0f} alerts/s"


def intake_figures(
    store: str, result: IntakeResult, sqlite: IntakeResult | None = None
) -> list[Figure]:
    """Rate, answer latency and losses on one store; compared with SQLite's when given."""
    timed = result.timed
    rate = Figure(f"alert intake, {store}", value=_rate(result))
    answer = Figure(f"webhook answer, {store}", timing=Timing.of(timed.latencies))
    if sqlite is not None:
        base = sqlite.timed
        rate = Figure(
            rate.name,
            value=rate.value,
            versus=f"SQLite: {_rate(sqlite)}",
            ratio=result.alerts_per_s / sqlite.alerts_per_s if sqlite.alerts_per_s else None,
        )
        median = Timing.of(base.latencies).median
        answer = Figure(
            answer.name,
            timing=answer.timing,
            versus=f"SQLite median: {median * 1000:.0f} ms",
            ratio=Timing.of(timed.latencies).median / median if median else None,
        )
    refused = f", {timed.refused} notifications refused" if timed.refused else ""
    lost = Figure(
        f"alerts lost, {store}",
        value=f"{result.lost} of {result.accepted:,} accepted",
        versus=f"counted in the store after the bot stopped{refused}",
        goal="0",
        met=result.lost == 0,
    )
    return [rate, answer, lost]


def soak_figures(result: SoakResult, soak_s: float) -> list[Figure]:
    start = result.samples[0][1]
    failed = f"; {result.failed} of {result.requests} requests not answered 2xx"
    return [
        Figure(
            "RSS after warm-up",
            value=_mib(result.baseline_kib),
            versus=f"at the start of traffic: {_mib(start)}",
            ratio=result.baseline_kib / start,
        ),
        Figure(
            f"RSS growth over {soak_s / 60:.3g} min",
            value=f"{result.growth_percent:+.1f} %",
            versus=(
                f"{_mib(result.last_kib)} at the end vs {_mib(result.baseline_kib)} baseline "
                f"({result.after_warmup} samples after a {result.warmup_s:.0f} s warm-up"
                f"{failed if result.failed else ''})"
            ),
            ratio=result.last_kib / result.baseline_kib,
            goal=f"< {GROWTH_GOAL_PERCENT:.0f} %",
            met=result.growth_percent < GROWTH_GOAL_PERCENT,
        ),
    ]


def run(options: BenchOptions, progress: Progress) -> Section:
    intake = plan(options)
    sqlite_url = f"sqlite:///{options.work_dir / 'throughput.db'}"
    progress("alert intake on SQLite")
    sqlite = intake_load.measure(intake, options.work_dir, "intake-sqlite", sqlite_url)
    figures = intake_figures("SQLite", sqlite)
    notes: list[str] = []
    if options.postgres_url is None:
        notes.append("PostgreSQL was not measured: pass `--postgres URL` to compare it.")
    else:
        progress("alert intake on PostgreSQL")
        with scratch_schema(options.postgres_url) as url:
            postgres = intake_load.measure(intake, options.work_dir, "intake-postgres", url)
        figures += intake_figures("PostgreSQL", postgres, sqlite)
    progress(f"memory soak, {options.soak_s:.0f} s")
    soak_url = f"sqlite:///{options.work_dir / 'soak.db'}"
    figures += soak_figures(
        memory_soak.measure(options.soak_s, options.work_dir, soak_url), options.soak_s
    )
    how = (
        f"Intake: the real `serve` process (HTTP mode, Slack a local workspace, nothing behind "
        f"Prometheus) takes {intake.notifications:,} Alertmanager notifications of "
        f"{intake.per_notification} new alerts each, over {intake.incidents} incidents, from "
        f"{intake.senders} concurrent senders after {intake.warmup} untimed ones; alerts/s "
        f"counts alerts answered 2xx, then every one is looked up in the store. Memory: the "
        f"bot on SQLite for {options.soak_s:.0f} s, each second a notification (alerts "
        f"joining and resolving {memory_soak.OPEN_INCIDENTS} incidents) and a signed "
        f"`/vllm help`; VmRSS sampled every {memory_soak.sample_every(options.soak_s):.0f} s, "
        f"the baseline the first sample after a warm-up of a sixth of the soak."
    )
    return Section(TITLE, figures, how=how, notes=notes)

"""Section "Throughput and memory": alerts accepted per second to durable storage (SQLite
and PostgreSQL), and the bot's RSS growth over a soak."""

from __future__ import annotations

from bot.bench import intake_load, memory_soak
from bot.bench.intake_load import IntakePlan, IntakeResult, Pushed
from bot.bench.memory_soak import SoakResult
from bot.bench.options import BenchOptions, Progress
from bot.bench.report import Figure, Section
from bot.bench.scratch_schema import scratch_schema
from bot.bench.stats import Timing

TITLE = "Throughput and memory"
GROWTH_GOAL_PERCENT = 5.0


def plan(options: BenchOptions) -> IntakePlan:
    if options.quick:
        return IntakePlan(notifications=100, alone=20)
    return IntakePlan(notifications=2000, alone=200)


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def _rate(pushed: Pushed) -> str:
    return f"{pushed.alerts_per_s:,.0f} alerts/s"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.3g} min"


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def intake_figures(
    store: str, result: IntakeResult, incidents: int, sqlite: IntakeResult | None = None
) -> list[Figure]:
    """Rate (compared with SQLite's when given, else with one sender at a time), answer
    latency (compared with one sender at a time on the same store), posts per incident,
    then the losses."""
    timed, alone = result.timed, result.alone
    answer, uncontended = Timing.of(timed.latencies), Timing.of(alone.latencies)
    base = alone if sqlite is None else sqlite.timed
    refused = timed.refused + alone.refused
    return [
        Figure(
            f"alert intake, {store}",
            value=_rate(timed),
            versus=f"{'one sender at a time' if sqlite is None else 'SQLite'}: {_rate(base)}",
            ratio=_ratio(timed.alerts_per_s, base.alerts_per_s),
        ),
        Figure(
            f"webhook answer, {store}",
            timing=answer,
            versus=f"one sender at a time: {uncontended.median * 1000:.0f} ms",
            ratio=_ratio(answer.median, uncontended.median),
        ),
        Figure(
            f"alert posts, {store}",
            value=f"{result.posts} for {incidents} incidents",
            versus=f"at most {result.busiest_second} Slack writes in any one second",
            goal="one per incident",
            met=result.posts == incidents,
        ),
        Figure(
            f"alerts lost, {store}",
            value=f"{result.lost} of {result.accepted:,} accepted",
            versus="counted in the store after the bot was killed"
            + (f"; {refused} notifications refused" if refused else ""),
            goal="0",
            met=result.lost == 0,
        ),
    ]


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
            f"RSS growth over {_duration(soak_s)}",
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
    figures = intake_figures("SQLite", sqlite, intake.incidents)
    notes: list[str] = []
    if options.postgres_url is None:
        notes.append("PostgreSQL was not measured: pass `--postgres URL` to compare it.")
    else:
        progress("alert intake on PostgreSQL")
        with scratch_schema(options.postgres_url) as url:
            postgres = intake_load.measure(intake, options.work_dir, "intake-postgres", url)
        figures += intake_figures("PostgreSQL", postgres, intake.incidents, sqlite)
    progress(f"memory soak, {options.soak_s:.0f} s")
    soak_url = f"sqlite:///{options.work_dir / 'soak.db'}"
    figures += soak_figures(
        memory_soak.measure(options.soak_s, options.work_dir, soak_url), options.soak_s
    )
    notes.append(f"Every RSS sample of the soak: `{options.work_dir / 'soak' / 'rss.tsv'}`.")
    how = (
        f"Intake: the real `serve` process (HTTP mode, Slack a local workspace, nothing behind "
        f"Prometheus) takes {intake.notifications:,} Alertmanager notifications of "
        f"{intake.per_notification} new alerts each, joining {intake.incidents} open "
        f"incidents, from {intake.senders} concurrent senders; before them, the first of each "
        f"incident (opening its post, untimed) and {intake.alone:,} sent one at a time (the "
        f"comparison). Alerts/s counts alerts answered 2xx; once the bot is killed, every one "
        f"is looked up in the store. Memory: the bot on SQLite for "
        f"{_duration(options.soak_s)}, each second a notification (alerts joining and "
        f"resolving {memory_soak.OPEN_INCIDENTS} incidents) and a signed `/vllm help`; VmRSS "
        f"sampled every {memory_soak.sample_every(options.soak_s):.0f} s, the baseline the "
        f"first sample after a warm-up of a sixth of the soak."
    )
    return Section(TITLE, figures, how=how, notes=notes)

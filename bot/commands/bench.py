"""`bench`: measure the product against its limits and write BENCHMARKS.md."""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.status import Status
from rich.table import Table

from bot.bench.findings import FINDINGS
from bot.bench.options import SECTIONS, BenchOptions
from bot.bench.report import Section, machine, markdown, rows
from bot.commands.common import EXIT_OK, EXIT_PROBLEM, err


def _options(args: argparse.Namespace) -> BenchOptions:
    work_dir = Path(tempfile.mkdtemp(prefix="vllm-chatops-bench-"))
    chosen: dict[str, object] = {"sections": tuple(args.section or SECTIONS)}
    if args.replicas:
        chosen["replicas"] = tuple(args.replicas)
    if args.repetitions:
        chosen["repetitions"] = args.repetitions
    if args.alerts:
        chosen["alerts"] = args.alerts
    if args.concurrency:
        chosen["concurrency"] = args.concurrency
    if args.soak_minutes is not None:
        chosen["soak_s"] = args.soak_minutes * 60
    if args.postgres:
        chosen["postgres_url"] = args.postgres
    if args.quick:
        return BenchOptions.quick_run(work_dir, **chosen)
    return BenchOptions(work_dir=work_dir, **chosen)  # type: ignore[arg-type]


def _table(section: Section) -> Table:
    table = Table(title=section.title, title_justify="left")
    for header in ("figure", "median / p99", "versus (same run)", "ratio", "goal"):
        table.add_column(header, overflow="fold")
    for row in rows(section):
        table.add_row(*row)
    return table


def _progress(status: Status, section: str, text: str) -> None:
    status.update(f"{section}: {text}")


def cmd_bench(args: argparse.Namespace) -> int:
    console = Console(soft_wrap=True)
    options = _options(args)
    sections: list[Section] = []
    failed = False
    for name in options.sections:
        module = importlib.import_module(f"bot.bench.{name}")
        started = time.monotonic()
        with console.status(f"{name}: starting…") as status:
            try:
                section: Section = module.run(options, partial(_progress, status, name))
            except Exception as exc:  # one broken section must not lose the others' figures
                failed = True
                err.print(f"[red]{name} failed:[/red] {type(exc).__name__}: {exc}")
                continue
        sections.append(section)
        console.print(_table(section))
        console.print(f"[dim]{name}: {time.monotonic() - started:.0f} s[/dim]")
    command = shlex.join(["vllm-chatops", *sys.argv[1:]])
    output = Path(args.output)
    output.write_text(markdown(sections, machine(), command, FINDINGS), encoding="utf-8")
    console.print(f"wrote {output} (work files in {options.work_dir})")
    return EXIT_PROBLEM if failed else EXIT_OK

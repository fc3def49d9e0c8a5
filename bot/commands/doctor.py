"""`doctor`: what the monitoring stack holds, and the fix for each problem found."""

from __future__ import annotations

import argparse
import asyncio
import json

from rich.console import Console
from rich.markup import escape

from bot.commands.common import EXIT_OK, EXIT_PROBLEM, UsageError
from bot.config import Settings, load_settings
from bot.diagnosis.doctor import Report, examine, expected_groups, gather
from bot.diagnosis.runbooks import DEFAULT_RUNBOOK_DIR, RunbookError, load_runbooks
from bot.sources.prometheus import PrometheusSource


async def examine_prometheus(settings: Settings, url: str) -> Report:
    try:
        runbooks = load_runbooks(settings.runbooks_dir or DEFAULT_RUNBOOK_DIR)
    except RunbookError as exc:
        raise UsageError(f"the runbooks do not load:\n{exc}") from exc
    source = PrometheusSource(url, timeout_s=settings.query_timeout_s)
    try:
        facts = await gather(
            source,
            url,
            settings.labels,
            expected_groups(runbooks),
            tuple(c.name for c in settings.clusters),
        )
    finally:
        await source.aclose()
    return examine(facts)


def as_json(report: Report) -> dict[str, object]:
    return {
        "prometheus": report.facts.prometheus,
        "ok": report.ok,
        "found": [{"topic": t, "found": v} for t, v in report.found],
        "problems": [{"problem": p.what, "fix": p.fix} for p in report.problems],
    }


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    url = args.prometheus or str(settings.prometheus_url)
    report = asyncio.run(examine_prometheus(settings, url))
    if args.format == "json":
        print(json.dumps(as_json(report), indent=2))
    else:
        out = Console(soft_wrap=True, highlight=False)
        for topic, found in report.found:
            out.print(f"[bold]{escape(topic)}[/bold]  {escape(found)}")
        if report.ok:
            out.print("[green]no problem found[/green]")
        for p in report.problems:
            out.print(f"[red]problem:[/red] {escape(p.what)}")
            out.print(f"  [bold]fix:[/bold] {escape(p.fix)}")
    return EXIT_OK if report.ok else EXIT_PROBLEM

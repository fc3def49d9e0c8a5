"""`diagnose RUNBOOK`: run a runbook against Prometheus, live progress, report or JSON."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json

from rich.console import Console
from rich.live import Live

from bot.commands.common import EXIT_OK, EXIT_PROBLEM, UsageError
from bot.commands.terminal import as_json, progress_table, report
from bot.config import Settings, load_settings
from bot.diagnosis.engine import DiagnosisOptions, OnCheck, diagnose, options_from_settings
from bot.diagnosis.labels import UnknownCluster, known_cluster
from bot.diagnosis.promql import ScopeError, check_window
from bot.diagnosis.runbooks import DEFAULT_RUNBOOK_DIR, Runbook, RunbookError, load_runbooks
from bot.diagnosis.scope import ScopeSyntaxError, parse_scope
from bot.models import CheckResult, Diagnosis, Scope
from bot.sources.prometheus import PrometheusSource


async def run_diagnosis(
    runbook: Runbook,
    scope: Scope,
    source: PrometheusSource,
    options: DiagnosisOptions,
    on_check: OnCheck | None = None,
    cluster_label: str | None = None,
) -> Diagnosis:
    """One diagnosis, its connections closed before the event loop ends.

    ``cluster_label``: the scope's cluster is not configured; it must be a value of this
    label in the data (UsageError naming the values found if not).
    """
    try:
        if cluster_label and scope.cluster:
            try:
                await known_cluster(scope.cluster, source, cluster_label)
            except UnknownCluster as exc:
                raise UsageError(str(exc)) from exc
        return await diagnose(runbook, scope, source, options, on_check)
    finally:
        await source.aclose()


def runbooks_for(settings: Settings) -> dict[str, Runbook]:
    try:
        return load_runbooks(settings.runbooks_dir or DEFAULT_RUNBOOK_DIR)
    except RunbookError as exc:
        raise UsageError(f"the runbooks do not load:\n{exc}") from exc


def exit_code(d: Diagnosis) -> int:
    """1 when something is critical, or when nothing at all could be evaluated."""
    if d.status == "crit" or all(c.status == "unknown" for c in d.checks):
        return EXIT_PROBLEM
    return EXIT_OK


def cmd_diagnose(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    runbooks = runbooks_for(settings)
    runbook = runbooks.get(args.runbook)
    if runbook is None:
        raise UsageError(f"unknown runbook {args.runbook!r}; known: {', '.join(sorted(runbooks))}")
    try:
        scope = parse_scope(args.scope or [])
        window = check_window(args.window) if args.window else None
    except (ScopeSyntaxError, ScopeError) as exc:
        raise UsageError(str(exc)) from exc
    url = args.prometheus or settings.prometheus_url_for(scope.cluster)
    source = PrometheusSource(url, timeout_s=args.timeout or settings.query_timeout_s)
    # a cluster no configuration names is picked by its label in the default Prometheus
    by_label = not settings.is_configured(scope.cluster)
    label = settings.conventions(scope.cluster).cluster_label if by_label else None
    options = options_from_settings(settings, window)
    if args.timeout:  # the deadline of the whole diagnosis: every query, every check
        options = dataclasses.replace(options, check_timeout_s=args.timeout)
    if args.format == "json":
        result = asyncio.run(run_diagnosis(runbook, scope, source, options, None, label))
        print(json.dumps(as_json(result), indent=2))
    else:
        result = _diagnose_live(runbook, scope, source, options, label)
    return exit_code(result)


def _diagnose_live(
    runbook: Runbook,
    scope: Scope,
    source: PrometheusSource,
    options: DiagnosisOptions,
    cluster_label: str | None,
) -> Diagnosis:
    console = Console(soft_wrap=False)
    progress = Console(stderr=True)
    ids = [c.id for c in runbook.checks]
    done: dict[str, CheckResult] = {}
    with Live(progress_table(runbook.title, ids, done), console=progress, transient=True) as live:

        def on_check(result: CheckResult, finished: int, total: int) -> None:
            done[result.id] = result
            live.update(progress_table(runbook.title, ids, done))

        result = asyncio.run(
            run_diagnosis(runbook, scope, source, options, on_check, cluster_label)
        )
    console.print(report(result))
    return result

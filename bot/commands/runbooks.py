"""`runbooks list|show|lint` and `rules export`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table

from bot.commands.common import EXIT_OK, EXIT_PROBLEM, UsageError, err
from bot.commands.diagnose import runbooks_for
from bot.config import load_settings
from bot.diagnosis.runbooks import (
    DEFAULT_RUNBOOK_DIR,
    RunbookError,
    load_runbook_file,
    runbook_files,
)


def cmd_runbooks_list(args: argparse.Namespace) -> int:
    runbooks = runbooks_for(load_settings(args.config))
    table = Table(title=f"{len(runbooks)} runbooks")
    for column in ("id", "title", "severity", "checks", "alerts"):
        table.add_column(column)
    for rb in sorted(runbooks.values(), key=lambda r: r.id):
        table.add_row(
            rb.id,
            rb.title,
            rb.severity,
            ", ".join(c.id for c in rb.checks),
            ", ".join(a.name for a in rb.alerts) or "-",
        )
    Console().print(table)
    return EXIT_OK


def cmd_runbooks_show(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    runbooks = runbooks_for(settings)
    rb = runbooks.get(args.id)
    if rb is None:
        raise UsageError(f"unknown runbook {args.id!r}; known: {', '.join(sorted(runbooks))}")
    if args.format == "json":
        print(json.dumps(rb.model_dump(mode="json", by_alias=True), indent=2))
        return EXIT_OK
    console = Console()
    console.print(f"[bold]{escape(rb.title)}[/bold] ({rb.id}, {rb.severity})")
    console.print(escape(rb.summary))
    table = Table(title="Checks (effective parameters)", title_justify="left")
    table.add_column("check")
    table.add_column("parameters")
    for ref in rb.checks:
        params = rb.check_params(ref.id, settings.thresholds)
        table.add_row(ref.id, " ".join(f"{k}={v}" for k, v in params.items()) or "-")
    console.print(table)
    for rule in rb.rules:
        action = f" → {rule.action.kind} {rule.action.target}" if rule.action else ""
        conditions = " and ".join(
            f"{c.check}"
            + (f" status in {c.status}" if c.status else "")
            + (f" {c.fact or 'value'} == {c.equals}" if c.equals is not None else "")
            + (f" {c.fact or 'value'} > {c.above}" if c.above is not None else "")
            + (f" {c.fact or 'value'} < {c.below}" if c.below is not None else "")
            for c in rule.when
        )
        console.print(f"rule [bold]{rule.id}[/bold]: when {escape(conditions)}{escape(action)}")
    console.print(Markdown(rb.remediation))
    return EXIT_OK


def cmd_runbooks_lint(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths] or [DEFAULT_RUNBOOK_DIR]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or directory: {missing[0]}")
    files = runbook_files(paths)
    problems = 0
    ids: dict[str, Path] = {}
    for path in files:
        try:
            rb = load_runbook_file(path)
        except RunbookError as exc:
            problems += 1
            err.print(escape(str(exc)), highlight=False)
            continue
        if rb.id in ids:
            problems += 1
            err.print(f"{path}:1: id: {rb.id!r} is also defined in {ids[rb.id]}")
        ids[rb.id] = path
    if not files:
        raise UsageError("no runbook files (*.yaml) found")
    if problems:
        err.print(f"{problems} of {len(files)} runbook files have problems")
        return EXIT_PROBLEM
    Console().print(f"{len(files)} runbooks OK")
    return EXIT_OK


def cmd_rules_export(args: argparse.Namespace) -> int:
    from bot.diagnosis.alert_rules import (
        export_rules,
        render_prometheus_rule_yaml,
        render_rules_yaml,
    )
    from bot.slack.own_alerts import own_alert_group

    settings = load_settings(args.config)
    runbooks = runbooks_for(settings)
    try:
        if args.format == "prometheusrule":
            # The runbooks' rules plus the bot's own alerts (bot down, webhook, Slack errors),
            # for prometheus-operator; deploy/kubernetes/monitoring holds this output.
            exported = export_rules(
                runbooks, settings.thresholds, args.for_override, settings.diagnosis_window
            )
            groups = [*exported["groups"], own_alert_group()]
            text = render_prometheus_rule_yaml(groups, namespace=args.namespace)
        else:
            text = render_rules_yaml(
                runbooks, settings.thresholds, args.for_override, settings.diagnosis_window
            )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.output and args.output != "-":
        Path(args.output).write_text(text)
        err.print(f"wrote {args.output}")
    else:
        print(text, end="")
    return EXIT_OK

"""`readiness`: the production readiness scorecard; `readiness attest ITEM`: vouch for an
item only a person can know."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from datetime import UTC, datetime

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from bot.commands.common import EXIT_OK, EXIT_PROBLEM, UsageError
from bot.config import Settings, load_settings
from bot.diagnosis.promql import ScopeError, check_window
from bot.diagnosis.scope import ScopeSyntaxError, parse_scope
from bot.diagnosis.yaml_source import RunbookError
from bot.readiness.attestations import AttestError, attest, current
from bot.readiness.connect import open_sources
from bot.readiness.items import Item, configured_items
from bot.readiness.scorecard import Scorecard, as_json, evaluate
from bot.remediation.audit import AuditLog

STYLE = {"pass": "green", "attested": "cyan", "fail": "bold red", "unknown": "magenta"}
ICON = {"pass": "✔", "attested": "☑", "fail": "✖", "unknown": "?"}


def items_for(settings: Settings) -> list[Item]:
    try:
        return configured_items(settings.runbooks_dir)
    except RunbookError as exc:
        raise UsageError(f"the readiness items do not load:\n{exc}") from exc


def render(card: Scorecard) -> RenderableType:
    table = Table(expand=False)
    for column in ("item", "crit", "status", "how", "evidence"):
        table.add_column(column, overflow="fold")
    for row in card.rows:
        status = row.decision.status
        table.add_row(
            f"{row.item.id}\n[dim]{row.item.title}[/dim]",
            "yes" if row.item.critical else "",
            Text(f"{ICON[status]} {status}", style=STYLE[status]),
            row.decision.how,
            "\n".join(row.decision.evidence),
        )
    verdict = Text(card.verdict, style="bold green" if card.ready else "bold red")
    return Group(Text("Production readiness", style="bold"), table, verdict)


def cmd_readiness(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    items = items_for(settings)
    try:
        scope = parse_scope(args.scope or [])
        window = check_window(args.window) if args.window else None
        lookback = check_window(args.lookback) if args.lookback else None
    except (ScopeError, ScopeSyntaxError) as exc:
        raise UsageError(str(exc)) from exc

    async def run() -> Scorecard:
        async with open_sources(settings, scope, args.prometheus, args.timeout) as sources:
            sources.window, sources.lookback = window, lookback
            audit = sources.audit
            attested = current(audit) if isinstance(audit, AuditLog) else {}
            return await evaluate(items, sources, attested, datetime.now(UTC))

    card = asyncio.run(run())
    if args.format == "json":
        print(json.dumps(as_json(card), indent=2))
    else:
        Console(soft_wrap=False).print(render(card))
    return EXIT_OK if card.ready else EXIT_PROBLEM


def cmd_readiness_attest(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    items = {i.id: i for i in items_for(settings)}
    item = items.get(args.item)
    if item is None:
        attestable = sorted(i for i, it in items.items() if it.attest)
        raise UsageError(f"unknown item {args.item!r}; attestable: {', '.join(attestable)}")
    by = args.by or getpass.getuser()
    try:
        done = attest(
            AuditLog(settings.database_url),
            item,
            by=by,
            by_name=by,
            link=args.link or "",
            days=args.days,
            now=datetime.now(UTC),
            origin={"via": "cli"},
        )
    except AttestError as exc:
        raise UsageError(str(exc)) from exc
    print(f"{item.id} attested by {done.by} until {done.expires:%Y-%m-%d %H:%M} UTC")
    return EXIT_OK

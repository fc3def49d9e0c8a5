"""`audit list|verify|export`: read the tamper-evident audit log."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.table import Table

from bot.commands.common import EXIT_OK, err
from bot.config import load_settings
from bot.remediation.audit import AuditLog


def _short(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def cmd_list(database_url: str, n: int = 20, target: str | None = None) -> str:
    """`audit list`: the newest records as a table (newest first)."""
    events = AuditLog(database_url).recent(n, target)
    if not events:
        return "audit log is empty" + (f" for target {target}" if target else "")
    table = Table(title=f"audit log: newest {len(events)}", expand=False)
    for column in ("seq", "at (UTC)", "event", "who", "kind", "target", "where", "outcome"):
        table.add_column(column, overflow="fold")
    for e in events:
        where = "/".join(x for x in (e.cluster, e.namespace) if x)
        who = f"{e.actor_name} ({e.actor_id})" if e.actor_name else e.actor_id
        table.add_row(
            str(e.seq),
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.event,
            who,
            e.kind,
            e.target,
            where,
            _short(e.outcome or e.plan, 60),
        )
    buffer = io.StringIO()
    Console(file=buffer, width=160, no_color=True, highlight=False).print(table)
    return buffer.getvalue()


def cmd_verify(database_url: str) -> tuple[int, str]:
    """`audit verify`: (0, summary) when the chain holds, else (1, the first broken record)."""
    result = AuditLog(database_url).verify()
    if result.ok:
        return 0, f"audit log intact: {result.checked} records, hash chain verified"
    return 1, (
        f"audit log BROKEN at record {result.first_broken_seq}: {result.reason} "
        f"({result.checked} records before it verified)"
    )


def cmd_export(database_url: str, out: IO[str]) -> int:
    """`audit export --format jsonl`: write every record to ``out``; exit code 0."""
    AuditLog(database_url).export_jsonl(out)
    return 0


def cmd_audit_list(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    print(cmd_list(settings.database_url, args.n, args.target))
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    code, message = cmd_verify(load_settings(args.config).database_url)
    (print if code == 0 else err.print)(message)
    return code


def cmd_audit_export(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.output and args.output != "-":
        with Path(args.output).open("w") as out:
            return cmd_export(settings.database_url, out)
    return cmd_export(settings.database_url, sys.stdout)

"""`audit list|verify|export`: read the tamper-evident audit log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.commands.common import EXIT_OK, err
from bot.config import load_settings
from bot.remediation import audit


def cmd_audit_list(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    print(audit.cmd_list(settings.database_url, args.n, args.target))
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    code, message = audit.cmd_verify(load_settings(args.config).database_url)
    (print if code == 0 else err.print)(message)
    return code


def cmd_audit_export(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.output and args.output != "-":
        with Path(args.output).open("w") as out:
            return audit.cmd_export(settings.database_url, out)
    return audit.cmd_export(settings.database_url, sys.stdout)

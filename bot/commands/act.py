"""`act`: run a remediation from a terminal, through the same plan → permission → approval →
audit path as a Slack button (the remediation core, rendered for a terminal).

The actor is the OS user, or ``--as`` (for example a Slack user id the policy grants).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from rich.console import Console
from rich.markup import escape

from bot.commands.common import EXIT_OK, EXIT_PROBLEM, UsageError
from bot.config import Settings, load_settings
from bot.diagnosis.engine import options_from_settings
from bot.remediation.audit import AuditLog
from bot.remediation.events import (
    Actor,
    ApprovalRequested,
    Approved,
    Busy,
    Event,
    Finished,
    Preview,
    Progressed,
    Refused,
    Rejected,
    Started,
    Verified,
    describe_details,
)
from bot.remediation.flow import Remediation, UnknownRequest
from bot.remediation.placement import AmbiguousTarget
from bot.remediation.requests import RequestSyntaxError, parse_action
from bot.sources.prometheus import MetricsSource, PrometheusSource
from bot.store import Store

out = Console(soft_wrap=True, highlight=False)


class TerminalReporter:
    """Prints each step; remembers whether the request ended well."""

    def __init__(self) -> None:
        self.ok = False

    async def report(self, event: Event) -> str | None:
        req = event.request
        what = escape(f"{req.kind} {req.target}")
        match event:
            case Refused(reason=reason):
                out.print(f"[red]refused:[/red] {escape(reason)}")
            case ApprovalRequested():
                self.ok = True
                out.print(
                    f"[yellow]awaiting approval:[/yellow] {what} needs a second authorised "
                    f"person: vllm-chatops act approve {req.id} --as USER "
                    f"(or reject {req.id})"
                )
            case Approved():
                out.print(f"approved by {escape(event.actor.name)}: {what}")
            case Rejected():
                self.ok = True
                out.print(f"rejected by {escape(event.actor.name)}: {what}")
            case Busy():
                out.print(f"[red]busy:[/red] another action is running on {escape(req.target)}")
            case Started():
                out.print(f"running {what} …")
            case Progressed(message=message):
                out.print(f"  {escape(message)}")
            case Finished(ok=ok, summary=summary, details=details, verify_in_s=delay):
                self.ok = ok
                mark = "[green]done:[/green]" if ok else "[red]failed:[/red]"
                out.print(f"{mark} {escape(summary)}")
                for line in describe_details(details):
                    out.print(f"  {escape(line)}")
                if delay is not None:
                    out.print(f"verification re-check due in {delay:g} s (run by the bot)")
            case Verified(headline=headline):
                out.print(escape(headline))
        return None


class NoGroups:
    """A terminal knows no chat user groups: grants by user only."""

    async def members(self, group: str) -> frozenset[str]:
        return frozenset()


def core(settings: Settings, reporter: TerminalReporter) -> Remediation:
    sources: dict[str | None, MetricsSource] = {}

    def metrics_for(cluster: str | None) -> MetricsSource:
        if cluster not in sources:
            url = str(settings.cluster(cluster).prometheus_url)
            sources[cluster] = PrometheusSource(url, timeout_s=settings.query_timeout_s)
        return sources[cluster]

    return Remediation(
        settings=settings,
        store=Store(settings.database_url),
        audit=AuditLog(settings.database_url),
        runbooks={},
        reporter=reporter,
        directory=NoGroups(),
        metrics_for=metrics_for,
        options=options_from_settings(settings),
    )


def show(preview: Preview) -> None:
    plan = preview.plan
    if plan is not None:
        out.print(f"[bold]plan:[/bold] {escape(plan.summary)}")
        for change in plan.changes:
            out.print(f"  • {escape(change)}")
        for warning in plan.warnings:
            out.print(f"  [yellow]⚠ {escape(warning)}[/yellow]")
    if preview.error:
        out.print(f"[red]cannot run:[/red] {escape(preview.error)}")
    elif preview.needs_approval:
        out.print("a second authorised person must approve before anything changes")


def _confirmed(assume_yes: bool) -> bool:
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError("not a terminal: pass --yes to confirm the plan")
    return input("Confirm? [y/N] ").strip().lower() in ("y", "yes")


def cmd_act(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    actor = Actor(id=args.as_user or getpass.getuser(), name=args.as_user or getpass.getuser())
    reporter = TerminalReporter()
    remediation = core(settings, reporter)
    if args.verb in ("approve", "reject"):
        if len(args.words) != 1:
            raise UsageError(f"usage: act {args.verb} REQUEST_ID [--as USER]")
        try:
            asyncio.run(remediation.approve(args.words[0], actor, args.verb == "approve"))
        except UnknownRequest as exc:
            raise UsageError(str(exc)) from exc
        return EXIT_OK if reporter.ok else EXIT_PROBLEM
    try:
        asked = parse_action(args.verb, list(args.words))
    except RequestSyntaxError as exc:
        raise UsageError(str(exc).replace("`", "")) from exc
    reason = f"asked for with `vllm-chatops act` by {actor.name}"
    try:
        request_id = asyncio.run(remediation.offer(asked, reason=reason, cluster=args.cluster))
    except AmbiguousTarget as exc:
        raise UsageError(str(exc).replace("cluster=NAME", "--cluster NAME")) from exc
    out.print(f"request {request_id}: {escape(asked.kind)} {escape(asked.target)}")
    preview = asyncio.run(remediation.preview(request_id, actor))
    show(preview)
    if not preview.executable:  # a failed plan or a denial (audited when shown)
        return EXIT_PROBLEM
    if not _confirmed(args.yes):
        out.print("not confirmed; nothing changed")
        return EXIT_PROBLEM
    asyncio.run(remediation.confirm(request_id, actor, {}))
    return EXIT_OK if reporter.ok else EXIT_PROBLEM

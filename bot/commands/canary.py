"""`canary NS/DEPLOYMENT`: the canary gates, each pass / fail / waiting with both numbers;
`canary export-analysis NS/DEPLOYMENT`: the gates as an Argo Rollouts AnalysisTemplate."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from bot.canary.analysis import analysis_template, as_yaml
from bot.canary.compare import Comparison, compare
from bot.canary.gates import show
from bot.canary.target import TargetError, parse_target
from bot.commands.common import EXIT_OK, EXIT_PROBLEM, UsageError
from bot.config import CanarySettings, Settings, load_settings
from bot.diagnosis.promql import ScopeError, check_window
from bot.models import Scope
from bot.sources.prometheus import PrometheusSource

if TYPE_CHECKING:
    from bot.canary.watches import Watch, Watches

STYLE = {"pass": "green", "fail": "bold red", "wait": "yellow", "unknown": "magenta"}
WORDS = {"pass": "pass", "fail": "FAIL", "wait": "waiting", "unknown": "unknown"}


def as_json(c: Comparison) -> dict[str, Any]:
    def revision(r: Any) -> dict[str, Any] | None:
        return None if r is None else {"replicaset": r.replicaset, "created": r.created}

    return {
        "target": f"{c.namespace}/{c.deployment}",
        "window": c.window,
        "status": c.status,
        "rollback": c.rollback,
        "problem": c.problem,
        "new": revision(c.new),
        "previous": revision(c.old),
        "gates": [
            {
                "metric": g.metric,
                "status": g.status,
                "new": g.new,
                "previous": g.old,
                "unit": g.unit,
                "rule": g.limit,
                "reason": g.reason,
            }
            for g in c.gates
        ],
        "rollback_triggers": [
            {"metric": t.metric, "tripped": t.tripped, "value": t.value, "limit": t.limit}
            for t in c.triggers
        ],
        "queries": c.queries,
    }


def render(c: Comparison) -> RenderableType:
    title = Text(f"Canary {c.namespace}/{c.deployment}", style="bold")
    if c.problem:
        return Group(title, Text(c.problem, style=STYLE["unknown"]))
    assert c.new is not None and c.old is not None
    head = Text(f"{c.new.replicaset} (new) against {c.old.replicaset} (previous), over {c.window}")
    table = Table(expand=False)
    for column in ("gate", "status", "new", "previous", "rule", "why"):
        table.add_column(column)
    for g in c.gates:
        table.add_row(
            g.title,
            Text(WORDS[g.status], style=STYLE[g.status]),
            show(g.new, g.unit),
            show(g.old, g.unit),
            g.limit,
            g.reason,
        )
    tripped = [t for t in c.triggers if t.tripped]
    if tripped:
        reasons = "; ".join(f"{t.metric} {t.reason}" for t in tripped)
        trigger = Text(f"ROLL BACK NOW: {reasons}", style="bold red")
    elif any(t.value is None or "not enough data" in t.reason for t in c.triggers):
        trigger = Text("rollback triggers: not enough data yet", style=STYLE["wait"])
    else:
        trigger = Text("rollback triggers: none tripped", style="green")
    verdict = Text(f"verdict: {WORDS[c.status]}", style=STYLE[c.status])
    return Group(title, head, table, trigger, verdict)


def _window(args: argparse.Namespace) -> str | None:
    try:
        return check_window(args.window) if args.window else None
    except ScopeError as exc:
        raise UsageError(str(exc)) from exc


def _gates(config: CanarySettings, phase: str | None) -> list[str] | None:
    if phase is None:
        return None
    for p in config.phases:
        if p.name == phase:
            return list(p.gates)
    raise UsageError(f"unknown phase {phase!r}; known: {', '.join(p.name for p in config.phases)}")


def cmd_canary(args: argparse.Namespace) -> int:
    words = list(args.words)
    if words[0] == "watches" and len(words) == 1:
        return _watches(args, load_settings(args.config))
    if words[0] == "stop":
        if len(words) != 2 or not words[1].isascii() or not words[1].isdigit():
            raise UsageError("usage: canary stop N (the watch's number, see `canary watches`)")
        return _stop(args, load_settings(args.config), int(words[1]))
    export = words[0] == "export-analysis"
    if export:
        words = words[1:]
    if len(words) != 1:
        raise UsageError("usage: canary [export-analysis] NS/DEPLOYMENT")
    try:
        namespace, deployment = parse_target(words[0])
    except TargetError as exc:
        raise UsageError(str(exc)) from exc
    settings = load_settings(args.config)
    if export:
        return _export(args, settings, namespace, deployment)
    if args.watch:
        return _watch(args, settings, f"{namespace}/{deployment}")
    window = _window(args)
    gates = _gates(settings.canary, args.phase)
    url = args.prometheus or settings.prometheus_url_for(args.cluster)
    source = PrometheusSource(url, timeout_s=args.timeout or settings.query_timeout_s)
    scope = Scope(cluster=args.cluster)

    async def run() -> Comparison:
        try:
            return await compare(
                source, scope, namespace, deployment, settings.canary, window, gates
            )
        finally:
            await source.aclose()

    result = asyncio.run(run())
    if args.format == "json":
        print(json.dumps(as_json(result), indent=2))
    else:
        Console(soft_wrap=False).print(render(result))
    return EXIT_OK if result.status == "pass" else EXIT_PROBLEM


def _export(args: argparse.Namespace, settings: Settings, namespace: str, name: str) -> int:
    gates = _gates(settings.canary, args.phase)
    template = analysis_template(settings.canary, namespace, name, gates, args.prometheus)
    text = as_yaml(template)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return EXIT_OK


def _book(settings: Settings) -> Watches:
    from bot.canary.watches import Watches
    from bot.store import Store

    return Watches(Store(settings.database_url))


def _watch_json(w: Watch, settings: Settings) -> dict[str, Any]:
    phase = settings.canary.phases[min(w.phase, len(settings.canary.phases) - 1)]
    return {
        "id": w.id,
        "target": w.target,
        "cluster": w.cluster,
        "channel": w.channel,
        "started_by": w.started_by,
        "state": w.state,
        "phase": phase.name,
        "traffic_percent": phase.traffic_percent,
        "summary": w.summary,
        "request_id": w.request_id,
        "updated_at": w.updated_at.isoformat() if w.updated_at else None,
    }


def _watch(args: argparse.Namespace, settings: Settings, target: str) -> int:
    channel = args.channel or settings.default_channel
    if not channel:
        raise UsageError("--watch needs --channel (or default_channel in the configuration)")
    if args.cluster and not settings.is_configured(args.cluster):
        raise UsageError(f"cluster {args.cluster!r} is not configured")
    by = args.by or getpass.getuser()
    w, created = _book(settings).start(target, args.cluster, channel, by)
    if args.format == "json":
        print(json.dumps({"created": created, **_watch_json(w, settings)}, indent=2))
        return EXIT_OK
    if created:
        every = settings.canary.evaluate_every_s
        print(
            f"watch #{w.id} of {target} recorded: the serving bot reads its gates every "
            f"{every} s and posts each phase in {channel}, offering Promote there"
        )
    else:
        print(f"{target} is already watched: watch #{w.id}, {w.state}, posting in {w.channel}")
    return EXIT_OK


def _watches(args: argparse.Namespace, settings: Settings) -> int:
    watches = _book(settings).recent()
    if args.format == "json":
        print(json.dumps([_watch_json(w, settings) for w in watches], indent=2))
        return EXIT_OK
    table = Table(expand=False)
    for column in ("#", "target", "state", "phase", "channel", "summary"):
        table.add_column(column)
    for w in watches:
        row = _watch_json(w, settings)
        table.add_row(
            str(w.id),
            w.target + (f" ({w.cluster})" if w.cluster else ""),
            Text(w.state, style="bold" if w.active else "dim"),
            f"{row['phase']} ({row['traffic_percent']} %)",
            w.channel,
            w.summary,
        )
    Console(soft_wrap=False).print(table if watches else Text("no canary watches"))
    return EXIT_OK


def _stop(args: argparse.Namespace, settings: Settings, watch_id: int) -> int:
    stopped = _book(settings).stop(watch_id, args.by or getpass.getuser())
    if stopped is None:
        print(f"no active canary watch #{watch_id}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"watch #{watch_id} of {stopped.target} stopped")
    return EXIT_OK

"""`canary NS/DEPLOYMENT`: the canary gates, each pass / fail / waiting with both numbers;
`canary export-analysis NS/DEPLOYMENT`: the gates as an Argo Rollouts AnalysisTemplate."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

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

"""Terminal rendering of diagnoses (rich): a live progress table and the final report."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bot.diagnosis.checks.base import fmt
from bot.diagnosis.promql import conventions_of
from bot.models import CheckResult, Diagnosis, Status

STYLE: dict[Status, str] = {
    "ok": "green",
    "warn": "yellow",
    "crit": "bold red",
    "unknown": "magenta",
}
ICON: dict[Status, str] = {"ok": "✔", "warn": "▲", "crit": "✖", "unknown": "?"}


def status_text(status: Status) -> Text:
    return Text(f"{ICON[status]} {status}", style=STYLE[status])


def progress_table(title: str, check_ids: list[str], done: dict[str, CheckResult]) -> Table:
    table = Table(title=f"{title}: {len(done)}/{len(check_ids)} checks done", expand=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("summary", overflow="fold")
    for check_id in check_ids:
        result = done.get(check_id)
        if result is None:
            table.add_row(check_id, Text("… running", style="dim"), "")
        else:
            table.add_row(check_id, status_text(result.status), result.summary)
    return table


def report(d: Diagnosis) -> RenderableType:
    """Conclusion first, then numbers, then what to do."""
    parts: list[RenderableType] = []
    head = Text(f"{d.title} — ", style="bold")
    head.append_text(status_text(d.status))
    head.append(f"   scope: {d.scope.describe()}   ({d.duration_s:.1f} s)", style="dim")
    parts.append(head)
    if d.workloads:
        names = ", ".join(w.split("/", 1)[1] for w in d.workloads)
        parts.append(Text(f"decided per workload, each on its own data: {names}", style="dim"))
    parts.append(Text("\nFindings", style="bold underline"))
    for f in d.findings:
        line = Text("  ")
        line.append_text(status_text(f.severity))
        line.append(f"  {f.summary}")
        parts.append(line)
    if d.actions:
        parts.append(Text("\nRecommended actions", style="bold underline"))
        for a in d.actions:
            params = " ".join(f"{k}={v}" for k, v in a.params.items())
            parts.append(Text(f"  → {a.kind} {a.where()} {params}".rstrip(), style="bold"))
            parts.append(Text(f"    {a.reason}", style="dim"))
    table = Table(title="Checks", title_justify="left", expand=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("value", justify="right")
    table.add_column("summary", overflow="fold")
    for c in d.checks:
        table.add_row(c.title, status_text(c.status), fmt(c.value, c.unit), c.summary)
    parts.append(Text(""))
    parts.append(table)
    parts.append(Text("\nRemediation", style="bold underline"))
    from rich.markdown import Markdown  # a quarter second to import; JSON output skips it

    parts.append(Markdown(d.remediation))
    for title, url in d.links.items():
        parts.append(Text(f"{title}: {url}", style="link " + url))
    return Group(*parts)


def as_json(d: Diagnosis) -> dict[str, Any]:
    """The documented JSON shape of ``vllm-chatops diagnose --format json``."""
    return {
        "runbook": d.runbook,
        "scope": {**d.scope.labels, **({"cluster": d.scope.cluster} if d.scope.cluster else {})},
        "labels": conventions_of(d.scope).describe(),
        "status": d.status,
        "checks": [
            {
                "id": c.id,
                "status": c.status,
                "value": c.value,
                "unit": c.unit,
                "summary": c.summary,
                "offenders": [o.model_dump() for o in c.offenders],
                "query": c.queries[0] if c.queries else None,
                "queries": c.queries,
                "facts": c.facts,
            }
            for c in d.checks
        ],
        "findings": [
            {
                "id": f.id,
                "severity": f.severity,
                "summary": f.summary,
                "targets": f.targets,
                "workload": f.workload,
            }
            for f in d.findings
        ],
        "workloads": d.workloads,
        "actions": [a.model_dump() for a in d.actions],
        "remediation": d.remediation,
        "links": d.links,
        "duration_s": d.duration_s,
    }

"""Block Kit rendering of an Alertmanager notification and its runbook. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from slack_sdk.models.blocks import Block, DividerBlock

from bot.diagnosis.runbooks import Runbook
from bot.models import Alert, AlertGroup
from bot.slack import ids
from bot.slack.block_kit import (
    LINKS_MAX_CHARS,
    REMEDIATION_MIN_CHARS,
    STATUS_EMOJI,
    TEXT_BUDGET,
    Message,
    and_more,
    blocks_text_size,
    context,
    fallback,
    fields_section,
    finish,
    header,
    links_block,
    pack,
    remediation_blocks,
    section,
)
from bot.slack.mrkdwn import SCOPE_VALUE, code, fit, inline, join_bounded, pair

KEY_LABELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("namespace", ("namespace",)),
    ("pod", ("pod",)),
    ("node", ("node", "hostname", "Hostname")),
    ("model_name", ("model_name",)),
    ("cluster", ("cluster",)),
)
LABEL_TITLE = {
    "namespace": "Namespace",
    "pod": "Pod",
    "node": "Node",
    "model_name": "Model",
    "cluster": "Cluster",
}
# Scope word for `/vllm diagnose` per key label (see bot/scope.py).
SCOPE_WORD = {
    "namespace": "ns",
    "pod": "pod",
    "node": "node",
    "model_name": "model",
    "cluster": "cluster",
}

# Budgets (blocks, characters) that keep the message within the limits by construction.
MAX_ALERTS_SHOWN = 10
ALERTS_MAX_CHARS = 1500


def _label(labels: Mapping[str, str], keys: Sequence[str]) -> str | None:
    for key in keys:
        if labels.get(key):
            return labels[key]
    return None


def _values_text(values: Sequence[str]) -> str:
    distinct = list(dict.fromkeys(values))
    return join_bounded([code(v, 60) for v in distinct], ", ", 150)


def _alert_line(alert: Alert, common: Mapping[str, str], common_summary: str) -> str:
    emoji = ":fire:" if alert.status == "firing" else STATUS_EMOJI["ok"]
    parts = [f"{emoji} *{inline(alert.name, 60)}*"]
    own = []
    for name, keys in KEY_LABELS:
        value = _label(alert.labels, keys)
        if value and value != _label(common, keys):
            own.append(f"{name}={code(value, 50)}")
    if own:
        parts.append(" ".join(own))
    summary = alert.annotations.get("summary", "")
    if summary and summary != common_summary:
        parts.append(inline(summary, 120))
    if alert.startsAt:
        parts.append(f"since {inline(alert.startsAt, 30)}")
    return " — ".join(parts)


def _diagnose_hint(rb: Runbook, labels: Mapping[str, str]) -> str:
    """A copyable `/vllm diagnose` line; only label values that are plainly safe go in."""
    words = [ids.COMMAND, "diagnose", rb.id]
    for name, keys in KEY_LABELS:
        value = _label(labels, keys)
        if value and name != "pod" and SCOPE_VALUE.match(value):
            words.append(f"{SCOPE_WORD[name]}={value}")
    return f"Diagnose it live: `{' '.join(words)}`"


def _worst_newest(alerts: Sequence[Alert]) -> list[Alert]:
    """Firing before resolved, critical before the rest, newest first."""
    rank = {"critical": 0, "warning": 1}
    by_time = sorted(alerts, key=lambda a: a.startsAt, reverse=True)
    return sorted(
        by_time,
        key=lambda a: (a.status != "firing", rank.get(a.labels.get("severity", ""), 2)),
    )


def alert_message(
    group: AlertGroup,
    runbook: Runbook | None,
    *,
    resolved_after: str | None = None,
    tally: tuple[int, int] | None = None,
) -> Message:
    """An Alertmanager notification, with the matching runbook's remediation (or none).

    ``resolved_after`` (e.g. "12m") is shown when the group is resolved. ``tally``
    (firing, resolved) makes it an incident's evolving post: counts over every alert that
    joined it, the worst and newest of them listed.
    """
    firing = group.status == "firing"
    names = list(dict.fromkeys(a.name for a in group.alerts))
    count = len(group.alerts) + group.truncatedAlerts
    if tally is not None:
        count = sum(tally)
        group = group.model_copy(update={"alerts": _worst_newest(group.alerts)})
    shown_names = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
    status = "FIRING" if firing else "RESOLVED"
    emoji = ":fire:" if firing else STATUS_EMOJI["ok"]
    noun = "alert" if count == 1 else "alerts"
    blocks: list[Block] = [header(shown_names, f"{emoji} {status}: ", f" ({count} {noun})")]

    if group.commonLabels:
        common = dict(group.commonLabels)
    elif len(group.alerts) == 1:
        common = dict(group.alerts[0].labels)
    else:
        common = {}
    severities = [a.labels["severity"] for a in group.alerts if a.labels.get("severity")]
    fields = [f"*Severity*\n{_values_text(severities) if severities else 'not set'}"]
    for name, keys in KEY_LABELS:
        values = [v for a in group.alerts if (v := _label(a.labels, keys))]
        if values:
            fields.append(f"*{LABEL_TITLE[name]}*\n{_values_text(values)}")
    blocks.append(fields_section(fields))

    annotations = group.commonAnnotations or group.alerts[0].annotations
    summary = annotations.get("summary", "")
    description = annotations.get("description", "")
    if summary.strip() or description.strip():
        text = f"*{inline(summary, 300)}*" if summary.strip() else ""
        if description.strip():
            text += ("\n" if text else "") + fit(description.strip(), 1200)
        blocks.append(section(text))

    lines = [_alert_line(a, common, summary) for a in group.alerts[:MAX_ALERTS_SHOWN]]
    packed, left = pack(lines, max_blocks=2, max_chars=ALERTS_MAX_CHARS)
    blocks.extend(packed)
    more = left + max(len(group.alerts) - MAX_ALERTS_SHOWN, 0) + group.truncatedAlerts
    if more:
        blocks.append(and_more(more, "alerts"))

    if tally is not None and count > 1:
        blocks.append(
            context(f":fire: {tally[0]} firing  ·  {STATUS_EMOJI['ok']} {tally[1]} resolved")
        )
    if not firing and resolved_after:
        blocks.append(context(f"{STATUS_EMOJI['ok']} Resolved after {inline(resolved_after, 60)}"))

    blocks.append(DividerBlock())
    if runbook is not None:
        blocks.append(
            section(
                f":book: *Runbook: {inline(runbook.title, 100)}* ({code(runbook.id)})\n"
                f"{fit(runbook.summary.strip(), 500)}"
            )
        )
        room = TEXT_BUDGET - blocks_text_size(blocks) - LINKS_MAX_CHARS - 600
        blocks.extend(remediation_blocks(runbook.remediation, max(room, REMEDIATION_MIN_CHARS)))
        links = links_block([(ln.title, ln.render(common)) for ln in runbook.links])
        if links is not None:
            blocks.append(links)
        if firing:
            blocks.append(context(_diagnose_hint(runbook, common)))
    else:
        labels = common or group.alerts[0].labels
        label_text = join_bounded([pair(k, v, 100) for k, v in sorted(labels.items())], ", ", 800)
        blocks.append(
            section(f":grey_question: No runbook matches this alert (labels: {label_text})")
        )

    text = f"{status}: {', '.join(names)} ({count} {noun})"
    if summary:
        text += f" — {summary}"
    if not firing and resolved_after:
        text += f" — resolved after {resolved_after}"
    return Message(text=fallback(text), blocks=finish(blocks))


def joined_message(count: int, joined: Sequence[Mapping[str, str]]) -> Message:
    """A thread line for the ``count`` alerts that joined an incident's post since its last
    update (``joined``: the first of them, for names)."""
    names = list(dict.fromkeys(j.get("alertname", "alert") for j in joined))
    noun = "alert" if count == 1 else "alerts"
    head = f":heavy_plus_sign: {count} more {noun} joined: {inline(', '.join(names), 200)}"
    lines = [
        " ".join(
            f"{key}={code(entry[key], 60)}"
            for key in ("namespace", "pod", "node", "severity")
            if entry.get(key)
        )
        or inline(entry.get("alertname", "alert"), 60)
        for entry in joined[:MAX_ALERTS_SHOWN]
    ]
    blocks: list[Block] = [section(head)]
    packed, left = pack(lines, max_blocks=2, max_chars=ALERTS_MAX_CHARS)
    blocks.extend(packed)
    more = left + max(count - min(len(joined), MAX_ALERTS_SHOWN), 0)
    if more:
        blocks.append(and_more(more, "alerts"))
    return Message(text=fallback(f"{count} more {noun} joined"), blocks=finish(blocks))

"""Block Kit rendering of `/vllm doctor`: what was found, each problem with its fix. Pure."""

from __future__ import annotations

from slack_sdk.models.blocks import Block

from bot.diagnosis.doctor import Report
from bot.slack import ids
from bot.slack.block_kit import (
    STATUS_EMOJI,
    Message,
    and_more,
    context,
    fallback,
    finish,
    header,
    pack,
    section,
)
from bot.slack.mrkdwn import fit, inline

MAX_PROBLEMS_SHOWN = 20


def doctor_message(report: Report) -> Message:
    """Findings as one list, then one section a problem: what is wrong, then the fix."""
    n = len(report.problems)
    verdict = "no problem found" if report.ok else f"{n} problem{'s' if n > 1 else ''} found"
    emoji = STATUS_EMOJI["ok" if report.ok else "warn"]
    lines = [f"*{inline(topic, 40)}* {inline(found, 400)}" for topic, found in report.found]
    found, left = pack(lines, max_blocks=3, max_chars=6000)
    blocks: list[Block] = [
        header("monitoring doctor", f"{ids.COMMAND} "),
        section(f"{emoji} *{verdict}*"),
        *found,
    ]
    if left:
        blocks.append(and_more(left, "findings"))
    for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
        blocks.append(
            section(
                f"{STATUS_EMOJI['warn']} {fit(problem.what, 1200)}\n*Fix:* {fit(problem.fix, 1200)}"
            )
        )
    if n > MAX_PROBLEMS_SHOWN:
        blocks.append(and_more(n - MAX_PROBLEMS_SHOWN, "problems"))
    blocks.append(context(f"Prometheus {inline(report.facts.prometheus, 200)}"))
    return Message(text=fallback(f"{ids.COMMAND} doctor: {verdict}"), blocks=finish(blocks))

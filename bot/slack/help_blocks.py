"""Block Kit rendering of the slash command's help, usage errors and runbooks. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block

from bot.diagnosis.checks import REGISTRY
from bot.diagnosis.runbooks import Runbook
from bot.slack import ids
from bot.slack.block_kit import (
    STATUS_EMOJI,
    Message,
    and_more,
    context,
    fallback,
    finish,
    header,
    links_block,
    pack,
    remediation_blocks,
    section,
)
from bot.slack.mrkdwn import SCOPE_VALUE, code, fit, inline

MAX_RUNBOOKS_SHOWN = 100

USAGE = "\n".join(
    [
        f"*Usage:* `{ids.COMMAND} COMMAND`",
        f"• `{ids.COMMAND} help` — this help",
        f"• `{ids.COMMAND} diagnose RUNBOOK [scope…]` — run a runbook's checks live "
        "and post the diagnosis",
        f"• `{ids.COMMAND} runbook ID` — one runbook: its checks and remediation",
        f"• `{ids.COMMAND} runbooks` — list the runbooks",
        f"• `{ids.COMMAND} status [scope…]` — a quick health overview",
        f"• `{ids.COMMAND} scale NS/DEPLOYMENT N` · `rollback NS/DEPLOYMENT` · "
        "`restart NS/DEPLOYMENT` (or one pod: `restart pod/NS/POD`) · `drain NODE` · "
        "`uncordon NODE` · "
        "`silence ALERT{label=value} 2h` · `unsilence ID` — plan, confirm, then act "
        "(permissions apply)",
        f"• `{ids.COMMAND} audit [N|TARGET]` — recent audit records",
        f"• `{ids.COMMAND} doctor` — what Prometheus holds (targets, metric names, labels, "
        "clusters, rules) and the fix for each problem",
        f"• `{ids.COMMAND} readiness [scope…]` — the production readiness scorecard: "
        "each item measured or attested, the verdict",
        f"• `{ids.COMMAND} canary NS/DEPLOYMENT` — the canary gates: the newest revision "
        "against the previous one, each gate pass / fail / waiting with both numbers",
        "*Scope words:* `namespace=` (or `ns=`), `model=`, `pod=`, `node=`, "
        "`deployment=`, `cluster=`",
        f"Example: `{ids.COMMAND} diagnose kv_cache_pressure ns=prod model=llama-70b`",
    ]
)


def help_message() -> Message:
    """Usage of the slash command and its scope words."""
    blocks: list[Block] = [header("vLLM fleet ChatOps", f"{ids.COMMAND} — "), section(USAGE)]
    return Message(text=f"{ids.COMMAND} usage", blocks=finish(blocks))


def usage_error(problem: str) -> Message:
    """The problem (escaped) and the usage."""
    blocks: list[Block] = [
        section(f"{STATUS_EMOJI['warn']} {fit(problem.strip() or 'invalid command', 1000)}"),
        section(USAGE),
    ]
    return Message(text=fallback(f"{ids.COMMAND}: {problem}"), blocks=finish(blocks))


def refusal(problem: str) -> Message:
    """What is wrong and what to do (escaped), nothing else: no usage text."""
    text = f"{STATUS_EMOJI['warn']} {fit(problem.strip() or 'refused', 1000)}"
    return Message(text=fallback(problem), blocks=finish([section(text)]))


def runbook_message(rb: Runbook) -> Message:
    """One runbook: title, summary, the checks it runs, remediation and links."""
    blocks: list[Block] = [
        header(rb.title),
        context(f"{code(rb.id)}  ·  severity {code(rb.severity)}  ·  {len(rb.checks)} checks"),
        section(fit(rb.summary.strip(), 1500)),
    ]
    lines = []
    for ref in rb.checks:
        check = REGISTRY.get(ref.id)
        title = check.title if check is not None else ref.id
        lines.append(f"• {inline(title, 100)} ({code(ref.id)})")
    packed, left = pack(lines, max_blocks=1, max_chars=1500, prefix="*Checks*")
    blocks.extend(packed)
    if left:
        blocks.append(and_more(left, "checks"))
    blocks.extend(remediation_blocks(rb.remediation, 4000))
    links = links_block([(ln.title, ln.render({})) for ln in rb.links])
    if links is not None:
        blocks.append(links)
    if SCOPE_VALUE.match(rb.id):
        blocks.append(context(f"Run it: `{ids.COMMAND} diagnose {rb.id} [scope…]`"))
    return Message(text=fallback(f"Runbook {rb.id}: {rb.title}"), blocks=finish(blocks))


def runbooks_message(rbs: Sequence[Runbook]) -> Message:
    """A bounded list of runbooks: id, title, severity."""
    blocks: list[Block] = [header("Runbooks", suffix=f" ({len(rbs)})")]
    if not rbs:
        blocks.append(section("No runbooks are loaded."))
    lines = [
        f"• {code(rb.id)} — {inline(rb.title, 100)} ({inline(rb.severity, 20)})"
        for rb in rbs[:MAX_RUNBOOKS_SHOWN]
    ]
    packed, left = pack(lines, max_blocks=4, max_chars=7000)
    blocks.extend(packed)
    left += max(len(rbs) - MAX_RUNBOOKS_SHOWN, 0)
    if left:
        blocks.append(and_more(left, "runbooks"))
    blocks.append(context(f"Show one: `{ids.COMMAND} runbook ID`"))
    return Message(text=f"{len(rbs)} runbooks", blocks=finish(blocks))

"""Block Kit building blocks, kept within Slack's limits by construction. Pure: no I/O.

Every message is a :class:`Message` (fallback ``text`` plus ``blocks`` as dicts) built
from ``slack_sdk.models.blocks`` classes, so ``to_dict()`` validates what slack_sdk
knows; the limits it does not check (50 blocks a message, 2000 characters a field,
non-empty text objects) are kept here by construction, whatever the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.models import Status
from bot.slack.mrkdwn import (
    ELLIPSIS,
    fit,
    is_blank,
    join_bounded,
    link,
    markdown_to_mrkdwn,
    plain,
    truncate,
)

# --- Block Kit limits (Slack API docs; see /work/shared/reference/facts.md §5) ------------
MAX_BLOCKS = 50
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
MAX_FIELDS = 10
HEADER_MAX = 150
BUTTON_TEXT_MAX = 75
CONFIRM_TEXT_MAX = 300
FALLBACK_TEXT_MAX = 1000
# Not in slack_sdk, nor in Slack's block reference: chat.postMessage answers
# msg_blocks_too_long once the blocks' text adds up to somewhere near 11-12K characters
# (slackapi/bolt-js#2509, #2867). Keep every message well under that.
TEXT_BUDGET = 9000

STATUS_EMOJI: dict[Status, str] = {
    "ok": ":white_check_mark:",
    "warn": ":warning:",
    "crit": ":red_circle:",
    "unknown": ":grey_question:",
}

# Budgets (blocks, characters) shared by the messages that show runbook content.
MAX_REMEDIATION_BLOCKS = 3
MAX_LINKS_SHOWN = 10
REMEDIATION_MIN_CHARS = 800
LINKS_MAX_CHARS = 600


@dataclass(frozen=True)
class Message:
    """A Slack message: ``text`` is the notification fallback, ``blocks`` the Block Kit."""

    text: str
    blocks: list[dict[str, Any]]


def _text_size(node: Any, key: str = "") -> int:
    """Characters of text (``text`` and ``value`` strings) in a block's JSON."""
    if isinstance(node, str):
        return len(node) if key in ("text", "value") else 0
    if isinstance(node, dict):
        return sum(_text_size(v, str(k)) for k, v in node.items())
    if isinstance(node, list):
        return sum(_text_size(v, key) for v in node)
    return 0


def message_text_size(blocks: Sequence[Mapping[str, Any]]) -> int:
    """The cumulative text of a message's blocks, as counted against ``TEXT_BUDGET``."""
    return _text_size(list(blocks))


def blocks_text_size(blocks: Sequence[Block]) -> int:
    """The same count for blocks not yet serialised."""
    return sum(_text_size(b.to_dict()) for b in blocks)


def _mrkdwn(text: str, limit: int = SECTION_TEXT_MAX) -> MarkdownTextObject:
    return MarkdownTextObject(text=truncate("-" if is_blank(text) else text.strip(), limit))


def section(text: str, accessory: ButtonElement | None = None) -> SectionBlock:
    return SectionBlock(text=_mrkdwn(text), accessory=accessory)


def fields_section(fields: Sequence[str]) -> SectionBlock:
    return SectionBlock(fields=[_mrkdwn(f, FIELD_TEXT_MAX) for f in fields[:MAX_FIELDS]])


def context(text: str) -> ContextBlock:
    return ContextBlock(elements=[_mrkdwn(text)])


def header(middle: str, prefix: str = "", suffix: str = "") -> HeaderBlock:
    """A header: our own ``prefix`` and ``suffix`` (kept whole), untrusted ``middle`` cut."""
    text = prefix + plain(middle, HEADER_MAX - len(prefix) - len(suffix)) + suffix
    return HeaderBlock(text=PlainTextObject(text=text, emoji=True))


def pack(
    lines: Sequence[str], *, max_blocks: int, max_chars: int, prefix: str = ""
) -> tuple[list[Block], int]:
    """Pack escaped lines into sections: at most ``max_blocks`` of them and ``max_chars``
    characters in all. Returns the blocks and how many lines were left out."""
    blocks: list[Block] = []
    chunk = prefix
    used = len(prefix)
    for i, line in enumerate(lines):
        line = truncate(line, SECTION_TEXT_MAX - len(prefix) - 1)
        if i == 0 and used + len(line) + 1 > max_chars and max_chars - used > 100:
            line = truncate(line, max_chars - used - 1)  # show the start of a huge first line
        if used + len(line) + 1 > max_chars:
            if chunk:
                blocks.append(section(chunk))
            return blocks, len(lines) - i
        candidate = f"{chunk}\n{line}" if chunk else line
        if len(candidate) > SECTION_TEXT_MAX:
            blocks.append(section(chunk))
            if len(blocks) >= max_blocks:
                return blocks, len(lines) - i
            candidate = line
        chunk = candidate
        used += len(line) + 1
    if chunk:
        blocks.append(section(chunk))
    return blocks, 0


def and_more(count: int, what: str) -> ContextBlock:
    """ "… and N more WHAT": what a bounded list left out."""
    return context(f"{ELLIPSIS} and {count} more {what}")


def remediation_blocks(md: str, max_chars: int, hint: str = "") -> list[Block]:
    """A runbook's remediation Markdown as bounded sections; ``hint`` follows the fold."""
    lines = markdown_to_mrkdwn(md).splitlines()
    if not any(line.strip() for line in lines):
        return []
    blocks, left = pack(
        lines, max_blocks=MAX_REMEDIATION_BLOCKS, max_chars=max_chars, prefix="*Remediation*"
    )
    if left:
        blocks.append(context(f"{ELLIPSIS} remediation continues ({left} more lines){hint}"))
    return blocks


def links_block(links: Sequence[tuple[str, str]]) -> Block | None:
    """(title, url) pairs as one context line of safe links, or None when there are none."""
    if not links:
        return None
    shown = [link(title, url) for title, url in links[:MAX_LINKS_SHOWN]]
    if len(links) > MAX_LINKS_SHOWN:
        shown.append(f"+{len(links) - MAX_LINKS_SHOWN} more")
    return context(join_bounded(shown, "  ·  ", LINKS_MAX_CHARS))


def finish(
    blocks: Sequence[Block], max_blocks: int = MAX_BLOCKS, budget: int = TEXT_BUDGET
) -> list[dict[str, Any]]:
    """Validate and serialise. A last guard (each message's budgets should make it idle) folds
    whatever would exceed ``max_blocks`` blocks or ``budget`` characters of text."""
    out: list[dict[str, Any]] = []
    used = 0
    for i, block in enumerate(blocks):
        d = cast(dict[str, Any], block.to_dict())
        size = _text_size(d)
        if (len(out) >= max_blocks - 1 and i < len(blocks) - 1) or used + size > budget - 100:
            fold = context(f"{ELLIPSIS} and {len(blocks) - i} more blocks (message size limit)")
            out.append(cast(dict[str, Any], fold.to_dict()))
            break
        out.append(d)
        used += size
    return out


def fallback(text: str) -> str:
    """The notification text: escaped, on one line, bounded, never empty."""
    return fit(" ".join(text.split()), FALLBACK_TEXT_MAX) or "-"

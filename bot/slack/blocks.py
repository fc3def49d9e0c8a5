"""Block Kit rendering of diagnoses, progress, alerts, help and runbooks. Pure: no I/O.

Every function returns a :class:`Message` (fallback ``text`` plus ``blocks`` as dicts)
built from ``slack_sdk.models.blocks`` classes, so ``to_dict()`` validates what slack_sdk
knows; the limits it does not check (50 blocks a message, 2000 characters a field,
non-empty text objects) are kept here by construction, whatever the input.

Untrusted text (label values, annotations, summaries, targets, user input) goes through
:func:`escape` so it can never mention anyone, inject a link or add formatting.
Identifier-like values (pod, namespace, …) are shown as inline code when that is inert
(no backtick, ``<``, ``>``, ``&`` or ``@``), so they stay copyable; otherwise escaped.
The layout mirrors the terminal report: conclusion first, then what to do, then the
numbers, then how to fix it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.diagnosis.checks import REGISTRY
from bot.diagnosis.checks.base import fmt
from bot.diagnosis.runbooks import Runbook
from bot.models import (
    Alert,
    AlertGroup,
    CheckResult,
    Diagnosis,
    Finding,
    Offender,
    RecommendedAction,
    Scope,
    Status,
    status_rank,
)
from bot.slack import ids

# --- Block Kit limits (Slack API docs; see /work/shared/reference/facts.md §5) ------------
MAX_BLOCKS = 50
MAX_MODAL_BLOCKS = 100
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
MAX_FIELDS = 10
HEADER_MAX = 150
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300
CONFIRM_BUTTON_MAX = 30
MODAL_TITLE_MAX = 24
PRIVATE_METADATA_MAX = 3000
FALLBACK_TEXT_MAX = 1000
# Not in slack_sdk, nor in Slack's block reference: chat.postMessage answers
# msg_blocks_too_long once the blocks' text adds up to somewhere near 11-12K characters
# (slackapi/bolt-js#2509, #2867). Keep every message well under that.
TEXT_BUDGET = 9000
# Request ids go in button values (2000) and the modal's private_metadata (3000).
MAX_REQUEST_ID = 255

ZWSP = "\u200b"
ELLIPSIS = "…"

STATUS_EMOJI: dict[Status, str] = {
    "ok": ":white_check_mark:",
    "warn": ":warning:",
    "crit": ":red_circle:",
    "unknown": ":grey_question:",
}
PENDING_EMOJI = ":hourglass_flowing_sand:"
STATUS_WORD: dict[Status, str] = {
    "ok": "OK",
    "warn": "warning",
    "crit": "critical",
    "unknown": "unknown",
}
ACTION_VERB: dict[str, str] = {
    "scale": "Scale",
    "rollback": "Roll back",
    "drain": "Drain",
    "restart": "Restart",
    "silence": "Silence",
    "config": "Reconfigure",
}
DANGEROUS_KINDS = frozenset({"drain", "rollback"})
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

# Budgets (blocks, characters) that keep every message within the limits by construction.
MAX_ACTIONS_SHOWN = 10
MAX_CHECK_BLOCKS = 4
MAX_REMEDIATION_BLOCKS = 3
MAX_ALERTS_SHOWN = 10
MAX_OFFENDERS_SHOWN = 3
MAX_LINKS_SHOWN = 10
MAX_RUNBOOKS_SHOWN = 100
FINDINGS_MAX_CHARS = 1000
ACTIONS_MAX_CHARS = 2500
CHECKS_MAX_CHARS = 1800
ALERTS_MAX_CHARS = 1500
REMEDIATION_MIN_CHARS = 800
LINKS_MAX_CHARS = 600

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_FORMAT_CHARS = frozenset("*_~`")
_MENTION = re.compile(r"@(?=(?:channel|here|everyone))", re.IGNORECASE)
_CODE_UNSAFE = frozenset("`<>&@")
_SCOPE_VALUE = re.compile(r"^[A-Za-z0-9._:/-]{1,100}$")
# Inside `<url|title>`: `|` would end the URL, `<>` the link, `&` must be an entity.
_URL_ESCAPES = {"|": "%7C", "<": "%3C", ">": "%3E", "&": "&amp;"}


@dataclass(frozen=True)
class Message:
    """A Slack message: ``text`` is the notification fallback, ``blocks`` the Block Kit."""

    text: str
    blocks: list[dict[str, Any]]


# --- text helpers ------------------------------------------------------------------------


def _tokens(text: str, *, formatting: bool = True) -> list[str]:
    """``text`` as escaped, indivisible pieces (an entity is never cut in half)."""
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif formatting and ch in _FORMAT_CHARS:
            out.append(ch + ZWSP)
        elif ch == "@" and _MENTION.match(text, i):
            out.append("@" + ZWSP)
        else:
            out.append(ch)
    return out


def escape(text: str) -> str:
    """Make untrusted text inert in Slack mrkdwn.

    ``&``, ``<`` and ``>`` become entities (so ``<!channel>``, ``<@U123>`` and
    ``<http://x|y>`` are shown, not parsed); ``*``, ``_``, ``~`` and backtick get a
    zero-width space after them (no formatting); ``@channel``, ``@here`` and
    ``@everyone`` get one after the ``@`` (no mention).
    """
    return "".join(_tokens(text))


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    if limit == 1:
        return ELLIPSIS
    return text[: limit - 1].rstrip() + ELLIPSIS


def _fit_tokens(tokens: list[str], limit: int) -> str:
    if sum(len(t) for t in tokens) <= limit:
        return "".join(tokens)
    out: list[str] = []
    used = 0
    for token in tokens:
        if used + len(token) > limit - 1:
            break
        out.append(token)
        used += len(token)
    return ("".join(out).rstrip() + ELLIPSIS) if limit >= 1 else ""


def _fit(text: str, limit: int) -> str:
    """``escape(text)`` bounded to ``limit`` characters without cutting an entity."""
    # Escaping never shortens text: past ``limit`` input characters the result is cut.
    return _fit_tokens(_tokens(text[: max(limit, 0) + 1]), limit)


def _inline(text: str, limit: int) -> str:
    """Escaped, on one line (newlines in labels could fake extra lines), bounded."""
    return _fit(" ".join(text.split()), limit)


def _blank(text: str) -> bool:
    return not text.replace(ZWSP, "").strip()


def _plain(text: str, limit: int, default: str = "-") -> str:
    """For plain_text objects (headers, buttons, titles): one line, ``&<>`` escaped."""
    flat = " ".join(text.split())
    if _blank(flat):
        flat = default
    return _fit_tokens(_tokens(flat[: max(limit, 0) + 1], formatting=False), limit)


def _code(value: str, limit: int = 120) -> str:
    """An identifier as inline code when that is inert, else escaped text."""
    flat = " ".join(value.split())
    if flat and len(flat) <= limit and not _CODE_UNSAFE.intersection(flat):
        return f"`{flat}`"
    return _inline(value, limit) or "-"


def _pair(key: str, value: str, limit: int = 160) -> str:
    """``key=value`` as one inline-code span when that is inert, else escaped."""
    flat = f"{' '.join(key.split())}={' '.join(value.split())}"
    if len(flat) <= limit and not _CODE_UNSAFE.intersection(flat):
        return f"`{flat}`"
    return f"{_inline(key, 60)}={_code(value, max(limit - 60, 20))}"


def _safe_url(url: str) -> str | None:
    """An http(s) URL made safe for ``<url|title>``, or None."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    cleaned = "".join(
        _URL_ESCAPES.get(ch, "%20" if ch.isspace() else ch)
        for ch in url
        if ch.isprintable() or ch.isspace()
    )
    return cleaned if len(cleaned) <= 1500 else None


def _link(title: str, url: str) -> str:
    safe = _safe_url(url)
    label = _inline(title, 150) or "link"
    if safe is None:
        return label
    return f"<{safe}|{label}>"


def _param_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


def _params(params: Mapping[str, Any], limit: int = 600) -> str:
    shown = [_pair(str(k), _param_value(v), 120) for k, v in params.items()]
    return _join_bounded(shown, ", ", limit)


def _join_bounded(items: Sequence[str], sep: str, limit: int) -> str:
    """Join already-escaped items; stop with "+N more" rather than exceed ``limit``."""
    out: list[str] = []
    for i, item in enumerate(items):
        rest = len(items) - i - 1
        tail = f"{sep}+{rest} more" if rest else ""
        if len(sep.join([*out, item])) + len(tail) > limit:
            return truncate(sep.join([*out, f"+{len(items) - i} more"]), limit)
        out.append(item)
    return sep.join(out)


# --- Markdown → mrkdwn -------------------------------------------------------------------

_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_MD_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_MD_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_MD_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_BOLD_MARK = "\x01"


def _md_inline(line: str) -> str:
    """Inline Markdown of one (already entity-escaped) line to mrkdwn."""

    def link(m: re.Match[str]) -> str:
        # The URL was entity-escaped with the line: undo that before checking it.
        url = m.group(2).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
        safe = _safe_url(url)
        title = m.group(1).replace("|", "¦")
        return f"<{safe}|{title}>" if safe else f"{title} ({m.group(2)})"

    line = _MD_LINK.sub(link, line)
    line = _MD_BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", line)
    line = _MD_ITALIC.sub(lambda m: f"_{m.group(1)}_", line)
    return line.replace(_BOLD_MARK, "*")


def markdown_to_mrkdwn(md: str) -> str:
    """Runbook Markdown, roughly, as Slack mrkdwn.

    ``**bold**`` → ``*bold*``, ``*italic*`` → ``_italic_``, headings become bold lines,
    ``-``/``*`` bullets become "•", numbered lists and code are kept, ``[t](url)``
    becomes ``<url|t>`` for http(s) URLs. ``&<>`` are escaped and ``@here``-style words
    neutralised, so the text cannot mention anyone or inject a raw link.
    """
    out: list[str] = []
    in_code = False
    for raw in md.replace(_BOLD_MARK, "").splitlines():
        line = "".join(_tokens(raw, formatting=False))
        if line.lstrip().startswith("```"):
            in_code = not in_code
            out.append("```")
            continue
        if in_code:
            out.append(line)
            continue
        heading = _MD_HEADING.match(line)
        if heading:
            text = _md_inline(heading.group(1)).replace("*", "").strip()
            out.append(f"*{text}*" if text else "")
            continue
        bullet = _MD_BULLET.match(line)
        if bullet:
            out.append(f"{bullet.group(1)}• {_md_inline(bullet.group(2))}")
            continue
        out.append(_md_inline(line))
    if in_code:
        out.append("```")
    return "\n".join(out).strip("\n")


# --- block helpers -----------------------------------------------------------------------


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


def _size(blocks: Sequence[Block]) -> int:
    return sum(_text_size(b.to_dict()) for b in blocks)


def _mrkdwn(text: str, limit: int = SECTION_TEXT_MAX) -> MarkdownTextObject:
    return MarkdownTextObject(text=truncate("-" if _blank(text) else text.strip(), limit))


def _section(text: str, accessory: ButtonElement | None = None) -> SectionBlock:
    return SectionBlock(text=_mrkdwn(text), accessory=accessory)


def _fields_section(fields: Sequence[str]) -> SectionBlock:
    return SectionBlock(fields=[_mrkdwn(f, FIELD_TEXT_MAX) for f in fields[:MAX_FIELDS]])


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[_mrkdwn(text)])


def _header(middle: str, prefix: str = "", suffix: str = "") -> HeaderBlock:
    """A header: our own ``prefix`` and ``suffix`` (kept whole), untrusted ``middle`` cut."""
    text = prefix + _plain(middle, HEADER_MAX - len(prefix) - len(suffix)) + suffix
    return HeaderBlock(text=PlainTextObject(text=text, emoji=True))


def _pack(
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
                blocks.append(_section(chunk))
            return blocks, len(lines) - i
        candidate = f"{chunk}\n{line}" if chunk else line
        if len(candidate) > SECTION_TEXT_MAX:
            blocks.append(_section(chunk))
            if len(blocks) >= max_blocks:
                return blocks, len(lines) - i
            candidate = line
        chunk = candidate
        used += len(line) + 1
    if chunk:
        blocks.append(_section(chunk))
    return blocks, 0


def _more(count: int, what: str) -> ContextBlock:
    return _context(f"{ELLIPSIS} and {count} more {what}")


def _remediation_blocks(md: str, max_chars: int, hint: str = "") -> list[Block]:
    lines = markdown_to_mrkdwn(md).splitlines()
    if not any(line.strip() for line in lines):
        return []
    blocks, left = _pack(
        lines, max_blocks=MAX_REMEDIATION_BLOCKS, max_chars=max_chars, prefix="*Remediation*"
    )
    if left:
        blocks.append(_context(f"{ELLIPSIS} remediation continues ({left} more lines){hint}"))
    return blocks


def _links_block(links: Sequence[tuple[str, str]]) -> Block | None:
    if not links:
        return None
    shown = [_link(title, url) for title, url in links[:MAX_LINKS_SHOWN]]
    if len(links) > MAX_LINKS_SHOWN:
        shown.append(f"+{len(links) - MAX_LINKS_SHOWN} more")
    return _context(_join_bounded(shown, "  ·  ", LINKS_MAX_CHARS))


def _finish(
    blocks: Sequence[Block], max_blocks: int = MAX_BLOCKS, budget: int = TEXT_BUDGET
) -> list[dict[str, Any]]:
    """Validate and serialise. A last guard (the budgets above should make it idle) folds
    whatever would exceed ``max_blocks`` blocks or ``budget`` characters of text."""
    out: list[dict[str, Any]] = []
    used = 0
    for i, block in enumerate(blocks):
        d = cast(dict[str, Any], block.to_dict())
        size = _text_size(d)
        if (len(out) >= max_blocks - 1 and i < len(blocks) - 1) or used + size > budget - 100:
            fold = _context(f"{ELLIPSIS} and {len(blocks) - i} more blocks (message size limit)")
            out.append(cast(dict[str, Any], fold.to_dict()))
            break
        out.append(d)
        used += size
    return out


def _fallback(text: str) -> str:
    return _fit(" ".join(text.split()), FALLBACK_TEXT_MAX) or "-"


def _scope_text(scope: Scope) -> str:
    parts = [_pair(k, v) for k, v in sorted(scope.labels.items())]
    if scope.cluster:
        parts.insert(0, _pair("cluster", scope.cluster))
    return _join_bounded(parts, " ", 400) or "whole fleet"


# --- progress ----------------------------------------------------------------------------


def _check_line(c: CheckResult) -> str:
    return f"{STATUS_EMOJI[c.status]} *{_inline(c.title, 80)}* — {_inline(c.summary, 250)}"


def progress_message(title: str, scope: Scope, done: Sequence[CheckResult], total: int) -> Message:
    """A diagnosis in progress: one line per finished check, a count of running ones."""
    n = len(done)
    blocks: list[Block] = [
        _header(title, prefix=f"{PENDING_EMOJI if n < total else STATUS_EMOJI['ok']} "),
        _context(f"Scope: {_scope_text(scope)}  ·  {n}/{max(total, 0)} checks done"),
    ]
    packed, left = _pack(
        [_check_line(c) for c in done], max_blocks=MAX_CHECK_BLOCKS, max_chars=6000
    )
    blocks.extend(packed)
    if left:
        blocks.append(_more(left, "checks done"))
    if total > n:
        blocks.append(_context(f"{PENDING_EMOJI} {total - n} checks still running{ELLIPSIS}"))
    text = f"{' '.join(title.split())}: {n}/{total} checks done"
    return Message(text=_fallback(text), blocks=_finish(blocks))


# --- diagnosis ---------------------------------------------------------------------------


def _finding_text(f: Finding, limit: int) -> str:
    text = _inline(f.summary, limit)
    if f.targets:
        targets = _join_bounded([_code(t, 60) for t in f.targets], ", ", 200)
        text += f" — on {targets}"
    return text


def _offenders_text(offenders: Sequence[Offender], unit: str) -> str:
    shown = [
        f"{_code(o.name(), 40)} {_inline(fmt(o.value, unit), 20)}"
        for o in offenders[:MAX_OFFENDERS_SHOWN]
    ]
    if len(offenders) > MAX_OFFENDERS_SHOWN:
        shown.append(f"+{len(offenders) - MAX_OFFENDERS_SHOWN} more")
    return ", ".join(shown)


def _diag_check_line(c: CheckResult) -> str:
    line = (
        f"{STATUS_EMOJI[c.status]} *{_inline(c.title, 80)}* · "
        f"{_inline(fmt(c.value, c.unit), 30)} — {_inline(c.summary, 240)}"
    )
    if c.offenders and c.status in ("warn", "crit"):
        line += f"\n        worst: {_offenders_text(c.offenders, c.unit)}"
    return line


def _verb(kind: str) -> str:
    return ACTION_VERB.get(kind, kind.capitalize())


def _action_button(a: RecommendedAction, request_id: str) -> ButtonElement:
    style = "danger" if a.kind in DANGEROUS_KINDS else "primary" if a.kind == "scale" else None
    confirm = None
    if a.kind in DANGEROUS_KINDS:
        confirm = ConfirmObject(
            title=PlainTextObject(text=_plain(f"{_verb(a.kind)} {a.target}?", 80), emoji=True),
            text=MarkdownTextObject(
                text=truncate(
                    f"This requests *{a.kind}* of {_inline(a.target, 100)}. "
                    "You will see the plan before anything is changed.",
                    CONFIRM_TEXT_MAX,
                )
            ),
            confirm=PlainTextObject(text="Show plan"),
            deny=PlainTextObject(text="Cancel"),
            style="danger",
        )
    return ButtonElement(
        text=PlainTextObject(text=_plain(f"{_verb(a.kind)} {a.target}", BUTTON_TEXT_MAX)),
        action_id=ids.ACTION_BUTTON,
        value=request_id,
        style=style,
        confirm=confirm,
    )


def _action_text(a: RecommendedAction) -> str:
    head = f"*{_inline(_verb(a.kind), 30)}* {_code(a.target, 100)}"
    if a.params:
        head += f" — {_params(a.params, 200)}"
    return f"{head}\n{_inline(a.reason, 300)}"


def _check_request_ids(request_ids: Sequence[str], n_actions: int) -> None:
    if len(request_ids) > n_actions:
        raise ValueError(f"{len(request_ids)} request ids for {n_actions} actions")
    for rid in request_ids:
        if len(rid) > MAX_REQUEST_ID:
            raise ValueError(f"request id longer than {MAX_REQUEST_ID} characters")


def diagnosis_message(d: Diagnosis, action_request_ids: Sequence[str] = ()) -> Message:
    """The final report: conclusion, actions (with buttons), checks, remediation, links.

    ``action_request_ids[i]`` is the opaque id behind the button of ``d.actions[i]``; an
    action without an id (or with "") gets no button. Raises ValueError for more ids than
    actions or an id longer than ``MAX_REQUEST_ID``.
    """
    _check_request_ids(action_request_ids, len(d.actions))
    blocks: list[Block] = [
        _header(d.title, f"{STATUS_EMOJI[d.status]} ", f": {STATUS_WORD[d.status]}"),
        _context(
            f"Scope: {_scope_text(d.scope)}  ·  runbook {_code(d.runbook, 80)}"
            f"  ·  {len(d.checks)} checks in {d.duration_s:.1f} s"
        ),
    ]

    # The conclusion: the top finding prominently, the others compactly.
    if d.findings:
        top = d.findings[0]
        blocks.append(_section(f"{STATUS_EMOJI[top.severity]} *{_finding_text(top, 600)}*"))
        others = [f"{STATUS_EMOJI[f.severity]} {_finding_text(f, 300)}" for f in d.findings[1:]]
        packed, left = _pack(others, max_blocks=1, max_chars=FINDINGS_MAX_CHARS)
        blocks.extend(packed)
        if left:
            blocks.append(_more(left, "findings"))
    else:
        blocks.append(_section(f"{STATUS_EMOJI[d.status]} No findings."))

    # What to do: one section a action, its button beside it.
    if d.actions:
        blocks += [DividerBlock(), _section("*Recommended actions*")]
        used = 0
        for i, a in enumerate(d.actions):
            rid = action_request_ids[i] if i < len(action_request_ids) else ""
            block = _section(_action_text(a), _action_button(a, rid) if rid else None)
            size = _size([block])
            if i >= MAX_ACTIONS_SHOWN or used + size > ACTIONS_MAX_CHARS:
                blocks.append(_more(len(d.actions) - i, "actions"))
                break
            blocks.append(block)
            used += size

    # The numbers, worst first.
    if d.checks:
        blocks.append(DividerBlock())
        ordered = sorted(d.checks, key=lambda c: -status_rank(c.status))
        packed, left = _pack(
            [_diag_check_line(c) for c in ordered],
            max_blocks=MAX_CHECK_BLOCKS,
            max_chars=CHECKS_MAX_CHARS,
            prefix=f"*Checks ({len(d.checks)})*",
        )
        blocks.extend(packed)
        if left:
            blocks.append(_more(left, "checks"))

    # How to fix it: whatever room is left, at least REMEDIATION_MIN_CHARS.
    hint = f" — `{ids.COMMAND} runbook {d.runbook}`" if _SCOPE_VALUE.match(d.runbook) else ""
    room = TEXT_BUDGET - _size(blocks) - LINKS_MAX_CHARS - 400
    remediation = _remediation_blocks(d.remediation, max(room, REMEDIATION_MIN_CHARS), hint)
    if remediation:
        blocks.append(DividerBlock())
        blocks.extend(remediation)
    links = _links_block(list(d.links.items()))
    if links is not None:
        blocks.append(links)

    top_text = f" — {d.findings[0].summary}" if d.findings else ""
    text = f"{d.title}: {STATUS_WORD[d.status]}{top_text}"
    return Message(text=_fallback(text), blocks=_finish(blocks))


# --- alerts ------------------------------------------------------------------------------


def _label(labels: Mapping[str, str], keys: Sequence[str]) -> str | None:
    for key in keys:
        if labels.get(key):
            return labels[key]
    return None


def _values_text(values: Sequence[str]) -> str:
    distinct = list(dict.fromkeys(values))
    return _join_bounded([_code(v, 60) for v in distinct], ", ", 150)


def _alert_line(alert: Alert, common: Mapping[str, str], common_summary: str) -> str:
    emoji = ":fire:" if alert.status == "firing" else STATUS_EMOJI["ok"]
    parts = [f"{emoji} *{_inline(alert.name, 60)}*"]
    own = []
    for name, keys in KEY_LABELS:
        value = _label(alert.labels, keys)
        if value and value != _label(common, keys):
            own.append(f"{name}={_code(value, 50)}")
    if own:
        parts.append(" ".join(own))
    summary = alert.annotations.get("summary", "")
    if summary and summary != common_summary:
        parts.append(_inline(summary, 120))
    if alert.startsAt:
        parts.append(f"since {_inline(alert.startsAt, 30)}")
    return " — ".join(parts)


def _diagnose_hint(rb: Runbook, labels: Mapping[str, str]) -> str:
    """A copyable `/vllm diagnose` line; only label values that are plainly safe go in."""
    words = [ids.COMMAND, "diagnose", rb.id]
    for name, keys in KEY_LABELS:
        value = _label(labels, keys)
        if value and name != "pod" and _SCOPE_VALUE.match(value):
            words.append(f"{SCOPE_WORD[name]}={value}")
    return f"Diagnose it live: `{' '.join(words)}`"


def alert_message(
    group: AlertGroup, runbook: Runbook | None, *, resolved_after: str | None = None
) -> Message:
    """An Alertmanager notification, with the matching runbook's remediation (or none).

    ``resolved_after`` (e.g. "12m") is shown when the group is resolved.
    """
    firing = group.status == "firing"
    names = list(dict.fromkeys(a.name for a in group.alerts))
    count = len(group.alerts) + group.truncatedAlerts
    shown_names = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
    status = "FIRING" if firing else "RESOLVED"
    emoji = ":fire:" if firing else STATUS_EMOJI["ok"]
    noun = "alert" if count == 1 else "alerts"
    blocks: list[Block] = [_header(shown_names, f"{emoji} {status}: ", f" ({count} {noun})")]

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
    blocks.append(_fields_section(fields))

    annotations = group.commonAnnotations or group.alerts[0].annotations
    summary = annotations.get("summary", "")
    description = annotations.get("description", "")
    if summary.strip() or description.strip():
        text = f"*{_inline(summary, 300)}*" if summary.strip() else ""
        if description.strip():
            text += ("\n" if text else "") + _fit(description.strip(), 1200)
        blocks.append(_section(text))

    lines = [_alert_line(a, common, summary) for a in group.alerts[:MAX_ALERTS_SHOWN]]
    packed, left = _pack(lines, max_blocks=2, max_chars=ALERTS_MAX_CHARS)
    blocks.extend(packed)
    more = left + max(len(group.alerts) - MAX_ALERTS_SHOWN, 0) + group.truncatedAlerts
    if more:
        blocks.append(_more(more, "alerts"))

    if not firing and resolved_after:
        blocks.append(
            _context(f"{STATUS_EMOJI['ok']} Resolved after {_inline(resolved_after, 60)}")
        )

    blocks.append(DividerBlock())
    if runbook is not None:
        blocks.append(
            _section(
                f":book: *Runbook: {_inline(runbook.title, 100)}* ({_code(runbook.id)})\n"
                f"{_fit(runbook.summary.strip(), 500)}"
            )
        )
        room = TEXT_BUDGET - _size(blocks) - LINKS_MAX_CHARS - 600
        blocks.extend(_remediation_blocks(runbook.remediation, max(room, REMEDIATION_MIN_CHARS)))
        links = _links_block([(ln.title, ln.render(common)) for ln in runbook.links])
        if links is not None:
            blocks.append(links)
        if firing:
            blocks.append(_context(_diagnose_hint(runbook, common)))
    else:
        labels = common or group.alerts[0].labels
        label_text = _join_bounded([_pair(k, v, 100) for k, v in sorted(labels.items())], ", ", 800)
        blocks.append(
            _section(f":grey_question: No runbook matches this alert (labels: {label_text})")
        )

    text = f"{status}: {', '.join(names)} ({count} {noun})"
    if summary:
        text += f" — {summary}"
    if not firing and resolved_after:
        text += f" — resolved after {resolved_after}"
    return Message(text=_fallback(text), blocks=_finish(blocks))


# --- help, runbooks ----------------------------------------------------------------------

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
        "`restart NS/DEPLOYMENT` · `drain NODE` · `uncordon NODE` · "
        "`silence ALERT{label=value} 2h` · `unsilence ID` — plan, confirm, then act "
        "(permissions apply)",
        f"• `{ids.COMMAND} audit [N|TARGET]` — recent audit records",
        "*Scope words:* `namespace=` (or `ns=`), `model=`, `pod=`, `node=`, "
        "`deployment=`, `cluster=`",
        f"Example: `{ids.COMMAND} diagnose kv_cache_pressure ns=prod model=llama-70b`",
    ]
)


def help_message() -> Message:
    """Usage of the slash command and its scope words."""
    blocks: list[Block] = [_header("vLLM fleet ChatOps", f"{ids.COMMAND} — "), _section(USAGE)]
    return Message(text=f"{ids.COMMAND} usage", blocks=_finish(blocks))


def usage_error(problem: str) -> Message:
    """The problem (escaped) and the usage."""
    blocks: list[Block] = [
        _section(f"{STATUS_EMOJI['warn']} {_fit(problem.strip() or 'invalid command', 1000)}"),
        _section(USAGE),
    ]
    return Message(text=_fallback(f"{ids.COMMAND}: {problem}"), blocks=_finish(blocks))


def runbook_message(rb: Runbook) -> Message:
    """One runbook: title, summary, the checks it runs, remediation and links."""
    blocks: list[Block] = [
        _header(rb.title),
        _context(f"{_code(rb.id)}  ·  severity {_code(rb.severity)}  ·  {len(rb.checks)} checks"),
        _section(_fit(rb.summary.strip(), 1500)),
    ]
    lines = []
    for ref in rb.checks:
        check = REGISTRY.get(ref.id)
        title = check.title if check is not None else ref.id
        lines.append(f"• {_inline(title, 100)} ({_code(ref.id)})")
    packed, left = _pack(lines, max_blocks=1, max_chars=1500, prefix="*Checks*")
    blocks.extend(packed)
    if left:
        blocks.append(_more(left, "checks"))
    blocks.extend(_remediation_blocks(rb.remediation, 4000))
    links = _links_block([(ln.title, ln.render({})) for ln in rb.links])
    if links is not None:
        blocks.append(links)
    if _SCOPE_VALUE.match(rb.id):
        blocks.append(_context(f"Run it: `{ids.COMMAND} diagnose {rb.id} [scope…]`"))
    return Message(text=_fallback(f"Runbook {rb.id}: {rb.title}"), blocks=_finish(blocks))


def runbooks_message(rbs: Sequence[Runbook]) -> Message:
    """A bounded list of runbooks: id, title, severity."""
    blocks: list[Block] = [_header("Runbooks", suffix=f" ({len(rbs)})")]
    if not rbs:
        blocks.append(_section("No runbooks are loaded."))
    lines = [
        f"• {_code(rb.id)} — {_inline(rb.title, 100)} ({_inline(rb.severity, 20)})"
        for rb in rbs[:MAX_RUNBOOKS_SHOWN]
    ]
    packed, left = _pack(lines, max_blocks=4, max_chars=7000)
    blocks.extend(packed)
    left += max(len(rbs) - MAX_RUNBOOKS_SHOWN, 0)
    if left:
        blocks.append(_more(left, "runbooks"))
    blocks.append(_context(f"Show one: `{ids.COMMAND} runbook ID`"))
    return Message(text=f"{len(rbs)} runbooks", blocks=_finish(blocks))


# --- modal -------------------------------------------------------------------------------


def action_plan_view(
    action: RecommendedAction, request_id: str, title: str = "Planned action"
) -> dict[str, Any]:
    """A modal showing what an action would do; execution is not enabled yet (no submit).

    Raises ValueError if ``request_id`` does not fit ``private_metadata``.
    """
    if len(request_id) > PRIVATE_METADATA_MAX:
        raise ValueError(f"request id longer than {PRIVATE_METADATA_MAX} characters")
    blocks: list[Block] = [
        _section(f"*{_inline(_verb(action.kind), 30)}* {_code(action.target, 300)}"),
        _fields_section(
            [f"*Kind*\n{_code(action.kind, 30)}", f"*Target*\n{_code(action.target, 300)}"]
        ),
    ]
    if action.params:
        lines = [
            f"• {_inline(str(k), 100)}: {_code(_param_value(v), 300)}"
            for k, v in action.params.items()
        ]
        packed, left = _pack(lines, max_blocks=2, max_chars=4000, prefix="*Parameters*")
        blocks.extend(packed)
        if left:
            blocks.append(_more(left, "parameters"))
    else:
        blocks.append(_section("*Parameters*\nnone"))
    blocks.append(_section(f"*Reason*\n{_fit(action.reason.strip() or '-', 1500)}"))
    blocks.append(
        _context(
            ":information_source: Execution is not enabled yet: this is the plan only; "
            "nothing has been changed."
        )
    )
    view = View(
        type="modal",
        callback_id=ids.ACTION_PLAN_VIEW,
        private_metadata=request_id,
        title=PlainTextObject(text=_plain(title, MODAL_TITLE_MAX, "Planned action"), emoji=True),
        close=PlainTextObject(text="Close"),
        blocks=_finish(blocks, MAX_MODAL_BLOCKS),
    )
    return cast(dict[str, Any], view.to_dict())

"""Untrusted text made safe and bounded for Slack mrkdwn. Pure: no I/O.

Untrusted text (label values, annotations, summaries, targets, user input) goes through
:func:`escape` so it can never mention anyone, inject a link or add formatting.
Identifier-like values (pod, namespace, …) are shown as inline code when that is inert
(no backtick, ``<``, ``>``, ``&`` or ``@``), so they stay copyable; otherwise escaped.
Runbook Markdown is converted with :func:`markdown_to_mrkdwn`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

ZWSP = "\u200b"
ELLIPSIS = "…"
# A value plain enough to go verbatim into a copyable `/vllm …` command.
SCOPE_VALUE = re.compile(r"^[A-Za-z0-9._:/-]{1,100}$")

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_FORMAT_CHARS = frozenset("*_~`")
_MENTION = re.compile(r"@(?=(?:channel|here|everyone))", re.IGNORECASE)
_CODE_UNSAFE = frozenset("`<>&@")
# Inside `<url|title>`: `|` would end the URL, `<>` the link, `&` must be an entity.
_URL_ESCAPES = {"|": "%7C", "<": "%3C", ">": "%3E", "&": "&amp;"}


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


def fit(text: str, limit: int) -> str:
    """``escape(text)`` bounded to ``limit`` characters without cutting an entity."""
    # Escaping never shortens text: past ``limit`` input characters the result is cut.
    return _fit_tokens(_tokens(text[: max(limit, 0) + 1]), limit)


def inline(text: str, limit: int) -> str:
    """Escaped, on one line (newlines in labels could fake extra lines), bounded."""
    return fit(" ".join(text.split()), limit)


def is_blank(text: str) -> bool:
    """Nothing but whitespace and zero-width spaces (Slack rejects such text)."""
    return not text.replace(ZWSP, "").strip()


def plain(text: str, limit: int, default: str = "-") -> str:
    """For plain_text objects (headers, buttons, titles): one line, ``&<>`` escaped."""
    flat = " ".join(text.split())
    if is_blank(flat):
        flat = default
    return _fit_tokens(_tokens(flat[: max(limit, 0) + 1], formatting=False), limit)


def code(value: str, limit: int = 120) -> str:
    """An identifier as inline code when that is inert, else escaped text."""
    flat = " ".join(value.split())
    if flat and len(flat) <= limit and not _CODE_UNSAFE.intersection(flat):
        return f"`{flat}`"
    return inline(value, limit) or "-"


def pair(key: str, value: str, limit: int = 160) -> str:
    """``key=value`` as one inline-code span when that is inert, else escaped."""
    flat = f"{' '.join(key.split())}={' '.join(value.split())}"
    if len(flat) <= limit and not _CODE_UNSAFE.intersection(flat):
        return f"`{flat}`"
    return f"{inline(key, 60)}={code(value, max(limit - 60, 20))}"


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


def link(title: str, url: str) -> str:
    """``<url|title>`` for a safe http(s) URL, else just the escaped title."""
    safe = _safe_url(url)
    label = inline(title, 150) or "link"
    if safe is None:
        return label
    return f"<{safe}|{label}>"


def join_bounded(items: Sequence[str], sep: str, limit: int) -> str:
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

    def markdown_link(m: re.Match[str]) -> str:
        # The URL was entity-escaped with the line: undo that before checking it.
        url = m.group(2).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
        safe = _safe_url(url)
        title = m.group(1).replace("|", "¦")
        return f"<{safe}|{title}>" if safe else f"{title} ({m.group(2)})"

    line = _MD_LINK.sub(markdown_link, line)
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

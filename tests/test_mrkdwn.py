"""Untrusted text made inert and bounded: escaping, truncation, Markdown → mrkdwn."""

from __future__ import annotations

import pytest
from block_helpers import HOSTILE, assert_inert

from bot.slack.mrkdwn import ZWSP, escape, markdown_to_mrkdwn, truncate


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<!here>", "&lt;!here&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<http://evil|click>", "&lt;http://evil|click&gt;"),
        ("a & b", "a &amp; b"),
        ("*bold*", f"*{ZWSP}bold*{ZWSP}"),
        ("_it_", f"_{ZWSP}it_{ZWSP}"),
        ("~s~", f"~{ZWSP}s~{ZWSP}"),
        ("`x`", f"`{ZWSP}x`{ZWSP}"),
        ("ping @channel now", f"ping @{ZWSP}channel now"),
        ("@here", f"@{ZWSP}here"),
        ("@Everyone!", f"@{ZWSP}Everyone!"),
        ("mail a@example.com", "mail a@example.com"),
        ("plain text 97 %", "plain text 97 %"),
    ],
)
def test_escape(raw: str, want: str) -> None:
    assert escape(raw) == want


def test_escape_of_hostile_text_is_inert() -> None:
    assert_inert(escape(HOSTILE))


def test_escape_does_not_double_decode_entities() -> None:
    # Already-escaped input stays literal text, it does not become a live mention.
    assert escape("&lt;!channel&gt;") == "&amp;lt;!channel&amp;gt;"


def test_truncate() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("exactly10!", 10) == "exactly10!"
    cut = truncate("0123456789abcdef", 10)
    assert cut == "012345678…"
    assert len(cut) == 10
    assert truncate("abc", 1) == "…"
    assert truncate("abc", 0) == ""
    assert len(truncate("x" * 5000, 3000)) == 3000


def test_markdown_to_mrkdwn() -> None:
    md = (
        "# Heading\n"
        "Some **bold** and *italic* text.\n"
        "- item one\n"
        "* item two\n"
        "1. numbered\n"
        "```\nkubectl get pods <x>\n```\n"
        "[docs](https://docs.vllm.ai/a?b=1&c=2) [bad](javascript:alert(1))\n"
        "<!channel> @here"
    )
    out = markdown_to_mrkdwn(md)
    lines = out.splitlines()
    assert lines[0] == "*Heading*"
    assert "Some *bold* and _italic_ text." in lines
    assert "• item one" in lines
    assert "• item two" in lines
    assert "1. numbered" in lines
    assert "kubectl get pods &lt;x&gt;" in lines
    assert "<https://docs.vllm.ai/a?b=1&amp;c=2|docs>" in out
    assert "<javascript" not in out
    assert_inert(out, ("<https://docs.vllm.ai/a?b=1&amp;c=2|docs>",), formatting=False)
    assert "&lt;!channel&gt;" in out

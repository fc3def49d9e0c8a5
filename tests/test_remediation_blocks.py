"""Rendering of the remediation flow (pure): identifiers in code spans stay copyable."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.remediation.audit import AuditEvent
from bot.remediation.events import describe_details
from bot.slack.mrkdwn import ZWSP
from bot.slack.remediation_blocks import approval_message, audit_message, confirm_view

TARGET = 'VLLM_High_Queue{namespace="inference"}'


def test_targets_in_code_spans_carry_no_zero_width_spaces() -> None:
    view = confirm_view("r1", "silence", TARGET, {}, "silence it", [], [])
    first = view["blocks"][0]["text"]["text"]
    assert f"`{TARGET}`" in first and ZWSP not in first
    approval = approval_message("r1", "U1", "silence", TARGET, "plan")
    assert f"`{TARGET}`" in approval.blocks[0]["text"]["text"]
    event = AuditEvent(
        seq=1,
        at=datetime(2026, 11, 30, tzinfo=UTC),
        event="executed",
        kind="silence",
        target=TARGET,
        actor_name="a_b",
        prev_hash="0" * 64,
        hash="1" * 64,
    )
    text = audit_message([event], TARGET).blocks[0]["text"]["text"]
    assert text.count(f"`{TARGET}`") == 2 and ZWSP not in text.split("·")[-1]


def test_details_read_as_sentences() -> None:
    lines = describe_details(
        {
            "evicted": ["serving/a", "serving/b"],
            "not_evicted": [],
            "blocked": {},
            "min": [2, 5],
            "mode": "hpa",
            "terminating": [f"p{i}" for i in range(8)],
        }
    )
    assert lines == [
        "evicted: serving/a, serving/b",
        "min: 2, 5",
        "mode: hpa",
        "terminating: p0, p1, p2, p3, p4 and 3 more",
    ]

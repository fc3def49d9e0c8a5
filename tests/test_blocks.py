"""Block Kit rendering: structure, ordering, escaping and Slack's limits under hostile input."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.diagnosis.runbooks import Runbook
from bot.models import (
    ActionKind,
    Alert,
    AlertGroup,
    CheckResult,
    Diagnosis,
    Finding,
    Offender,
    RecommendedAction,
    Scope,
    Status,
)
from bot.slack import ids
from bot.slack.blocks import (
    MAX_REQUEST_ID,
    TEXT_BUDGET,
    ZWSP,
    Message,
    action_plan_view,
    alert_message,
    diagnosis_message,
    escape,
    help_message,
    markdown_to_mrkdwn,
    message_text_size,
    progress_message,
    runbook_message,
    runbooks_message,
    truncate,
    usage_error,
)

HOSTILE = "<!channel> @here <@U123> <http://evil.example|click> *bold* _it_ ~s~ `code` <!here>"
STATUSES: tuple[Status, ...] = ("ok", "warn", "crit", "unknown")
KINDS: tuple[ActionKind, ...] = ("scale", "drain", "rollback", "restart", "silence")
DASHBOARD = "https://grafana.example.com/d/vllm?var-namespace={namespace}&var-model={model_name}"

# --- helpers -------------------------------------------------------------------------------


def texts(node: Any) -> Iterator[str]:
    """Every string anywhere in a JSON-like structure."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from texts(value)


def all_text(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(texts(blocks))


def check_text_object(obj: dict[str, Any], limit: int, plain: bool = False) -> None:
    assert obj["type"] in (("plain_text",) if plain else ("plain_text", "mrkdwn"))
    assert isinstance(obj["text"], str)
    assert obj["text"].replace(ZWSP, "").strip(), "Slack rejects empty text"
    assert len(obj["text"]) <= limit, (len(obj["text"]), limit)


def check_button(button: dict[str, Any]) -> None:
    assert button["type"] == "button"
    check_text_object(button["text"], 75, plain=True)
    assert len(button["action_id"]) <= 255
    assert 1 <= len(button["value"]) <= 2000
    assert button.get("style") in (None, "primary", "danger")
    confirm = button.get("confirm")
    if confirm is not None:
        check_text_object(confirm["title"], 100, plain=True)
        check_text_object(confirm["text"], 300)
        check_text_object(confirm["confirm"], 30, plain=True)
        check_text_object(confirm["deny"], 30, plain=True)


def assert_within_limits(blocks: list[dict[str, Any]], max_blocks: int = 50) -> None:
    """Slack's Block Kit limits, including those slack_sdk does not check."""
    assert 1 <= len(blocks) <= max_blocks, len(blocks)
    json.dumps(blocks)
    for block in blocks:
        assert len(block.get("block_id", "")) <= 255
        kind = block["type"]
        if kind == "header":
            check_text_object(block["text"], 150, plain=True)
        elif kind == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                check_text_object(block["text"], 3000)
            fields = block.get("fields", [])
            assert len(fields) <= 10
            for field in fields:
                check_text_object(field, 2000)
            if "accessory" in block:
                check_button(block["accessory"])
        elif kind == "context":
            assert 1 <= len(block["elements"]) <= 10
            for element in block["elements"]:
                check_text_object(element, 3000)
        elif kind == "actions":
            assert 1 <= len(block["elements"]) <= 25
            for element in block["elements"]:
                check_button(element)
        else:
            assert kind == "divider", kind
        # slack_sdk's own validation, and the JSON survives a parse round trip.
        parsed = Block.parse(block)
        assert parsed is not None
        assert parsed.to_dict() == block


def assert_valid(message: Message, max_blocks: int = 50) -> None:
    assert isinstance(message.text, str)
    assert 1 <= len(message.text) <= 3000
    assert_within_limits(message.blocks, max_blocks)
    # Slack rejects (msg_blocks_too_long) blocks whose text adds up to about 11-12K.
    assert message_text_size(message.blocks) <= TEXT_BUDGET


def plain_and_mrkdwn(node: Any, plain: bool = False) -> Iterator[tuple[str, bool]]:
    """Every string with whether it sits in a plain_text object (never formatted)."""
    if isinstance(node, str):
        yield node, plain
    elif isinstance(node, dict):
        plain = plain or node.get("type") == "plain_text"
        for value in node.values():
            yield from plain_and_mrkdwn(value, plain)
    elif isinstance(node, list):
        for value in node:
            yield from plain_and_mrkdwn(value, plain)


def assert_inert(node: Any, allowed_links: tuple[str, ...] = (), formatting: bool = True) -> None:
    """Nothing hostile input carried can mention or link, nor format outside plain_text."""
    for text, plain in plain_and_mrkdwn(node):
        for link in allowed_links:
            text = text.replace(link, "")
        for bad in ("<!", "<@", "<http", "<#"):
            assert bad not in text, (bad, text[:300])
        assert not re.search(r"@(?:here|channel|everyone)", text, re.IGNORECASE), text[:300]
        if plain or not formatting:
            continue
        for marked in ("*bold*", "_it_", "~s~", "`code`"):
            assert marked not in text, (marked, text[:300])


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [b["accessory"] for b in blocks if b["type"] == "section" and "accessory" in b]
    for b in blocks:
        if b["type"] == "actions":
            found.extend(b["elements"])
    return found


def index_of(blocks: list[dict[str, Any]], needle: str) -> int:
    for i, block in enumerate(blocks):
        if any(needle in t for t in texts(block)):
            return i
    raise AssertionError(f"{needle!r} not found")


# --- fixtures ------------------------------------------------------------------------------


def make_runbook(
    remediation: str | None = None, links: list[dict[str, str]] | None = None
) -> Runbook:
    return Runbook.model_validate(
        {
            "id": "kv_cache_pressure",
            "title": "KV cache pressure",
            "summary": "KV cache nearly full: requests are preempted and latency climbs.",
            "severity": "warning",
            "match": {"alertnames": ["VLLMKVCacheHigh"]},
            "checks": [{"id": "kv_cache_usage"}, {"id": "queue_depth"}],
            "remediation": remediation
            if remediation is not None
            else (
                "## Fix\n"
                "1. **Scale up** replicas (the recommended count brings the hottest to 75 %).\n"
                "2. Or reduce `max_num_seqs`.\n"
                "- See the [vLLM docs](https://docs.vllm.ai/en/latest/) & tune.\n"
            ),
            "links": links
            if links is not None
            else [{"title": "vLLM dashboard", "url": DASHBOARD}],
        }
    )


def kv_check(status: Status = "crit") -> CheckResult:
    return CheckResult(
        id="kv_cache_usage",
        title="KV cache usage",
        status=status,
        value=0.97,
        unit="ratio",
        summary="KV cache 97 % — critical on 2/8 replicas (critical ≥ 95 %)",
        offenders=[
            Offender(target={"namespace": "prod", "pod": "llama-70b-0"}, value=0.97, status="crit"),
            Offender(target={"namespace": "prod", "pod": "llama-70b-1"}, value=0.96, status="crit"),
        ],
    )


def queue_check() -> CheckResult:
    return CheckResult(
        id="queue_depth",
        title="Queue depth",
        status="ok",
        value=2.0,
        unit="",
        summary="waiting requests at most 2 across 8 replicas",
    )


def make_diagnosis(**overrides: Any) -> Diagnosis:
    fields: dict[str, Any] = {
        "runbook": "kv_cache_pressure",
        "title": "KV cache pressure",
        "scope": Scope(cluster="eu-1", labels={"namespace": "prod", "model_name": "llama_70b"}),
        "status": "crit",
        "checks": [queue_check(), kv_check()],
        "findings": [
            Finding(
                id="kv_saturated",
                severity="crit",
                summary="KV cache saturated: KV cache 97 % on 2/8 replicas",
                targets=["llama-70b-0", "llama-70b-1"],
            ),
            Finding(id="queue", severity="warn", summary="Queue building up on 1 replica"),
        ],
        "actions": [
            RecommendedAction(
                kind="scale",
                target="deployment/llama-70b",
                params={"replicas": 11, "current_replicas": 8},
                reason="scale 8 → 11: hottest replica to about 75 %",
            ),
            RecommendedAction(kind="drain", target="gpu-node-7", reason="Xid 79 on GPU 3"),
            RecommendedAction(kind="rollback", target="deployment/llama-70b", reason="bad rollout"),
            RecommendedAction(kind="restart", target="llama-70b-0", reason="Xid 13, GPU healthy"),
        ],
        "remediation": make_runbook().remediation,
        "links": {
            "vLLM dashboard": "https://grafana.example.com/d/vllm?var-namespace=prod&var-model=x"
        },
        "duration_s": 2.4,
    }
    fields.update(overrides)
    return Diagnosis(**fields)


def make_alert(i: int = 0, status: str = "firing", **labels: str) -> Alert:
    return Alert.model_validate(
        {
            "status": status,
            "labels": {
                "alertname": "VLLMKVCacheHigh",
                "severity": "warning",
                "namespace": "prod",
                "pod": f"llama-70b-{i}",
                "model_name": "llama-70b",
                **labels,
            },
            "annotations": {"summary": f"KV cache 97 % on llama-70b-{i}"},
            "startsAt": "2025-01-01T10:00:00Z",
            "fingerprint": f"fp{i}",
        }
    )


def make_group(alerts: list[Alert], status: str = "firing", **extra: Any) -> AlertGroup:
    return AlertGroup.model_validate(
        {
            "status": status,
            "alerts": [a.model_dump() for a in alerts],
            "commonLabels": {"alertname": "VLLMKVCacheHigh", "namespace": "prod"},
            "commonAnnotations": {},
            **extra,
        }
    )


# --- escape / truncate ---------------------------------------------------------------------


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


# --- progress ------------------------------------------------------------------------------


def test_progress_message() -> None:
    scope = Scope(labels={"namespace": "prod"})
    m = progress_message("KV cache pressure", scope, [kv_check(), queue_check()], 5)
    assert_valid(m)
    assert m.blocks[0]["type"] == "header"
    assert "KV cache pressure" in m.blocks[0]["text"]["text"]
    context = all_text([m.blocks[1]])
    assert "2/5 checks done" in context
    assert "namespace=prod" in context
    body = all_text(m.blocks[2:])
    assert ":red_circle: *KV cache usage* — KV cache 97 %" in body
    assert ":white_check_mark: *Queue depth*" in body
    assert ":hourglass_flowing_sand: 3 checks still running" in body
    assert "2/5 checks done" in m.text


def test_progress_message_start_and_end() -> None:
    start = progress_message("Latency", Scope(), [], 4)
    assert_valid(start)
    assert "0/4 checks done" in all_text(start.blocks)
    assert "whole fleet" in all_text(start.blocks)
    end = progress_message("Latency", Scope(), [queue_check()], 1)
    assert_valid(end)
    assert "still running" not in all_text(end.blocks)


def test_progress_message_adversarial() -> None:
    done = [
        CheckResult(
            id=f"c{i}",
            title=f"check {i} {HOSTILE}",
            status="warn",
            summary=HOSTILE * 40,
        )
        for i in range(60)
    ]
    scope = Scope(cluster=HOSTILE, labels={"namespace": HOSTILE * 50})
    m = progress_message(HOSTILE * 10, scope, done, 80)
    assert_valid(m)
    assert_inert(m.blocks)
    assert_inert(m.text)
    body = all_text(m.blocks)
    assert "60/80 checks done" in body
    assert "more checks done" in body


# --- diagnosis -----------------------------------------------------------------------------


def test_diagnosis_conclusion_first_then_actions_checks_remediation() -> None:
    d = make_diagnosis()
    m = diagnosis_message(d, ["req-1", "req-2", "req-3", "req-4"])
    assert_valid(m)
    header = m.blocks[0]
    assert header["type"] == "header"
    assert header["text"]["text"] == ":red_circle: KV cache pressure: critical"
    top = index_of(m.blocks, "KV cache saturated")
    assert m.blocks[top]["type"] == "section"
    assert "*" in m.blocks[top]["text"]["text"]  # bold: the prominent one
    actions = index_of(m.blocks, "*Recommended actions*")
    checks = index_of(m.blocks, "*Checks (2)*")
    remediation = index_of(m.blocks, "*Remediation*")
    assert top < actions < checks < remediation
    assert top == 2
    assert "KV cache saturated" in m.text
    assert m.text.startswith("KV cache pressure: critical")


def test_diagnosis_checks_worst_first_with_values_and_offenders() -> None:
    m = diagnosis_message(make_diagnosis())
    text = m.blocks[index_of(m.blocks, "*Checks (2)*")]["text"]["text"]
    assert text.index("KV cache usage") < text.index("Queue depth")
    assert "97 %" in text  # fmt(0.97, "ratio")
    assert "`llama-70b-0` 97 %" in text
    assert "`llama-70b-1` 96 %" in text


def test_diagnosis_buttons_carry_exactly_the_request_ids() -> None:
    d = make_diagnosis()
    rids = ["req-1", "req-2", "req-3", "req-4"]
    m = diagnosis_message(d, rids)
    found = buttons(m.blocks)
    assert [b["value"] for b in found] == rids
    assert all(b["action_id"] == ids.ACTION_BUTTON for b in found)
    scale, drain, rollback, restart = found
    assert scale["text"]["text"] == "Scale deployment/llama-70b"
    assert scale["style"] == "primary"
    assert "confirm" not in scale
    for dangerous in (drain, rollback):
        assert dangerous["style"] == "danger"
        assert dangerous["confirm"]["style"] == "danger"
        assert dangerous["confirm"]["title"]["text"].endswith("?")
    assert "gpu-node-7" in drain["confirm"]["title"]["text"]
    assert "style" not in restart
    assert "confirm" not in restart
    # The parameters are shown, never carried in a button.
    section = m.blocks[index_of(m.blocks, "Scale* ")]["text"]["text"]
    assert "`replicas=11`" in section
    assert "scale 8 → 11" in section
    for b in found:
        assert "11" not in b["value"]
        assert "replicas" not in json.dumps(b)


def test_diagnosis_without_request_ids_has_no_buttons() -> None:
    m = diagnosis_message(make_diagnosis())
    assert buttons(m.blocks) == []
    assert "Drain" in all_text(m.blocks)  # the actions are still listed
    partial = diagnosis_message(make_diagnosis(), ["req-1", ""])
    assert [b["value"] for b in buttons(partial.blocks)] == ["req-1"]


def test_diagnosis_rejects_misaligned_or_oversized_ids() -> None:
    with pytest.raises(ValueError):
        diagnosis_message(make_diagnosis(), ["a", "b", "c", "d", "e"])
    with pytest.raises(ValueError):
        diagnosis_message(make_diagnosis(), ["x" * (MAX_REQUEST_ID + 1)])
    longest = diagnosis_message(make_diagnosis(), ["x" * MAX_REQUEST_ID])
    assert [b["value"] for b in buttons(longest.blocks)] == ["x" * MAX_REQUEST_ID]


def test_diagnosis_remediation_and_links() -> None:
    m = diagnosis_message(make_diagnosis())
    body = all_text(m.blocks)
    assert "*Fix*" in body
    assert "## Fix" not in body
    assert "1. *Scale up* replicas" in body
    assert "**" not in body
    assert "• See the <https://docs.vllm.ai/en/latest/|vLLM docs> &amp; tune." in body
    assert (
        "<https://grafana.example.com/d/vllm?var-namespace=prod&amp;var-model=x|vLLM dashboard>"
        in body
    )


def test_diagnosis_links_are_http_only_and_escaped() -> None:
    d = make_diagnosis(
        links={
            "<!channel> dash": "https://grafana.example.com/d?a=1|b>c",
            "evil": "javascript:alert(1)",
            "files": "file:///etc/passwd",
        }
    )
    m = diagnosis_message(d)
    links = m.blocks[-1]
    assert links["type"] == "context"
    text = links["elements"][0]["text"]
    assert text.startswith("<https://grafana.example.com/d?a=1%7Cb%3Ec|&lt;!channel&gt; dash>")
    assert "javascript" not in text
    assert "file://" not in text
    assert "evil" in text  # the title, without a link
    assert_inert(text.replace("<https://grafana.example.com/d?a=1%7Cb%3Ec|", ""))


def test_headers_keep_status_and_count_whatever_the_title() -> None:
    m = diagnosis_message(make_diagnosis(title="very long title " * 50))
    assert m.blocks[0]["text"]["text"].endswith("…: critical")
    assert len(m.blocks[0]["text"]["text"]) <= 150
    names = [make_alert(i, alertname=f"Alert{i}_" + "x" * 100) for i in range(4)]
    header = alert_message(make_group(names), None).blocks[0]["text"]["text"]
    assert header.startswith(":fire: FIRING: Alert0_")
    assert header.endswith("… (4 alerts)")
    blank = action_plan_view(make_diagnosis().actions[0], "r", title=ZWSP + " \n")
    assert blank["title"]["text"] == "Planned action"


def test_diagnosis_healthy_without_findings_or_actions() -> None:
    d = make_diagnosis(status="ok", checks=[queue_check()], findings=[], actions=[], links={})
    m = diagnosis_message(d)
    assert_valid(m)
    assert m.blocks[0]["text"]["text"] == ":white_check_mark: KV cache pressure: OK"
    assert "No findings." in all_text(m.blocks)
    assert buttons(m.blocks) == []


def adversarial_diagnosis() -> Diagnosis:
    huge = "x" * 5000
    offenders = [
        Offender(target={"pod": f"{HOSTILE}{huge}{i}", "namespace": huge}, value=i, status="crit")
        for i in range(200)
    ]
    checks = [
        CheckResult(
            id=f"check_{i}",
            title=f"{HOSTILE} check {i}",
            status=STATUSES[i % 4],
            value=i * 1.5,
            unit="ratio" if i % 2 else "s",
            summary=HOSTILE * 30,
            offenders=offenders,
        )
        for i in range(60)
    ]
    actions = [
        RecommendedAction(
            kind=KINDS[i % 5],
            target=f"{HOSTILE}{huge}",
            params={"replicas": i, HOSTILE: huge, "nested": {"a": [HOSTILE] * 50}},
            reason=HOSTILE * 100,
        )
        for i in range(20)
    ]
    findings = [
        Finding(id=f"f{i}", severity="crit", summary=HOSTILE * 50, targets=[HOSTILE * 20] * 30)
        for i in range(40)
    ]
    return Diagnosis(
        runbook="kv_cache_pressure",
        title=f"{HOSTILE} " * 20,
        scope=Scope(cluster=HOSTILE, labels={"namespace": huge, "pod": HOSTILE}),
        status="crit",
        checks=checks,
        findings=findings,
        actions=actions,
        remediation=("## Step\n1. **do** <!channel> @here a thing `x`\n" * 600)[:20_000],
        links={f"{HOSTILE} {i}": f"https://e.example/{i}" for i in range(30)},
        duration_s=12.0,
    )


def test_diagnosis_adversarial_stays_within_limits_and_inert() -> None:
    d = adversarial_diagnosis()
    rids = [f"req-{i:04d}" for i in range(len(d.actions))]
    m = diagnosis_message(d, rids)
    assert_valid(m)
    links = tuple(f"<https://e.example/{i}|" for i in range(30))
    assert_inert(m.blocks, links)
    assert_inert(m.text)
    body = all_text(m.blocks)
    assert "more checks" in body
    assert "more findings" in body
    assert "remediation continues" in body
    assert "message size limit" not in body  # the budgets held; the last-resort guard idled
    # Every shown button carries exactly one of the given ids, in order, nothing more.
    values = [b["value"] for b in buttons(m.blocks)]
    assert values == rids[: len(values)]
    assert len(values) >= 3
    assert "more actions" in body
    for b in buttons(m.blocks):
        if b["text"]["text"].startswith(("Drain", "Roll back")):
            assert b["style"] == "danger"
            assert "confirm" in b


def test_diagnosis_many_actions_fold() -> None:
    actions = [
        RecommendedAction(kind="restart", target=f"pod-{i}", reason="Xid 13") for i in range(40)
    ]
    m = diagnosis_message(make_diagnosis(actions=actions), [f"r{i}" for i in range(40)])
    assert_valid(m)
    values = [b["value"] for b in buttons(m.blocks)]
    assert values == [f"r{i}" for i in range(len(values))]
    assert len(values) == 10
    assert "… and 30 more actions" in all_text(m.blocks)


def test_diagnosis_long_single_line_remediation() -> None:
    m = diagnosis_message(make_diagnosis(remediation="word & " * 4000))
    assert_valid(m)


# --- alerts --------------------------------------------------------------------------------


def test_alert_firing_with_runbook() -> None:
    group = make_group(
        [make_alert(0), make_alert(1)],
        commonAnnotations={"summary": "KV cache above 95 %", "description": "Preemptions follow."},
        commonLabels={"alertname": "VLLMKVCacheHigh", "namespace": "prod", "cluster": "eu-1"},
    )
    m = alert_message(group, make_runbook())
    assert_valid(m)
    assert m.blocks[0]["text"]["text"] == ":fire: FIRING: VLLMKVCacheHigh (2 alerts)"
    body = all_text(m.blocks)
    fields = m.blocks[1]["fields"]
    assert fields[0]["text"] == "*Severity*\n`warning`"
    assert "*Namespace*\n`prod`" in [f["text"] for f in fields]
    assert "*Pod*\n`llama-70b-0`, `llama-70b-1`" in [f["text"] for f in fields]
    assert "*KV cache above 95 %*\nPreemptions follow." in body
    assert "pod=`llama-70b-1`" in body
    assert "Runbook: KV cache pressure" in body
    assert "1. *Scale up* replicas" in body
    assert (
        "<https://grafana.example.com/d/vllm?var-namespace=prod&amp;var-model=|vLLM dashboard>"
        in body
    )
    assert "`/vllm diagnose kv_cache_pressure ns=prod cluster=eu-1`" in body
    assert "No runbook matches" not in body
    assert m.text.startswith("FIRING: VLLMKVCacheHigh (2 alerts) — KV cache above 95 %")


def test_alert_without_runbook() -> None:
    group = make_group([make_alert(0, alertname="SomethingElse")])
    m = alert_message(group, None)
    assert_valid(m)
    body = all_text(m.blocks)
    assert "No runbook matches this alert (labels: " in body
    assert "`alertname=VLLMKVCacheHigh`" in body
    assert "Runbook:" not in body


def test_alert_resolved() -> None:
    group = make_group([make_alert(0, status="resolved")], status="resolved")
    m = alert_message(group, make_runbook(), resolved_after="12m")
    assert_valid(m)
    assert m.blocks[0]["text"]["text"].startswith(":white_check_mark: RESOLVED: VLLMKVCacheHigh")
    assert "Resolved after 12m" in all_text(m.blocks)
    assert "resolved after 12m" in m.text
    assert "diagnose" not in all_text(m.blocks)  # nothing to diagnose any more
    firing = alert_message(make_group([make_alert(0)]), None, resolved_after="12m")
    assert "Resolved after" not in all_text(firing.blocks)


def test_alert_list_is_bounded() -> None:
    group = make_group([make_alert(i) for i in range(30)], truncatedAlerts=5)
    m = alert_message(group, make_runbook())
    assert_valid(m)
    body = all_text(m.blocks)
    assert "(35 alerts)" in m.blocks[0]["text"]["text"]
    assert "`llama-70b-9`" in body
    assert "pod=`llama-70b-10`" not in body
    assert "… and 25 more" in body


def test_alert_hostile_labels_are_inert() -> None:
    hostile_labels = {
        "alertname": HOSTILE,
        "severity": HOSTILE,
        "namespace": HOSTILE * 200,
        "pod": HOSTILE,
        "Hostname": HOSTILE,
        "model_name": "x" * 5000,
        "cluster": HOSTILE,
        "extra": HOSTILE,
    }
    alerts = [
        Alert.model_validate(
            {
                "status": "firing",
                "labels": {**hostile_labels, "pod": f"{HOSTILE}{i}"},
                "annotations": {"summary": HOSTILE * 100, "description": HOSTILE * 500},
                "startsAt": HOSTILE,
                "fingerprint": f"f{i}",
            }
        )
        for i in range(50)
    ]
    group = AlertGroup.model_validate(
        {
            "status": "firing",
            "alerts": [a.model_dump() for a in alerts],
            "commonLabels": hostile_labels,
            "commonAnnotations": {"summary": HOSTILE * 100, "description": HOSTILE * 500},
        }
    )
    for runbook in (None, make_runbook(remediation="x " * 10_000)):
        m = alert_message(group, runbook)
        assert_valid(m)
        assert_inert(m.blocks, ("<https://grafana.example.com/d/vllm?",))
        assert_inert(m.text)
    hint = all_text(alert_message(group, make_runbook()).blocks)
    # Unsafe label values never make it into the copyable command.
    assert "`/vllm diagnose kv_cache_pressure`" in hint


# --- help, runbooks ------------------------------------------------------------------------


def test_help_message() -> None:
    m = help_message()
    assert_valid(m)
    body = all_text(m.blocks)
    for usage in (
        "/vllm help",
        "/vllm diagnose RUNBOOK [scope…]",
        "/vllm runbook ID",
        "/vllm runbooks",
        "/vllm status [scope…]",
    ):
        assert usage in body
    for word in ("namespace=", "ns=", "model=", "pod=", "node=", "deployment=", "cluster="):
        assert f"`{word}`" in body


def test_usage_error() -> None:
    m = usage_error(f"unknown runbook {HOSTILE!r}")
    assert_valid(m)
    assert_inert(m.blocks)
    assert_inert(m.text)
    assert m.blocks[0]["text"]["text"].startswith(":warning: unknown runbook")
    assert "/vllm diagnose RUNBOOK [scope…]" in all_text(m.blocks)
    assert_valid(usage_error(""))
    assert_valid(usage_error(HOSTILE * 1000))


def test_runbook_message() -> None:
    m = runbook_message(make_runbook())
    assert_valid(m)
    assert m.blocks[0]["text"]["text"] == "KV cache pressure"
    body = all_text(m.blocks)
    assert "`kv_cache_pressure`" in body
    assert "KV cache nearly full" in body
    assert "(`kv_cache_usage`)" in body
    assert "(`queue_depth`)" in body
    assert body.index("*Checks*") < body.index("*Remediation*")
    assert "`/vllm diagnose kv_cache_pressure [scope…]`" in body
    assert (
        "<https://grafana.example.com/d/vllm?var-namespace=&amp;var-model=|vLLM dashboard>" in body
    )


def test_runbook_message_huge_remediation() -> None:
    m = runbook_message(make_runbook(remediation="- step <!here>\n" * 2000))
    assert_valid(m)
    assert_inert(m.blocks, ("<https://grafana.example.com/d/vllm?",))
    assert "remediation continues" in all_text(m.blocks)


def test_runbooks_message_is_bounded() -> None:
    rb = make_runbook()
    many = [
        rb.model_copy(update={"id": f"runbook_{i:03d}", "title": f"Title {i}"}) for i in range(400)
    ]
    m = runbooks_message(many)
    assert_valid(m)
    body = all_text(m.blocks)
    assert "`runbook_000` — Title 0 (warning)" in body
    assert "`runbook_099`" in body
    assert "`runbook_100`" not in body
    assert "… and 300 more runbooks" in body
    empty = runbooks_message([])
    assert_valid(empty)
    assert "No runbooks" in all_text(empty.blocks)


# --- modal ---------------------------------------------------------------------------------


def test_action_plan_view() -> None:
    action = RecommendedAction(
        kind="scale",
        target="deployment/llama-70b",
        params={"replicas": 11, "current_replicas": 8},
        reason="scale 8 → 11",
    )
    view = action_plan_view(action, "req-42")
    assert view["type"] == "modal"
    assert view["callback_id"] == ids.ACTION_PLAN_VIEW
    assert view["private_metadata"] == "req-42"
    assert view["title"]["text"] == "Planned action"
    assert view["close"]["text"] == "Close"
    assert "submit" not in view
    assert_within_limits(view["blocks"], 100)
    body = all_text(view["blocks"])
    assert "`deployment/llama-70b`" in body
    assert "replicas: `11`" in body
    assert "scale 8 → 11" in body
    assert "not enabled yet" in body
    assert View(**view).to_dict() == view


def test_action_plan_view_adversarial() -> None:
    action = RecommendedAction(
        kind="drain",
        target=HOSTILE * 100,
        params={f"{HOSTILE}{i}": HOSTILE * 100 for i in range(200)},
        reason=HOSTILE * 500,
    )
    view = action_plan_view(action, "r" * 3000, title=HOSTILE)
    assert len(view["title"]["text"]) <= 24
    assert_within_limits(view["blocks"], 100)
    assert_inert(view["blocks"])
    assert "more parameters" in all_text(view["blocks"])
    with pytest.raises(ValueError):
        action_plan_view(action, "r" * 3001)


# --- fuzz ----------------------------------------------------------------------------------

ALPHABET = "ab <>&@*_~`|\n\t:!#é🔥\u200b\\"
WORDS = ("@here", "@channel", "<!everyone>", "<@U1>", "<http://x|y>", "**", "```", "&amp;")


def noise(rng: random.Random, size: int) -> str:
    parts = [rng.choice(WORDS) if rng.random() < 0.2 else rng.choice(ALPHABET) for _ in range(size)]
    return "".join(parts)


@pytest.mark.parametrize("seed", range(8))
def test_fuzzed_inputs_never_break_limits(seed: int) -> None:
    rng = random.Random(seed)

    def n(size: int) -> str:
        return noise(rng, rng.randint(0, size))

    checks = [
        CheckResult(
            id=f"c{i}",
            title=n(300),
            status=rng.choice(STATUSES),
            value=rng.choice([None, rng.random() * 1e9, -1.0]),
            unit=rng.choice(["ratio", "s", "%", "tokens", n(20)]),
            summary=n(3000),
            offenders=[
                Offender(target={n(10): n(500)}, value=rng.random(), status="crit")
                for _ in range(rng.randint(0, 30))
            ],
        )
        for i in range(rng.randint(0, 70))
    ]
    actions = [
        RecommendedAction(
            kind=rng.choice(KINDS), target=n(3000), params={n(50): n(500)}, reason=n(3000)
        )
        for _ in range(rng.randint(0, 30))
    ]
    d = Diagnosis(
        runbook=n(80),
        title=n(400),
        scope=Scope(cluster=n(100) or None, labels={n(20): n(2000) for _ in range(5)}),
        status=rng.choice(STATUSES),
        checks=checks,
        findings=[
            Finding(id="f", severity=rng.choice(STATUSES), summary=n(5000), targets=[n(300)] * 9)
            for _ in range(rng.randint(0, 20))
        ],
        actions=actions,
        remediation=n(20_000),
        links={n(100): rng.choice(["https://ok.example/" + n(100), n(200)]) for _ in range(15)},
        duration_s=rng.random() * 100,
    )
    rids = [f"id-{i}" if rng.random() < 0.8 else "" for i in range(len(actions))]
    m = diagnosis_message(d, rids)
    assert_valid(m)
    values = [b["value"] for b in buttons(m.blocks)]
    assert values == [r for r in rids if r][: len(values)]
    assert "message size limit" not in all_text(m.blocks)

    assert_valid(progress_message(n(500), d.scope, checks, len(checks) + rng.randint(0, 5)))
    labels = {n(15) or "x": n(800) for _ in range(10)}
    alerts = [
        Alert.model_validate(
            {
                "status": rng.choice(["firing", "resolved"]),
                "labels": {**labels, "alertname": n(200), "pod": n(300)},
                "annotations": {"summary": n(2000), "description": n(6000)},
                "startsAt": n(40),
                "fingerprint": f"f{i}",
            }
        )
        for i in range(rng.randint(1, 40))
    ]
    group = AlertGroup.model_validate(
        {
            "status": rng.choice(["firing", "resolved"]),
            "alerts": [a.model_dump() for a in alerts],
            "commonLabels": labels,
            "commonAnnotations": {"summary": n(2000), "description": n(6000)},
            "truncatedAlerts": rng.randint(0, 100),
        }
    )
    rb = make_runbook(remediation=n(20_000), links=[{"title": n(200), "url": DASHBOARD}])
    for runbook in (None, rb):
        am = alert_message(group, runbook, resolved_after=n(100) or None)
        assert_valid(am)
    assert_valid(usage_error(n(20_000)))
    assert_valid(runbook_message(rb))
    for a in actions[:3]:
        view = action_plan_view(a, "rid", title=n(100))
        assert_within_limits(view["blocks"], 100)
        assert 1 <= len(view["title"]["text"]) <= 24

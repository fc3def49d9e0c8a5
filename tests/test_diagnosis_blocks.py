"""Block Kit rendering of a diagnosis in progress and of the final report: structure,
ordering, buttons, escaping and Slack's limits under hostile input."""

from __future__ import annotations

import json

import pytest
from block_helpers import (
    HOSTILE,
    KINDS,
    STATUSES,
    all_text,
    assert_inert,
    assert_valid,
    buttons,
    index_of,
    kv_check,
    make_diagnosis,
    queue_check,
)

from bot.models import CheckResult, Diagnosis, Finding, Offender, RecommendedAction, Scope
from bot.slack import ids
from bot.slack.diagnosis_blocks import MAX_REQUEST_ID, diagnosis_message, progress_message

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


def test_diagnosis_header_keeps_status_whatever_the_title() -> None:
    m = diagnosis_message(make_diagnosis(title="very long title " * 50))
    assert m.blocks[0]["text"]["text"].endswith("…: critical")
    assert len(m.blocks[0]["text"]["text"]) <= 150


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

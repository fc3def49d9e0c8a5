"""Block Kit rendering of the slash command's help, usage errors and runbooks."""

from __future__ import annotations

from block_helpers import HOSTILE, all_text, assert_inert, assert_valid, make_runbook

from bot.diagnosis.doctor import Facts, Problem, Report, examine
from bot.slack.doctor_blocks import doctor_message
from bot.slack.help_blocks import help_message, runbook_message, runbooks_message, usage_error

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
        "/vllm doctor",
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


def test_doctor_message_is_bounded_and_inert() -> None:
    facts = Facts(prometheus=f"http://{HOSTILE}", targets={HOSTILE: (1, 2)})
    report = Report(
        facts,
        [(HOSTILE, HOSTILE * 20)] * 80,
        [Problem(HOSTILE * 50, HOSTILE * 50)] * 40,
    )
    m = doctor_message(report)
    assert_valid(m)
    assert_inert(m.blocks)
    assert "40 problems found" in m.text
    assert "*Fix:*" in all_text(m.blocks)
    healthy = doctor_message(examine(Facts(prometheus="http://p", targets={"vllm": (8, 0)},
                                           vllm_new=8, gpus=32, rule_groups=())))  # fmt: skip
    assert "no problem found" in healthy.text

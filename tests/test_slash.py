"""`/vllm` command text parsing."""

from __future__ import annotations

import pytest

from bot.slack.slash import STATUS_RUNBOOK, SlashError, SlashRequest, parse

KNOWN = {"high_latency", "kv_cache_pressure", STATUS_RUNBOOK}


@pytest.mark.parametrize("text", ["", "help", "  ", "--help"])
def test_help(text: str) -> None:
    assert parse(text, KNOWN) == SlashRequest("help")


def test_diagnose_with_scope_words() -> None:
    request = parse("diagnose high_latency model=llama-70b ns=prod cluster=gpu-east", KNOWN)
    assert request.verb == "diagnose" and request.runbook == "high_latency"
    assert request.scope.labels == {"model_name": "llama-70b", "namespace": "prod"}
    assert request.scope.cluster == "gpu-east"


def test_status_and_runbooks_and_runbook() -> None:
    assert parse("status ns=prod", KNOWN).runbook == STATUS_RUNBOOK
    assert parse("runbooks", KNOWN).verb == "runbooks"
    assert parse("runbook kv_cache_pressure", KNOWN) == SlashRequest("runbook", "kv_cache_pressure")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("diagnose", "needs a runbook id; known: fleet_status, high_latency"),
        ("diagnose nope", "unknown runbook `nope`"),
        ("diagnose high_latency model", "is not KEY=VALUE"),
        ("frobnicate", "unknown subcommand `frobnicate`"),
        ('diagnose "unterminated', "cannot read the command"),
    ],
)
def test_errors_explain(text: str, message: str) -> None:
    with pytest.raises(SlashError, match=message.replace("`", ".")):
        parse(text, KNOWN)

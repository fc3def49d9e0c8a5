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


@pytest.mark.parametrize(
    ("text", "kind", "target", "params"),
    [
        ("scale prod/vllm-70b 12", "scale", "deployment/prod/vllm-70b", {"replicas": 12}),
        ("rollback statefulset/prod/vllm-0", "rollback", "statefulset/prod/vllm-0", {}),
        ("restart prod/vllm-70b cluster=gpu-east", "restart", "deployment/prod/vllm-70b", {}),
        ("drain gpu-node-003", "drain", "node/gpu-node-003", {}),
        ("uncordon gpu-node-003", "uncordon", "node/gpu-node-003", {}),
        (
            "silence VLLMKVCachePressure{namespace=prod} 2h",
            "silence",
            "VLLMKVCachePressure{namespace=prod}",
            {"duration": "2h"},
        ),
    ],
)
def test_action_forms(text: str, kind: str, target: str, params: dict[str, object]) -> None:
    request = parse(text, KNOWN)
    assert (request.verb, request.kind, request.target, request.params) == (
        "action",
        kind,
        target,
        params,
    )
    if "cluster=" in text:
        assert request.scope.cluster == "gpu-east"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scale prod/vllm many", "usage: `scale"),
        ("scale vllm 3", "is not NAMESPACE/NAME"),
        ("drain ns/node", "usage: `drain NODE`"),
        ("silence OnlyName", "usage: `silence"),
    ],
)
def test_action_form_errors(text: str, message: str) -> None:
    with pytest.raises(SlashError, match=message.replace("`", ".")):
        parse(text, KNOWN)


def test_audit_forms() -> None:
    assert parse("audit", KNOWN).verb == "audit"
    assert parse("audit 5", KNOWN).count == 5
    assert parse("audit node/gpu-1", KNOWN).target == "node/gpu-1"


def test_doctor() -> None:
    assert parse("doctor", KNOWN) == SlashRequest("doctor")

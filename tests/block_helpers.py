"""Shared checks and fixtures for the Block Kit rendering tests: Slack's limits (including
those slack_sdk does not check), inertness of hostile input, and sample diagnoses, alerts
and runbooks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from slack_sdk.models.blocks import Block

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
from bot.slack.block_kit import TEXT_BUDGET, Message, message_text_size
from bot.slack.mrkdwn import ZWSP

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

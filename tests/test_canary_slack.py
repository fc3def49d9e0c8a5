"""`/vllm canary NS/DEPLOYMENT`: parsed before anything is asked, rendered as Block Kit
Slack accepts, and answered through the real protocol (signed request, the local Slack
Web API) from a real Prometheus scraping a bad canary in the fleet twin."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from block_helpers import assert_valid
from bot_runner import BotRunner
from fakes.slack import (
    FakeSlack,
    block_action_body,
    send_signed,
    slash_command_body,
    validate_blocks,
)
from fleet_stack import FleetStack, eventually
from twin_stack import twin_stack

from bot.canary.compare import Comparison, Revision
from bot.canary.gates import Reading, judge, triggers
from bot.config import CanaryGate, CanaryRollback
from bot.models import Scope
from bot.simulator.fleet import build_fleet
from bot.simulator.server import Simulator
from bot.slack import ids
from bot.slack.canary_blocks import Proposal, canary_message
from bot.slack.slash import SlashError, parse

SECRET = "signing-secret"
SEED = 4


def test_parse_canary() -> None:
    request = parse("canary inference/llama cluster=west", [])
    assert (request.verb, request.target, request.scope) == (
        "canary",
        "inference/llama",
        Scope(cluster="west"),
    )
    for bad in ("canary", "canary llama", "canary a/b c/d", "canary Inference/x"):
        with pytest.raises(SlashError):
            parse(bad, [])


def _comparison(failing: bool, rollback: bool) -> Comparison:
    gate = CanaryGate(metric="error_rate", max=0.001)
    value = 0.05 if failing else 0.0
    c = Comparison("inference", "llama", "10m", "fail" if failing else "pass")
    c.new, c.old = Revision("llama-new", 2.0, 1), Revision("llama-old", 1.0, 3)
    c.gates = [judge(gate, Reading(value, 0.0, 600, 600))]
    c.triggers = triggers(CanaryRollback(), value if rollback else 0.0, 0.5, 0.05, 60, 60)
    return c


def test_the_reply_says_each_gate_with_both_numbers() -> None:
    failing = canary_message(_comparison(failing=True, rollback=True))
    assert_valid(failing)
    text = json.dumps(failing.blocks)
    assert "roll back now" in text and "new 5.00 %" in text and "previous 0.00 %" in text
    proposed = canary_message(
        _comparison(failing=True, rollback=True), Proposal("deployment/inference/llama", "r1")
    )
    assert_valid(proposed)
    (button,) = [b["accessory"] for b in proposed.blocks if "accessory" in b]
    assert (button["action_id"], button["value"]) == (ids.ACTION_BUTTON, "r1")
    refused = Proposal("deployment/inference/llama", None, "say which with cluster=NAME")
    assert "cluster=NAME" in json.dumps(canary_message(_comparison(True, True), refused).blocks)
    passing = canary_message(_comparison(failing=False, rollback=False))
    assert_valid(passing)
    assert "every gate passes" in json.dumps(passing.blocks)
    nothing = canary_message(Comparison("inference", "llama", "10m", "unknown", problem="one"))
    assert_valid(nothing)
    assert "nothing to compare" in nothing.text


@pytest.mark.prometheus
@pytest.mark.slow
def test_slash_canary_answers_from_the_fleet(prometheus_binary: str, tmp_path: Path) -> None:
    fleet = build_fleet(
        replicas=4, gpus_per_replica=1, gpus_per_node=4, spare_nodes=1, seed=SEED, now=time.time()
    )
    sim = Simulator(fleet, "healthy", SEED)
    running = twin_stack(sim, prometheus_binary, startup_delay_s=0.3, resync_s=0.1, extra_targets=1)
    with running as (stack, twin):
        slack = FakeSlack().start()
        bot = BotRunner(
            slack_bot_token=slack.token,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url,
            prometheus_url=stack.prometheus.url,
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
            alerts_token="alerts-token",
            default_channel="C0ALERTS1",
            canary={"window": "15s", "rollback": {"window": "8s"}, "min_requests": 50},
            clusters=[
                {"name": "prod", "kube_api_url": twin.kubernetes.url, "kube_token": twin.token}
            ],
        ).start()
        try:
            _answers(stack, slack, bot)
        finally:
            bot.stop()
            slack.stop()


def _answers(stack: FleetStack, slack: FakeSlack, bot: BotRunner) -> None:
    (fault,) = stack.switch("canary_bad", seed=SEED).faults
    target = f"{fault.namespace}/{fault.deployment}"

    def reply() -> list[dict[str, Any]]:
        before = len(slack.responses)
        body = slash_command_body(
            "canary " + target, channel_id="C123", response_url=slack.response_url
        )
        assert send_signed(f"{bot.url}/slack/events", body, SECRET).status == 200
        replies = slack.wait_for(lambda: slack.responses[before:] or None, timeout=20)
        assert replies is not None and replies[0].body.get("response_type") == "ephemeral"
        blocks: list[dict[str, Any]] = replies[0].body["blocks"]
        text = json.dumps(blocks, ensure_ascii=False)
        assert "roll back now" in text, text[:2000]
        assert "*Error rate* — fail" in text and "*p99 TPOT* — fail" in text, text[:3000]
        return blocks

    blocks = eventually(reply, timeout_s=45, interval_s=2)
    assert validate_blocks(blocks) == []
    # the proposal: a button opening the rollback's plan (the usual flow: permission,
    # approval, audit); nobody here holds a grant, so the plan says who may not
    (button,) = [b["accessory"] for b in blocks if "accessory" in b]
    assert button["action_id"] == ids.ACTION_BUTTON and button["value"]
    click = block_action_body(ids.ACTION_BUTTON, button["value"], trigger_id=slack.new_trigger_id())
    assert send_signed(f"{bot.url}/slack/events", click, SECRET).status == 200

    def planned() -> str:
        view = next(iter(slack.views), None)
        assert view is not None
        text = json.dumps(view.view, ensure_ascii=False)
        assert "paused rollout is resumed" in text, text[:2000]
        return text

    plan = eventually(planned, timeout_s=15)
    assert f"deployment/{target}" in plan

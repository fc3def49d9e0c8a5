"""`/vllm readiness` through the real protocol: signed requests to the bot, the local
Slack Web API, the prepared fleet (real Prometheus, Kubernetes API stand-in). The Attest
button opens the form; its submission is recorded in the audit log as the person."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bot_runner import BotRunner
from fakes.slack import (
    FakeSlack,
    block_action_body,
    send_signed,
    slash_command_body,
    validate_blocks,
    validate_view,
    view_submission_body,
)
from fleet_stack import eventually
from readiness_stack import ReadinessStack, readiness_stack, record_rollback

from bot.remediation.audit import AuditLog
from bot.slack import ids
from bot.slack.readiness_blocks import DAYS_BLOCK, LINK_BLOCK

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

SECRET = "signing-secret"


@pytest.fixture(scope="module")
def world(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ReadinessStack, FakeSlack, BotRunner, str]]:
    directory = tmp_path_factory.mktemp("readiness-slack")
    database = f"sqlite:///{directory / 'bot.db'}"
    record_rollback(AuditLog(database), datetime.now(UTC) - timedelta(days=1), 9.0)
    with readiness_stack(prometheus_binary, directory) as stack:
        slack = FakeSlack().start()
        bot = BotRunner(
            slack_bot_token=slack.token,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url,
            prometheus_url=stack.fleet.prometheus.url,
            database_url=database,
            alerts_token="alerts-token",
            default_channel="C0ALERTS1",
            clusters=[
                {
                    "name": "prod",
                    "kube_api_url": stack.twin.kubernetes.url,
                    "kube_token": stack.twin.token,
                }
            ],
        ).start()
        try:
            yield stack, slack, bot, database
        finally:
            bot.stop()
            slack.stop()


def readiness(slack: FakeSlack, bot: BotRunner) -> list[dict[str, Any]]:
    """`/vllm readiness`: the blocks of the private reply."""
    before = len(slack.responses)
    body = slash_command_body("readiness", channel_id="C123", response_url=slack.response_url)
    assert send_signed(f"{bot.url}/slack/events", body, SECRET).status == 200
    replies = slack.wait_for(lambda: slack.responses[before:] or None, timeout=40)
    assert replies is not None
    assert replies[0].body.get("response_type") == "ephemeral"
    blocks: list[dict[str, Any]] = replies[0].body["blocks"]
    return blocks


def _item_block(blocks: list[dict[str, Any]], title: str) -> dict[str, Any]:
    return next(b for b in blocks if title in json.dumps(b))


def test_scorecard_then_attest_from_the_button(
    world: tuple[ReadinessStack, FakeSlack, BotRunner, str],
) -> None:
    _, slack, bot, database = world
    blocks = readiness(slack, bot)
    assert validate_blocks(blocks) == []
    text = json.dumps(blocks)
    assert "critical pass" in text and "not ready" in text
    on_call = _item_block(blocks, "On-call rotation established")
    assert on_call["accessory"]["action_id"] == ids.ATTEST_BUTTON
    assert on_call["accessory"]["value"] == "on_call_rotation"
    assert "accessory" not in _item_block(blocks, "Multi-AZ deployment")  # measured: no button

    trigger = slack.new_trigger_id()
    click = block_action_body(ids.ATTEST_BUTTON, "on_call_rotation", trigger_id=trigger)
    assert send_signed(f"{bot.url}/slack/events", click, SECRET).status == 200
    view = slack.wait_for(lambda: next(iter(slack.views), None), timeout=10)
    assert view is not None and view.callback_id == ids.ATTEST_VIEW
    assert validate_view(view.view) == []

    bad = view_submission_body(
        ids.ATTEST_VIEW,
        view.private_metadata,
        {LINK_BLOCK: {"value": "javascript:alert(1)"}, DAYS_BLOCK: {"value": "400"}},
    )
    refused = send_signed(f"{bot.url}/slack/events", bad, SECRET)
    assert refused.status == 200
    errors = json.loads(refused.body)["errors"]
    assert set(errors) == {LINK_BLOCK, DAYS_BLOCK}

    good = view_submission_body(
        ids.ATTEST_VIEW,
        view.private_metadata,
        {LINK_BLOCK: {"value": "https://wiki.example/rota"}, DAYS_BLOCK: {"value": "7"}},
        user_id="U0ONCALL",
        user_name="ada",
    )
    assert send_signed(f"{bot.url}/slack/events", good, SECRET).status == 200

    def recorded() -> None:
        events = AuditLog(database).of_kind("readiness")
        assert [(e.event, e.actor_id, e.params.get("link")) for e in events] == [
            ("attested", "U0ONCALL", "https://wiki.example/rota")
        ]

    eventually(recorded, timeout_s=10)
    confirmed = slack.wait_for(
        lambda: [e for e in slack.ephemerals if "attested by" in e.text + json.dumps(e.blocks)],
        timeout=10,
    )
    assert confirmed and confirmed[0].user == "U0ONCALL"
    after = _item_block(readiness(slack, bot), "On-call rotation established")
    assert ":ballot_box_with_check:" in after["text"]["text"]
    assert "attested" in after["text"]["text"] and "wiki.example/rota" in after["text"]["text"]

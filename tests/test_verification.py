"""The verification re-check after an action, end to end: a real Prometheus scraping the
simulated fleet, the bot over signed HTTP, the Kubernetes stand-in. A drain that held
against a sticky GPU fault is reported as contained, with what is left to do."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from bot_runner import BotRunner
from fakes.slack import FakeSlack, send_signed
from fakes.slack import view_submission_body as submission
from fleet_stack import FleetStack, eventually, start_stack

from bot.remediation.audit import AuditLog
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn
from bot.slack import ids
from bot.store import Store

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

SECRET = "verify-secret"
CHANNEL = "C0VERIFY1"


@dataclass
class World:
    slack: FakeSlack
    kube: KubernetesStandIn
    stack: FleetStack
    bot: BotRunner
    db: str


@pytest.fixture(scope="module")
def world(prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    stack = start_stack(prometheus_binary, seed=5, history_s=20)
    slack = FakeSlack().start()
    kube = KubernetesStandIn().start()
    db = f"sqlite:///{tmp_path_factory.mktemp('verify') / 'bot.db'}"
    bot = BotRunner(
        slack_bot_token=slack.token,
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        prometheus_url=stack.prometheus.url,
        alerts_token="t",
        default_channel=CHANNEL,
        database_url=db,
        diagnosis_window="20s",
        verification_delay_s=1,
        clusters=[{"name": "default", "kube_api_url": kube.url, "kube_token": ADMIN_TOKEN}],
        policy={"grants": [{"users": ["U1"], "kinds": ["drain"]}], "approvals": []},
    ).start()
    yield World(slack, kube, stack, bot, db)
    bot.stop()
    kube.stop()
    slack.stop()
    stack.prometheus.stop()
    stack.server.stop()


def test_a_drain_against_a_sticky_xid_is_reported_contained(world: World) -> None:
    truth = world.stack.switch("xid_79", seed=5)
    node = next(f.node for f in truth.faults if f.node)
    world.kube.add_node(node)
    world.kube.add_pod("inference", f"{node}-vllm-0", node, {"app": "vllm"})
    time.sleep(4)  # a few scrapes of the fault
    parent = "1700000000.000200"
    request_id = Store(world.db).create_action_request(
        kind="drain",
        target=f"node/{node}",
        params={"timeout_s": 30},
        reason="Xid 79",
        runbook="gpu_hardware_failure",
        channel=CHANNEL,
        ttl=timedelta(minutes=5),
        cluster="default",
        scope={"node": node},
        origin={"channel": CHANNEL, "message_ts": parent},
    )
    body = submission(ids.ACTION_PLAN_VIEW, request_id, {}, user_id="U1")
    assert send_signed(f"{world.bot.url}/slack/events", body, SECRET).status == 200

    def verified() -> str:
        thread = world.slack.messages(CHANNEL, thread_ts=parent)
        texts = [json.dumps(m.blocks) for m in thread]
        found = [t for t in texts if "after drain" in t]
        assert found, texts[-2:]
        return found[-1]

    text = eventually(verified, timeout_s=40)
    assert "contained after drain" in text and "reset or replace the GPU" in text
    assert "large_yellow_circle" in text
    events = [e.event for e in AuditLog(world.db).for_request(request_id)]
    assert events[-1] == "verified"

"""A watched canary, end to end: `/vllm canary NS/DEPLOYMENT watch` in a channel, the bot
(its scheduler) reading a real Prometheus that scrapes the fleet twin, the Kubernetes API
stand-in holding the paused rollout, the local Slack Web API.

* The good canary gets one message a phase, edited in place; a phase that held its
  gates offers Promote; a person clicks it, confirms the plan, and the pods move; after
  the last phase the canary is complete and the rollout finished. The bot is restarted
  mid-phase on the same database: the watch resumes and edits the same message.
* The bad canary's rollback trigger offers a rollback; where the policy says so
  (``canary.auto_rollback_namespaces``) the bot rolls back at once, audited as the bot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from bot_runner import BotRunner
from fakes.slack import (
    FakeSlack,
    Message,
    block_action_body,
    send_signed,
    slash_command_body,
    validate_blocks,
)
from fakes.slack import view_submission_body as submission
from fleet_stack import FleetStack
from twin_stack import twin_stack

from bot.canary.watches import Watches
from bot.remediation.audit import AuditLog
from bot.simulator.fleet import build_fleet
from bot.simulator.scenarios import CANARY_IMAGE
from bot.simulator.server import Simulator
from bot.simulator.twin import FleetTwin
from bot.slack import ids
from bot.store import Store

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

T = TypeVar("T")
SECRET = "canary-watch-secret"
CHANNEL = "C0CANARY1"
SEED = 4
PHASES = [
    {"name": n, "traffic_percent": p, "duration": "3s", "gates": ["error_rate", "tpot_p99"]}
    for n, p in (("canary", 25), ("half", 50), ("full", 100))
]
# scraped every second; short windows keep the test short (production: 10m and 1m)
CANARY = {
    "window": "15s",
    "rollback": {"window": "8s"},
    "min_requests": 50,
    "evaluate_every_s": 5,
    "phases": PHASES,
}


@dataclass
class World:
    stack: FleetStack
    twin: FleetTwin
    slack: FakeSlack
    db: str
    target: str
    settings: dict[str, Any]

    def bot(self) -> BotRunner:
        return BotRunner(**self.settings).start()

    def watch(self, bot: BotRunner, user: str = "U123") -> None:
        body = slash_command_body(
            f"canary {self.target} watch",
            channel_id=CHANNEL,
            user_id=user,
            response_url=self.slack.response_url,
        )
        before = len(self.slack.responses)
        assert send_signed(f"{bot.url}/slack/events", body, SECRET).status == 200
        replies = self.slack.wait_for(lambda: self.slack.responses[before:] or None, timeout=20)
        assert replies is not None
        assert "Watching" in json.dumps(replies[0].body), replies[0].body

    def phase_messages(self) -> list[Message]:
        return [
            m
            for m in self.slack.messages(CHANNEL)
            if m.blocks and "(watched)" in json.dumps(m.blocks[0])
        ]

    def deployment(self) -> dict[str, Any]:
        namespace, name = self.target.split("/")
        found = self.twin.kubernetes.get("deployments", namespace, name)
        assert found is not None
        return found

    def serving_images(self) -> dict[str, int]:
        namespace, name = self.target.split("/")
        out: dict[str, int] = {}
        for rs in self.twin.kubernetes.list("replicasets", namespace):
            if not rs["metadata"]["name"].startswith(name) or not rs["spec"].get("replicas"):
                continue
            image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
            out[image] = out.get(image, 0) + int(rs["spec"]["replicas"])
        return out


def until(check: Callable[[], T | None], timeout_s: float) -> T:
    """``check``'s first value that is not None (or falsy), polled every half second."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout_s} s"
        time.sleep(0.5)


def buttons(message: Message) -> dict[str, str]:
    """action_id → value of the message's buttons (Promote/Roll back share ACTION_BUTTON;
    keyed by their text then)."""
    out: dict[str, str] = {}
    for block in message.blocks:
        for element in block.get("elements") or []:
            if element.get("type") == "button":
                out[element["text"]["text"].split(" ")[0]] = element["value"]
    return out


@pytest.fixture
def world(prometheus_binary: str, tmp_path: Path) -> Iterator[World]:
    fleet = build_fleet(
        replicas=4, gpus_per_replica=1, gpus_per_node=4, spare_nodes=1, seed=SEED, now=time.time()
    )
    sim = Simulator(fleet, "healthy", SEED)
    running = twin_stack(sim, prometheus_binary, startup_delay_s=0.3, resync_s=0.1, extra_targets=1)
    with running as (stack, twin):
        slack = FakeSlack().start()
        db = f"sqlite:///{tmp_path / 'bot.db'}"
        settings: dict[str, Any] = {
            "slack_bot_token": slack.token,
            "slack_signing_secret": SECRET,
            "slack_api_url": slack.api_url,
            "prometheus_url": stack.prometheus.url,
            "database_url": db,
            "alerts_token": "alerts-token",
            "default_channel": CHANNEL,
            "canary": CANARY,
            "clusters": [
                {"name": "prod", "kube_api_url": twin.kubernetes.url, "kube_token": twin.token}
            ],
            "policy": {"grants": [{"users": ["U123"], "kinds": ["promote", "rollback"]}]},
        }
        try:
            yield World(stack, twin, slack, db, "", settings)
        finally:
            slack.stop()


def start(world: World, scenario: str) -> None:
    (fault,) = world.stack.switch(scenario, seed=SEED).faults
    world.target = f"{fault.namespace}/{fault.deployment}"


def promote(world: World, bot: BotRunner, message: Message) -> None:
    """What a person does: click Promote, read the plan, confirm it."""
    request_id = buttons(message)["Promote"]
    click = block_action_body(
        ids.ACTION_BUTTON,
        request_id,
        user_id="U123",
        channel_id=CHANNEL,
        trigger_id=world.slack.new_trigger_id(),
    )
    views = len(world.slack.views)
    assert send_signed(f"{bot.url}/slack/events", click, SECRET).status == 200

    def planned() -> bool:  # the modal opens at once, and shows the plan when computed
        return any("promote the canary" in json.dumps(v.view) for v in world.slack.views[views:])

    until(planned, timeout_s=20)
    body = submission(ids.ACTION_PLAN_VIEW, request_id, {}, user_id="U123")
    assert send_signed(f"{bot.url}/slack/events", body, SECRET).status == 200


def next_phase(world: World, count: int) -> None:
    until(lambda: len(world.phase_messages()) >= count or None, timeout_s=30)


def test_the_good_canary_is_promoted_phase_by_phase_and_survives_a_restart(
    world: World,
) -> None:
    start(world, "canary_good")
    bot = world.bot()
    try:
        world.watch(bot)
        (first,) = until(lambda: world.phase_messages() or None, timeout_s=30)
        assert "Phase 1 of 3" in json.dumps(first.blocks)
        # a restart mid-phase: the watch resumes from the database, same message
        bot.stop()
        edits = len(world.slack.messages(CHANNEL)[0].history)
        bot = world.bot()

        def edited_again() -> bool | None:
            (again,) = [m for m in world.phase_messages() if m.ts == first.ts]
            return len(again.history) > edits or None

        until(edited_again, timeout_s=30)
        promoted = 0
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            messages = world.phase_messages()
            assert len(messages) == promoted + 1, [m.text for m in messages]
            current = messages[-1]
            assert validate_blocks(current.blocks) == []
            text = json.dumps(current.blocks)
            if "canary complete" in text:
                break
            assert "roll back now" not in text, text[:2000]
            if "Promote" in buttons(current):
                promote(world, bot, current)
                promoted += 1
                next_phase(world, promoted + 1)
                continue
            time.sleep(1)
        else:
            pytest.fail(f"not complete: {[m.text for m in world.phase_messages()]}")
    finally:
        bot.stop()
    assert promoted == 2  # canary → half → full, then complete with nothing to move
    for number, message in enumerate(world.phase_messages()[:2], start=1):
        shown = json.dumps(message.blocks)
        assert f"Phase {number} of 3" in shown and "promoted by <@U123>" in shown, shown[:1500]
        assert "held its gates and was promoted" in shown
        assert "Promote" not in buttons(message)  # a finished phase offers nothing
    last = json.dumps(world.phase_messages()[-1].blocks)
    assert "Phase 3 of 3" in last and "canary complete" in last, last[:1500]
    # at 100 % the previous revision serves no more: judged against its last numbers
    assert "its last numbers before it stopped serving" in last, last[:1500]
    assert not world.deployment()["spec"].get("paused")
    assert until(lambda: world.serving_images() if len(world.serving_images()) == 1 else None, 30)
    watch = Watches(Store(world.db)).recent()[0]
    assert watch.state == "done"
    audit = AuditLog(world.db).recent(50)
    confirmed = [e for e in audit if e.kind == "promote" and e.event == "requested"]
    assert {e.actor_id for e in confirmed} == {"U123"} and len(confirmed) == 2


def test_the_bad_canary_is_rolled_back_by_policy(world: World) -> None:
    start(world, "canary_bad")
    namespace = world.target.split("/")[0]
    world.settings["canary"] = {**CANARY, "auto_rollback_namespaces": [namespace]}
    bot = world.bot()
    try:
        world.watch(bot)

        def rolled_back() -> Message | None:
            messages = world.phase_messages()
            shown = json.dumps(messages[-1].blocks) if messages else ""
            return messages[-1] if "rolled back by policy" in shown else None

        message = until(rolled_back, timeout_s=60)
        assert "roll back now" in json.dumps(message.blocks)
        until(lambda: Watches(Store(world.db)).recent()[0].state == "rolled_back" or None, 30)
    finally:
        bot.stop()
    assert not world.deployment()["spec"].get("paused")
    template = world.deployment()["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] != CANARY_IMAGE
    audit = AuditLog(world.db).recent(50)
    (ran,) = [e for e in audit if e.kind == "rollback" and e.event == "requested"]
    assert ran.actor_name == "vllm-chatops" and "by policy" in ran.plan


def test_the_bad_canary_proposes_a_rollback_to_a_person(world: World) -> None:
    start(world, "canary_bad")
    bot = world.bot()
    try:
        world.watch(bot)

        def proposed() -> Message | None:
            messages = world.phase_messages()
            return messages[-1] if messages and "Roll" in buttons(messages[-1]) else None

        message = until(proposed, timeout_s=60)
        shown = json.dumps(message.blocks)
        assert "roll back now" in shown and "above" in shown, shown[:2000]
        assert validate_blocks(message.blocks) == []
    finally:
        bot.stop()
    assert world.deployment()["spec"].get("paused")  # nothing ran without a person
    watch = Watches(Store(world.db)).recent()[0]
    assert watch.state == "rollback" and watch.request_id is not None

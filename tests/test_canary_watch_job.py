"""The canary watch job's bookkeeping, one evaluation at a time: the real bot services
(store, remediation flow, outbox to the local Slack Web API, the Kubernetes API stand-in),
fed comparisons chosen by the test in place of Prometheus's — the gates' own reading of
Prometheus is tested on the fleet twin (test_canary_watch_bot, test_canary_e2e).

What is checked here is what a person sees when things go sideways: a promotion offered
and then withdrawn because a gate stopped passing; a rejected rollback offered again; a
promotion that ran moving the watch to a new message; a stop winning over a late
evaluation; a watch whose evaluation fails not holding up the others.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes.slack import FakeSlack, Message

import bot.slack.canary_watch as job
from bot.app import build
from bot.canary.compare import Comparison, Revision
from bot.canary.gates import Reading, judge, triggers
from bot.canary.watches import Watch, Watches
from bot.config import CanaryGate, CanaryRollback, ConfigError, Settings
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn
from bot.slack.services import Services

CHANNEL = "C0WATCH01"
PHASES = [
    {"name": n, "traffic_percent": p, "duration": "1s", "gates": ["error_rate"]}
    for n, p in (("canary", 25), ("half", 50), ("full", 100))
]


@dataclass
class World:
    svc: Services
    slack: FakeSlack
    readings: dict[str, Comparison | Exception]  # target → what the next compare returns

    def run(self) -> int:
        return asyncio.run(job.run_watches(self.svc))

    def start(self, target: str = "inference/llama") -> Watch:
        watch, _ = Watches(self.svc.store).start(target, None, CHANNEL, "U1")
        return watch

    def watch(self, watch_id: int) -> Watch:
        found = Watches(self.svc.store).get(watch_id)
        assert found is not None
        return found

    def message(self, watch: Watch) -> Message:
        (found,) = [m for m in self.slack.messages(CHANNEL) if m.ts == watch.message_ts]
        return found

    def request_state(self, request_id: str | None) -> str:
        assert request_id is not None
        req = self.svc.store.action_request(request_id)
        assert req is not None
        return req.state


def comparison(errors: float, trigger: float = 0.0) -> Comparison:
    c = Comparison("inference", "llama", "10m", "pass")
    c.new, c.old = Revision("llama-new", 2.0, 1), Revision("llama-old", 1.0, 3)
    c.gates = [
        judge(CanaryGate(metric="error_rate", max=0.001), Reading(errors, 0.0, 600, 600)),
    ]
    c.triggers = triggers(CanaryRollback(), trigger, 0.5, 0.02, 60, 60)
    c.status = "fail" if c.rollback or errors > 0.001 else "pass"
    return c


def labels(message: Message) -> list[str]:
    return [
        e["text"]["text"]
        for b in message.blocks
        for e in b.get("elements") or []
        if e.get("type") == "button"
    ]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    slack = FakeSlack().start()
    kube = KubernetesStandIn().start()
    settings = Settings(
        slack_bot_token=slack.token,
        slack_signing_secret="secret",
        slack_api_url=slack.api_url,
        alerts_token="token",
        default_channel=CHANNEL,
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        canary={"phases": PHASES, "evaluate_every_s": 5},
        clusters=[{"name": "prod", "kube_api_url": kube.url, "kube_token": ADMIN_TOKEN}],
    )
    bot = build(settings)
    readings: dict[str, Comparison | Exception] = {}

    async def compare(
        _m: Any, _s: Any, namespace: str, deployment: str, *_: Any, **__: Any
    ) -> Comparison:
        found = readings[f"{namespace}/{deployment}"]
        if isinstance(found, Exception):
            raise found
        return found

    monkeypatch.setattr(job, "compare", compare)
    try:
        yield World(bot.services, slack, readings)
    finally:
        bot.services.close()
        kube.stop()
        slack.stop()


def test_a_promotion_offered_is_withdrawn_when_a_gate_stops_passing(world: World) -> None:
    w = world.start()
    world.readings[w.target] = comparison(errors=0.0)
    world.run()  # gates pass: the phase's clock starts
    first = world.watch(w.id)
    assert first.state == "watching" and first.passing_since is not None
    assert labels(world.message(first)) == ["Stop watching"]
    time.sleep(1.1)
    world.run()  # held for the phase's whole duration: Promote
    offered = world.watch(w.id)
    assert offered.state == "promotable" and offered.message_ts == first.message_ts
    assert labels(world.message(offered))[0].startswith("Promote deployment/inference/llama")
    assert world.request_state(offered.request_id) == "offered"
    req = world.svc.store.action_request(offered.request_id or "")
    assert req is not None and req.kind == "promote" and req.params == {"traffic_percent": 50}

    world.readings[w.target] = comparison(errors=0.02)  # a gate fails before anyone clicks
    world.run()
    after = world.watch(w.id)
    assert after.state == "watching" and after.request_id is None and after.passing_since is None
    assert world.request_state(offered.request_id) == "expired"
    shown = world.message(after)
    assert labels(shown) == ["Stop watching"]
    assert "promotion withdrawn" in json.dumps(shown.blocks)
    assert len(world.slack.messages(CHANNEL)) == 1  # one message, edited in place


def test_a_promotion_that_ran_opens_the_next_phase(world: World) -> None:
    w = world.start()
    world.readings[w.target] = comparison(errors=0.0)
    world.run()
    time.sleep(1.1)
    world.run()
    offered = world.watch(w.id)
    assert offered.request_id is not None
    # what the flow does once a person confirmed and it ran
    assert world.svc.store.transition(offered.request_id, ("offered",), "done", requested_by="U7")
    world.run()
    moved = world.watch(w.id)
    assert (moved.phase, moved.state, moved.request_id) == (1, "watching", None)
    assert moved.message_ts is not None and moved.message_ts != offered.message_ts
    closed = json.dumps(world.message(offered).blocks)
    assert "held its gates and was promoted" in closed and "promoted by <@U7>" in closed
    assert labels(world.message(offered)) == []
    assert "Phase 2 of 3" in json.dumps(world.message(moved).blocks)


def test_a_rejected_rollback_is_offered_again(world: World) -> None:
    w = world.start()
    world.readings[w.target] = comparison(errors=0.02, trigger=0.05)
    world.run()
    first = world.watch(w.id)
    assert first.state == "rollback" and first.request_id is not None
    assert labels(world.message(first))[0].startswith("Roll back")
    assert world.svc.store.transition(first.request_id, ("offered",), "cancelled")
    world.run()
    again = world.watch(w.id)
    assert again.state == "rollback" and again.request_id not in (None, first.request_id)
    assert world.request_state(again.request_id) == "offered"
    assert len(world.slack.messages(CHANNEL)) == 1


def test_a_stop_wins_and_a_failing_watch_holds_up_no_other(world: World) -> None:
    broken, healthy = world.start("inference/broken"), world.start("inference/llama")
    world.readings[broken.target] = ConfigError("boom")
    world.readings[healthy.target] = comparison(errors=0.0)
    assert world.run() == 2
    assert world.watch(broken.id).message_ts is None  # its round failed: nothing shown
    assert world.watch(healthy.id).message_ts is not None  # the other went on

    stopped = Watches(world.svc.store).stop(healthy.id, "<@U2>")
    assert stopped is not None
    assert world.run() == 1  # only the broken one is still active
    assert world.watch(healthy.id).state == "stopped"

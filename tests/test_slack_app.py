"""The Slack app through the real protocol: signed requests to /slack/events, a local fake
Slack Web API, a real Prometheus over the simulator, and a real Alertmanager sending the
webhook for alerts Prometheus evaluates from the exported rules."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bot_runner import BotRunner
from fakes.slack import (
    FakeSlack,
    View,
    block_action_body,
    send_signed,
    slash_command_body,
    slash_command_payload,
)
from fleet_stack import FleetStack, eventually, require_binary, start_stack

from bot.diagnosis.alert_rules import render_rules_yaml
from bot.diagnosis.runbooks import load_runbooks
from bot.simulator.alertmanager_runner import AlertmanagerRunner, find_alertmanager
from bot.simulator.prometheus_runner import free_port
from bot.slack import ids, intake
from bot.store import Store

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

SECRET = "signing-secret"
ALERTS_TOKEN = "alerts-token"
CHANNEL = "C0ALERTS1"


@dataclass
class World:
    slack: FakeSlack
    stack: FleetStack
    alertmanager: AlertmanagerRunner
    bot: BotRunner

    def command(self, text: str, channel: str = "C123") -> float:
        """Send `/vllm text` signed; the acknowledgement latency in seconds."""
        body = slash_command_body(text, channel_id=channel, response_url=self.slack.response_url)
        response = send_signed(f"{self.bot.url}/slack/events", body, SECRET)
        assert response.status == 200, response.body
        return response.elapsed


@pytest.fixture(scope="module")
def world(prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    am_binary = require_binary("prometheus-alertmanager", find_alertmanager())
    bot_port = free_port()
    alertmanager = AlertmanagerRunner(
        am_binary, f"http://127.0.0.1:{bot_port}/alerts", ALERTS_TOKEN
    ).start()
    rules = tmp_path_factory.mktemp("rules") / "rules.yml"
    rules.write_text(render_rules_yaml(load_runbooks(), for_override="0s"))
    stack = start_stack(
        prometheus_binary,
        rule_files=[rules],
        alertmanagers=[alertmanager.url],
        seed=5,
        history_s=20,
    )
    slack = FakeSlack().start()
    bot = BotRunner(
        slack_bot_token=slack.token,
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        prometheus_url=stack.prometheus.url,
        alerts_token=ALERTS_TOKEN,
        default_channel=CHANNEL,
        database_url=f"sqlite:///{tmp_path_factory.mktemp('db') / 'bot.db'}",
        diagnosis_window="20s",
    )
    bot.port = bot_port
    bot.start()
    yield World(slack, stack, alertmanager, bot)
    bot.stop()
    slack.stop()
    stack.prometheus.stop()
    stack.server.stop()
    alertmanager.stop()


def test_forged_and_stale_requests_are_refused(world: World) -> None:
    body = slash_command_body("help")
    forged = send_signed(f"{world.bot.url}/slack/events", body, "not-the-secret")
    assert forged.status == 401
    stale = send_signed(
        f"{world.bot.url}/slack/events", body, SECRET, timestamp=int(time.time()) - 600
    )
    assert stale.status == 401


def test_help_and_bad_subcommand_answer_ephemerally(world: World) -> None:
    before = len(world.slack.responses)
    world.command("frobnicate now")
    replies = world.slack.wait_for(lambda: world.slack.responses[before:] or None, timeout=10)
    assert replies is not None
    reply = json.dumps(replies[0].body)
    assert "unknown subcommand" in reply and "frobnicate" in reply
    assert "diagnose" in reply  # usage follows the problem
    assert replies[0].body.get("response_type") == "ephemeral"


def test_diagnose_posts_then_updates_in_place_and_charts(world: World) -> None:
    truth = world.stack.switch("kv_cache_pressure", seed=5)
    hot = {f.pod for f in truth.faults if f.pod}
    time.sleep(3)

    def kv_messages() -> list[str]:
        return [
            json.dumps(m.blocks)
            for m in world.slack.messages("C123")
            if "KV" in json.dumps(m.blocks)
        ]

    before = len(kv_messages())
    ack = world.command("diagnose kv_cache_pressure ns=inference")
    assert ack < 3.0

    def finished() -> str:
        msgs = kv_messages()[before:]  # another test's KV message is not this diagnosis
        assert msgs, "no diagnosis message yet"
        final = msgs[-1]
        assert "memory_pressure" in final or "Memory pressure" in final
        return final

    final = eventually(finished, timeout_s=40)
    assert any(pod in final for pod in hot), "the diagnosis names a pressured replica"
    # one message carries the diagnosis: edited in place as checks finish (or, when the
    # channel's pace held the first post until the end, posted once with the final content)
    assert len(kv_messages()) == before + 1, "posted once, then updated in place"
    assert any(ids.ACTION_BUTTON in json.dumps(m.blocks) for m in world.slack.messages("C123"))
    world.slack.wait_for(lambda: [f for f in world.slack.files if f.filename.endswith(".png")])
    png = next(f for f in world.slack.files if f.filename.endswith(".png"))
    assert png.data is not None and png.data.startswith(b"\x89PNG")


def test_action_button_opens_the_plan(world: World) -> None:
    world.stack.switch("kv_cache_pressure", seed=5)
    time.sleep(3)
    seen = {m.ts for m in world.slack.messages("C123")}
    world.command("diagnose kv_cache_pressure ns=inference")

    def offered() -> list[str]:
        values = [
            element["value"]
            for m in world.slack.messages("C123")
            if m.ts not in seen
            for block in m.blocks or []
            for element in ([block.get("accessory")] if block.get("accessory") else [])
            + block.get("elements", [])
            if isinstance(element, dict) and element.get("action_id") == ids.ACTION_BUTTON
        ]
        assert values, "the diagnosis offered an action"
        return values

    values = eventually(offered, timeout_s=40)
    assert all("scale" not in v and "deployment/" not in v for v in values), "opaque ids only"
    body = block_action_body(ids.ACTION_BUTTON, values[0], trigger_id=world.slack.new_trigger_id())
    assert send_signed(f"{world.bot.url}/slack/events", body, SECRET).status == 200

    # the modal opens at once with "computing the plan…", then the plan replaces it
    def plan() -> View | None:
        views = world.slack.views
        return views[-1] if views and "scale" in json.dumps(views[-1].view).lower() else None

    view = world.slack.wait_for(plan, timeout=30)
    assert view is not None
    assert view.callback_id == ids.ACTION_PLAN_VIEW
    assert view.private_metadata == values[0]


def test_alerts_endpoint_refuses_bad_requests(world: World) -> None:
    url = f"{world.bot.url}/alerts"
    assert httpx.post(url, json={}).status_code == 401
    auth = {"Authorization": f"Bearer {ALERTS_TOKEN}"}
    bad_json = httpx.post(url, content=b"{not json", headers=auth)
    assert bad_json.status_code == 400 and "not JSON" in bad_json.text
    not_webhook = httpx.post(url, json={"status": "firing", "alerts": []}, headers=auth)
    assert not_webhook.status_code == 400 and "problems" in not_webhook.json()


def _webhook(status: str, fingerprint: str, pod: str) -> dict[str, Any]:
    alert = {
        "status": status,
        "labels": {"alertname": "VLLMKVCachePressure", "severity": "critical",
                   "runbook": "kv_cache_pressure", "namespace": "inference", "pod": pod},
        "annotations": {"summary": f"KV cache high on {pod}"},
        "startsAt": "2026-11-28T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-28T10:05:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }  # fmt: skip
    return {
        "version": "4", "receiver": "bot", "status": status, "alerts": [alert],
        "groupLabels": {"alertname": "VLLMKVCachePressure"},
        "commonLabels": alert["labels"], "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager", "groupKey": f"test/{fingerprint}",
        "truncatedAlerts": 0,
    }  # fmt: skip


def test_same_alert_twice_posts_once_and_resolve_updates(world: World) -> None:
    url = f"{world.bot.url}/alerts"
    auth = {"Authorization": f"Bearer {ALERTS_TOKEN}"}
    pod = "vllm-dedup-7d9f8c6b5d-x2k9p"  # not in the fleet: no real alert can mention it
    first = httpx.post(url, json=_webhook("firing", "fp-dedup", pod), headers=auth)
    second = httpx.post(url, json=_webhook("firing", "fp-dedup", pod), headers=auth)
    assert first.json()["new_posts"] == 1 and second.json()["new_posts"] == 0
    world.bot.drain()
    roots = [
        m for m in world.slack.messages(CHANNEL)
        if m.thread_ts is None and pod in json.dumps(m.blocks)
    ]  # fmt: skip
    assert len(roots) == 1
    httpx.post(url, json=_webhook("resolved", "fp-dedup", pod), headers=auth)
    world.bot.drain()
    root = next(m for m in world.slack.messages(CHANNEL) if m.ts == roots[0].ts)
    assert root.edited
    assert "RESOLVED" in json.dumps(root.blocks).upper()
    replies = [m for m in world.slack.messages(CHANNEL) if m.thread_ts == root.ts]
    assert any("Resolved after" in json.dumps(m.blocks) for m in replies)


def test_end_to_end_alertmanager_to_slack(world: World) -> None:
    truth = world.stack.switch("kv_cache_pressure", seed=5)
    hot = {f.pod for f in truth.faults if f.pod}

    def alert_post() -> str:
        for m in world.slack.messages(CHANNEL):
            text = json.dumps(m.blocks)
            firing = "VLLMKVCachePressure" in text and "FIRING" in text.upper()
            if m.thread_ts is None and firing and any(p in text for p in hot):
                return m.ts
        raise AssertionError("no alert post for the pressured replica yet")

    ts = eventually(alert_post, timeout_s=60)
    root = next(m for m in world.slack.messages(CHANNEL) if m.ts == ts)
    assert "KV-cache pressure" in json.dumps(root.blocks)  # the runbook

    def diagnosis_in_thread() -> None:
        thread = [m for m in world.slack.messages(CHANNEL) if m.thread_ts == ts]
        text = json.dumps([m.blocks for m in thread])
        assert "Memory pressure" in text
        assert any(p in text for p in hot)

    eventually(diagnosis_in_thread, timeout_s=90)
    metrics = httpx.get(f"{world.bot.url}/metrics").text
    assert "vllm_chatops_alert_to_post_seconds_count" in metrics


def test_readiness_and_health(world: World) -> None:
    assert httpx.get(f"{world.bot.url}/healthz").status_code == 200
    assert httpx.get(f"{world.bot.url}/readyz").status_code == 200


def test_a_group_of_alerts_is_one_post_and_unknown_alerts_still_post(world: World) -> None:
    url = f"{world.bot.url}/alerts"
    auth = {"Authorization": f"Bearer {ALERTS_TOKEN}"}
    group = _webhook("firing", "fp-g1", "pod-one")
    second = json.loads(json.dumps(group["alerts"]))[0]
    second["fingerprint"], second["labels"]["pod"] = "fp-g2", "pod-two"
    group["alerts"] = [*group["alerts"], second]
    group["commonLabels"] = {"alertname": "VLLMKVCachePressure", "runbook": "kv_cache_pressure"}
    assert httpx.post(url, json=group, headers=auth).json()["new_posts"] == 1
    unknown = _webhook("firing", "fp-unknown", "pod-x")
    for alert in unknown["alerts"]:
        alert["labels"] = {"alertname": "DiskFull", "instance": "db-1:9100"}
    unknown["commonLabels"] = {"alertname": "DiskFull"}
    assert httpx.post(url, json=unknown, headers=auth).json()["new_posts"] == 1
    world.bot.drain()
    roots = [m for m in world.slack.messages(CHANNEL) if m.thread_ts is None]
    grouped = [m for m in roots if "pod-one" in json.dumps(m.blocks)]
    assert len(grouped) == 1 and "pod-two" in json.dumps(grouped[0].blocks)
    (disk,) = [m for m in roots if "DiskFull" in json.dumps(m.blocks)]
    assert "No runbook matches" in json.dumps(disk.blocks)


def test_slack_rate_limit_is_waited_out(world: World) -> None:
    world.slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    url = f"{world.bot.url}/alerts"
    auth = {"Authorization": f"Bearer {ALERTS_TOKEN}"}
    httpx.post(url, json=_webhook("firing", "fp-429", "pod-429"), headers=auth)
    world.bot.drain()
    limited = [c for c in world.slack.calls_to("chat.postMessage") if c.status == 429]
    assert limited, "the fake answered 429 once"
    assert any("pod-429" in json.dumps(m.blocks) for m in world.slack.messages(CHANNEL))


def test_socket_mode(world: World, tmp_path: Path) -> None:
    bot = BotRunner(
        slack_bot_token=world.slack.token,
        slack_app_token=world.slack.app_token,
        slack_api_url=world.slack.api_url,
        prometheus_url=world.stack.prometheus.url,
        alerts_token=ALERTS_TOKEN,
        default_channel=CHANNEL,
        database_url=f"sqlite:///{tmp_path / 'socket.db'}",
        diagnosis_window="20s",
    ).start()
    try:
        world.slack.wait_for_socket_connection(timeout=10)
        response_url = world.slack.new_response_url()
        payload = slash_command_payload("runbooks", response_url=response_url)
        envelope = world.slack.socket_send("slash_commands", payload)
        ack = world.slack.wait_for(lambda: world.slack.ack_for(envelope), timeout=5)
        assert ack is not None and ack.latency is not None and ack.latency < 3.0
        reply = world.slack.wait_for(
            lambda: [r for r in world.slack.responses if "kv_cache_pressure" in json.dumps(r.body)],
            timeout=10,
        )
        assert reply
        # Socket Mode serves no /slack/events; the webhook and health stay on HTTP
        assert httpx.post(f"{bot.url}/slack/events", content=b"x").status_code == 404
        assert httpx.get(f"{bot.url}/healthz").status_code == 200
    finally:
        bot.stop()


def _roots_about(world: World, pod: str) -> list[str]:
    return [
        json.dumps(m.blocks)
        for m in world.slack.messages(CHANNEL)
        if m.thread_ts is None and pod in json.dumps(m.blocks)
    ]


def _posted(world: World, pod: str) -> list[str]:
    roots = _roots_about(world, pod)
    assert roots, f"no post about {pod} yet"
    return roots


def test_slack_refusing_a_post_loses_nothing(world: World) -> None:
    """ok:false from Slack: the alert stays recorded and is posted again a little later."""
    # refused until cleared: a single refusal could be taken by another test's late post
    world.slack.fail("chat.postMessage", error="channel_not_found", times=None)
    url = f"{world.bot.url}/alerts"
    auth = {"Authorization": f"Bearer {ALERTS_TOKEN}"}
    try:
        response = httpx.post(
            url, json=_webhook("firing", "fp-refused", "pod-refused"), headers=auth
        )
        assert response.status_code == 200
        world.bot.drain()
        assert _roots_about(world, "pod-refused") == []
    finally:
        world.slack.clear_faults()
    eventually(lambda: _posted(world, "pod-refused"), timeout_s=20)
    time.sleep(intake.RETRY_S + 1)
    assert len(_roots_about(world, "pod-refused")) == 1


def _claimed_by_a_dead_replica(world: World, fingerprint: str, pod: str) -> Store:
    """What a replica leaves behind when it dies right after recording an alert."""
    store = Store(world.bot.settings.database_url)
    payload = _webhook("firing", fingerprint, pod)
    opened = store.open_post(
        payload["groupKey"],
        CHANNEL,
        "kv_cache_pressure",
        [(fingerprint, "VLLMKVCachePressure", "2026-11-28T10:00:00Z")],
        payload,
        lease=timedelta(0),
    )
    assert opened is not None
    return store


def test_an_alert_a_dead_replica_claimed_is_posted_by_the_survivor(world: World) -> None:
    pod = "vllm-orphan-7d9f8c6b5d-q2k9p"
    _claimed_by_a_dead_replica(world, "fp-orphan", pod)
    posted = eventually(lambda: _posted(world, pod), timeout_s=20)
    assert "FIRING" in posted[0]
    time.sleep(intake.RETRY_S + 1)
    assert len(_roots_about(world, pod)) == 1


def test_an_alert_that_resolved_before_it_was_posted_is_posted_resolved(world: World) -> None:
    pod = "vllm-gone-7d9f8c6b5d-r2k9p"
    store = _claimed_by_a_dead_replica(world, "fp-gone", pod)
    assert len(store.resolve(["fp-gone"])) == 1
    posted = eventually(lambda: _posted(world, pod), timeout_s=20)
    assert "RESOLVED" in posted[0] and "FIRING" not in posted[0]

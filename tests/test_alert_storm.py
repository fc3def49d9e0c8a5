"""Alert storms become one evolving post per incident, not a flood of top-level posts.

Alertmanager re-sends a group as it grows, every alert of the group each time. The bot
(real, on loopback, against the fake Slack) must answer each notification, keep one
top-level message per incident up to date — tallies, worst and newest alerts — and say in
its thread which alerts joined, within Slack's pace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bot_runner import BotRunner
from fakes.slack import FakeSlack, Message
from fleet_stack import eventually

from bot.simulator.prometheus_runner import free_port

TOKEN = "alerts-token"
CHANNEL = "C0STORM01"


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[tuple[BotRunner, FakeSlack]]:
    slack = FakeSlack().start()
    runner = BotRunner(
        slack_bot_token=slack.token,
        slack_signing_secret="secret",
        slack_api_url=slack.api_url,
        prometheus_url=f"http://127.0.0.1:{free_port()}",  # nothing there: diagnosis unknown
        alerts_token=TOKEN,
        default_channel=CHANNEL,
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
    ).start()
    yield runner, slack
    runner.stop()
    slack.stop()


def alert(fingerprint: str, pod: str, namespace: str, status: str = "firing") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "VLLMKVCachePressure",
            "severity": "critical" if fingerprint.endswith("0") else "warning",
            "runbook": "kv_cache_pressure",
            "namespace": namespace,
            "pod": pod,
        },
        "annotations": {"summary": f"KV cache high on {pod}"},
        "startsAt": f"2026-11-28T10:{int(fingerprint.split('-')[-1]) % 60:02d}:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


def notification(key: str, alerts: list[dict[str, Any]], namespace: str) -> dict[str, Any]:
    common = {"alertname": "VLLMKVCachePressure", "runbook": "kv_cache_pressure"}
    common["namespace"] = namespace
    return {
        "version": "4",
        "receiver": "bot",
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": alerts,
        "groupLabels": {"alertname": "VLLMKVCachePressure"},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "groupKey": key,
        "truncatedAlerts": 0,
    }


def send(runner: BotRunner, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{runner.url}/alerts", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def roots(slack: FakeSlack) -> list[Message]:
    return [m for m in slack.messages(CHANNEL) if m.thread_ts is None]


def shown(message: Message) -> str:
    return json.dumps(message.blocks)


def test_a_growing_group_is_one_post_that_keeps_up(
    bot: tuple[BotRunner, FakeSlack],
) -> None:
    runner, slack = bot
    group: list[dict[str, Any]] = []
    new_posts = 0
    for batch in range(60):  # 60 re-sends, 10 new alerts each, over 50 pods
        group += [
            alert(
                f"fp-{batch * 10 + i}",
                f"vllm-llama-7d9f8b6c5d-p{(batch * 10 + i) % 50:04d}",
                "prod",
            )
            for i in range(10)
        ]
        new_posts += send(runner, notification("storm/1", group, "prod"))["new_posts"]
    assert new_posts == 1

    def caught_up() -> Message:
        (root,) = roots(slack)
        assert "600 alerts" in shown(root), shown(root)[:300]
        return root

    root = eventually(caught_up, timeout_s=30, interval_s=0.5)
    assert "600 firing" in shown(root)
    updates = [v for v in root.history if v.method == "chat.update"]
    assert 1 <= len(updates) <= 30, len(updates)  # paced, not one per notification

    def all_told() -> None:
        told = [m for m in slack.messages(CHANNEL) if m.thread_ts == root.ts and "joined" in m.text]
        assert sum(int(m.text.split()[0]) for m in told) == 590  # all but the first ten

    eventually(all_told, timeout_s=30, interval_s=0.5)
    # never faster than about one write per second per channel after the first post
    writes = sorted(v.at for m in slack.messages(CHANNEL) for v in m.history)
    assert len(writes) <= 2 * (writes[-1] - writes[0]) + 10


def test_groups_about_the_same_incident_share_a_post_and_others_do_not(
    bot: tuple[BotRunner, FakeSlack],
) -> None:
    runner, slack = bot
    assert send(runner, notification("a", [alert("fp-1", "pod-a", "prod")], "prod"))["new_posts"]
    joined = send(runner, notification("b", [alert("fp-2", "pod-b", "prod")], "prod"))
    other = send(runner, notification("c", [alert("fp-3", "pod-c", "staging")], "staging"))
    assert (joined["new_posts"], other["new_posts"]) == (0, 1)

    def two_posts() -> list[Message]:
        posts = roots(slack)
        assert len(posts) == 2
        prod = next(m for m in posts if "pod-a" in shown(m))
        assert "pod-b" in shown(prod) and "2 alerts" in shown(prod)
        return posts

    eventually(two_posts, timeout_s=15, interval_s=0.5)


def test_partial_resolution_is_tallied_and_the_last_one_resolves_the_post(
    bot: tuple[BotRunner, FakeSlack],
) -> None:
    runner, slack = bot
    alerts = [alert(f"fp-{i}", f"pod-{i}", "prod") for i in range(3)]
    send(runner, notification("g", alerts, "prod"))
    alerts[0]["status"] = "resolved"
    send(runner, notification("g", alerts, "prod"))

    def tallied() -> Message:
        (root,) = roots(slack)
        assert "2 firing" in shown(root) and "1 resolved" in shown(root), shown(root)[:400]
        assert "FIRING" in shown(root)
        return root

    eventually(tallied, timeout_s=15, interval_s=0.5)
    for a in alerts:
        a["status"] = "resolved"
    send(runner, notification("g", alerts, "prod"))

    def resolved() -> None:
        (root,) = roots(slack)
        assert "RESOLVED" in shown(root) and "3 resolved" in shown(root), shown(root)[:400]

    eventually(resolved, timeout_s=15, interval_s=0.5)

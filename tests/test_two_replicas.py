"""Two real `serve` processes on one PostgreSQL; one is killed with SIGKILL mid-storm.

Every alert must end up in exactly one top-level post (one per incident, tallies counting
every alert), the survivor must take over the scheduled work, and nothing may be posted
twice — including alerts the dead replica had accepted but not yet posted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fakes.slack import FakeSlack, Message, send_signed, view_submission_body
from fleet_stack import eventually

from bot.remediation.audit import AuditLog
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn
from bot.simulator.prometheus_runner import free_port
from bot.slack import ids
from bot.store import Store

pytestmark = [pytest.mark.slow]

TOKEN, CHANNEL = "alerts-token", "C0HA00001"
INCIDENTS = ("team-a", "team-b", "team-c")


VERIFY_AFTER_S = 8  # a verification falls due after the leader is killed


class Replica:
    def __init__(self, database_url: str, slack: FakeSlack, kube: KubernetesStandIn) -> None:
        self.port = free_port()
        cluster = {"name": "default", "kube_api_url": kube.url, "kube_token": ADMIN_TOKEN}
        policy = {"grants": [{"users": ["U1"], "kinds": ["scale"]}], "approvals": []}
        env = os.environ | {
            "VLLM_CHATOPS_CLUSTERS": json.dumps([cluster]),
            "VLLM_CHATOPS_POLICY": json.dumps(policy),
            "VLLM_CHATOPS_VERIFY_AFTER": str(VERIFY_AFTER_S),
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": "secret",
            "SLACK_API_URL": slack.api_url,
            "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",  # diagnosis: unknown
            "DATABASE_URL": database_url,
            "VLLM_CHATOPS_ALERTS_TOKEN": TOKEN,
            "VLLM_CHATOPS_DEFAULT_CHANNEL": CHANNEL,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def ready(self) -> None:
        assert self.process.poll() is None, "serve exited"
        try:
            status = httpx.get(f"{self.url}/healthz", timeout=2).status_code
        except httpx.HTTPError as exc:
            raise AssertionError(f"not serving yet: {exc}") from exc
        assert status == 200

    def leading(self) -> bool:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        found = re.search(r"^vllm_chatops_scheduler_leader (\S+)$", text, re.M)
        return found is not None and float(found.group(1)) == 1.0

    def confirm(self, request_id: str) -> None:
        """The person clicks Confirm in the plan modal (a signed view submission)."""
        body = view_submission_body(ids.ACTION_PLAN_VIEW, request_id, {}, user_id="U1")
        assert send_signed(f"{self.url}/slack/events", body, "secret").status == 200

    def send(self, body: dict[str, Any]) -> None:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        response = httpx.post(f"{self.url}/alerts", json=body, headers=auth, timeout=10)
        assert response.status_code == 200, response.text

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class Cluster:
    slack: FakeSlack
    kube: KubernetesStandIn
    replicas: list[Replica]
    database_url: str


@pytest.fixture
def cluster(postgres_url: str) -> Iterator[Cluster]:
    slack = FakeSlack().start()
    slack.add_channel(CHANNEL, "alerts")
    kube = KubernetesStandIn().start()
    kube.add_deployment("ml", "llama", "vllm:0.11.0", replicas=2)
    started = [Replica(postgres_url, slack, kube) for _ in range(2)]
    try:
        for replica in started:
            eventually(replica.ready, timeout_s=40)
        yield Cluster(slack, kube, started, postgres_url)
    finally:
        for replica in started:
            replica.stop()
        kube.stop()
        slack.stop()


def notification(namespace: str, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    common = {"alertname": "VLLMQueueBacklog", "runbook": "queue_backlog", "namespace": namespace}
    return {
        "version": "4",
        "receiver": "bot",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {"namespace": namespace},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "groupKey": f'{{}}:{{namespace="{namespace}"}}',
        "truncatedAlerts": 0,
    }


def alert(namespace: str, n: int) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {
            "alertname": "VLLMQueueBacklog",
            "runbook": "queue_backlog",
            "namespace": namespace,
            "pod": f"vllm-llama-7d9f8b6c5d-p{n % 40:04d}",
            "severity": "warning",
        },
        "annotations": {},
        "startsAt": f"2026-11-28T10:{n % 60:02d}:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": f"{namespace}-{n:06d}",
    }


def roots(slack: FakeSlack) -> list[Message]:
    return [m for m in slack.messages(CHANNEL) if m.thread_ts is None]


def test_a_replica_killed_mid_storm_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    slack, (one, two) = cluster.slack, cluster.replicas
    eventually(lambda: [r.leading() for r in (one, two)].count(True) == 1 or None, timeout_s=15)
    leader, other = (one, two) if one.leading() else (two, one)

    # An action the leader executes now: its verification falls due after the leader died.
    parent = "1700000000.000300"
    store, audit = Store(cluster.database_url), AuditLog(cluster.database_url)
    request_id = store.create_action_request(
        kind="scale", target="deployment/ml/llama", params={"replicas": 3}, reason="queue",
        runbook="queue_backlog", channel=CHANNEL, ttl=timedelta(minutes=5), cluster="default",
        scope={"namespace": "ml"}, origin={"channel": CHANNEL, "message_ts": parent},
    )  # fmt: skip
    leader.confirm(request_id)
    eventually(lambda: "executed" in [e.event for e in audit.for_request(request_id)] or None)

    groups: dict[str, list[dict[str, Any]]] = {ns: [] for ns in INCIDENTS}
    n = 0
    for round_ in range(12):
        for i, namespace in enumerate(INCIDENTS):
            groups[namespace] += [alert(namespace, n + k) for k in range(10)]
            n += 10
            alive = [other] if round_ >= 6 else [leader, other]
            alive[(round_ + i) % len(alive)].send(notification(namespace, groups[namespace]))
        if round_ == 5:
            # the leader accepts a new incident's first alerts, then dies before or while
            # posting it: SIGKILL, no shutdown, no lease hand-over
            leader.send(notification("team-late", [alert("team-late", 0)]))
            assert "verified" not in [e.event for e in audit.for_request(request_id)]
            os.kill(leader.process.pid, signal.SIGKILL)
        time.sleep(0.3)

    eventually(other.leading, timeout_s=20)

    def every_alert_posted_once() -> None:
        posts = roots(slack)
        by_incident = {ns: [m for m in posts if f"*Namespace*\\n`{ns}`" in json.dumps(m.blocks)]
                       for ns in (*INCIDENTS, "team-late")}  # fmt: skip
        assert {ns: len(found) for ns, found in by_incident.items()} == dict.fromkeys(
            by_incident, 1
        ), [m.text for m in posts]
        for namespace in INCIDENTS:
            (post,) = by_incident[namespace]
            assert f"{len(groups[namespace])} firing" in json.dumps(post.blocks), post.text

    def verified_once() -> None:  # by the survivor: the one that ran it is dead
        events = [e.event for e in audit.for_request(request_id)]
        assert events.count("verified") == 1, events
        told = [m for m in slack.messages(CHANNEL, thread_ts=parent) if "verify" in m.text]
        assert len(told) == 1, [m.text for m in slack.messages(CHANNEL, thread_ts=parent)]

    # what the dead replica held (a post being sent, a refresh) passes on when its 30 s
    # lease runs out; then the survivor catches up at one write a second for the channel
    eventually(every_alert_posted_once, timeout_s=120, interval_s=1)
    eventually(verified_once, timeout_s=40, interval_s=1)
    time.sleep(6)  # a late duplicate would show up by now
    every_alert_posted_once()
    verified_once()

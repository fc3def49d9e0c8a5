"""One-click remediation end to end: a diagnosis offers a scale, the button opens the live
plan, Confirm executes it on a (fake, real-HTTP) Kubernetes API once however many times
it is clicked, permissions and the two-person rule hold, every step is audited, and a
verification re-check reports in the thread."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from bot_runner import BotRunner
from fakes.slack import FakeSlack, Message, block_action_body, send_signed, slash_command_body
from fakes.slack import view_submission_body as submission
from fleet_stack import FleetStack, eventually, require_binary, start_stack

from bot.remediation.audit import AuditLog
from bot.simulator.alertmanager_runner import AlertmanagerRunner, find_alertmanager
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn
from bot.slack import ids

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

SECRET = "remediation-secret"
CHANNEL = "C0REMEDY1"
DEPLOYMENT = "vllm-llama-3-1-70b-instruct"


@dataclass
class World:
    slack: FakeSlack
    kube: KubernetesStandIn
    stack: FleetStack
    bot: BotRunner
    db: str
    alertmanager_url: str

    def events(self) -> str:
        return f"{self.bot.url}/slack/events"

    def offered_scale(self) -> str:
        """Run a diagnosis that recommends a scale; the button's request id."""
        before = {m.ts for m in self.slack.messages(CHANNEL)}
        body = slash_command_body(
            "diagnose kv_cache_pressure", channel_id=CHANNEL, response_url=self.slack.response_url
        )
        assert send_signed(self.events(), body, SECRET).status == 200

        def button() -> str:
            for m in self.slack.messages(CHANNEL):
                if m.ts in before:
                    continue
                for block in m.blocks or []:
                    accessory = block.get("accessory") or {}
                    if accessory.get("action_id") == ids.ACTION_BUTTON:
                        return str(accessory["value"])
            raise AssertionError("no action button yet")

        return eventually(button, timeout_s=40)

    def click(self, request_id: str, user: str = "U123") -> None:
        body = block_action_body(
            ids.ACTION_BUTTON,
            request_id,
            user_id=user,
            channel_id=CHANNEL,
            trigger_id=self.slack.new_trigger_id(),
        )
        assert send_signed(self.events(), body, SECRET).status == 200

    def confirm(self, request_id: str, user: str = "U123", replicas: str | None = None) -> int:
        values = {"param_replicas": {"replicas": replicas}} if replicas else {}
        body = submission(ids.ACTION_PLAN_VIEW, request_id, values, user_id=user)
        return send_signed(self.events(), body, SECRET).status

    def scale_writes(self) -> int:
        writes = [
            r
            for r in self.kube.requests
            if r.method in ("PATCH", "PUT")
            and r.path.endswith("/scale")
            and "dryRun" not in r.query
            and r.status < 300
        ]
        return len(writes)


@pytest.fixture(scope="module")
def world(prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    stack = start_stack(prometheus_binary, seed=5, history_s=20)
    slack = FakeSlack().start()
    kube = KubernetesStandIn().start()
    kube.add_deployment("inference", DEPLOYMENT, "vllm/vllm-openai:v0.11.0", replicas=8)
    kube.add_node("gpu-node-009")
    am_binary = require_binary("prometheus-alertmanager", find_alertmanager())
    alertmanager = AlertmanagerRunner(am_binary, "http://127.0.0.1:9/unused", "x").start()
    db = f"sqlite:///{tmp_path_factory.mktemp('db') / 'bot.db'}"
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
        clusters=[
            {
                "name": "default",
                "kube_api_url": kube.url,
                "kube_token": ADMIN_TOKEN,
                "alertmanager_url": alertmanager.url,
            }
        ],
        policy={
            "grants": [
                {"users": ["U123", "U456"], "kinds": ["scale", "drain", "silence", "unsilence"]},
                {"users": ["U123", "U456"], "kinds": ["restart"], "namespaces": ["inference"]},
                {"groups": ["S0SRE"], "kinds": ["uncordon"]},
            ],
            "approvals": [{"kinds": ["restart"], "namespaces": ["inference"]}],
        },
    ).start()
    stack.switch("kv_cache_pressure", seed=5)
    time.sleep(3)
    yield World(slack, kube, stack, bot, db, alertmanager.url)
    bot.stop()
    alertmanager.stop()
    kube.stop()
    slack.stop()
    stack.prometheus.stop()
    stack.server.stop()


def test_click_shows_the_live_plan(world: World) -> None:
    request_id = world.offered_scale()
    deployment = world.kube.get("deployments", "inference", DEPLOYMENT)
    assert deployment is not None
    current = deployment["spec"]["replicas"]  # 8, unless another test scaled it already
    writes = world.scale_writes()
    world.click(request_id)

    def plan_shown() -> str:
        views = [v for v in world.slack.views if v.private_metadata == request_id]
        assert views
        text = json.dumps(views[-1].view)
        assert f"from {current} to 11 replicas" in text, text[:600]
        return text

    text = eventually(plan_shown, timeout_s=15)
    assert "replicas" in text.lower()
    assert world.scale_writes() == writes, "showing the plan changes nothing"


def test_twenty_confirmations_scale_exactly_once(world: World) -> None:
    request_id = world.offered_scale()
    writes = world.scale_writes()
    statuses: list[int] = []
    barrier = threading.Barrier(20)

    def confirm() -> None:
        barrier.wait()
        statuses.append(world.confirm(request_id, replicas="11"))

    threads = [threading.Thread(target=confirm) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 20
    world.bot.drain()
    assert world.scale_writes() == writes + 1
    scale = world.kube.get("deployments", "inference", DEPLOYMENT)
    assert scale is not None and scale["spec"]["replicas"] == 11
    log = AuditLog(world.db)
    mine = log.for_request(request_id)
    assert [e.event for e in mine][:3] == ["requested", "executing", "executed"]
    assert mine[0].actor_id == "U123" and mine[0].params["replicas"] == 11
    assert log.verify().ok

    def verified() -> None:
        texts = json.dumps([m.blocks for m in world.slack.messages(CHANNEL)])
        assert "recovered after scale" in texts or "still failing after scale" in texts

    eventually(verified, timeout_s=40)
    assert "verified" in [e.event for e in log.for_request(request_id)]


def test_a_user_without_a_grant_is_denied_and_audited(world: World) -> None:
    request_id = world.offered_scale()
    writes = world.scale_writes()
    assert world.confirm(request_id, user="U999") == 200
    world.bot.drain()
    assert world.scale_writes() == writes
    denials = [e for e in world.slack.ephemerals if e.user == "U999"]
    assert denials and "ask an admin" in json.dumps(denials[-1].blocks)
    events = AuditLog(world.db).for_request(request_id)
    assert [e.event for e in events] == ["denied"] and events[0].actor_id == "U999"


def test_two_person_rule(world: World) -> None:
    from bot.store import Store

    store = Store(world.db)
    from datetime import timedelta

    pod = world.stack.simulator.fleet.replicas[0].pod
    world.kube.add_pod("inference", pod, "gpu-node-001", {"app": DEPLOYMENT})
    request_id = store.create_action_request(
        kind="restart",
        target=f"deployment/inference/{DEPLOYMENT}",
        params={},
        reason="errors",
        runbook="high_error_rate",
        channel=CHANNEL,
        ttl=timedelta(minutes=5),
    )
    assert world.confirm(request_id, user="U123") == 200
    world.bot.drain()
    approval = eventually(lambda: _approval_for(world, request_id), timeout_s=10)
    assert "Approval needed" in json.dumps(approval.blocks)
    # the requester cannot approve their own request
    own = block_action_body(ids.APPROVE_BUTTON, request_id, user_id="U123", channel_id=CHANNEL)
    assert send_signed(world.events(), own, SECRET).status == 200
    world.bot.drain()
    stored = store.action_request(request_id)
    assert stored is not None and stored.state == "awaiting_approval"
    other = block_action_body(ids.APPROVE_BUTTON, request_id, user_id="U456", channel_id=CHANNEL)
    assert send_signed(world.events(), other, SECRET).status == 200
    world.bot.drain()
    stored = store.action_request(request_id)
    assert stored is not None and stored.state == "done" and stored.approved_by == "U456"
    deployment = world.kube.get("deployments", "inference", DEPLOYMENT)
    assert deployment is not None
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    assert "kubectl.kubernetes.io/restartedAt" in annotations
    events = [e.event for e in AuditLog(world.db).for_request(request_id)]
    assert events[:2] == ["approval_requested", "denied"]
    assert "approved" in events and "executed" in events


def _slash(world: World, text: str, user: str = "U123") -> None:
    body = slash_command_body(
        text,
        user_id=user,
        channel_id=CHANNEL,
        response_url=world.slack.new_response_url(),
        trigger_id=world.slack.new_trigger_id(),
    )
    assert send_signed(world.events(), body, SECRET).status == 200


def _opened_request(world: World, needle: str) -> str:
    def found() -> str:
        for view in world.slack.views:
            if needle in json.dumps(view.view):
                return view.private_metadata
        raise AssertionError(f"no plan modal mentioning {needle} yet")

    return eventually(found, timeout_s=15)


def test_slash_drain_plans_then_cordons(world: World) -> None:
    _slash(world, "drain gpu-node-009")
    request_id = _opened_request(world, "gpu-node-009")
    node = world.kube.get("nodes", None, "gpu-node-009")
    assert node is not None and not node["spec"].get("unschedulable")
    assert world.confirm(request_id) == 200
    world.bot.drain()
    node = world.kube.get("nodes", None, "gpu-node-009")
    assert node is not None and node["spec"].get("unschedulable") is True


def test_grants_by_slack_user_group(world: World) -> None:
    world.slack.stub("usergroups.users.list", {"ok": True, "users": ["U777"]})
    world.kube.put_object(
        "nodes", {"metadata": {"name": "gpu-node-010"}, "spec": {"unschedulable": True}}
    )
    _slash(world, "uncordon gpu-node-010", user="U777")
    request_id = _opened_request(world, "gpu-node-010")
    assert world.confirm(request_id, user="U777") == 200
    world.bot.drain()
    node = world.kube.get("nodes", None, "gpu-node-010")
    assert node is not None and not node["spec"].get("unschedulable")
    calls = world.slack.calls_to("usergroups.users.list")
    assert calls and calls[-1].params.get("usergroup") == "S0SRE"


def test_slash_silence_creates_a_real_silence(world: World) -> None:
    _slash(world, "silence VLLMKVCachePressure{namespace=inference} 1h")
    request_id = _opened_request(world, "for 1h")
    assert world.confirm(request_id) == 200
    world.bot.drain()
    silences = httpx.get(f"{world.alertmanager_url}/api/v2/silences").json()
    active = [x for x in silences if x["status"]["state"] == "active"]
    mine = [
        x
        for x in active
        if any(
            m["name"] == "alertname" and m["value"] == "VLLMKVCachePressure" for m in x["matchers"]
        )
    ]
    assert len(mine) == 1
    origin = AuditLog(world.db).for_request(request_id)[-1].origin
    assert origin["channel"] == CHANNEL
    # and unsilence it
    _slash(world, f"unsilence {mine[0]['id']}")
    unsilence_id = _opened_request(world, f"expire Alertmanager silence {mine[0]['id']}")
    assert world.confirm(unsilence_id) == 200
    world.bot.drain()
    after = httpx.get(f"{world.alertmanager_url}/api/v2/silence/{mine[0]['id']}").json()
    assert after["status"]["state"] == "expired"


def test_slash_audit_lists_recent_records(world: World) -> None:
    # its own record, so the test reads nothing another test left behind
    target = f"node/audit-probe-{time.monotonic_ns()}"
    AuditLog(world.db).append("executed", kind="drain", target=target, actor_name="probe")
    before = len(world.slack.responses)
    _slash(world, f"audit {target}")
    replies = world.slack.wait_for(lambda: world.slack.responses[before:] or None, timeout=10)
    assert replies is not None
    text = json.dumps(replies[-1].body)
    assert "Audit log" in text and "executed" in text and target in text


def _approval_for(world: World, request_id: str) -> Message:
    for m in world.slack.messages(CHANNEL):
        if request_id in json.dumps(m.blocks) and ids.APPROVE_BUTTON in json.dumps(m.blocks):
            return m
    raise AssertionError("no approval request yet")


def test_fixture_files_exist() -> None:
    assert Path(__file__).with_name("bot_runner.py").is_file()

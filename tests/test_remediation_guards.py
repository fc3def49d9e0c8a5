"""Remediation guards through the real HTTP surface: signed slash commands and submissions
to the bot, two Kubernetes API stand-ins recording every request, two configured clusters.

The cluster an action runs on is resolved once and used for policy, approval and audit;
a plan that failed is never confirmed nor executed; a submission carries only the
parameters the plan declared, validated in the modal; a denial is shown without Confirm
and audited when shown; refusals say what is wrong without the usage text."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from bot_runner import BotRunner
from fakes.slack import FakeSlack, Message, block_action_body, send_signed, slash_command_body
from fakes.slack import view_submission_body as submission
from fleet_stack import eventually

from bot.remediation.audit import AuditLog
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn
from bot.slack import ids
from bot.store import Store

SECRET = "guards-secret"
CHANNEL = "C0GUARDS1"


@dataclass
class World:
    slack: FakeSlack
    x: KubernetesStandIn  # cluster prod-x
    y: KubernetesStandIn  # cluster prod-y
    bot: BotRunner
    db: str

    def events(self) -> str:
        return f"{self.bot.url}/slack/events"

    def slash(self, text: str, user: str = "U1") -> str:
        """Send `/vllm TEXT`; the response_url its replies go to."""
        response_url = self.slack.new_response_url()
        body = slash_command_body(
            text,
            user_id=user,
            channel_id=CHANNEL,
            response_url=response_url,
            trigger_id=self.slack.new_trigger_id(),
        )
        assert send_signed(self.events(), body, SECRET).status == 200
        return response_url

    def reply_to(self, response_url: str) -> str:
        def found() -> str:
            rid = response_url.rsplit("/", 1)[-1]
            replies = [r for r in self.slack.responses if r.response_id == rid]
            assert replies, "no reply yet"
            return json.dumps(replies[-1].body)

        return eventually(found, timeout_s=10)

    def plan_view(self, needle: str) -> dict[str, object]:
        """The last version of the plan modal mentioning ``needle``, once filled in."""

        def found() -> dict[str, object]:
            for view in reversed(self.slack.views):
                text = json.dumps(view.view)
                if needle in text and "Computing the plan" not in text:
                    return view.view
            raise AssertionError(f"no plan modal mentioning {needle} yet")

        return eventually(found, timeout_s=10)

    def submit(
        self, request_id: str, values: dict[str, dict[str, str]] | None = None, user: str = "U1"
    ) -> dict[str, object]:
        body = submission(ids.ACTION_PLAN_VIEW, request_id, values or {}, user_id=user)
        response = send_signed(self.events(), body, SECRET)
        assert response.status == 200
        self.bot.drain()
        return json.loads(response.body) if response.body.strip() else {}

    def writes(self, kube: KubernetesStandIn) -> list[str]:
        return [
            f"{r.method} {r.path}"
            for r in kube.requests
            if r.method in ("PATCH", "PUT", "POST", "DELETE") and "dryRun" not in r.query
        ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    slack = FakeSlack().start()
    x, y = KubernetesStandIn().start(), KubernetesStandIn().start()
    x.add_node("gpu-node-a")
    for kube in (x, y):
        kube.add_node("gpu-node-b")  # in both clusters
    db = f"sqlite:///{tmp_path_factory.mktemp('guards') / 'bot.db'}"
    bot = BotRunner(
        slack_bot_token=slack.token,
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        prometheus_url="http://127.0.0.1:9/unused",
        alerts_token="t",
        default_channel=CHANNEL,
        database_url=db,
        clusters=[
            {"name": "prod-x", "kube_api_url": x.url, "kube_token": ADMIN_TOKEN},
            {"name": "prod-y", "kube_api_url": y.url, "kube_token": ADMIN_TOKEN},
        ],
        policy={
            "grants": [
                {"users": ["U1", "U2"], "kinds": ["drain", "scale"], "clusters": ["prod-*"]}
            ],
            "approvals": [{"kinds": ["drain"], "clusters": ["prod-x"]}],
        },
    ).start()
    yield World(slack, x, y, bot, db)
    bot.stop()
    x.stop()
    y.stop()
    slack.stop()


def fresh_deployment(kube: KubernetesStandIn) -> str:
    """A Deployment of this test's own (2 replicas), so tests run in any order."""
    name = f"llama-{time.monotonic_ns() % 10**9}"
    kube.add_deployment("serving", name, "vllm:0.11.0", replicas=2)
    return name


def _request_id(view: dict[str, object]) -> str:
    return str(view["private_metadata"])


def test_the_cluster_is_resolved_once_and_drives_policy_and_approval(world: World) -> None:
    world.slash("drain gpu-node-a")  # no cluster=: gpu-node-a exists in prod-x only
    view = world.plan_view("gpu-node-a")
    text = json.dumps(view)
    assert "may not" not in text, text[:500]  # the prod-* grant covers it
    assert "Request approval" in text  # the prod-x approval rule applies
    request_id = _request_id(view)
    stored = Store(world.db).action_request(request_id)
    assert stored is not None and stored.cluster == "prod-x"
    world.submit(request_id)
    assert not [w for w in world.writes(world.x) if "gpu-node-a" in w]  # awaits a second person
    records = AuditLog(world.db).for_request(request_id)
    assert [(r.event, r.cluster) for r in records] == [("approval_requested", "prod-x")]


def test_a_target_in_several_clusters_is_asked_about(world: World) -> None:
    opened = len(world.slack.views)
    reply = world.reply_to(world.slash("drain gpu-node-b"))
    assert "prod-x, prod-y" in reply and "cluster=NAME" in reply
    time.sleep(0.5)
    assert len(world.slack.views) == opened  # no plan, nothing to confirm


def test_an_invalid_name_is_refused_before_any_request(world: World) -> None:
    before = len(world.x.requests) + len(world.y.requests)
    reply = world.reply_to(world.slash('drain "node;rm -rf"'))
    assert "not a valid node name" in reply and "DNS subdomain" in reply
    assert len(world.x.requests) + len(world.y.requests) == before


def test_a_failed_plan_offers_no_confirm_and_never_runs(world: World) -> None:
    world.slash("drain gpu-node-gone")
    view = world.plan_view("gpu-node-gone")
    assert view.get("submit") is None, view.get("submit")
    assert "not found" in json.dumps(view).lower()
    world.submit(_request_id(view))  # a forged Confirm
    assert not [w for w in world.writes(world.x) + world.writes(world.y) if "gpu-node-gone" in w]
    refusal = eventually(
        lambda: [e for e in world.slack.ephemerals if "plan failed" in json.dumps(e.blocks)],
        timeout_s=10,
    )
    assert refusal


def test_a_submission_carries_only_the_declared_parameters(world: World) -> None:
    name = fresh_deployment(world.y)
    world.slash(f"scale serving/{name} 3 cluster=prod-y")
    view = world.plan_view(f"{name} from 2 to 3 replicas")
    request_id = _request_id(view)
    posts = len(world.slack.messages(CHANNEL))
    forged = world.submit(
        request_id, {"param_replicas": {"replicas": "3"}, "param_to_revision": {"to_revision": "1"}}
    )
    assert forged.get("response_action") == "errors"
    assert "param_to_revision" in json.dumps(forged.get("errors"))
    negative = world.submit(request_id, {"param_replicas": {"replicas": "-3"}})
    assert negative.get("response_action") == "errors"
    assert "whole number" in json.dumps(negative.get("errors"))
    assert not [w for w in world.writes(world.y) if name in w]
    assert len(world.slack.messages(CHANNEL)) == posts  # no public "running" message
    stored = Store(world.db).action_request(request_id)
    assert stored is not None and stored.state == "offered"


def test_a_slash_action_promises_no_verification_it_cannot_run(world: World) -> None:
    name = fresh_deployment(world.y)
    world.slash(f"scale serving/{name} 4 cluster=prod-y")
    view = world.plan_view(f"{name} from 2 to 4 replicas")
    world.submit(_request_id(view), {"param_replicas": {"replicas": "4"}})

    def result() -> str:
        texts = [json.dumps(m.blocks) for m in world.slack.messages(CHANNEL)]
        done = [t for t in texts if name in t and "white_check_mark" in t]
        assert done, texts[-3:]
        return done[-1]

    assert "verification in" not in eventually(result, timeout_s=10)
    deployment = world.y.get("deployments", "serving", name)
    assert deployment is not None and deployment["spec"]["replicas"] == 4


def test_a_denial_is_shown_without_confirm_audited_and_refused_plainly(world: World) -> None:
    name = fresh_deployment(world.x)
    world.slash(f"scale serving/{name} 7 cluster=prod-x", user="U9")
    view = world.plan_view(f"{name} from 2 to 7 replicas")
    assert view.get("submit") is None
    assert "may not scale" in json.dumps(view)
    request_id = _request_id(view)
    assert [r.event for r in AuditLog(world.db).for_request(request_id)] == ["denied"]
    world.submit(request_id, user="U9")  # forged Confirm

    def refused() -> str:
        mine = [e for e in world.slack.ephemerals if e.user == "U9"]
        assert mine
        return json.dumps(mine[-1].blocks)

    text = eventually(refused, timeout_s=10)
    assert "may not scale" in text and "Usage" not in text
    assert not [w for w in world.writes(world.x) if name in w]


def fresh_node(kube: KubernetesStandIn, pods: int = 0) -> str:
    name = f"gpu-node-{time.monotonic_ns() % 10**9}"
    kube.add_node(name)
    for i in range(pods):
        kube.add_pod("serving", f"{name}-pod-{i}", name, {"app": "llama"})
    return name


def _approval_message(world: World, request_id: str) -> Message:
    for m in world.slack.messages(CHANNEL):
        if request_id in json.dumps(m.blocks) and ids.APPROVE_BUTTON in json.dumps(m.blocks):
            return m
    raise AssertionError("no approval request yet")


def click(world: World, action_id: str, value: str, user: str) -> None:
    body = block_action_body(action_id, value, user_id=user, channel_id=CHANNEL, user_name=user)
    assert send_signed(world.events(), body, SECRET).status == 200
    world.bot.drain()


def test_the_approval_message_says_who_decided_and_loses_its_buttons(world: World) -> None:
    node = fresh_node(world.x)
    world.slash(f"drain {node} cluster=prod-x")
    request_id = _request_id(world.plan_view(node))
    world.submit(request_id)
    asked = eventually(lambda: _approval_message(world, request_id), timeout_s=10)
    click(world, ids.APPROVE_BUTTON, request_id, user="U2")
    updated = next(m for m in world.slack.messages(CHANNEL) if m.ts == asked.ts)
    text = json.dumps(updated.blocks)
    assert "U2 approved drain" in text and ids.APPROVE_BUTTON not in text
    cordoned = world.x.get("nodes", None, node)
    assert cordoned is not None and cordoned["spec"].get("unschedulable") is True
    # a late click on the old message is told what happened, nothing runs twice
    click(world, ids.REJECT_BUTTON, request_id, user="U1")
    late = [e for e in world.slack.ephemerals if e.user == "U1"]
    assert late and "already done" in json.dumps(late[-1].blocks)


def test_a_second_confirmation_is_told_what_won(world: World) -> None:
    name = fresh_deployment(world.y)
    world.slash(f"scale serving/{name} 3 cluster=prod-y")
    request_id = _request_id(world.plan_view(f"{name} from 2 to 3"))
    world.submit(request_id, {"param_replicas": {"replicas": "3"}})
    world.submit(request_id, {"param_replicas": {"replicas": "3"}}, user="U2")
    told = [json.dumps(e.blocks) for e in world.slack.ephemerals if e.user == "U2"]
    assert told and "already done" in told[-1] and "confirmed by U1" in told[-1]
    assert len([w for w in world.writes(world.y) if name in w]) == 1


def test_unknown_request_ids_get_a_plain_answer(world: World) -> None:
    answer = world.submit("no-such-request")
    assert answer.get("response_action") == "update"
    assert "there is no action request" in json.dumps(answer.get("view"))
    click(world, ids.APPROVE_BUTTON, "no-such-request", user="U2")
    told = [json.dumps(e.blocks) for e in world.slack.ephemerals if e.user == "U2"]
    assert told and "there is no action request" in told[-1]


def test_a_busy_target_names_what_holds_it(world: World) -> None:
    name = fresh_deployment(world.y)
    target = f"deployment/serving/{name}"
    store = Store(world.db)
    holder = store.create_action_request(
        kind="restart",
        target=target,
        params={},
        reason="holder",
        runbook="",
        channel=CHANNEL,
        ttl=timedelta(minutes=5),
    )
    store.transition(holder, ("offered",), "executing", requested_by="U2")
    assert store.lock_target(target, holder)
    world.slash(f"scale serving/{name} 5 cluster=prod-y")
    world.submit(_request_id(world.plan_view(f"{name} from 2 to 5")))
    texts = [json.dumps(m.blocks) for m in world.slack.messages(CHANNEL)]
    busy = [t for t in texts if ":lock:" in t and name in t]
    assert busy and "restart started by U2" in busy[-1]
    store.unlock_target(target, holder)


def test_results_read_as_sentences_in_the_thread_they_came_from(world: World) -> None:
    node = fresh_node(world.y, pods=2)
    parent = "1700000000.000100"  # the diagnosis message that offered the drain
    request_id = Store(world.db).create_action_request(
        kind="drain",
        target=f"node/{node}",
        params={"timeout_s": 30},
        reason="Xid 79",
        runbook="gpu_hardware_failure",
        channel=CHANNEL,
        ttl=timedelta(minutes=5),
        cluster="prod-y",
        origin={"channel": CHANNEL, "message_ts": parent},
    )
    world.submit(request_id)

    def result() -> Message:
        done = [
            m
            for m in world.slack.messages(CHANNEL, thread_ts=parent)
            if m.ts != parent and "drained node" in json.dumps(m.blocks)
        ]
        assert done
        return done[-1]

    message = eventually(result, timeout_s=15)
    assert message.thread_ts == parent
    text = json.dumps(message.blocks)
    assert f"evicted: serving/{node}-pod-0, serving/{node}-pod-1" in text
    assert "['" not in text and "{}" not in text and "not_evicted" not in text


def test_a_replayed_request_is_refused(world: World) -> None:
    """Same body, same signature, same timestamp: served once, refused after (HTTP mode)."""
    body = slash_command_body(
        "help", user_id="U1", channel_id=CHANNEL, response_url=world.slack.new_response_url()
    )
    stamp = int(time.time())
    first = send_signed(world.events(), body, SECRET, timestamp=stamp)
    again = send_signed(world.events(), body, SECRET, timestamp=stamp)
    assert first.status == 200
    assert again.status == 401 and b"replayed" in again.body
    # the same command sent anew (a new timestamp, so a new signature) is served
    assert send_signed(world.events(), body, SECRET, timestamp=stamp + 1).status == 200

"""The console's server, without a browser: what a person does reaches the app exactly as
Slack sends it (signed), and what the app does shows in the state the page follows."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiohttp import web
from bot_runner import BotRunner
from console_bot import INVALID_BLOCKS, ScriptedBot
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.console.app import Console
from bot.console.personas import APPROVER, INCIDENTS, ONCALL, SRE_GROUP, VIEWER
from bot.simulator.prometheus_runner import free_port
from bot.simulator.serving import BackgroundServer

SECRET = "console-test-signing-secret"
T = TypeVar("T")


@dataclass
class World:
    console: Console
    bot: ScriptedBot
    http: httpx.Client
    slack: WebClient  # the bot's own Web API client

    def send(self, text: str, user: str = ONCALL.id, **extra: Any) -> dict[str, Any]:
        body = {"user": user, "channel": INCIDENTS.id, "text": text, **extra}
        return dict(self.http.post("/console/send", json=body).json())

    def state(self, user: str = ONCALL.id, after: int = -1) -> dict[str, Any]:
        response = self.http.get("/console/state", params={"user": user, "after": after})
        assert response.status_code == 200
        return dict(response.json())

    def items(self, kind: str, user: str = ONCALL.id) -> list[dict[str, Any]]:
        return [i for i in self.state(user)["items"] if i["kind"] == kind]


def wait_for(check: Callable[[], T], timeout: float = 5.0) -> T:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
    return result


@pytest.fixture
def world() -> Iterator[World]:
    with ScriptedBot(SECRET) as bot, Console(bot.events_url, SECRET) as console:
        bot.connect(console.api_url, console.bot_token)
        with httpx.Client(base_url=console.url, timeout=30) as http:
            yield World(console, bot, http, WebClient(console.bot_token, base_url=console.api_url))


def test_a_typed_slash_command_reaches_the_app_signed_with_slacks_fields(world: World) -> None:
    assert world.send("/vllm diagnose high_latency") == {"ok": True}
    (command,) = world.bot.of_kind("command")
    assert command.signed
    assert re.fullmatch(r"v0=[0-9a-f]{64}", command.headers["X-Slack-Signature"])
    assert command.headers["Content-Type"] == "application/x-www-form-urlencoded"
    fields = command.fields
    assert fields["command"] == "/vllm"
    assert fields["text"] == "diagnose high_latency"
    assert (fields["user_id"], fields["user_name"]) == (ONCALL.id, ONCALL.handle)
    assert (fields["channel_id"], fields["channel_name"]) == (INCIDENTS.id, INCIDENTS.name)
    assert fields["response_url"].startswith(world.console.url + "/response/")
    assert re.fullmatch(r"\d{13}\.\d+\.[0-9a-f]{32}", fields["trigger_id"])
    assert fields["team_id"] == world.console.workspace.team_id
    echo = world.items("notice")
    assert [e["text"] for e in echo] == ["/vllm diagnose high_latency"]
    assert world.items("notice", user=APPROVER.id) == []  # a command is not posted


def test_a_response_url_answer_is_an_ephemeral_for_the_person_who_asked(world: World) -> None:
    world.send("/vllm reply")
    (reply,) = wait_for(lambda: world.items("ephemeral"))
    assert reply["text"] == "a private answer"
    assert reply["channel"] == INCIDENTS.id
    assert world.items("ephemeral", user=APPROVER.id) == []


def test_an_ephemeral_is_shown_only_to_its_user(world: World) -> None:
    world.slack.chat_postEphemeral(channel=INCIDENTS.id, user=APPROVER.id, text="psst")
    assert [e["text"] for e in world.items("ephemeral", user=APPROVER.id)] == ["psst"]
    assert world.items("ephemeral", user=ONCALL.id) == []
    assert world.items("ephemeral", user=VIEWER.id) == []


def test_a_button_click_sends_signed_block_actions_with_the_message(world: World) -> None:
    world.send("/vllm blocks")
    (message,) = wait_for(lambda: world.items("message"))
    actions_block = next(i for i, b in enumerate(message["blocks"]) if b["type"] == "actions")
    click = {
        "user": APPROVER.id,
        "channel": INCIDENTS.id,
        "ts": message["ts"],
        "block": actions_block,
        "element": 1,
    }
    assert world.http.post("/console/action", json=click).json() == {"ok": True}
    (received,) = wait_for(lambda: world.bot.of_kind("block_actions"))
    assert received.signed
    payload = received.fields
    (action,) = payload["actions"]
    assert (action["action_id"], action["value"], action["style"]) == (
        "rollback",
        "req-2",
        "danger",
    )
    assert payload["user"]["id"] == APPROVER.id
    assert payload["container"] == {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": INCIDENTS.id,
        "is_ephemeral": False,
    }
    assert payload["message"]["ts"] == message["ts"]
    assert payload["message"]["blocks"] == message["blocks"]
    assert payload["channel"]["id"] == INCIDENTS.id
    assert payload["response_url"].startswith(world.console.url + "/response/")
    assert re.fullmatch(r"\d{13}\.\d+\.[0-9a-f]{32}", payload["trigger_id"])


def test_a_click_on_an_element_the_app_never_posted_is_refused(world: World) -> None:
    posted = world.slack.chat_postMessage(channel=INCIDENTS.id, text="plain")
    click = {"user": ONCALL.id, "channel": INCIDENTS.id, "ts": posted["ts"], "block": 0}
    answer = world.http.post("/console/action", json={**click, "element": 0})
    assert answer.status_code == 400
    assert world.bot.of_kind("block_actions") == []


def test_a_modal_opens_for_its_user_and_its_submission_arrives(world: World) -> None:
    world.send("/vllm modal")
    (view,) = wait_for(lambda: world.state()["views"])
    assert world.state(APPROVER.id)["views"] == []
    submit = {"user": ONCALL.id, "view_id": view["id"]}
    bad = {"param_replicas": {"replicas": "lots"}, "param_reason": {"reason": "drill"}}
    answer = world.http.post("/console/submit", json={**submit, "state": bad}).json()
    assert answer["ok"]
    (shown,) = world.state()["views"]
    assert shown["errors"] == {"param_replicas": "replicas must be a whole number"}
    world.http.post("/console/submit", json={**submit, "state": {}})
    assert world.state()["views"] == []
    first, second = world.bot.of_kind("view_submission")
    assert first.signed and second.signed
    values = first.fields["view"]["state"]["values"]
    assert values["param_replicas"]["replicas"] == {"type": "plain_text_input", "value": "lots"}
    assert values["param_reason"]["reason"]["selected_option"]["value"] == "drill"
    assert first.fields["view"]["private_metadata"] == "req-9"
    assert first.fields["view"]["callback_id"] == "plan"
    assert first.fields["user"]["id"] == ONCALL.id
    # untouched inputs are sent with their initial values, as Slack does
    assert second.fields["view"]["state"]["values"]["param_replicas"]["replicas"]["value"] == "8"


def test_a_posted_message_is_in_the_state_and_an_update_replaces_it(world: World) -> None:
    posted = world.slack.chat_postMessage(channel=INCIDENTS.id, text="checking…")
    before = world.state()
    (message,) = [i for i in before["items"] if i["kind"] == "message"]
    assert (message["text"], message["edited"], message["is_bot"]) == ("checking…", False, True)

    answered: list[dict[str, Any]] = []
    poll = threading.Thread(target=lambda: answered.append(world.state(after=before["revision"])))
    poll.start()
    world.slack.chat_update(channel=INCIDENTS.id, ts=posted["ts"], text="done: 2 findings")
    poll.join(timeout=10)
    (updated,) = [i for i in answered[0]["items"] if i["kind"] == "message"]
    assert (updated["ts"], updated["text"], updated["edited"]) == (
        posted["ts"],
        "done: 2 findings",
        True,
    )


def test_blocks_slack_refuses_show_as_an_error_item(world: World) -> None:
    with pytest.raises(SlackApiError) as refused:
        world.slack.chat_postMessage(channel=INCIDENTS.id, text="x", blocks=INVALID_BLOCKS)
    assert refused.value.response["error"] == "invalid_blocks"
    (error,) = world.items("error", user=VIEWER.id)
    assert (error["method"], error["error"], error["channel"]) == (
        "chat.postMessage",
        "invalid_blocks",
        INCIDENTS.id,
    )
    assert any("json-pointer:/blocks/0/text" in m for m in error["messages"])
    assert world.items("message") == []


def test_a_bot_that_does_not_answer_is_a_clear_error() -> None:
    dead = f"http://127.0.0.1:{free_port()}/slack/events"
    with Console(dead, SECRET) as console, httpx.Client(base_url=console.url) as http:
        body = {"user": ONCALL.id, "channel": INCIDENTS.id, "text": "/vllm help"}
        answer = http.post("/console/send", json=body).json()
        assert answer["ok"] is False
        state = http.get("/console/state", params={"user": ONCALL.id}).json()
    (error,) = [i for i in state["items"] if i["kind"] == "error"]
    assert error["text"].startswith("/vllm: the bot did not answer:")
    assert "127.0.0.1" in error["text"]


def test_a_bot_refusing_the_signature_is_shown_with_its_answer(world: World) -> None:
    with (
        Console(world.bot.events_url, "not-the-secret") as console,
        httpx.Client(base_url=console.url) as http,
    ):
        body = {"user": ONCALL.id, "channel": INCIDENTS.id, "text": "/vllm help"}
        assert http.post("/console/send", json=body).json()["ok"] is False
        state = http.get("/console/state", params={"user": ONCALL.id}).json()
    (error,) = [i for i in state["items"] if i["kind"] == "error"]
    assert error["text"] == "/vllm: the bot answered HTTP 401"
    assert "invalid request" in error["messages"][0]


def test_the_sre_group_holds_the_oncall_and_the_approver(world: World) -> None:
    members = world.slack.usergroups_users_list(usergroup=SRE_GROUP)["users"]
    assert members == [ONCALL.id, APPROVER.id]
    with pytest.raises(SlackApiError) as unknown:
        world.slack.usergroups_users_list(usergroup="S0NOPE")
    assert unknown.value.response["error"] == "no_such_subteam"


def test_a_plain_message_is_posted_as_the_person(world: World) -> None:
    assert world.send("anyone looking at latency?", user=VIEWER.id)["ok"]
    (message,) = world.items("message", user=APPROVER.id)
    assert (message["user"], message["author"], message["is_bot"]) == (
        VIEWER.id,
        VIEWER.real_name,
        False,
    )
    assert world.bot.received == []


def test_an_uploaded_chart_is_served_as_an_image_in_its_channel(world: World) -> None:
    world.send("/vllm chart")
    (item,) = wait_for(lambda: world.items("file"))
    assert (item["channel"], item["title"], item["is_image"]) == (INCIDENTS.id, "p99 latency", True)
    image = world.http.get(item["url"])
    assert image.headers["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


def test_the_page_and_its_scripts_are_served_from_the_console(world: World) -> None:
    page = world.http.get("/")
    assert page.status_code == 200
    assert '<script src="/static/console.js"' in page.text
    assert "http" not in re.sub(r"<!--.*?-->", "", page.text).replace("http-equiv", "")
    for name in ("console.js", "console.css"):
        assert world.http.get(f"/static/{name}").status_code == 200
    config = world.http.get("/console/config").json()
    assert [p["id"] for p in config["personas"]] == [ONCALL.id, APPROVER.id, VIEWER.id]
    assert config["default_channel"] == INCIDENTS.id


def test_the_simulator_panel_is_proxied_and_a_missing_fleet_is_a_404() -> None:
    routes = web.RouteTableDef()

    @routes.get("/")
    async def index(request: web.Request) -> web.Response:
        return web.json_response({"scenarios": ["healthy", "xid_48"], "scenario": "healthy"})

    @routes.post("/scenario")
    async def switch(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"scenario": body["scenario"]})

    app = web.Application()
    app.add_routes(routes)
    with (
        BackgroundServer(app, name="sim") as sim,
        Console("http://127.0.0.1:9/", SECRET, simulator_url=sim.url) as console,
        httpx.Client(base_url=console.url) as http,
    ):
        assert http.get("/console/simulator/index").json()["scenarios"] == ["healthy", "xid_48"]
        switched = http.post("/console/simulator/scenario", json={"scenario": "xid_48"})
        assert switched.json() == {"scenario": "xid_48"}
        fleet = http.get("/console/simulator/fleet")
        assert fleet.status_code == 404
        assert "error" in fleet.json()
    with Console(
        "http://127.0.0.1:9/", SECRET, simulator_url=f"http://127.0.0.1:{free_port()}"
    ) as console:
        answer = httpx.get(console.url + "/console/simulator/scenario")
    assert answer.status_code == 502
    assert answer.json()["error"].startswith("the simulator at http://127.0.0.1:")


def test_the_real_bot_answers_a_command_typed_in_the_console(tmp_path: Path) -> None:
    with Console("http://127.0.0.1:9/", SECRET) as console:
        bot = BotRunner(
            slack_bot_token=console.bot_token,
            slack_signing_secret=SECRET,
            slack_api_url=console.api_url,
            alerts_token="console-test-alerts",
            default_channel=INCIDENTS.id,
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        )
        console.events_url = f"{bot.url}/slack/events"
        bot.start()
        try:
            with httpx.Client(base_url=console.url) as http:
                body = {"user": ONCALL.id, "channel": INCIDENTS.id, "text": "/vllm help"}
                assert http.post("/console/send", json=body).json() == {"ok": True}

                def answer() -> list[dict[str, Any]]:
                    state = http.get("/console/state", params={"user": ONCALL.id}).json()
                    return [i for i in state["items"] if i["kind"] == "ephemeral"]

                (reply,) = wait_for(answer, timeout=15)
        finally:
            bot.stop()
    assert "diagnose" in json.dumps(reply["blocks"])
    assert reply["channel"] == INCIDENTS.id

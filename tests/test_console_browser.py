"""The console in a real browser: Block Kit drawn as Slack draws it, live updates, confirm
dialogs, modals, ephemerals and the user switcher, against a scripted stand-in bot."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from console_bot import Received, ScriptedBot
from playwright.sync_api import Page, expect
from slack_sdk import WebClient

from bot.console.app import Console
from bot.console.personas import APPROVER, INCIDENTS, ONCALL
from bot.simulator.serving import BackgroundServer

pytest_plugins = ["browser"]  # the ``browser`` and ``page`` fixtures
SECRET = "browser-test-signing-secret"


@dataclass
class Stage:
    console: Console
    bot: ScriptedBot
    slack: WebClient  # the bot's own Web API client


@pytest.fixture(scope="module")
def started() -> Iterator[Stage]:
    with ScriptedBot(SECRET) as bot, Console(bot.events_url, SECRET) as console:
        bot.connect(console.api_url, console.bot_token)
        yield Stage(console, bot, WebClient(console.bot_token, base_url=console.api_url))


@pytest.fixture
def stage(started: Stage) -> Stage:
    started.console.reset()
    started.bot.forget()
    return started


def open_console(page: Page, stage: Stage) -> None:
    page.goto(stage.console.url)
    expect(page.get_by_test_id("live-status")).to_have_text("live")


def type_command(page: Page, text: str) -> None:
    page.get_by_test_id("composer-input").fill(text)
    page.get_by_test_id("composer-input").press("Enter")


def arrived(bot: ScriptedBot, kind: str, page: Page) -> list[Received]:
    for _ in range(100):
        found = bot.of_kind(kind)
        if found:
            return found
        page.wait_for_timeout(50)
    raise AssertionError(f"no {kind} reached the bot")


def test_block_kit_is_drawn_as_slack_draws_it(page: Page, stage: Stage) -> None:
    open_console(page, stage)
    type_command(page, "/vllm blocks")
    message = page.get_by_test_id("message")
    expect(message.get_by_test_id("block-header")).to_have_text("Diagnosis: high latency")
    section = message.get_by_test_id("block-section")
    expect(section.locator("b")).to_have_text(["p99", "Runbook", "Status"])
    expect(section.locator("i")).to_have_text("high")
    expect(section.locator("s")).to_have_text("two")
    expect(section.locator("code")).to_have_text("3")
    expect(section.get_by_test_id("section-field")).to_have_count(2)
    expect(section.get_by_test_id("section-field").nth(1)).to_contain_text("🔴 crit")
    expect(
        section.get_by_test_id("accessory").get_by_test_id("button-open_runbook")
    ).to_be_visible()
    expect(message.get_by_test_id("block-divider")).to_have_count(1)
    expect(message.get_by_test_id("block-context")).to_have_text(
        "checked by @Ada Oncall in #vllm-incidents"
    )
    chart = message.get_by_test_id("block-image").locator("img")
    expect(chart).to_have_attribute("src", stage.bot.chart_url)
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 40", arg=chart.element_handle()
    )
    expect(message.get_by_test_id("button-scale_out")).to_have_attribute("data-style", "primary")
    expect(message.get_by_test_id("button-rollback")).to_have_attribute("data-style", "danger")
    expect(message.get_by_test_id("button-rollback")).to_have_class("btn danger")


def test_mrkdwn_is_formatted_and_markup_in_text_stays_text(page: Page, stage: Stage) -> None:
    open_console(page, stage)
    type_command(page, "/vllm xss")
    message = page.get_by_test_id("message")
    expect(message).to_contain_text("<script>window.pwned = 1</script> <b>html</b> real bold")
    expect(message).to_contain_text("a <tag> &amp;")
    expect(message.locator("b")).to_have_text("real bold")
    link = message.locator("a")
    expect(link).to_have_text("a link")
    expect(link).to_have_attribute("href", "https://example.com/x?a=1&b=2")
    assert page.get_by_test_id("feed").locator("script").count() == 0
    assert page.evaluate("window.pwned") is None


def test_an_update_shows_without_a_reload(page: Page, stage: Stage) -> None:
    open_console(page, stage)
    page.evaluate("window.notReloaded = true")
    posted = stage.slack.chat_postMessage(channel=INCIDENTS.id, text="checking 4 things…")
    message = page.locator(f'[data-testid=message][data-ts="{posted["ts"]}"]')
    expect(message).to_contain_text("checking 4 things…")
    stage.slack.chat_update(channel=INCIDENTS.id, ts=posted["ts"], text="*done*: 2 findings")
    expect(message).to_contain_text("done: 2 findings")
    expect(message.get_by_test_id("edited")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True


def test_a_reply_shows_in_the_thread_pane(page: Page, stage: Stage) -> None:
    open_console(page, stage)
    parent = stage.slack.chat_postMessage(channel=INCIDENTS.id, text="alert: p99 high")
    stage.slack.chat_postMessage(channel=INCIDENTS.id, text="chart below", thread_ts=parent["ts"])
    expect(page.get_by_test_id("message")).to_have_count(1)  # the reply is in the thread
    page.get_by_test_id("thread-link").click()
    pane = page.get_by_test_id("thread-pane")
    expect(pane.get_by_test_id("message")).to_have_count(2)
    expect(pane).to_contain_text("chart below")


def test_an_uploaded_chart_shows_as_an_image(page: Page, stage: Stage) -> None:
    open_console(page, stage)
    type_command(page, "/vllm chart")
    chart = page.get_by_test_id("file").locator("img")
    expect(chart).to_have_attribute("alt", "p99 latency")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 40", arg=chart.element_handle()
    )


def test_a_confirm_dialog_comes_before_the_signed_click(page: Page, stage: Stage) -> None:
    open_console(page, stage)
    type_command(page, "/vllm confirm")
    page.get_by_test_id("button-drain").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text("Drain node-1?")
    expect(dialog.locator("b")).to_have_text("drains")
    dialog.get_by_test_id("confirm-no").click()
    expect(dialog).to_have_count(0)
    page.wait_for_timeout(200)
    assert stage.bot.of_kind("block_actions") == []
    page.get_by_test_id("button-drain").click()
    page.get_by_test_id("confirm-yes").click()
    (click,) = arrived(stage.bot, "block_actions", page)
    assert click.signed
    assert click.fields["actions"][0]["action_id"] == "drain"
    assert click.fields["actions"][0]["value"] == "req-drain"
    assert click.fields["user"]["id"] == ONCALL.id


def test_a_modal_opens_and_its_inputs_are_submitted(page: Page, stage: Stage) -> None:
    open_console(page, stage)
    type_command(page, "/vllm modal")
    modal = page.get_by_test_id("modal")
    expect(modal.get_by_test_id("modal-title")).to_have_text("Confirm scale")
    replicas = modal.get_by_test_id("input-param_replicas-replicas")
    expect(replicas).to_have_value("8")
    replicas.fill("lots")
    modal.get_by_test_id("modal-submit").click()
    expect(modal.get_by_test_id("modal-error-param_replicas")).to_have_text(
        "replicas must be a whole number"
    )
    expect(replicas).to_have_value("lots")
    replicas.fill("12")
    modal.get_by_test_id("input-param_reason-reason").select_option("load")
    modal.get_by_test_id("modal-submit").click()
    expect(modal).to_have_count(0)
    values = stage.bot.of_kind("view_submission")[-1].fields["view"]["state"]["values"]
    assert values["param_replicas"]["replicas"]["value"] == "12"
    assert values["param_reason"]["reason"]["selected_option"]["value"] == "load"


def test_an_ephemeral_is_seen_only_by_its_user(page: Page, stage: Stage) -> None:
    open_console(page, stage)
    type_command(page, "/vllm whisper")
    ephemeral = page.get_by_test_id("ephemeral")
    expect(ephemeral).to_contain_text("just for you")
    expect(ephemeral).to_contain_text("Only visible to you")
    page.get_by_test_id("user-switcher").select_option(APPROVER.id)
    expect(page.get_by_test_id("persona-role")).to_contain_text(APPROVER.id)
    expect(page.get_by_test_id("ephemeral")).to_have_count(0)
    expect(page.get_by_test_id("command-echo")).to_have_count(0)
    page.get_by_test_id("user-switcher").select_option(ONCALL.id)
    expect(page.get_by_test_id("ephemeral")).to_have_count(1)


def test_blocks_slack_refuses_are_a_visible_error(page: Page, stage: Stage) -> None:
    open_console(page, stage)
    type_command(page, "/vllm invalid")
    error = page.get_by_test_id("error-item")
    expect(error).to_have_attribute("data-method", "chat.postMessage")
    expect(error).to_contain_text("invalid_blocks")
    expect(error).to_contain_text("[json-pointer:/blocks/0/text/text]")
    expect(page.get_by_test_id("message")).to_have_count(0)


def test_the_user_switcher_changes_who_sends(page: Page, stage: Stage) -> None:
    open_console(page, stage)
    page.get_by_test_id("user-switcher").select_option(APPROVER.id)
    type_command(page, "/vllm whisper")
    (command,) = arrived(stage.bot, "command", page)
    assert (command.fields["user_id"], command.fields["user_name"]) == (
        APPROVER.id,
        APPROVER.handle,
    )
    expect(page.get_by_test_id("ephemeral")).to_contain_text("just for you")
    type_command(page, "looking at it")
    mine = page.locator(f'[data-testid=message][data-user="{APPROVER.id}"]')
    expect(mine).to_contain_text(APPROVER.real_name)


def test_a_bot_that_is_down_is_said_so(page: Page, stage: Stage) -> None:
    open_console(page, stage)
    stage.bot.status = 500
    try:
        type_command(page, "/vllm help")
        expect(page.get_by_test_id("error-item")).to_contain_text("the bot answered HTTP 500")
        expect(page.get_by_test_id("composer-error")).to_contain_text("did not take the command")
    finally:
        stage.bot.status = 200


def simulator_stand_in(with_fleet: bool) -> BackgroundServer:
    """The simulator's index, scenario and (optionally) fleet endpoints."""
    current = {"scenario": "healthy"}
    routes = web.RouteTableDef()

    @routes.get("/")
    async def index(request: web.Request) -> web.Response:
        return web.json_response({"scenarios": ["healthy", "xid_48"], **current})

    @routes.get("/scenario")
    async def truth(request: web.Request) -> web.Response:
        return web.json_response({**current, "faulty_node": "node-2"})

    @routes.post("/scenario")
    async def switch(request: web.Request) -> web.Response:
        current["scenario"] = (await request.json())["scenario"]
        return web.json_response(current)

    if with_fleet:

        @routes.get("/fleet")
        async def fleet(request: web.Request) -> web.Response:
            deployments = [
                {
                    "name": "llama",
                    "desired": 8,
                    "ready": 7,
                    "serving": 7,
                    "revision": "3",
                    "image": "vllm/vllm-openai:v0.11.0",
                }
            ]
            gpus = [
                {"gpu": 0, "pod": "llama-1", "starting": False, "faults": []},
                {"gpu": 1, "pod": None, "starting": False, "faults": ["xid 48"]},
            ]
            nodes = [
                {"name": "node-1", "schedulable": True, "gpus": gpus},
                {"name": "node-2", "schedulable": False, "gpus": []},
            ]
            return web.json_response({"deployments": deployments, "nodes": nodes})

    app = web.Application()
    app.add_routes(routes)
    return BackgroundServer(app, name="simulator")


def test_the_side_panel_switches_scenarios_and_shows_the_fleet(page: Page) -> None:
    with (
        simulator_stand_in(with_fleet=True) as sim,
        Console("http://127.0.0.1:9/", SECRET, simulator_url=sim.url, prometheus_url=sim.url) as c,
    ):
        page.goto(c.url)
        panel = page.get_by_test_id("side-panel")
        expect(panel.get_by_test_id("link-prometheus")).to_have_attribute("href", sim.url)
        expect(panel.get_by_test_id("scenario-healthy")).to_have_attribute("aria-pressed", "true")
        fleet = panel.get_by_test_id("fleet-panel")
        expect(fleet.get_by_test_id("fleet-deployment")).to_contain_text(
            "7/8 serving · 7 ready · revision 3 · v0.11.0"
        )
        expect(fleet.get_by_test_id("fleet-node")).to_have_count(2)
        expect(fleet.locator('[data-name="node-2"]')).to_contain_text("(cordoned)")
        faulty = fleet.locator('[data-name="node-1"] .gpu-fault')
        expect(faulty).to_have_attribute("title", "GPU 1: free — xid 48")
        panel.get_by_test_id("scenario-xid_48").click()
        expect(panel.get_by_test_id("scenario-xid_48")).to_have_attribute("aria-pressed", "true")
        expect(panel.get_by_test_id("scenario-truth")).to_contain_text("xid_48")
        expect(panel.get_by_test_id("scenario-truth")).to_contain_text("node-2")
    with (
        simulator_stand_in(with_fleet=False) as sim,
        Console("http://127.0.0.1:9/", SECRET, simulator_url=sim.url) as c,
    ):
        page.goto(c.url)
        expect(page.get_by_test_id("fleet-panel")).to_have_text(
            "No fleet view: this simulator has no /fleet."
        )
        sim.stop()
        page.get_by_test_id("fleet-refresh").click()
        expect(page.get_by_test_id("simulator-error")).to_contain_text("did not answer")

"""The demo played in a real browser: the whole stack (fleet twin, Prometheus,
Alertmanager, the bot as its own process, the console) driven only through the page.

One stack serves the module; its namespace is ``prod`` so rollbacks fall under the
two-person rule. Each test leaves the fleet healthy for the next, in any order.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from bot.demo.stack import DemoOptions, DemoStack

pytest_plugins = ["browser"]

T = TypeVar("T")
NAMESPACE = "prod"
VERIFY_AFTER_S = 90
SLOW_MS = 240_000  # an alert takes Prometheus' `for` plus Alertmanager's grouping


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    options = DemoOptions(
        state_dir=tmp_path_factory.mktemp("demo"),
        namespace=NAMESPACE,
        scrape_interval_s=1.0,
        startup_delay_s=3.0,
        verify_after_s=VERIFY_AFTER_S,
    )
    stack = DemoStack(options)
    try:
        stack.start()
        stack.wait_for_scrapes()
        yield stack
    finally:
        stack.stop()


def until(check: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1.0)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


def open_console(page: Page, demo: DemoStack, user: str = "U0ONCALL") -> None:
    assert demo.console is not None
    page.goto(demo.console.url)
    page.get_by_test_id("user-switcher").select_option(user)
    expect(page.get_by_test_id("live-status")).to_have_text(re.compile("live"))


def send(page: Page, text: str) -> None:
    page.get_by_test_id("composer-input").fill(text)
    page.get_by_test_id("composer-input").press("Enter")


def fleet(demo: DemoStack) -> dict[str, Any]:
    assert demo.console is not None
    data: dict[str, Any] = httpx.get(
        f"{demo.console.url}/console/simulator/fleet", timeout=10
    ).json()
    return data


def deployment(demo: DemoStack, index: int = 0) -> dict[str, Any]:
    found: dict[str, Any] = sorted(fleet(demo)["deployments"], key=lambda d: d["name"])[index]
    return found


def thread_with(demo: DemoStack, needle: str) -> str | None:
    """The thread root of the first bot message whose blocks contain ``needle``."""
    assert demo.console is not None
    for message in demo.console.workspace.messages():
        if needle in json.dumps(message.blocks):
            return message.thread_ts or message.ts
    return None


def switch_scenario(page: Page, name: str) -> None:
    page.get_by_test_id(f"scenario-{name}").click()
    expect(page.get_by_test_id("scenario-truth")).to_contain_text(name)


def submit_plan(page: Page) -> None:
    """The plan opens as a modal; confirm it."""
    modal = page.get_by_test_id("modal")
    expect(modal).to_be_visible(timeout=30_000)
    modal.get_by_test_id("modal-submit").click()
    expect(modal).to_be_hidden(timeout=30_000)


def test_a_typed_diagnosis_shows_progress_then_the_report(page: Page, demo: DemoStack) -> None:
    open_console(page, demo)
    send(page, "/vllm diagnose high_latency")
    report = page.get_by_test_id("message").filter(
        has=page.get_by_test_id("block-header").filter(has_text="High latency")
    )
    expect(report).to_have_count(1, timeout=30_000)
    expect(report.get_by_test_id("block-header")).to_have_text(
        re.compile(r"High latency: (ok|healthy|warning|critical|unknown)", re.I), timeout=60_000
    )
    # the report is the progress message, updated in place as checks finished
    expect(report.get_by_test_id("edited")).to_be_visible()
    expect(report).to_contain_text("Checks")


def test_an_alert_is_fixed_with_one_click_and_verified(page: Page, demo: DemoStack) -> None:
    open_console(page, demo)
    before = deployment(demo)
    try:
        switch_scenario(page, "underprovisioned")
        root = until(
            lambda: thread_with(demo, "recommended_action") and thread_with(demo, "Scale"),
            SLOW_MS / 1000,
            "an alert post whose diagnosis recommends a scale",
        )
        page.locator(f'[data-testid="message"][data-ts="{root}"]').get_by_test_id(
            "thread-link"
        ).click()
        pane = page.get_by_test_id("thread-pane")
        pane.get_by_test_id("button-recommended_action").filter(has_text="Scale").first.click()
        submit_plan(page)
        grown = until(
            lambda: (d := deployment(demo))["ready"] > before["ready"] and d,
            120,
            "the fleet grows",
        )
        assert grown["desired"] > before["desired"]
        expect(pane).to_contain_text("recovered after scale", timeout=VERIFY_AFTER_S * 3000)
    finally:
        switch_scenario(page, "healthy")


def test_a_rollback_in_prod_needs_a_second_person(page: Page, demo: DemoStack) -> None:
    open_console(page, demo)
    name = deployment(demo, 1)["name"]
    revision = deployment(demo, 1)["revision"]
    send(page, f"/vllm rollback {NAMESPACE}/{name}")
    submit_plan(page)
    approve = page.get_by_test_id("button-approve_action")
    expect(approve).to_have_count(1, timeout=30_000)
    approve.click()
    refusal = page.get_by_test_id("ephemeral").filter(has_text="two-person rule")
    expect(refusal).to_be_visible(timeout=30_000)
    expect(refusal).to_contain_text("requested this rollback yourself")
    assert deployment(demo, 1)["revision"] == revision

    page.get_by_test_id("user-switcher").select_option("U0APPROVER")
    approve.click()
    until(lambda: deployment(demo, 1)["revision"] != revision, 60, "the rollback is executed")
    expect(page.get_by_test_id("feed")).to_contain_text(re.compile("Grace", re.I))


def test_someone_without_a_grant_is_refused_with_a_sentence(page: Page, demo: DemoStack) -> None:
    open_console(page, demo, user="U0VIEWER")
    name = deployment(demo, 1)["name"]
    replicas = deployment(demo, 1)["desired"]
    send(page, f"/vllm scale {NAMESPACE}/{name} {replicas + 2}")
    # the plan shows what would change and why this person may not: nothing to confirm
    plan: Locator = page.get_by_test_id("modal")
    expect(plan).to_be_visible(timeout=30_000)
    expect(plan).to_contain_text(f"from {replicas} to {replicas + 2} replicas")
    expect(plan).to_contain_text("you (U0VIEWER) may not scale")
    expect(plan).to_contain_text("ask an admin to add one to policy.grants")
    expect(plan.get_by_test_id("modal-submit")).to_have_count(0)
    plan.get_by_test_id("modal-close").click()
    assert deployment(demo, 1)["desired"] == replicas

"""`runbooks preview FILE`: a runbook author sees the real rendering before merging.

The file joins the shipped runbooks (replacing the one with its id) in a directory of the
preview's own; the scenario whose ground truth names the runbook is injected into the
fleet twin, and the preview waits for the bot's post about it in the console: the alert
post when the runbook exports alerts, else the answer to ``/vllm diagnose ID``.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import httpx

from bot.console.personas import ONCALL
from bot.demo.stack import DemoStack
from bot.diagnosis.runbooks import (
    DEFAULT_RUNBOOK_DIR,
    Runbook,
    RunbookError,
    load_runbook_file,
    load_runbooks,
)
from bot.simulator.fleet import build_fleet
from bot.simulator.scenarios import SCENARIOS

POST_TIMEOUT_S = 600.0


class PreviewError(Exception):
    """The runbook cannot be previewed; the message says why."""


def scenario_for(runbook_id: str) -> str | None:
    """The first scenario whose ground truth names ``runbook_id`` (scenarios are seeded
    and deterministic, so applying each to a small fleet tells)."""
    for name, scenario in SCENARIOS.items():
        if name == "fleet_scale":
            continue
        fleet = build_fleet(replicas=4, gpus_per_replica=4, now=time.time())
        if scenario.apply(fleet, random.Random(0), time.time()).runbook == runbook_id:
            return name
    return None


def prepare_runbooks(file: Path, scenario: str | None, workdir: Path) -> tuple[Runbook, Path, str]:
    """Validate ``file``, lay out the runbook directory, choose the scenario."""
    if not file.is_file():
        raise PreviewError(f"{file}: no such runbook file")
    try:
        runbook = load_runbook_file(file)
    except (RunbookError, OSError, UnicodeDecodeError) as exc:
        raise PreviewError(str(exc)) from exc
    chosen = scenario or scenario_for(runbook.id)
    if chosen is None:
        raise PreviewError(
            f"no scenario is known to trigger runbook {runbook.id!r}; "
            f"pick one with --scenario (one of: {', '.join(sorted(SCENARIOS))})"
        )
    directory = workdir / "runbooks"
    shutil.copytree(DEFAULT_RUNBOOK_DIR, directory)
    shutil.copyfile(file, directory / f"{runbook.id}.yaml")
    try:
        runbooks = load_runbooks(directory)
    except RunbookError as exc:
        raise PreviewError(str(exc)) from exc
    return runbooks[runbook.id], directory, chosen


def wait_for_post(stack: DemoStack, runbook: Runbook, scenario: str) -> str:
    """Inject ``scenario``; the console link of the bot's post about ``runbook``."""
    assert stack.simulator is not None and stack.console is not None
    console = stack.console
    channel = console.default_channel.id
    seen = {m.ts for m in console.workspace.messages(channel)}
    stack.simulator.switch(scenario)
    if not runbook.alerts:
        answer = httpx.post(
            f"{console.url}/console/send",
            json={"user": ONCALL.id, "channel": channel, "text": f"/vllm diagnose {runbook.id}"},
            timeout=10,
        )
        if not answer.json().get("ok"):
            raise PreviewError(f"/vllm diagnose {runbook.id} was not delivered: {answer.text}")
    deadline = time.monotonic() + POST_TIMEOUT_S
    while time.monotonic() < deadline:
        for message in console.workspace.messages(channel):
            if message.ts not in seen and message.thread_ts in (None, message.ts):
                text = json.dumps(message.blocks) + message.text
                if runbook.id in text or runbook.title in text:
                    return console.link(channel, message.ts)
        time.sleep(1.0)
    raise PreviewError(
        f"no post about {runbook.id} within {POST_TIMEOUT_S:.0f} s of injecting {scenario}; "
        f"the bot's log: {stack.bot_log}"
    )

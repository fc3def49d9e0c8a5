"""Section ``ack``: how fast the bot acknowledges Slack while Prometheus answers slowly.

The bot runs as its own process (``serve``, HTTP mode) and queries a real Prometheus
through a proxy that answers ``prometheus_delay_s`` late. ``concurrency`` signed requests
of one kind are sent at once and each HTTP answer (Slack's acknowledgement) is timed:
``/vllm diagnose`` (queries Prometheus), a click on a recommended action's button (opens
the plan modal) and the submission of that modal (confirms the action). The same bursts
with Prometheus answering at once are the comparison.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from bot.bench.delaying_proxy import DelayingProxy
from bot.bench.options import BenchOptions, Progress
from bot.bench.report import Figure, Section, ms
from bot.bench.stack import running
from bot.bench.stats import Timing
from bot.console.delivery import post_signed
from bot.console.payloads import block_action_body, slash_command_body, view_submission_body
from bot.console.workspace import Workspace
from bot.demo.stack import DemoStack
from bot.slack import ids

GOAL_S = 0.1
QUIET_S = 1.0  # no Slack write for this long: the bot's handed-off work is done
USER = "U0ONCALL"  # the console's on-call engineer: holds every grant
KINDS = ("slash command", "button click", "modal submission")
MIXED = "all three kinds at once"


@dataclass(frozen=True)
class Target:
    """Where the requests go and what they name."""

    events_url: str
    secret: str
    channel: str
    request_id: str  # an action request the bot offered: its button's value, its modal's
    view_id: str


Body = Callable[[Workspace, Target], str]


def slash(workspace: Workspace, t: Target) -> str:
    return slash_command_body(
        "diagnose high_latency",
        user_id=USER,
        channel_id=t.channel,
        response_url=workspace.new_response_url(user=USER, channel=t.channel),
        trigger_id=workspace.new_trigger_id(user=USER, channel=t.channel),
    )


def click(workspace: Workspace, t: Target) -> str:
    return block_action_body(
        ids.ACTION_BUTTON,
        t.request_id,
        user_id=USER,
        channel_id=t.channel,
        trigger_id=workspace.new_trigger_id(user=USER, channel=t.channel),
        response_url=workspace.new_response_url(user=USER, channel=t.channel),
    )


def submission(workspace: Workspace, t: Target) -> str:
    return view_submission_body(
        ids.ACTION_PLAN_VIEW,
        t.request_id,
        user_id=USER,
        view_id=t.view_id,
        trigger_id=workspace.new_trigger_id(user=USER, channel=t.channel),
    )


BODIES: dict[str, Body] = {
    "slash command": slash,
    "button click": click,
    "modal submission": submission,
}


# -- pure ---------------------------------------------------------------------------------


def figures(slow: dict[str, Timing], fast: dict[str, Timing], delay_s: float) -> list[Figure]:
    return [
        Figure(
            f"ack: {kind} (Prometheus {delay_s:g} s late)",
            slow[kind],
            versus=f"Prometheus answering at once: p99 {ms(fast[kind].p99)}",
            ratio=slow[kind].p99 / fast[kind].p99 if fast[kind].p99 > 0 else None,
            goal=f"p99 < {GOAL_S * 1000:.0f} ms",
            met=slow[kind].p99 < GOAL_S,
        )
        for kind in (*KINDS, MIXED)
    ]


# -- I/O ----------------------------------------------------------------------------------


async def burst(
    workspace: Workspace, target: Target, kinds: tuple[str, ...], n: int
) -> list[float]:
    """``n`` signed requests of each kind at once, interleaved; each one's time to its HTTP
    answer (must be 200)."""
    bodies = [BODIES[kind](workspace, target) for _ in range(n) for kind in kinds]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        answers = await asyncio.gather(
            *(
                post_signed(session, target.events_url, b, target.secret, answer_within=15)
                for b in bodies
            )
        )
    refused = [a.status for a in answers if a.status != 200]
    if refused:
        raise RuntimeError(f"{len(refused)} of {len(bodies)} requests refused: {refused[:5]}")
    return [a.elapsed for a in answers]


def offered(stack: DemoStack, workspace: Workspace, channel: str, secret: str) -> Target:
    """``/vllm scale`` once: the bot offers an action request and opens its plan modal."""
    assert stack.simulator is not None
    deployment = sorted(stack.simulator.fleet.models)[0]
    events = f"{stack.bot_url}/slack/events"
    target = Target(events, secret, channel, "", "")
    before = {v.id for v in workspace.views}
    text = f"scale {stack.options.namespace}/{deployment} {stack.options.replicas}"
    body = slash_command_body(
        text,
        user_id=USER,
        channel_id=channel,
        response_url=workspace.new_response_url(user=USER, channel=channel),
        trigger_id=workspace.new_trigger_id(user=USER, channel=channel),
    )
    asyncio.run(_once(target, body))

    def opened() -> tuple[str, str] | None:
        for v in workspace.views:
            request_id = str(v.view.get("private_metadata") or "")
            if v.id not in before and request_id:
                return request_id, v.id
        return None

    found = workspace.wait_for(opened, timeout=30)
    assert found is not None
    return Target(events, secret, channel, *found)


async def _once(target: Target, body: str) -> None:
    async with aiohttp.ClientSession() as session:
        answer = await post_signed(session, target.events_url, body, target.secret)
    if answer.status != 200:
        raise RuntimeError(f"the bot answered {answer.status}")


def settle(workspace: Workspace, quiet_s: float = 1.0, timeout_s: float = 90.0) -> None:
    """Until the bot has written nothing to Slack for ``quiet_s`` (its background work
    done: ``quiet_s`` must outlast the longest silent stretch of that work, such as a
    query to a late Prometheus)."""
    deadline = time.monotonic() + timeout_s
    count, since = len(workspace.calls), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = len(workspace.calls)
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
    raise TimeoutError(f"the bot was still writing to Slack after {timeout_s:g} s")


def bursts(
    workspace: Workspace, target: Target, n: int, progress: Progress, label: str, quiet_s: float
) -> dict[str, Timing]:
    """One burst of each kind, then one of all three kinds together; each once the bot
    has finished the work the burst before handed off (50 diagnoses or plans still
    running would otherwise be timed as the next kind's)."""
    out = {}
    for kind, kinds in [*((k, (k,)) for k in KINDS), (MIXED, KINDS)]:
        settle(workspace, quiet_s)
        progress(f"{label}: {n} × {kind}")
        out[kind] = Timing.of(asyncio.run(burst(workspace, target, kinds, n)))
    return out


def run(options: BenchOptions, progress: Progress) -> Section:
    proxies: list[DelayingProxy] = []

    def through_proxy(prometheus_url: str) -> str:
        proxies.append(DelayingProxy(prometheus_url).start())
        return proxies[-1].url

    try:
        with running(options.work_dir / "ack", progress, prometheus_for_bot=through_proxy) as stack:
            assert stack.console is not None
            workspace, proxy = stack.console.workspace, proxies[0]
            channel = stack.console.default_channel.id
            target = offered(stack, workspace, channel, stack.console.signing_secret)
            bursts(workspace, target, 3, progress, "warm-up", QUIET_S)
            n = options.concurrency
            fast = bursts(workspace, target, n, progress, "Prometheus at once", QUIET_S)
            late = options.prometheus_delay_s
            settle(workspace, QUIET_S)
            proxy.delay_s = late
            # the work a burst hands off is silent while Prometheus is late
            slow = bursts(workspace, target, n, progress, f"Prometheus {late:g} s late", late + 1)
    finally:
        for proxy in proxies:
            proxy.stop()
    return Section(
        title="Acknowledgement",
        figures=figures(slow, fast, options.prometheus_delay_s),
        how=(
            f"{options.concurrency} signed requests of each kind sent at once to the bot "
            "(serve, HTTP mode, its own process), each timed to its HTTP answer: "
            "`/vllm diagnose high_latency`, a click on the recommended-action button of a "
            "request the bot offered (`/vllm scale`), and the submission of that request's "
            "plan modal; then all three kinds together "
            f"({len(KINDS)} × {options.concurrency}, interleaved). The bot queries a real "
            "Prometheus through a proxy that answers "
            f"{options.prometheus_delay_s:g} s late; the comparison is the same bursts with "
            "the proxy answering at once, in the same run."
        ),
        notes=(
            "3 requests of each kind were sent first as a warm-up, not counted.",
            "Each burst starts once the bot has written nothing to Slack for a second (for "
            "the Prometheus delay and a second while Prometheus is late): the work the "
            "burst before it handed off (diagnoses, plans) has finished.",
        ),
    )

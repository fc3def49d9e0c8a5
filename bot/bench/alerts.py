"""Section ``alerts``: alert to Slack, the bot next to Alertmanager's own Slack notifier.

One real Alertmanager routes each alert to one receiver holding both its built-in Slack
notifier (``slack_configs``, posting to the console's incoming webhook) and the bot's
webhook. Each alert is its own group (grouped by a per-alert label, ``group_wait: 0s``),
so both notifications leave at once. Per alert: when Alertmanager's post lands, when the
bot's alert post lands and when the bot's diagnosis in its thread is complete, each
counted from the POST to Alertmanager's ``/api/v2/alerts``.
"""

from __future__ import annotations

import json
import secrets
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from bot.bench.options import BenchOptions, Progress
from bot.bench.report import Figure, Section, ms
from bot.bench.stack import running
from bot.bench.stats import Timing
from bot.console.incoming_webhooks import WebhookPost
from bot.console.records import Call
from bot.console.workspace import Workspace

GROUP_LABEL = "bench_alert"  # one value per alert: one Alertmanager group per alert
# runbooks about one replica: a (runbook, pod) is one incident while its alert is open
RUNBOOKS = ("high_latency", "queue_backlog", "kv_cache_pressure", "ttft_slo", "preemption_storm")
# Latency, not a storm: one alert open at a time, and alerts no faster than one channel
# carries them (Slack: about one new message a second per channel; each alert here is four:
# the post, the diagnosis in its thread, a chart, the resolution note). Faster, the bot's
# posts wait for the channel's slots (an alert's post first), and Alertmanager's would
# meet Slack's 429s.
OPEN_AT_MOST = 1
SPACING_S = 4.0  # from one alert sent to the next
GAP_S = 0.5  # and at least this long after the bot closed the last one
CLOCK_SLACK_S = 1.0  # records are searched from this long before an alert was sent
SLOT_TIMEOUT_S = 90.0  # an alert not measured and closed by then fails the section
MARGIN_S = 0.25  # the goal: the bot's first post p99 within Alertmanager's p99 + 250 ms


@dataclass(frozen=True)
class Arrivals:
    """When one alert's posts landed (time.time()); None: not (yet) seen."""

    sent: float
    alertmanager: float | None = None
    bot_post: float | None = None
    bot_diagnosis: float | None = None

    @property
    def complete(self) -> bool:
        return None not in (self.alertmanager, self.bot_post, self.bot_diagnosis)


# -- pure ---------------------------------------------------------------------------------


def alert(marker: str, namespace: str, *, runbook: str, pod: str) -> dict[str, Any]:
    """One alert as Prometheus POSTs it to Alertmanager's /api/v2/alerts."""
    now = datetime.now(UTC)
    return {
        "labels": {
            "alertname": "VLLMBenchAlert",
            GROUP_LABEL: marker,
            "runbook": runbook,
            "namespace": namespace,
            "pod": pod,
            "severity": "warning",
        },
        "annotations": {"summary": f"bench alert {marker}"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
    }


def _text(call: Call) -> str:
    return json.dumps(call.params)


def _is_report(call: Call) -> bool:
    """The diagnosis' final report, not a progress edit ("…: 3/7 checks done")."""
    return not str(call.params.get("text", "")).endswith("checks done")


def bot_post(calls: Sequence[Call], marker: str) -> Call | None:
    """The bot's alert post: the first accepted top-level chat.postMessage naming it."""
    for call in calls:
        if (
            call.method == "chat.postMessage"
            and call.ok
            and not call.params.get("thread_ts")
            and marker in _text(call)
        ):
            return call
    return None


def diagnosis_done(calls: Sequence[Call], post_ts: str) -> Call | None:
    """The call that completed the diagnosis in the alert post's thread."""
    in_thread: set[str] = set()
    for call in calls:
        if not call.ok:
            continue
        if call.method == "chat.postMessage" and call.params.get("thread_ts") == post_ts:
            in_thread.add(str(call.response.get("ts")))
            if _is_report(call):
                return call
        elif (
            call.method == "chat.update" and call.params.get("ts") in in_thread and _is_report(call)
        ):
            return call
    return None


Arrived = TypeVar("Arrived", Call, WebhookPost)


def since_then(records: Sequence[Arrived], at: float) -> Sequence[Arrived]:
    """The records (kept in arrival order) that arrived at ``at`` or later."""
    return records[bisect_left(records, at, key=lambda r: r.at) :]


def arrivals(
    sent: float, marker: str, calls: Sequence[Call], posts: Sequence[WebhookPost]
) -> Arrivals:
    am = next((p.at for p in posts if marker in p.text), None)
    post = bot_post(calls, marker)
    done = diagnosis_done(calls, str(post.response.get("ts"))) if post is not None else None
    return Arrivals(
        sent,
        am,
        post.at if post is not None else None,
        done.at if done is not None else None,
    )


def section(seen: Sequence[Arrivals], alerts: int, warmup: int) -> Section:
    """The three figures, all from the same alerts of the same run."""
    assert all(a.complete for a in seen), "every alert must have all three arrivals"
    am = Timing.of([a.alertmanager - a.sent for a in seen if a.alertmanager is not None])
    first = Timing.of([a.bot_post - a.sent for a in seen if a.bot_post is not None])
    full = Timing.of([a.bot_diagnosis - a.sent for a in seen if a.bot_diagnosis is not None])
    versus = f"Alertmanager slack_configs p99 {ms(am.p99)}"
    return Section(
        title="Alert to Slack",
        figures=(
            Figure("Alertmanager's own Slack post (slack_configs)", am),
            Figure(
                "bot: first post (the alert with its runbook)",
                first,
                versus=versus,
                ratio=first.p99 / am.p99 if am.p99 > 0 else None,
                goal=f"≤ Alertmanager + {MARGIN_S * 1000:.0f} ms at p99",
                met=first.p99 <= am.p99 + MARGIN_S,
            ),
            Figure(
                "bot: complete diagnosis in the thread",
                full,
                versus=versus,
                ratio=full.p99 / am.p99 if am.p99 > 0 else None,
            ),
        ),
        how=(
            f"{alerts} alerts POSTed to a real Alertmanager's /api/v2/alerts one after another, "
            f"at most one every {SPACING_S:g} s (each is four new messages in one channel; "
            "Slack carries about one a second), each its own group "
            "(group_wait 0s); one receiver holds Alertmanager's "
            "Slack notifier (slack_configs → the console's incoming webhook) and the bot's "
            "webhook. Latency is from the POST to the moment the fake Slack received the post; "
            "the bot runs as its own process (serve, HTTP mode) with SQLite, against the fleet "
            f"twin: each alert names a replica and one of {', '.join(RUNBOOKS)}, diagnosed "
            "on a real Prometheus. Each alert is resolved once measured."
        ),
        notes=(f"{warmup} warm-up alert sent first, not counted.",),
    )


# -- I/O ----------------------------------------------------------------------------------


@dataclass
class _Alert:
    marker: str
    body: dict[str, Any]
    sent: float
    seen: Arrivals
    resolved_at: float | None = None  # when its resolution was POSTed
    closed: bool = False  # the bot closed its post: its scope may alert again


class _Driver:
    """Sends the alerts, resolves each once measured, and frees its scope for a later one.

    Alerts about the same runbook and scope join one incident's post (as they should), so
    each alert gets a (runbook, pod) of its own while it is open; with more alerts than
    those, one is reused once the bot has closed the previous alert's post.
    """

    def __init__(self, client: httpx.Client, workspace: Workspace, progress: Progress) -> None:
        self.client = client
        self.workspace = workspace
        self.progress = progress
        self.alerts: list[_Alert] = []
        self.busy: dict[tuple[str, str], _Alert] = {}

    def send(self, marker: str, scope: tuple[str, str], namespace: str) -> None:
        deadline = time.monotonic() + SLOT_TIMEOUT_S
        while scope in self.busy or len(self.busy) >= OPEN_AT_MOST:
            self.tend()
            if time.monotonic() > deadline:
                stuck = ", ".join(f"{a.marker} {a.seen}" for a in self.busy.values())
                raise TimeoutError(f"not measured and closed in {SLOT_TIMEOUT_S:g} s: {stuck}")
            time.sleep(0.05)
        time.sleep(GAP_S)
        if self.alerts:
            time.sleep(max(0.0, self.alerts[-1].sent + SPACING_S - time.time()))
        body = alert(marker, namespace, runbook=scope[0], pod=scope[1])
        sent = time.time()
        self.client.post("/api/v2/alerts", json=[body]).raise_for_status()
        item = _Alert(marker, body, sent, Arrivals(sent))
        self.alerts.append(item)
        self.busy[scope] = item

    def tend(self) -> int:
        """Read what landed; resolve what is measured; free scopes the bot closed. Each
        alert reads only what arrived after it was sent: scanning (and serialising) every
        call of the run for every alert, 20 times a second, made this loop compete with
        the bot for the CPU it measures."""
        calls, posts = self.workspace.calls, self.workspace.webhook_posts
        for item in self.alerts:
            if not item.seen.complete:
                since = item.sent - CLOCK_SLACK_S
                item.seen = arrivals(
                    item.sent, item.marker, since_then(calls, since), since_then(posts, since)
                )
        for scope, item in list(self.busy.items()):
            recent = since_then(calls, item.sent - CLOCK_SLACK_S)
            if item.seen.complete and item.resolved_at is None:
                item.resolved_at = time.time()
                ended = {**item.body, "endsAt": datetime.now(UTC).isoformat()}
                self.client.post("/api/v2/alerts", json=[ended]).raise_for_status()
            elif item.resolved_at is not None and _closed(recent, item):
                del self.busy[scope]
        return sum(a.seen.complete for a in self.alerts)

    def wait(self, timeout_s: float) -> None:
        """Until every alert sent so far has its three arrivals."""
        deadline = time.monotonic() + timeout_s
        while (done := self.tend()) < len(self.alerts):
            self.progress(f"{done}/{len(self.alerts)} alerts posted and diagnosed")
            if time.monotonic() > deadline:
                missing = len(self.alerts) - done
                raise TimeoutError(f"{missing} alerts not complete after {timeout_s:.0f} s")
            time.sleep(0.1)


def _closed(calls: Sequence[Call], item: _Alert) -> bool:
    post = bot_post(calls, item.marker)
    assert post is not None and item.resolved_at is not None
    ts = post.response.get("ts")
    return any(
        c.method == "chat.update" and c.params.get("ts") == ts and c.at >= item.resolved_at
        for c in calls
    )


def run(options: BenchOptions, progress: Progress) -> Section:
    run_id = secrets.token_hex(3)
    warmup = 1
    with running(
        options.work_dir / "alerts",
        progress,
        alertmanager_slack=True,
        alertmanager_group_by=(GROUP_LABEL,),
    ) as stack:
        assert stack.alertmanager is not None and stack.console is not None
        assert stack.simulator is not None
        namespace = stack.options.namespace
        pods = sorted(r.pod for r in stack.simulator.fleet.replicas)
        scopes = [(runbook, pod) for pod in pods for runbook in RUNBOOKS]
        with httpx.Client(base_url=stack.alertmanager.url, timeout=10) as client:
            driver = _Driver(client, stack.console.workspace, progress)
            for i in range(warmup + options.alerts):
                if i == warmup:  # the warm-up alert lands before the measured ones leave
                    driver.wait(60.0)
                progress(f"alert {i + 1 - warmup}/{options.alerts}")
                driver.send(f"bench-{run_id}-{i:05d}", scopes[i % len(scopes)], namespace)
                driver.tend()
            driver.wait(60.0 + options.alerts * 0.5)
    return section([a.seen for a in driver.alerts[warmup:]], options.alerts, warmup)

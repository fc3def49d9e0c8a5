"""Alert intake under load: notifications pushed as fast as a few senders can, then counted
back from the store the bot wrote them to.

Each notification carries new alerts of one of a few incidents (one namespace each), so
after the first post of an incident every notification takes the joining path, as an
alert storm does. Bodies are encoded before the clock starts: the figure is the bot's.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select

from bot.bench.alert_payloads import alert, notification
from bot.bench.serve_process import ServedBot, served_bot
from bot.console.workspace import Workspace
from bot.store import AlertPost, AlertState

SLACK_WRITES = ("chat.postMessage", "chat.update")


@dataclass(frozen=True)
class Batch:
    body: bytes
    fingerprints: tuple[str, ...]


@dataclass
class Pushed:
    """What the bot answered: latency per notification, the alerts it accepted (2xx)."""

    latencies: list[float] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    refused: int = 0  # notifications answered with anything but 2xx, or not at all
    seconds: float = 0.0

    @property
    def alerts_per_s(self) -> float:
        return len(self.accepted) / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class IntakeResult:
    timed: Pushed  # the concurrent senders
    alone: Pushed  # one sender at a time, before them: the same work without contention
    accepted: int  # alerts accepted, warm-up included
    stored: int  # of those, how many the store holds afterwards
    posts: int  # alert posts the store opened: one per incident is right
    busiest_second: int  # the most Slack writes (posts, updates) in any one second

    @property
    def lost(self) -> int:
        return self.accepted - self.stored

    @property
    def alerts_per_s(self) -> float:
        return self.timed.alerts_per_s


def batches(count: int, per_notification: int, incidents: int) -> list[Batch]:
    """``count`` notifications of ``per_notification`` new alerts, round robin over incidents."""
    run = uuid.uuid4().hex[:8]  # fingerprints unique per run: a rerun on one store is fresh
    out = []
    for n in range(count):
        namespace = f"bench-{n % incidents}"
        alerts = [
            alert(f"{run}-{n:06d}-{i:02d}", namespace, n * per_notification + i)
            for i in range(per_notification)
        ]
        body = notification(f'{{}}:{{namespace="{namespace}"}}', namespace, alerts)
        out.append(Batch(json.dumps(body).encode(), tuple(a["fingerprint"] for a in alerts)))
    return out


async def _push(bot: ServedBot, work: Sequence[Batch], senders: int) -> Pushed:
    pushed = Pushed()
    pending = iter(work)
    headers = {"Authorization": f"Bearer {bot.alerts_token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)

    async def sender(client: httpx.AsyncClient) -> None:
        for batch in pending:  # one shared iterator: each notification is sent once
            started = time.perf_counter()
            try:
                response = await client.post("/alerts", content=batch.body, headers=headers)
            except httpx.HTTPError:
                pushed.refused += 1
                continue
            pushed.latencies.append(time.perf_counter() - started)
            if response.is_success:
                pushed.accepted.extend(batch.fingerprints)
            else:
                pushed.refused += 1

    async with httpx.AsyncClient(base_url=bot.url, timeout=30, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(sender(client) for _ in range(senders)))
        pushed.seconds = time.perf_counter() - started
    return pushed


def push(bot: ServedBot, work: Sequence[Batch], senders: int) -> Pushed:
    return asyncio.run(_push(bot, work, senders))


def posts(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(AlertPost)) or 0
    finally:
        engine.dispose()


def busiest_second(slack: Workspace) -> int:
    writes = Counter(int(c.at) for c in slack.calls if c.method in SLACK_WRITES)
    return max(writes.values(), default=0)


def stored(database_url: str, fingerprints: Iterable[str]) -> int:
    """How many of ``fingerprints`` the bot's store holds (read by a connection of our own)."""
    wanted = list(fingerprints)
    engine = create_engine(database_url)
    try:
        found = 0
        with engine.connect() as conn:  # chunks: SQLite allows a bounded number of parameters
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = select(AlertState.fingerprint).where(AlertState.fingerprint.in_(chunk))
                found += len(set(conn.scalars(query)))
        return found
    finally:
        engine.dispose()


@dataclass(frozen=True)
class IntakePlan:
    notifications: int  # sent by the concurrent senders, timed
    alone: int  # sent one at a time before them, timed: the uncontended comparison
    per_notification: int = 10
    incidents: int = 10
    senders: int = 4

    @property
    def total(self) -> int:
        return self.incidents + self.alone + self.notifications


def measure(plan: IntakePlan, work_dir: Path, name: str, database_url: str) -> IntakeResult:
    """Push ``plan`` at a fresh bot on ``database_url``, kill it, count what it stored.

    The first notification of each incident opens its post, untimed: what is timed is
    alerts joining open incidents, as in a storm.
    """
    work = batches(plan.total, plan.per_notification, plan.incidents)
    opening, alone, timed = (
        work[: plan.incidents],
        work[plan.incidents : plan.incidents + plan.alone],
        work[plan.incidents + plan.alone :],
    )
    with served_bot(work_dir, name, database_url) as bot:
        first = push(bot, opening, 1)
        one_by_one = push(bot, alone, 1)
        concurrent = push(bot, timed, plan.senders)
        writes = busiest_second(bot.slack)
    accepted = [*first.accepted, *one_by_one.accepted, *concurrent.accepted]
    return IntakeResult(
        concurrent,
        one_by_one,
        len(accepted),
        stored(database_url, accepted),
        posts(database_url),
        writes,
    )

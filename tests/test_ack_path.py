"""Slack's acknowledgement does not wait for background work.

The bot's background work (outbox writes, diagnoses, plans) runs its blocking calls in
asyncio's default thread pool. Here that pool is held busy until the test lets it go:
a slash command and a modal submission must still be answered, over a real socket,
before it is released (their database work runs on the ack path's own thread).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bot_runner import BotRunner
from fakes.slack import (
    FakeSlack,
    block_action_body,
    send_signed,
    slash_command_body,
    view_submission_body,
)
from remediation_helpers import Recorder, cluster, remediation_on
from sqlalchemy import text

from bot.remediation.audit import AuditEvent, AuditEventType, AuditLog
from bot.remediation.events import Actor
from bot.remediation.placement import kube_for
from bot.remediation.requests import Asked
from bot.simulator.kubernetes_api import KubernetesStandIn
from bot.slack import ids
from bot.sources.kubernetes import KubeClient, KubeTarget
from bot.store import Store

SECRET = "ack-path-secret"
BUSY_JOBS = 64  # more than the default pool's threads (at most 32)


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[BotRunner]:
    with FakeSlack() as slack:
        runner = BotRunner(
            slack_bot_token=slack.token,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url,
            prometheus_url="http://127.0.0.1:9",  # never reached: nothing here queries it
            alerts_token="t",
            default_channel="C0ACK",
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        ).start()
        try:
            yield runner
        finally:
            runner.stop()


@pytest.fixture
def busy_pool(bot: BotRunner) -> Iterator[threading.Event]:
    """The bot's default thread pool, every thread waiting for the returned event."""
    release = threading.Event()

    async def occupy() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(BUSY_JOBS):
            loop.run_in_executor(None, release.wait)

    bot.call(occupy())
    yield release
    release.set()


def test_a_slash_command_is_acknowledged_while_the_pool_is_busy(
    bot: BotRunner, busy_pool: threading.Event
) -> None:
    answer = send_signed(f"{bot.url}/slack/events", slash_command_body("help"), SECRET, timeout=10)
    assert answer.status == 200
    assert not busy_pool.is_set()  # answered while every default-pool thread was held


def test_a_modal_submission_is_acknowledged_while_the_pool_is_busy(
    bot: BotRunner, busy_pool: threading.Event
) -> None:
    body = view_submission_body(ids.ACTION_PLAN_VIEW, "no-such-request")
    answer = send_signed(f"{bot.url}/slack/events", body, SECRET, timeout=10)
    assert answer.status == 200 and b"no-such-request" in answer.body
    assert not busy_pool.is_set()


def test_signatures_arriving_together_are_each_served_once(tmp_path: Path) -> None:
    """The grouped replay check: a signature is fresh once, also twice in one group."""
    from bot.slack.ack_path import AckPath

    store = Store(f"sqlite:///{tmp_path / 'seen.db'}")
    path = AckPath(store)

    async def burst() -> list[bool]:
        return list(await asyncio.gather(*(path.first_sight(s) for s in ["a", "b", "a", "c"])))

    try:
        assert asyncio.run(burst()) == [True, True, False, True]
        assert asyncio.run(burst()) == [False, False, False, False]
        assert store.first_sight("b") is False and store.first_sight("d") is True
    finally:
        path.close()


def test_the_ack_is_sent_before_the_listeners_background_work_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A button's background work that holds the event loop for 2 s (as a burst of
    plans can) does so only after the click was answered."""
    from bot.slack import listeners

    released: list[float] = []

    async def holding_the_loop(svc: object, body: object) -> None:
        time.sleep(2)  # noqa: ASYNC251 - holds the bot's event loop, as synchronous work does
        released.append(time.time())

    monkeypatch.setattr(listeners, "show_plan", holding_the_loop)
    with FakeSlack() as slack:
        runner = BotRunner(
            slack_bot_token=slack.token,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url,
            prometheus_url="http://127.0.0.1:9",
            alerts_token="t",
            default_channel="C0ACK",
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        ).start()
        try:
            body = block_action_body(ids.ACTION_BUTTON, "any-request")
            answer = send_signed(f"{runner.url}/slack/events", body, SECRET, timeout=10)
            answered = time.time()
            runner.drain()
        finally:
            runner.stop()
    assert answer.status == 200 and released
    assert answered < released[0]  # answered while the loop was still held


def test_request_lookups_arriving_together_each_get_their_answer(tmp_path: Path) -> None:
    from bot.slack.ack_path import AckPath

    store = Store(f"sqlite:///{tmp_path / 'requests.db'}")
    path = AckPath(store)

    async def burst() -> list[bool]:
        ids_ = ["nope", "also-nope", "nope"]
        return list(await asyncio.gather(*(path.request_exists(i) for i in ids_)))

    try:
        assert asyncio.run(burst()) == [False, False, False]
    finally:
        path.close()


def test_web_api_calls_share_one_session_while_serving(bot: BotRunner) -> None:
    """Not a session and a new connection per Slack call (CPU on the event loop that
    acknowledgements wait behind); closed when the bot stops."""
    session = bot.bot.services.outbox.client.session
    assert session is not None and not session.closed
    bot.stop()
    assert bot.bot.services.outbox.client.session is None and session.closed


def test_handed_off_work_waits_for_the_requests_in_flight(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Click A is answered and hands off work that holds the loop for 2 s; request B is
    still in flight (its replay check queued on the ack path). B is answered first."""
    from concurrent.futures import ThreadPoolExecutor

    from bot.slack import listeners

    released: list[float] = []

    async def holding_the_loop(svc: object, body: object) -> None:
        time.sleep(2)  # noqa: ASYNC251 - holds the bot's event loop, as synchronous work does
        released.append(time.time())

    monkeypatch.setattr(listeners, "show_plan", holding_the_loop)
    with FakeSlack() as slack:
        runner = BotRunner(
            slack_bot_token=slack.token,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url,
            prometheus_url="http://127.0.0.1:9",
            alerts_token="t",
            default_channel="C0ACK",
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        ).start()
        svc = runner.bot.services
        svc.acks_first.max_wait_s = 10  # the order, not the bound, is under test
        executor = svc.ack_path._executor
        first_gate, second_gate = threading.Event(), threading.Event()
        url = f"{runner.url}/slack/events"
        try:
            with ThreadPoolExecutor(2) as clients:
                executor.submit(first_gate.wait)
                click = clients.submit(
                    send_signed, url, block_action_body(ids.ACTION_BUTTON, "r"), SECRET
                )
                _until(lambda: svc.acks_first.in_flight == 1)
                executor.submit(second_gate.wait)  # B's check will queue behind this
                command = clients.submit(send_signed, url, slash_command_body("help"), SECRET)
                _until(lambda: svc.acks_first.in_flight == 2)
                first_gate.set()
                assert click.result(timeout=10).status == 200
                second_gate.set()
                assert command.result(timeout=10).status == 200
                answered = time.time()
            runner.drain()
        finally:
            first_gate.set()
            second_gate.set()
            runner.stop()
    assert released and answered < released[0]


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.01)


# -- the remediation flow's database work runs off the event loop ---------------------------

STORE_CALLS = (
    "action_request",
    "transition",
    "note",
    "lock_target",
    "lock_holder",
    "unlock_target",
    "schedule_verification",
    "set_verify_ref",
    "claim_due_verifications",
)


class ThreadNotingStore(Store):
    """A real store that notes which thread each of the flow's calls ran on."""

    def __init__(self, database_url: str) -> None:
        super().__init__(database_url)
        self.calls: list[tuple[str, int]] = []
        for name in STORE_CALLS:
            setattr(self, name, self._noted(name, getattr(self, name)))

    def _noted(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def noted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, threading.get_ident()))
            return method(*args, **kwargs)

        return noted


class ThreadNotingAudit(AuditLog):
    def __init__(self, database_url: str) -> None:
        super().__init__(database_url)
        self.calls: list[tuple[str, int]] = []

    def append(self, event: AuditEventType, **fields: Any) -> AuditEvent:
        self.calls.append((f"audit {event}", threading.get_ident()))
        return super().append(event, **fields)


def test_the_remediation_flow_reads_and_writes_the_store_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Preview, confirm, approval, execution and a refusal: no store or audit call, and no
    Kubernetes client's making, holds the event loop Slack's acknowledgements are answered
    on."""
    from bot.remediation import flow as flow_module

    made: list[tuple[str, int]] = []

    def noted_kube_for(*args: Any) -> KubeClient:
        made.append(("kube_for", threading.get_ident()))
        return kube_for(*args)

    monkeypatch.setattr(flow_module, "kube_for", noted_kube_for)
    url = f"sqlite:///{tmp_path / 'flow.db'}"
    policy = {
        "grants": [{"users": ["U1", "U2"], "kinds": ["scale"]}],
        "approvals": [{"kinds": ["scale"], "namespaces": ["approved"]}],
    }
    with KubernetesStandIn() as kube:
        kube.add_deployment("ml", "llama", "vllm:0.11.0", replicas=2)
        kube.add_deployment("approved", "llama", "vllm:0.11.0", replicas=2)
        remediation = remediation_on(url, [cluster("a", kube)], policy, Recorder())
        store, audit = ThreadNotingStore(url), ThreadNotingAudit(url)
        remediation.store, remediation.audit = store, audit
        alice, bob, mallory = Actor("U1", "alice"), Actor("U2", "bob"), Actor("U3", "mallory")
        loop_threads: set[int] = set()

        async def flow() -> None:
            loop_threads.add(threading.get_ident())
            direct = await remediation.offer(
                Asked("scale", "deployment/ml/llama", {"replicas": 3}), reason="t", runbook="rb"
            )
            assert (await remediation.preview(direct, alice)).executable
            assert (await remediation.preview(direct, mallory)).error  # denied, audited
            await remediation.confirm(direct, alice, {})
            asked = await remediation.offer(
                Asked("scale", "deployment/approved/llama", {"replicas": 3}), reason="t"
            )
            await remediation.confirm(asked, alice, {})
            await remediation.approve(asked, bob, approved=True)
            await remediation.run_due_verifications()

        asyncio.run(flow())
    calls = store.calls + audit.calls + made
    names = {name for name, _ in calls}
    assert {"action_request", "transition", "lock_target", "unlock_target"} <= names
    assert len(made) >= 4  # planned twice, executed twice
    assert {"audit denied", "audit approval_requested", "audit approved"} <= names
    on_loop = sorted({name for name, thread in calls if thread in loop_threads})
    assert on_loop == [], f"on the event loop: {on_loop}"


def test_a_sqlite_file_is_written_ahead_and_synced_at_checkpoints(tmp_path: Path) -> None:
    """WAL: the ack path's replay check reads while background work writes, neither waiting
    for the other; synchronous=NORMAL: a commit is not an fsync of the database file."""
    store = Store(f"sqlite:///{tmp_path / 'wal.db'}")
    for _ in range(2):  # each new connection of the pool, not only the first
        with store.engine.connect() as conn, conn.begin():
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        store.engine.dispose()
    assert store.first_sight("wal-signature")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_a_sqlite_database_in_memory_keeps_its_journal(url: str) -> None:
    store = Store(url)
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "memory"
    assert store.first_sight("memory-signature")


def test_a_client_for_a_plain_http_api_loads_no_ca_certificates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over http (a `kubectl proxy`, a stand-in) there is no TLS: a client made for every
    plan must not load the system's CA certificates into a context it never uses. Over
    https they are still loaded and verified."""
    loaded: list[object] = []
    load = ssl.SSLContext.load_verify_locations

    def counting(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loaded.append(args or kwargs)
        load(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    KubeClient.connect(KubeTarget(base_url="http://127.0.0.1:8001", token="t"))
    assert loaded == []
    KubeClient.connect(KubeTarget(base_url="https://kube.example:6443", token="t"))
    assert loaded

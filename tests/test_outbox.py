"""The durable outbox against the fake Slack (a real local HTTP server) and a real store.

Slack down for a while, Slack refusing for good, a sender dying after Slack took the post,
updates piling up, a burst to one channel: nothing lost, nothing posted twice, the newest
content wins, and the channel's pace holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fakes.slack import FakeSlack
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import update

from bot.ledger import Ledger
from bot.slack.block_kit import Message
from bot.slack.outbox import Outbox, make_client
from bot.store import OutgoingMessage, Store, utcnow

CHANNEL = "C123"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    yield fake
    fake.stop()


def outbox_for(slack: FakeSlack, database_url: str) -> Outbox:
    calls = Counter("calls", "", ["method", "outcome"], registry=CollectorRegistry())
    return Outbox(make_client(slack.token, slack.api_url), calls, Ledger(Store(database_url)))


def text(n: int) -> Message:
    return Message(text=f"message {n}", blocks=[])


def states(outbox: Outbox) -> list[tuple[str, str | None]]:
    with outbox.ledger.store.session() as s:
        rows = s.query(OutgoingMessage).order_by(OutgoingMessage.id)
        return [(r.state, r.error) for r in rows]


def test_a_slack_outage_loses_nothing_and_posts_once(slack: FakeSlack, database_url: str) -> None:
    outbox = outbox_for(slack, database_url)
    slack.outage("chat.postMessage", status=503)
    assert asyncio.run(outbox.post(CHANNEL, text(1))) is None  # said so, kept
    assert slack.messages(CHANNEL) == []
    assert states(outbox) == [("pending", "service_unavailable")]
    slack.clear_faults()
    with outbox.ledger.store.session() as s, s.begin():  # the backoff has passed
        s.execute(update(OutgoingMessage).values(not_before=OutgoingMessage.created_at))
    assert asyncio.run(outbox.resend_due()) == 1
    assert [m.text for m in slack.messages(CHANNEL)] == ["message 1"]
    assert states(outbox) == [("sent", None)]
    assert asyncio.run(outbox.resend_due()) == 0


def test_a_permanent_refusal_is_recorded_with_why_and_not_retried(
    slack: FakeSlack, database_url: str
) -> None:
    outbox = outbox_for(slack, database_url)
    slack.fail("chat.postMessage", "channel_not_found")
    assert asyncio.run(outbox.post(CHANNEL, text(1))) is None
    assert states(outbox) == [("failed", "channel_not_found")]
    assert asyncio.run(outbox.resend_due()) == 0


@pytest.mark.parametrize("reached_slack", [True, False])
def test_a_sender_dying_mid_send_is_neither_lost_nor_doubled(
    slack: FakeSlack, database_url: str, reached_slack: bool
) -> None:
    """The write was taken (leased, attempt counted) and maybe sent; then the sender died
    before recording the answer. Once its lease lapses the next sender looks the post up
    by its key: found, it is adopted; not found, it is posted — once either way."""
    outbox = outbox_for(slack, database_url)
    ledger = outbox.ledger
    key = "alert-post:7"
    metadata = {"event_type": "vllm_chatops_message", "event_payload": {"key": key}}
    params = {"channel": CHANNEL, "text": "the alert", "blocks": [], "metadata": metadata}
    entry = ledger.record(key, "chat.postMessage", CHANNEL, params)
    taken = ledger.take(entry.id, timedelta(seconds=-1))  # …and its lease has already lapsed
    assert taken is not None and taken.attempts == 1
    if reached_slack:
        asyncio.run(outbox.client.chat_postMessage(**taken.params))
    asyncio.run(outbox.resend_due())
    posted = [m for m in slack.messages(CHANNEL) if m.text == "the alert"]
    assert len(posted) == 1
    assert states(outbox) == [("sent", None)]
    # the caller trying again with the same key gets the same message back
    assert asyncio.run(outbox.post(CHANNEL, text(1), key="alert-post:7")) == posted[0].ts
    assert len(slack.messages(CHANNEL)) == 1


def test_updates_while_slack_is_down_end_with_the_newest_content(
    slack: FakeSlack, database_url: str
) -> None:
    outbox = outbox_for(slack, database_url)
    ts = asyncio.run(outbox.post(CHANNEL, text(0)))
    assert ts is not None
    slack.outage("chat.update", status=502)
    for n in range(1, 4):  # not shown yet, but kept: True
        assert asyncio.run(outbox.update(CHANNEL, ts, text(n))) is True
    slack.clear_faults()
    with outbox.ledger.store.session() as s, s.begin():
        s.execute(update(OutgoingMessage).values(not_before=OutgoingMessage.created_at))
    asyncio.run(outbox.resend_due())
    (message,) = slack.messages(CHANNEL)
    assert message.text == "message 3"
    assert [v.text for v in message.history] == ["message 0", "message 3"]


def test_a_burst_to_one_channel_is_paced(slack: FakeSlack, database_url: str) -> None:
    outbox = outbox_for(slack, database_url)

    async def burst() -> None:
        await asyncio.gather(*(outbox.post(CHANNEL, text(n)) for n in range(7)))

    started = time.time()
    asyncio.run(burst())
    at = sorted(v.at for m in slack.messages(CHANNEL) for v in m.history)
    assert len(at) == 7
    # three at once, then one a second: the seventh no sooner than ~4 s in
    assert at[-1] - started >= 3.5
    for i, t in enumerate(at):
        assert t - started >= max(0, i - 2) * 1.0 - 0.3, (i, t - started)


def test_an_ephemeral_reply_is_retried_while_it_is_still_an_answer(
    slack: FakeSlack, database_url: str
) -> None:
    outbox = outbox_for(slack, database_url)
    slack.outage("chat.postEphemeral", status=503)
    assert asyncio.run(outbox.ephemeral(CHANNEL, "U123", text(1))) is False
    assert asyncio.run(outbox.ephemeral(CHANNEL, "U123", text(2))) is False
    slack.clear_faults()
    with outbox.ledger.store.session() as s, s.begin():
        s.execute(update(OutgoingMessage).values(not_before=OutgoingMessage.created_at))
        # the second reply was asked for 31 minutes ago: too late to be an answer
        s.execute(
            update(OutgoingMessage)
            .where(OutgoingMessage.id == 2)
            .values(created_at=utcnow() - timedelta(minutes=31))
        )
    asyncio.run(outbox.resend_due())
    assert [e.text for e in slack.ephemerals] == ["message 1"]
    assert states(outbox) == [("sent", None), ("failed", "expired: too late to answer")]


def test_a_chart_upload_during_an_outage_is_uploaded_once_slack_is_back(
    slack: FakeSlack, database_url: str
) -> None:
    outbox = outbox_for(slack, database_url)
    ts = asyncio.run(outbox.post(CHANNEL, text(0)))
    slack.outage("files.getUploadURLExternal", status=503)
    png = b"\x89PNG\r\n\x1a\n" + b"chart" * 100
    assert asyncio.run(outbox.upload_png(CHANNEL, ts, png, "kv.png", "KV cache")) is False
    assert slack.files == []
    slack.clear_faults()
    with outbox.ledger.store.session() as s, s.begin():
        s.execute(update(OutgoingMessage).values(not_before=OutgoingMessage.created_at))
    asyncio.run(outbox.resend_due())
    (uploaded,) = slack.files
    assert uploaded.title == "KV cache" and uploaded.data == png and uploaded.thread_ts == ts


def test_a_post_the_resend_job_sent_first_still_returns_its_ts(
    slack: FakeSlack, database_url: str
) -> None:
    """The resend job can pick a post up between its recording and its sending: the
    caller must still learn the ts, or it could never update the message in place."""
    outbox = outbox_for(slack, database_url)

    async def race() -> tuple[tuple[str, str | None], tuple[str, str | None]]:
        recorded = outbox.ledger.record("post:race", "chat.postMessage", CHANNEL, {
            "channel": CHANNEL, "text": "progress", "blocks": []
        })  # fmt: skip
        resend = asyncio.ensure_future(outbox._deliver(recorded))  # the job, first in line
        await asyncio.sleep(0)
        posting = await outbox._deliver(recorded)  # what post() does right after recording
        return posting, await resend

    (state, ts), resent = asyncio.run(race())
    assert resent[0] == "sent"
    assert [m.text for m in slack.messages(CHANNEL)] == ["progress"]  # sent once
    assert (state, ts) == ("sent", slack.messages(CHANNEL)[0].ts)

"""The outbox paces new messages per channel and edits on their own budget.

Slack limits new messages to about one a second per channel; an edit (chat.update) is
not a new message. Here the channel allows two new messages and then none for an hour:
the edits of the first message must still go out, and the second message must still
get the channel's second slot rather than wait behind the edits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.slack import FakeSlack
from prometheus_client import CollectorRegistry, Counter

from bot.ledger import Ledger
from bot.slack.block_kit import Message
from bot.slack.outbox import Outbox, make_client
from bot.slack.pace import ChannelPace
from bot.store import Store

CHANNEL = "C0PACE"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def test_edits_do_not_spend_the_channels_new_message_slots(
    slack: FakeSlack, tmp_path: Path
) -> None:
    calls = Counter("calls", "", ["method", "outcome"], registry=CollectorRegistry())
    outbox = Outbox(
        make_client(slack.token, slack.api_url),
        calls,
        Ledger(Store(f"sqlite:///{tmp_path / 'state.db'}")),
        pace=ChannelPace(every_s=3600, burst=2),
    )

    async def play() -> str | None:
        ts = await outbox.post(CHANNEL, Message(text="alert one", blocks=[]))
        assert ts is not None
        for n in range(3):  # a diagnosis filling in
            assert await outbox.update(CHANNEL, ts, Message(text=f"edit {n}", blocks=[]))
        return await outbox.post(CHANNEL, Message(text="alert two", blocks=[]))

    # an edit waiting for a channel slot would wait the hour: wait_for turns that into a failure
    second = asyncio.run(asyncio.wait_for(play(), timeout=20))
    assert second is not None
    texts = [c.params.get("text") for c in slack.calls if c.method.startswith("chat.")]
    assert texts == ["alert one", "edit 0", "edit 1", "edit 2", "alert two"]


def test_a_new_message_goes_before_thread_replies_waiting_for_the_channel(
    slack: FakeSlack, tmp_path: Path
) -> None:
    calls = Counter("calls", "", ["method", "outcome"], registry=CollectorRegistry())
    outbox = Outbox(
        make_client(slack.token, slack.api_url),
        calls,
        Ledger(Store(f"sqlite:///{tmp_path / 'state.db'}")),
        pace=ChannelPace(every_s=0.5, burst=1),
    )

    async def play() -> None:
        ts = await outbox.post(CHANNEL, Message(text="alert one", blocks=[]))
        assert ts is not None
        reply = asyncio.create_task(
            outbox.post(CHANNEL, Message(text="chart of alert one", blocks=[]), thread_ts=ts)
        )
        for _ in range(1000):  # until the reply is queued for the channel
            if outbox.pace.waiting(CHANNEL):
                break
            await asyncio.sleep(0.01)
        await outbox.post(CHANNEL, Message(text="alert two", blocks=[]))
        await reply

    asyncio.run(asyncio.wait_for(play(), timeout=20))
    texts = [c.params.get("text") for c in slack.calls if c.method == "chat.postMessage"]
    assert texts == ["alert one", "alert two", "chart of alert one"]

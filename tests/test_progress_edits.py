"""Progress edits run beside the work they report on and never hold it up."""

from __future__ import annotations

import asyncio
import inspect
import itertools
from typing import Any

import pytest

from bot.diagnosis.engine import diagnose
from bot.diagnosis.runbooks import load_runbooks
from bot.models import CheckResult, Scope
from bot.slack.block_kit import Message
from bot.slack.progress_edits import ProgressEdits
from bot.sources.prometheus import Sample


class EmptyPrometheus:
    """Answers every query with no series, a little later."""

    async def query(self, promql: str) -> list[Sample]:
        await asyncio.sleep(0.01)
        return []

    async def query_range(self, promql: str, seconds: float = 3600) -> list[Any]:
        return []


def message(n: int) -> Message:
    return Message(text=f"{n} checks done", blocks=[])


def test_a_diagnosis_finishes_while_its_progress_edit_waits_for_slack() -> None:
    """Regression: each finished check awaited its progress edit, and an edit waits for
    Slack's edit budget; a diagnosis of 0.1 s took 6 to 17 s in an alert storm."""
    runbook = load_runbooks()["high_latency"]
    sent: list[str] = []
    slack_holds = asyncio.Event()  # set only once the diagnosis is done

    async def send(m: Message) -> bool:
        sent.append(m.text)
        await slack_holds.wait()
        return True

    async def run() -> int:
        progress = ProgressEdits(send, every_s=0.0)

        def on_check(result: CheckResult, finished: int, count: int) -> None:
            progress.show(message(finished))

        diagnosis = diagnose(runbook, Scope(), EmptyPrometheus(), None, on_check)
        d = await asyncio.wait_for(diagnosis, 10)  # before the fix: held for ever
        # one edit left (the newest progress when it did) and is still held by Slack
        assert len(sent) == 1 and sent[0].endswith("checks done")
        slack_holds.set()
        await progress.aclose()
        return len(d.checks)

    assert asyncio.run(run()) == len(runbook.checks)


def test_an_operation_quicker_than_the_interval_sends_no_progress() -> None:
    sent: list[str] = []

    async def send(m: Message) -> bool:
        sent.append(m.text)
        return True

    async def run() -> None:
        progress = ProgressEdits(send, every_s=30)
        for n in range(5):
            progress.show(message(n))
            await asyncio.sleep(0)
        await progress.aclose()
        await asyncio.sleep(0.05)

    asyncio.run(run())
    assert sent == []


def test_while_an_edit_waits_newer_progress_replaces_older() -> None:
    sent: list[str] = []
    release = asyncio.Event()

    async def send(m: Message) -> bool:
        sent.append(m.text)
        await release.wait()
        return True

    async def run() -> None:
        progress = ProgressEdits(send, every_s=0.0)
        progress.show(message(1))
        await asyncio.sleep(0.01)  # edit 1 is on its way, held by Slack
        for n in (2, 3, 4):
            progress.show(message(n))
        release.set()
        await asyncio.sleep(0.05)
        await progress.aclose()

    asyncio.run(run())
    assert sent == ["1 checks done", "4 checks done"]


def test_edits_are_spaced_by_the_interval_and_stop_when_closed() -> None:
    sent: list[float] = []

    async def send(m: Message) -> bool:
        sent.append(asyncio.get_running_loop().time())
        return True

    async def run() -> None:
        progress = ProgressEdits(send, every_s=0.05)
        start = asyncio.get_running_loop().time()
        for n in range(30):
            progress.show(message(n))
            await asyncio.sleep(0.01)
        await progress.aclose()
        closed = len(sent)
        await asyncio.sleep(0.15)
        assert len(sent) == closed  # nothing after close
        assert sent and sent[0] - start >= 0.049  # none in the first interval
        gaps = [b - a for a, b in itertools.pairwise(sent)]
        assert all(g >= 0.049 for g in gaps), gaps

    asyncio.run(run())


class SpentEditBudget:
    """An outbox whose progress edits wait until Slack's edit budget refills (``refill``,
    set once the diagnosis is done), and whose other writes go through; ``events`` says
    in which order things happened."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.refill = asyncio.Event()

    async def post(self, channel: str, message: Message, thread_ts: str | None, key: str) -> str:
        return "1700000000.000100"

    async def update(self, channel: str, ts: str, message: Message) -> bool:
        if message.text.endswith("checks done"):
            await self.refill.wait()
            self.events.append("progress edited")
        else:
            self.events.append("final content")
        return True

    async def upload_png(self, *args: object) -> bool:
        return True


def test_a_diagnosis_in_slack_reports_while_its_progress_edits_are_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression for `diagnose_to_slack`, which awaited each progress edit."""
    from types import SimpleNamespace

    from bot.diagnosis.engine import DiagnosisOptions
    from bot.slack import live

    async def checks_one_by_one(
        runbook: Any, scope: Scope, metrics: Any, options: Any, on_check: Any
    ) -> Any:
        """The real diagnosis, its checks reported half a second apart: progress is due
        while some are still to come."""

        async def reported(result: CheckResult, finished: int, count: int) -> None:
            outcome = on_check(result, finished, count)
            if inspect.isawaitable(outcome):
                await outcome
            await asyncio.sleep(0.5)

        d = await diagnose(runbook, scope, metrics, options, reported)
        events.append("diagnosed")
        outbox.refill.set()
        return d

    monkeypatch.setattr(live, "diagnose", checks_one_by_one)

    events: list[str] = []
    outbox = SpentEditBudget(events)

    done = SimpleNamespace(observe=lambda _: None)
    seconds = SimpleNamespace(labels=lambda *_: done)
    svc: Any = SimpleNamespace(
        metrics_for=lambda cluster: EmptyPrometheus(),
        outbox=outbox,
        options=DiagnosisOptions(),
        metrics=SimpleNamespace(diagnosis_seconds=seconds),
        settings=SimpleNamespace(thresholds={}),
    )
    runbook = load_runbooks()["high_latency"]

    async def run() -> None:
        await asyncio.wait_for(live.diagnose_to_slack(svc, "C1", runbook, Scope()), 20)

    asyncio.run(run())
    # before the fix the checks waited for their progress edit, and it for them: held
    assert events == ["diagnosed", "progress edited", "final content"]


def test_the_final_content_is_written_after_an_edit_on_its_way() -> None:
    """Regression: closing did not wait for an edit already sent off; recorded after the
    final content, it left the message showing progress."""
    written: list[str] = []

    async def send(m: Message) -> bool:
        await asyncio.sleep(0.05)  # recording it takes a database round trip
        written.append(m.text)
        return True

    async def run() -> None:
        progress = ProgressEdits(send, every_s=0.0)
        progress.show(message(3))
        await asyncio.sleep(0.01)  # the edit is on its way
        await progress.aclose()
        written.append("final")

    asyncio.run(run())
    assert written == ["3 checks done", "final"]


def test_closing_drops_an_edit_still_waiting_for_its_turn() -> None:
    written: list[str] = []

    async def send(m: Message) -> bool:
        written.append(m.text)
        return True

    async def run() -> None:
        progress = ProgressEdits(send, every_s=30)
        progress.show(message(1))
        await asyncio.wait_for(progress.aclose(), 1)  # does not sit out the interval
        await asyncio.sleep(0.01)

    asyncio.run(run())
    assert written == []

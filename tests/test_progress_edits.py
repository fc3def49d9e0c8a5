"""Progress edits run beside the work they report on and never hold it up."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

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


def message(n: int) -> Message:
    return Message(text=f"{n} checks done", blocks=[])


def test_a_diagnosis_finishes_while_its_progress_edit_waits_for_slack() -> None:
    """Regression: each finished check awaited its progress edit, and an edit waits for
    Slack's edit budget; a diagnosis of 0.1 s took 6 to 17 s in an alert storm."""
    runbook = load_runbooks()["high_latency"]
    sent: list[str] = []
    slack_holds = asyncio.Event()  # never set: the edit budget is spent

    async def send(m: Message) -> bool:
        sent.append(m.text)
        await slack_holds.wait()
        return True

    async def run() -> int:
        progress = ProgressEdits(send, every_s=0.0)

        def on_check(result: CheckResult, finished: int, count: int) -> None:
            progress.show(message(finished))

        d = await asyncio.wait_for(
            diagnose(runbook, Scope(), EmptyPrometheus(), None, on_check), 10
        )
        progress.close()
        return len(d.checks)

    assert asyncio.run(run()) == len(runbook.checks)
    # one edit left (the newest progress when it did) and is still held by Slack
    assert len(sent) == 1 and sent[0].endswith("checks done")


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
        progress.close()
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
        progress.close()

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
        progress.close()
        closed = len(sent)
        await asyncio.sleep(0.15)
        assert len(sent) == closed  # nothing after close
        assert sent and sent[0] - start >= 0.049  # none in the first interval
        gaps = [b - a for a, b in itertools.pairwise(sent)]
        assert all(g >= 0.049 for g in gaps), gaps

    asyncio.run(run())


class SpentEditBudget:
    """An outbox whose progress edits wait for ever (Slack's edit budget is spent) and
    whose other writes go through: a diagnosis that waits for its progress never ends."""

    def __init__(self) -> None:
        self.final: list[str] = []

    async def post(self, channel: str, message: Message, thread_ts: str | None, key: str) -> str:
        return "1700000000.000100"

    async def update(self, channel: str, ts: str, message: Message) -> bool:
        if message.text.endswith("checks done"):
            await asyncio.Event().wait()
        self.final.append(message.text)
        return True

    async def upload_png(self, *args: object) -> bool:
        return True


def test_a_diagnosis_in_slack_reports_while_its_progress_edits_are_held() -> None:
    """Regression for `diagnose_to_slack`, which awaited each progress edit."""
    from types import SimpleNamespace

    from bot.diagnosis.engine import DiagnosisOptions
    from bot.slack.live import diagnose_to_slack

    outbox = SpentEditBudget()
    seconds = SimpleNamespace(labels=lambda *_: SimpleNamespace(observe=lambda _: None))
    svc: Any = SimpleNamespace(
        metrics_for=lambda cluster: SlowEmptyPrometheus(),
        outbox=outbox,
        options=DiagnosisOptions(),
        metrics=SimpleNamespace(diagnosis_seconds=seconds),
        settings=SimpleNamespace(thresholds={}),
    )
    runbook = load_runbooks()["high_latency"]

    async def run() -> None:
        await asyncio.wait_for(diagnose_to_slack(svc, "C1", runbook, Scope()), 10)

    asyncio.run(run())
    assert len(outbox.final) == 1 and not outbox.final[0].endswith("checks done")


class SlowEmptyPrometheus(EmptyPrometheus):
    """Slow enough that progress is due before the last check: 1.2 s a query."""

    async def query(self, promql: str) -> list[Sample]:
        await asyncio.sleep(1.2)
        return []

    async def query_range(self, promql: str, seconds: float = 3600) -> list[Any]:
        return []

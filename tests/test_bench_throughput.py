"""The bench section "Throughput and memory" runs end to end in quick mode: alert intake
on SQLite (and on the real PostgreSQL, leaving nothing there), then a short memory soak;
an accepted alert the store does not hold is reported lost."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import POSTGRES_URL, _postgres_available
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.bench import throughput
from bot.bench.intake_load import IntakeResult, Pushed, stored
from bot.bench.memory_soak import (
    INCIDENTS_RENEWED_EVERY,
    KEPT_FIRING,
    OPEN_INCIDENTS,
    Traffic,
)
from bot.bench.options import BenchOptions
from bot.bench.report import Figure, Section
from bot.bench.scratch_schema import PREFIX, scratch_schema
from bot.store import Store

SOAK_S = 6.0


def figure(section: Section, name: str) -> Figure:
    (found,) = [f for f in section.figures if f.name == name]
    return found


def alerts_per_s(f: Figure) -> float:
    return float(f.value.split()[0].replace(",", ""))


def assert_intake(section: Section, store: str, notifications: int) -> None:
    rate = figure(section, f"alert intake, {store}")
    assert alerts_per_s(rate) > 0 and rate.ratio is not None and rate.ratio > 0
    answer = figure(section, f"webhook answer, {store}")
    assert answer.timing is not None and answer.timing.n == notifications
    assert 0 < answer.timing.median <= answer.timing.p99
    assert answer.versus.startswith("one sender at a time: ") and answer.ratio is not None
    posts = figure(section, f"alert posts, {store}")
    assert posts.met is True, posts.value  # one post per incident, however many alerts
    lost = figure(section, f"alerts lost, {store}")
    assert lost.met is True and lost.value.startswith("0 of "), lost.value


def assert_soak(section: Section) -> None:
    (growth,) = [f for f in section.figures if f.name.startswith("RSS growth")]
    assert growth.met is not None and growth.ratio is not None and growth.ratio > 0
    assert "samples after" in growth.versus
    samples = int(growth.versus.split("(")[1].split()[0])
    assert samples >= 3  # one a second after a warm-up of a sixth of the soak
    baseline = figure(section, "RSS after warm-up")
    assert baseline.value.endswith(" MiB") and float(baseline.value.split()[0]) > 10


def schema_exists(name: str) -> bool:
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM pg_namespace WHERE nspname = :n")
            return bool(conn.scalar(query, {"n": name}))
    finally:
        engine.dispose()


def test_intake_on_sqlite_and_the_soak_without_postgres(tmp_path: Path) -> None:
    options = BenchOptions.quick_run(tmp_path, soak_s=SOAK_S)
    section = throughput.run(options, lambda _: None)
    notifications = throughput.plan(options).notifications
    assert_intake(section, "SQLite", notifications)
    assert figure(section, "alert intake, SQLite").versus.startswith("one sender at a time: ")
    assert not any("PostgreSQL" in f.name for f in section.figures)
    assert any("--postgres URL" in note for note in section.notes)
    assert_soak(section)
    samples = (tmp_path / "soak" / "rss.tsv").read_text().splitlines()
    assert len(samples) > 3 and samples[0] == "seconds\tkib"


def test_intake_on_postgres_is_compared_with_sqlite_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _postgres_available():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL not reachable at {POSTGRES_URL}")
        pytest.skip("PostgreSQL not reachable")
    used: list[str] = []

    @contextmanager
    def watched(url: str) -> Iterator[str]:
        with scratch_schema(url) as scratch:
            schema = make_url(scratch).query["options"]
            used.append(str(schema).removeprefix("-csearch_path="))
            assert schema_exists(used[-1])
            yield scratch

    monkeypatch.setattr(throughput, "scratch_schema", watched)
    options = BenchOptions.quick_run(tmp_path, soak_s=SOAK_S, postgres_url=POSTGRES_URL)
    section = throughput.run(options, lambda _: None)
    notifications = throughput.plan(options).notifications
    assert_intake(section, "SQLite", notifications)
    assert_intake(section, "PostgreSQL", notifications)
    assert figure(section, "alert intake, PostgreSQL").versus.startswith("SQLite: ")
    assert not any("PostgreSQL" in note for note in section.notes)
    assert len(used) == 1 and used[0].startswith(PREFIX)
    assert not schema_exists(used[0])  # dropped, with the bot's tables in it


def test_an_accepted_alert_missing_from_the_store_is_counted_lost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    Store(url).open_post("g", "C1", None, [("fp-1", "A", ""), ("fp-2", "A", "")], {})
    assert stored(url, ["fp-1", "fp-2", "fp-3"]) == 2
    pushed = Pushed(latencies=[0.01, 0.02], accepted=["fp-1", "fp-2", "fp-3"], seconds=1.0)
    result = IntakeResult(pushed, pushed, accepted=3, stored=2, posts=1, busiest_second=1)
    *_, lost = throughput.intake_figures("SQLite", result, incidents=1)
    assert (lost.value, lost.met) == ("1 of 3 accepted", False)


def test_soak_traffic_keeps_incidents_bounded_and_resolves_retired_ones() -> None:
    traffic = Traffic()
    sent = [traffic.notifications(n) for n in range(INCIDENTS_RENEWED_EVERY)]
    assert all(len(second) == 1 for second in sent)
    last = sent[-1][0]["alerts"]
    assert sum(a["status"] == "firing" for a in last) == KEPT_FIRING
    renewed = traffic.notifications(INCIDENTS_RENEWED_EVERY)
    retired, new = renewed[:-1], renewed[-1]
    assert len(retired) == OPEN_INCIDENTS
    assert all(a["status"] == "resolved" for g in retired for a in g["alerts"])
    assert all(g["status"] == "resolved" for g in retired)
    assert new["status"] == "firing" and len(new["alerts"]) == 1

"""Watched canaries in the shared database (SQLite and the real PostgreSQL): one active
watch per Deployment and cluster, state that a second Store (a restart, another replica)
reads back whole, a stop that wins over a late save; the CLI and `/vllm canary … watch`
that start them; each phase's message as Block Kit Slack accepts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from fakes.slack import validate_blocks

from bot.canary.compare import Baseline, Comparison, Revision
from bot.canary.gates import Reading, judge, triggers
from bot.canary.watch import Step, WatchState
from bot.canary.watches import State, Watches
from bot.cli import main
from bot.config import CanaryGate, CanaryPhase, CanaryRollback
from bot.slack import ids
from bot.slack.canary_blocks import WatchView, watch_message
from bot.slack.slash import parse
from bot.store import Store

TARGET = "inference/llama"


def test_one_active_watch_per_target_and_state_survives_a_restart(database_url: str) -> None:
    book = Watches(Store(database_url))
    first, created = book.start(TARGET, "prod", "C1", "U1")
    assert created and first.state == "watching" and first.phase == 0
    again, created = book.start(TARGET, "prod", "C2", "U2")
    assert not created and again.id == first.id and again.channel == "C1"
    other, created = book.start(TARGET, "west", "C1", "U1")  # another cluster: its own
    assert created and other.id != first.id

    baseline = Baseline("llama-old", {"error_rate": 0.0005, "tpot_p99": 0.04}, 812.0)
    moved = first.moved_to(WatchState(phase=2, status="promotable", passing_since=1234.5))
    saved = replace(moved, message_ts="1.2", baseline=baseline)
    assert book.save(saved)

    reread = Watches(Store(database_url)).get(first.id)  # a new process on the same database
    assert reread is not None
    assert (reread.state, reread.phase, reread.passing_since) == ("promotable", 2, 1234.5)
    assert reread.message_ts == "1.2" and reread.baseline == baseline
    assert [w.id for w in Watches(Store(database_url)).active()] == [first.id, other.id]

    stopped = book.stop(first.id, "U9")
    assert stopped is not None and stopped.state == "stopped" and "U9" in stopped.summary
    assert book.stop(first.id, "U9") is None  # already ended
    assert not book.save(saved)  # a late evaluation does not bring it back
    assert book.get(first.id).state == "stopped"  # type: ignore[union-attr]
    fresh, created = book.start(TARGET, "prod", "C1", "U1")  # a new watch may start
    assert created and fresh.id not in (first.id, other.id)
    assert [w.id for w in book.recent()][:2] == [fresh.id, other.id]  # active first


def test_cli_records_lists_and_stops_watches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'bot.db'}"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"database_url": db}))
    base = ["--config", str(config), "canary"]
    assert main([*base, TARGET, "--watch"]) == 2  # no channel anywhere
    assert "--channel" in capsys.readouterr().err
    assert main([*base, TARGET, "--watch", "--channel", "C9", "--by", "ana"]) == 0
    assert "watch #1" in capsys.readouterr().out
    assert main([*base, TARGET, "--watch", "--channel", "C9", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["created"] is False and shown["id"] == 1 and shown["started_by"] == "ana"
    assert main([*base, "watches", "--format", "json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["state"] == "watching" and listed["phase"] == "canary"
    assert listed["traffic_percent"] == 5
    assert main([*base, "stop", "1", "--by", "ana"]) == 0
    assert main([*base, "stop", "1"]) == 1
    assert "no active canary watch #1" in capsys.readouterr().err
    assert main([*base, "stop", "one"]) == 2


def test_slash_canary_watch_parses() -> None:
    request = parse(f"canary {TARGET} watch cluster=west", [])
    assert (request.verb, request.target, request.params) == ("canary", TARGET, {"watch": True})
    assert request.scope.cluster == "west"
    assert parse(f"canary {TARGET}", []).params == {}


def _step(errors: float, state: str) -> tuple[Step, Comparison]:
    c = Comparison("inference", "llama", "10m", "pass")
    c.new, c.old = Revision("llama-new", 2.0, 1), Revision("llama-old", 1.0, 3)
    c.gates = [
        judge(CanaryGate(metric="error_rate", max=0.001), Reading(errors, 0.0, 600, 600)),
        judge(CanaryGate(metric="tpot_p99", max_ratio=1.1), Reading(0.02, 0.02, 600, 600)),
    ]
    c.triggers = triggers(CanaryRollback(), errors, 0.5, 0.02, 60, 60)
    reason = "error_rate 2.00 % above 1.00 %" if state == "rollback" else ""
    status = "promotable" if state == "promotable" else "watching"
    s = Step(WatchState(0, status), "progress", c.gates, 3600.0, 3600.0, reason)  # type: ignore[arg-type]
    return s, c


STATES: list[State] = ["watching", "promotable", "rollback", "stopped", "done"]


@pytest.mark.parametrize("state", STATES)
def test_each_phase_message_is_valid_block_kit(state: State, tmp_path: Path) -> None:
    book = Watches(Store(f"sqlite:///{tmp_path / 'b.db'}"))
    w, _ = book.start(TARGET, None, "C1", "U1")
    w = replace(w, state=state, request_id="req-1")
    s, c = _step(0.02 if state == "rollback" else 0.0, state)
    phase = CanaryPhase(name="canary", traffic_percent=5, duration="1h", gates=["error_rate"])
    following = CanaryPhase(name="half", traffic_percent=50, duration="30m", gates=["error_rate"])
    message = watch_message(WatchView(w, phase, 4, following, s, c, "req-1", "", "02:00:00"))
    assert validate_blocks(message.blocks) == []
    text = json.dumps(message.blocks)
    labels = [
        e["text"]["text"] for b in message.blocks for e in b.get("elements") or [] if "value" in e
    ]
    if state == "promotable":
        assert "ready to promote to *half* (50 % of traffic)" in text
        assert labels[0].startswith("Promote") and labels[-1] == "Stop watching"
    elif state == "rollback":
        assert "roll back now" in text and labels[0].startswith("Roll back")
    elif state == "watching":
        assert labels == ["Stop watching"]
    else:
        assert labels == []  # an ended watch offers nothing
    assert ids.CANARY_STOP_BUTTON in text or state in ("stopped", "done")

"""Audit log on SQLite and a real PostgreSQL: the hash chain catches every edit and deletion."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.commands.audit import cmd_export, cmd_list, cmd_verify
from bot.remediation.audit import (
    COLUMNS,
    GENESIS_HASH,
    AuditError,
    AuditLog,
    canonical_json,
    record_hash,
    verify_jsonl,
)


def fill(log: AuditLog, n: int = 5) -> None:
    events = ["requested", "approval_requested", "approved", "executed", "verified"]
    for i in range(n):
        log.append(
            events[i % len(events)],  # type: ignore[arg-type]
            request_id="req-1",
            actor_id=f"U{i}",
            actor_name=f"user{i}",
            kind="drain",
            target=f"node/gpu-node-{i % 2}",
            cluster="prod-us",
            namespace="",
            params={"grace_s": 30 + i, "reason": "XID 79"},
            plan=f"cordon and drain gpu-node-{i % 2}",
            outcome="ok" if i % 2 else "",
            origin={"channel": "C1", "message_ts": f"17000.{i}", "alert_fingerprint": "abc"},
        )


def disable_guards(log: AuditLog) -> None:
    """What a database superuser could do: switch the append-only triggers off."""
    with log.engine.begin() as conn:
        if log.engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER ALL"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))


def raw_update(log: AuditLog, seq: int, column: str, value: Any) -> None:
    with log.engine.begin() as conn:
        conn.execute(
            text(f"UPDATE audit_log SET {column} = :v WHERE seq = :s"), {"v": value, "s": seq}
        )


def raw_row(log: AuditLog, seq: int) -> dict[str, Any]:
    with log.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM audit_log WHERE seq = :s"), {"s": seq}).mappings()
        return dict(row.one())


def test_append_recent_and_chain(database_url: str) -> None:
    log = AuditLog(database_url)
    assert log.verify().ok and log.verify().checked == 0
    fill(log, 5)
    first, *_ = log.for_request("req-1")
    assert first.seq == 1 and first.prev_hash == GENESIS_HASH
    assert first.event == "requested" and first.actor_name == "user0"
    assert first.params == {"grace_s": 30, "reason": "XID 79"}
    assert first.origin["alert_fingerprint"] == "abc"
    assert first.at.tzinfo is not None
    recent = log.recent(3)
    assert [e.seq for e in recent] == [5, 4, 3]
    assert recent[0].prev_hash == recent[1].hash
    assert [e.seq for e in log.recent(10, target="node/gpu-node-1")] == [4, 2]
    for e in log.recent(10):
        assert e.hash == record_hash(e.record())
    result = log.verify()
    assert result.ok and result.checked == 5 and result.first_broken_seq is None
    assert log.count() == 5


def test_append_keeps_timestamp_and_unicode(database_url: str) -> None:
    log = AuditLog(database_url)
    at = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    e = log.append("denied", actor_name="Zoë", outcome="no grant — ask an admin", at=at)
    (back,) = log.recent(1)
    assert back == e and back.at == at
    assert log.verify().ok


def test_export_jsonl_round_trips_and_verifies_offline(database_url: str) -> None:
    log = AuditLog(database_url)
    fill(log, 4)
    out = io.StringIO()
    assert log.export_jsonl(out) == 4
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == [1, 2, 3, 4]
    assert set(records[0]) == set(COLUMNS)
    assert lines[0] == canonical_json(records[0])
    assert verify_jsonl(lines).ok
    records[2]["outcome"] = "forged"
    bad = verify_jsonl(canonical_json(r) for r in records)
    assert not bad.ok and bad.first_broken_seq == 3


def test_no_update_or_delete_through_the_database(database_url: str) -> None:
    log = AuditLog(database_url)
    fill(log, 2)
    with pytest.raises(DBAPIError, match="append-only"):
        raw_update(log, 1, "outcome", "forged")
    with pytest.raises(DBAPIError, match="append-only"), log.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    if log.engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), log.engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_log"))
    assert log.verify().ok and log.verify().checked == 2
    assert not hasattr(log, "update") and not hasattr(log, "delete")


def _tampered(column: str, value: Any) -> Any:
    if column == "seq":
        return value + 1000
    if column == "at":
        return "2020-01-01T00:00:00.000000Z"
    if column == "params":
        return canonical_json({"grace_s": 0, "reason": "XID 79"})
    if column == "origin":
        return canonical_json({"channel": "C-other"})
    if column in ("hash", "prev_hash"):
        return "f" * 64
    if column == "event":
        return "approved" if value != "approved" else "denied"
    return f"{value}x"


@pytest.mark.parametrize("column", COLUMNS)
def test_editing_any_column_of_any_row_is_caught_at_that_seq(
    database_url: str, column: str
) -> None:
    log = AuditLog(database_url)
    fill(log, 5)
    disable_guards(log)
    for seq in (1, 3, 5):
        original = raw_row(log, seq)[column]
        raw_update(log, seq, column, _tampered(column, original))
        result = log.verify()
        assert not result.ok, (column, seq)
        assert result.first_broken_seq == seq, (column, seq, result.reason)
        assert result.checked == seq - 1
        assert str(seq) in result.reason
        code, message = cmd_verify(database_url)
        assert code == 1 and f"BROKEN at record {seq}" in message
        disable_guards(log)  # a new AuditLog (a bot restart) re-installs SQLite's triggers
        # put it back: the chain is whole again
        if column == "seq":
            with log.engine.begin() as conn:
                conn.execute(
                    text("UPDATE audit_log SET seq = :s WHERE seq = :t"),
                    {"s": seq, "t": seq + 1000},
                )
        else:
            raw_update(log, seq, column, original)
        assert log.verify().ok, (column, seq)


def test_unparseable_json_column_is_caught(database_url: str) -> None:
    log = AuditLog(database_url)
    fill(log, 3)
    disable_guards(log)
    raw_update(log, 2, "params", "{not json")
    result = log.verify()
    assert not result.ok and result.first_broken_seq == 2
    with pytest.raises(AuditError, match="record 2 is unreadable"):
        log.recent(5)


@pytest.mark.parametrize("deleted", [3, 4])  # a middle row, the last-but-one row
def test_deleting_a_row_is_caught(database_url: str, deleted: int) -> None:
    log = AuditLog(database_url)
    fill(log, 5)
    disable_guards(log)
    with log.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": deleted})
    result = log.verify()
    assert not result.ok and result.first_broken_seq == deleted
    assert "missing" in result.reason and result.checked == deleted - 1


def test_deleting_and_renumbering_is_caught(database_url: str) -> None:
    log = AuditLog(database_url)
    fill(log, 5)
    disable_guards(log)
    with log.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
        for seq in (4, 5):
            conn.execute(
                text("UPDATE audit_log SET seq = :n WHERE seq = :s"), {"n": seq - 1, "s": seq}
            )
    result = log.verify()
    assert not result.ok and result.first_broken_seq == 3


def test_swapping_two_rows_is_caught(database_url: str) -> None:
    log = AuditLog(database_url)
    fill(log, 5)
    disable_guards(log)
    with log.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET seq = -2 WHERE seq = 2"))
        conn.execute(text("UPDATE audit_log SET seq = 2 WHERE seq = 3"))
        conn.execute(text("UPDATE audit_log SET seq = 3 WHERE seq = -2"))
    result = log.verify()
    assert not result.ok and result.first_broken_seq == 2


def test_deleting_the_newest_rows_needs_an_anchor(database_url: str) -> None:
    log = AuditLog(database_url)
    fill(log, 5)
    head = log.recent(1)[0]
    assert log.verify(anchor=(head.seq, head.hash)).ok
    disable_guards(log)
    with log.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 5"))
    assert log.verify().ok  # a shorter chain is consistent on its own
    result = log.verify(anchor=(head.seq, head.hash))
    assert not result.ok and result.first_broken_seq == 5 and "deleted" in result.reason


def test_concurrent_appends_from_two_replicas_make_one_chain(database_url: str) -> None:
    replicas = [AuditLog(database_url), AuditLog(database_url)]
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            barrier.wait()
            replicas[i % 2].append("requested", actor_id=f"U{i}", params={"i": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = replicas[0].verify()
    assert result.ok and result.checked == 20
    events = replicas[1].recent(50)
    assert sorted(e.seq for e in events) == list(range(1, 21))
    assert sorted(int(e.params["i"]) for e in events) == list(range(20))


def test_cli_commands(database_url: str) -> None:
    assert "empty" in cmd_list(database_url, 10, None)
    code, message = cmd_verify(database_url)
    assert code == 0 and "0 records" in message
    log = AuditLog(database_url)
    fill(log, 3)
    table = cmd_list(database_url, 2, None)
    assert "user2 (U2)" in table and "user1 (U1)" in table and "user0" not in table
    assert "node/gpu-node-0" in cmd_list(database_url, 10, "node/gpu-node-0")
    assert "user1" not in cmd_list(database_url, 10, "node/gpu-node-0")
    code, message = cmd_verify(database_url)
    assert code == 0 and "3 records" in message
    out = io.StringIO()
    assert cmd_export(database_url, out) == 0
    assert len(out.getvalue().splitlines()) == 3

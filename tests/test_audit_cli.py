"""`vllm-chatops audit list|verify|export` over a real database file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main
from bot.remediation.audit import AuditLog


def test_audit_commands_and_tamper_detection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "state.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    log = AuditLog(f"sqlite:///{db}")
    for i in range(3):
        log.append(
            "requested",
            request_id=f"r{i}",
            actor_id="U1",
            actor_name="alice",
            kind="scale",
            target="deployment/prod/vllm",
            cluster="prod",
            namespace="prod",
            params={"replicas": 4 + i},
            plan="scale 4 → 5",
            outcome="",
            origin={},
        )
    assert main(["audit", "verify"]) == 0
    assert "3 records" in capsys.readouterr().out
    assert main(["audit", "list", "2"]) == 0
    assert "deployment/prod/vllm" in capsys.readouterr().out
    out = tmp_path / "audit.jsonl"
    assert main(["audit", "export", "--format", "jsonl", "-o", str(out)]) == 0
    assert [json.loads(line)["request_id"] for line in out.read_text().splitlines()] == [
        "r0",
        "r1",
        "r2",
    ]
    with sqlite3.connect(db) as conn:  # what someone with file access could do
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("UPDATE audit_log SET params = '{\"replicas\": 40}' WHERE seq = 2")
    assert main(["audit", "verify"]) == 1
    assert "record 2" in capsys.readouterr().err

"""Audit log: append-only and tamper-evident (a hash chain), on SQLite or PostgreSQL.

Every request, decision, approval, execution and result is one record: who (Slack user id
and name), what (kind, target, cluster, namespace, parameters, plan), the outcome, when,
and where it came from (channel, message ts, alert fingerprint).

Tamper evidence: each record carries ``hash = sha256(canonical JSON of every other field,
including prev_hash)`` and ``prev_hash`` = the previous record's hash (64 zeros for the
first). ``verify()`` recomputes the chain and names the first record that does not fit:
an edited field (hash mismatch), a deleted record (a gap in ``seq``), a replaced or
reordered one (``prev_hash`` mismatch). Deleting only the *newest* records leaves a
consistent shorter chain; pass an ``anchor`` (a ``(seq, hash)`` you noted or exported
earlier) to ``verify`` to catch that too.

Appends are serialized so that two bot replicas never fork the chain: ``seq`` is the
primary key (a second writer of the same ``seq`` gets an IntegrityError and retries on the
new head), and on PostgreSQL each append additionally locks the table against other
writers (readers are not blocked).

There is no update or delete API. As extra defence the table gets triggers that refuse
UPDATE and DELETE (and TRUNCATE on PostgreSQL). A database superuser (or the table's
owner) can still drop or disable those triggers and edit rows — which ``verify()`` then
reports.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Integer, String, Text, create_engine, func, insert, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.store import schema_transaction

GENESIS_HASH = "0" * 64
TABLE = "audit_log"

AuditEventType = Literal[
    "requested",
    "denied",
    "approval_requested",
    "approved",
    "rejected",
    "executing",
    "executed",
    "failed",
    "verified",
    "expired",
    "cancelled",
    "attested",  # a person vouches for a readiness item (bot.readiness.attestations)
]

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(at: datetime) -> str:
    """The one text form of a timestamp that is hashed and stored (UTC, microseconds)."""
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the bytes that are hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of every field except ``hash``."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


class AuditError(Exception):
    """The audit log could not be written or read."""


class AuditEvent(BaseModel):
    """One audit record, as appended and as read back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=1)
    at: datetime
    event: AuditEventType
    request_id: str = ""
    actor_id: str = ""
    actor_name: str = ""
    kind: str = ""
    target: str = ""
    cluster: str = ""
    namespace: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    plan: str = ""
    outcome: str = ""
    origin: dict[str, str] = Field(
        default_factory=dict,
        description="Where it came from: channel, message_ts, alert_fingerprint, …",
    )
    prev_hash: str
    hash: str

    def record(self) -> dict[str, Any]:
        """The canonical (hashed) form: plain JSON types, timestamp as UTC text."""
        data = self.model_dump(mode="python")
        data["at"] = format_time(self.at)
        return data


class VerifyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str = ""


class _Base(DeclarativeBase):
    pass


class AuditRow(_Base):
    __tablename__ = TABLE

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(32), index=True)
    event: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str] = mapped_column(String(64), index=True, default="")
    actor_id: Mapped[str] = mapped_column(String(64), default="")
    actor_name: Mapped[str] = mapped_column(String(256), default="")
    kind: Mapped[str] = mapped_column(String(32), default="")
    target: Mapped[str] = mapped_column(String(512), index=True, default="")
    cluster: Mapped[str] = mapped_column(String(128), default="")
    namespace: Mapped[str] = mapped_column(String(256), default="")
    params: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON
    plan: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(Text, default="")
    origin: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


COLUMNS: tuple[str, ...] = tuple(c.name for c in AuditRow.__table__.columns)
_JSON_COLUMNS = ("params", "origin")

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {TABLE}_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: % refused', TG_OP;
END
$$ LANGUAGE plpgsql
"""
_PG_TRIGGERS = {
    f"{TABLE}_no_update_delete": (
        f"CREATE TRIGGER {TABLE}_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE} "
        f"FOR EACH ROW EXECUTE FUNCTION {TABLE}_append_only()"
    ),
    f"{TABLE}_no_truncate": (
        f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_append_only()"
    ),
}
_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE} "
    "BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE refused'); END",
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE} "
    "BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE refused'); END",
]


def _row_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row → its canonical record (JSON columns parsed). Raises ValueError."""
    record = {name: row[name] for name in COLUMNS}
    for name in _JSON_COLUMNS:
        try:
            record[name] = json.loads(record[name])
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{name} is not valid JSON") from exc
    return record


def verify_records(
    records: Iterable[Mapping[str, Any]], anchor: tuple[int, str] | None = None
) -> VerifyResult:
    """Check a chain of canonical records (seq order). Also used for exported JSONL."""
    expected_seq = 1
    expected_prev = GENESIS_HASH
    checked = 0
    anchor_seen = False
    for record in records:
        seq = record.get("seq")
        if not isinstance(seq, int) or seq != expected_seq:
            if isinstance(seq, int) and seq > expected_seq:
                missing = (
                    f"record {expected_seq} is missing"
                    if seq == expected_seq + 1
                    else f"records {expected_seq} to {seq - 1} are missing"
                )
                reason = f"{missing} (deleted?): record {seq} follows record {expected_seq - 1}"
            else:
                reason = f"unexpected seq {seq!r} where record {expected_seq} should be"
            return VerifyResult(
                ok=False, checked=checked, first_broken_seq=expected_seq, reason=reason
            )
        if record_hash(record) != record.get("hash"):
            return VerifyResult(
                ok=False,
                checked=checked,
                first_broken_seq=seq,
                reason=f"record {seq} was modified: its content does not match its hash",
            )
        if record.get("prev_hash") != expected_prev:
            return VerifyResult(
                ok=False,
                checked=checked,
                first_broken_seq=seq,
                reason=(
                    f"record {seq} does not follow record {seq - 1}: prev_hash mismatch "
                    "(a record was replaced, reordered or removed)"
                ),
            )
        if anchor is not None and seq == anchor[0]:
            anchor_seen = True
            if record["hash"] != anchor[1]:
                return VerifyResult(
                    ok=False,
                    checked=checked,
                    first_broken_seq=seq,
                    reason=f"record {seq} is not the one anchored (its hash changed)",
                )
        expected_prev = str(record["hash"])
        expected_seq += 1
        checked += 1
    if anchor is not None and not anchor_seen:
        return VerifyResult(
            ok=False,
            checked=checked,
            first_broken_seq=expected_seq,
            reason=(
                f"the log ends at record {expected_seq - 1} but record {anchor[0]} was "
                "anchored: newest records were deleted"
            ),
        )
    return VerifyResult(ok=True, checked=checked)


class AuditLog:
    """Append-only audit records in ``audit_log`` (created when missing)."""

    def __init__(self, database: str | Engine, *, max_attempts: int = 200) -> None:
        if isinstance(database, Engine):
            self.engine = database
        else:
            connect_args = {"check_same_thread": False} if database.startswith("sqlite") else {}
            self.engine = create_engine(database, connect_args=connect_args, pool_pre_ping=True)
        self.max_attempts = max_attempts
        self._postgres = self.engine.dialect.name == "postgresql"
        with schema_transaction(self.engine) as conn:
            _Base.metadata.create_all(conn)
            self._install_triggers(conn)

    def _install_triggers(self, conn: Connection) -> None:
        if self.engine.dialect.name == "sqlite":
            for ddl in _SQLITE_TRIGGERS:
                conn.execute(text(ddl))
        elif self._postgres:
            existing = set(
                conn.scalars(
                    text("SELECT tgname FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass)"),
                    {"t": TABLE},
                )
            )
            if set(_PG_TRIGGERS) <= existing:
                return
            conn.execute(text(_PG_FUNCTION))
            for name, ddl in _PG_TRIGGERS.items():
                if name not in existing:
                    conn.execute(text(ddl))

    # --- writing ---------------------------------------------------------------------------

    def append(
        self,
        event: AuditEventType,
        *,
        request_id: str = "",
        actor_id: str = "",
        actor_name: str = "",
        kind: str = "",
        target: str = "",
        cluster: str = "",
        namespace: str = "",
        params: Mapping[str, Any] | None = None,
        plan: str = "",
        outcome: str = "",
        origin: Mapping[str, str] | None = None,
        at: datetime | None = None,
    ) -> AuditEvent:
        """Append one record at the head of the chain; safe across threads and replicas."""
        when = at or datetime.now(UTC)
        fields: dict[str, Any] = {
            "at": format_time(when),
            "event": event,
            "request_id": request_id,
            "actor_id": actor_id,
            "actor_name": actor_name,
            "kind": kind,
            "target": target,
            "cluster": cluster,
            "namespace": namespace,
            # round-trip through JSON so the hashed form is exactly what is read back
            "params": json.loads(canonical_json(dict(params or {}))),
            "plan": plan,
            "outcome": outcome,
            "origin": json.loads(canonical_json(dict(origin or {}))),
        }
        AuditEvent.model_validate({**fields, "seq": 1, "prev_hash": "", "hash": ""})
        last_error: Exception | None = None
        for attempt in range(self.max_attempts):
            try:
                with self.engine.begin() as conn:
                    record = self._append_in(conn, fields)
                return AuditEvent.model_validate(record)
            except IntegrityError as exc:  # another writer took this seq: retry on new head
                last_error = exc
            except OperationalError as exc:  # SQLite "database is locked"
                if "locked" not in str(exc).lower():
                    raise AuditError(f"audit log not writable: {exc}") from exc
                last_error = exc
            time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise AuditError(
            f"audit log append failed after {self.max_attempts} attempts: {last_error}"
        )

    def _append_in(self, conn: Connection, fields: dict[str, Any]) -> dict[str, Any]:
        if self._postgres:
            # serialize writers (readers are not blocked); self-conflicting lock mode
            conn.execute(text(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE"))
        head = conn.execute(
            select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)
        ).first()
        seq, prev_hash = (1, GENESIS_HASH) if head is None else (head[0] + 1, head[1])
        record = {"seq": seq, **fields, "prev_hash": prev_hash}
        record["hash"] = record_hash(record)
        row = dict(record)
        for name in _JSON_COLUMNS:
            row[name] = canonical_json(row[name])
        conn.execute(insert(AuditRow).values(**row))
        return record

    # --- reading ---------------------------------------------------------------------------

    def _events(self, conn: Connection, stmt: Any) -> list[AuditEvent]:
        events = []
        for row in conn.execute(stmt).mappings():
            try:
                record = _row_record(dict(row))
                record["at"] = parse_time(record["at"])
                events.append(AuditEvent.model_validate(record))
            except ValueError as exc:  # includes pydantic's ValidationError
                raise AuditError(
                    f"audit record {row['seq']} is unreadable ({exc}); run `audit verify`"
                ) from exc
        return events

    def recent(self, n: int = 20, target: str | None = None) -> list[AuditEvent]:
        """The newest ``n`` records (newest first), optionally only for one target."""
        stmt = select(AuditRow.__table__).order_by(AuditRow.seq.desc()).limit(n)
        if target is not None:
            stmt = stmt.where(AuditRow.target == target)
        with self.engine.connect() as conn:
            return self._events(conn, stmt)

    def of_kind(self, kind: str, since: datetime | None = None) -> list[AuditEvent]:
        """Every record of one kind (oldest first), optionally only from ``since`` on."""
        stmt = select(AuditRow.__table__).where(AuditRow.kind == kind).order_by(AuditRow.seq)
        if since is not None:  # the stored text form sorts as the time does
            stmt = stmt.where(AuditRow.at >= format_time(since))
        with self.engine.connect() as conn:
            return self._events(conn, stmt)

    def for_request(self, request_id: str) -> list[AuditEvent]:
        """Every record of one action request, oldest first."""
        stmt = (
            select(AuditRow.__table__)
            .where(AuditRow.request_id == request_id)
            .order_by(AuditRow.seq)
        )
        with self.engine.connect() as conn:
            return self._events(conn, stmt)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(AuditRow)) or 0)

    def _records(self, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every stored row in seq order, as raw records (unparsed JSON left as is)."""
        after = 0
        while True:
            with self.engine.connect() as conn:
                rows = list(
                    conn.execute(
                        select(AuditRow.__table__)
                        .where(AuditRow.seq > after)
                        .order_by(AuditRow.seq)
                        .limit(batch)
                    ).mappings()
                )
            if not rows:
                return
            for row in rows:
                yield {name: row[name] for name in COLUMNS}
            after = rows[-1]["seq"]

    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyResult:
        """Recompute the whole chain; the first record that does not fit, and why."""

        def parsed() -> Iterator[dict[str, Any]]:
            for raw in self._records():
                try:
                    yield _row_record(raw)
                except ValueError:
                    # an unparseable JSON column cannot have been written by append()
                    yield {**raw, "hash": None}

        return verify_records(parsed(), anchor)

    def export_jsonl(self, stream: IO[str]) -> int:
        """Every record, oldest first, one canonical JSON object per line; the count."""
        n = 0
        for raw in self._records():
            try:
                record = _row_record(raw)
            except ValueError:
                record = dict(raw)  # exported as stored: verification of the copy fails too
            stream.write(canonical_json(record) + "\n")
            n += 1
        return n


def verify_jsonl(lines: Iterable[str], anchor: tuple[int, str] | None = None) -> VerifyResult:
    """Verify an exported copy (``export_jsonl`` output) without the database."""

    def records() -> Iterator[dict[str, Any]]:
        for line in lines:
            if line.strip():
                yield json.loads(line)

    return verify_records(records(), anchor)

"""The durable record of Slack writes (the outbox's memory), on the shared database.

A write is recorded before it is sent and marked when Slack answers, so a Slack outage or
a dead replica loses nothing: whatever is still pending is sent later, by any replica.
``key`` makes the record idempotent: a post recorded twice is one post; an update slot
(one per message) keeps only the newest content (last write wins).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.store import OutgoingMessage, Store, utcnow


@dataclass(frozen=True)
class Entry:
    id: int
    key: str
    method: str
    channel: str
    params: dict[str, Any]
    revision: int
    state: str
    attempts: int
    ts: str | None
    created_at: datetime


def _entry(row: OutgoingMessage) -> Entry:
    return Entry(
        row.id,
        row.key,
        row.method,
        row.channel,
        json.loads(row.params),
        row.revision,
        row.state,
        row.attempts,
        row.ts,
        # SQLite hands back naive datetimes: they are UTC, as written
        row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC),
    )


class Ledger:
    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, key: str, method: str, channel: str, params: dict[str, Any]) -> Entry:
        """Record a write; a post already sent under ``key`` is returned as it is, anything
        else under ``key`` takes the new content and becomes pending again."""
        for _ in range(2):  # a racing insert of the same key: read it back and go on
            try:
                with self.store.session() as s, s.begin():
                    row = s.scalars(
                        select(OutgoingMessage).where(OutgoingMessage.key == key)
                    ).first()
                    if row is None:
                        row = OutgoingMessage(
                            key=key, method=method, channel=channel, params=json.dumps(params)
                        )
                        s.add(row)
                        s.flush()
                    elif not (row.state == "sent" and method == "chat.postMessage"):
                        row.params = json.dumps(params)
                        row.revision += 1
                        row.state = "pending"
                        row.not_before = utcnow()
                        row.error = None
                    return _entry(row)
            except IntegrityError:
                continue
        raise RuntimeError(f"cannot record Slack write {key!r}")

    def take(self, entry_id: int, lease: timedelta) -> Entry | None:
        """Lease a pending write for sending (one sender at a time, across replicas)."""
        now = utcnow()
        with self.store.session() as s, s.begin():
            taken = s.execute(
                update(OutgoingMessage)
                .where(
                    OutgoingMessage.id == entry_id,
                    OutgoingMessage.state == "pending",
                    or_(OutgoingMessage.lease_until.is_(None), OutgoingMessage.lease_until < now),
                )
                .values(lease_until=now + lease, attempts=OutgoingMessage.attempts + 1)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                return None
            row = s.get(OutgoingMessage, entry_id)
            return None if row is None else _entry(row)

    def get(self, entry_id: int) -> Entry | None:
        with self.store.session() as s:
            row = s.get(OutgoingMessage, entry_id)
            return None if row is None else _entry(row)

    def sent(self, entry: Entry, ts: str | None) -> None:
        """Slack took ``entry``; newer content recorded meanwhile stays pending."""
        with self.store.session() as s, s.begin():
            row = s.get(OutgoingMessage, entry.id)
            if row is None:
                return
            row.ts = ts or row.ts
            row.lease_until = None
            if row.revision == entry.revision:
                row.state, row.sent_at, row.error = "sent", utcnow(), None

    def retry(self, entry: Entry, at: datetime, error: str) -> None:
        with self.store.session() as s, s.begin():
            s.execute(
                update(OutgoingMessage)
                .where(OutgoingMessage.id == entry.id, OutgoingMessage.state == "pending")
                .values(lease_until=None, not_before=at, error=error[:255])
            )

    def failed(self, entry: Entry, error: str) -> None:
        """A permanent refusal (bad channel, invalid blocks …): kept, with why, not retried."""
        with self.store.session() as s, s.begin():
            s.execute(
                update(OutgoingMessage)
                .where(OutgoingMessage.id == entry.id, OutgoingMessage.revision == entry.revision)
                .values(state="failed", lease_until=None, error=error[:255])
            )

    def due(self, limit: int = 100) -> list[Entry]:
        """Pending writes whose time has come and whose sender (if any) let go or died."""
        now = utcnow()
        with self.store.session() as s:
            rows = s.scalars(
                select(OutgoingMessage)
                .where(
                    OutgoingMessage.state == "pending",
                    OutgoingMessage.not_before <= now,
                    or_(OutgoingMessage.lease_until.is_(None), OutgoingMessage.lease_until < now),
                )
                .order_by(OutgoingMessage.id)
                .limit(limit)
            )
            return [_entry(r) for r in rows]

    def backlog(self) -> tuple[int, float]:
        """Pending writes and the age in seconds of the oldest (0 when none)."""
        with self.store.session() as s:
            count, oldest = s.execute(
                select(func.count(), func.min(OutgoingMessage.created_at)).where(
                    OutgoingMessage.state == "pending"
                )
            ).one()
        if not count or oldest is None:
            return 0, 0.0
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        return int(count), max(0.0, (utcnow() - oldest).total_seconds())

    def prune(self, older_than: timedelta) -> int:
        """Forget writes settled long ago (sent or given up)."""
        with self.store.session() as s, s.begin():
            result = s.execute(
                delete(OutgoingMessage).where(
                    OutgoingMessage.state != "pending",
                    OutgoingMessage.created_at < utcnow() - older_than,
                )
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

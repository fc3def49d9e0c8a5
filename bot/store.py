"""Persistent state (SQLAlchemy): alert posts and their alerts, action requests.

SQLite by default, PostgreSQL when several bot replicas share state. Uniqueness lives in
the database (primary keys), so two replicas receiving the same alert cannot both post it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    create_engine,
    delete,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class AlertPost(Base):
    """One Slack message for a group of alerts, open until every alert in it resolved."""

    __tablename__ = "alert_posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_key: Mapped[str] = mapped_column(String(512), index=True)
    runbook: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    ts: Mapped[str | None] = mapped_column(String(32))  # None until Slack accepted the post
    status: Mapped[str] = mapped_column(String(16), default="firing")  # firing | resolved
    payload: Mapped[str] = mapped_column(Text)  # the webhook body that opened it (JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the replica that claimed it posts it until then; after that, any replica may
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AlertState(Base):
    """One alert (Alertmanager fingerprint) while it is open; the key that deduplicates."""

    __tablename__ = "alert_states"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("alert_posts.id"))
    alertname: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="firing")
    starts_at: Mapped[str] = mapped_column(String(64))


class ActionRequest(Base):
    """A recommended action offered on a message; buttons carry only this opaque id."""

    __tablename__ = "action_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(512))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    runbook: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(64))
    cluster: Mapped[str | None] = mapped_column(String(64))
    scope: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # the diagnosis' scope
    origin: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # message / alert
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # offered → (awaiting_approval →) executing → done | failed; or expired
    state: Mapped[str] = mapped_column(String(24), default="offered")
    requested_by: Mapped[str | None] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(Text)
    # a verification re-check is due at this time (None: none pending, or claimed)
    verify_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verify_ref: Mapped[str | None] = mapped_column(String(128))  # where the result was shown
    approval_ref: Mapped[str | None] = mapped_column(String(128))  # where approval was asked


class SeenRequest(Base):
    """A signed Slack request already served: the same signature again is a replay."""

    __tablename__ = "seen_requests"

    signature: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TargetLock(Base):
    """One action at a time per target (a deployment, a node), across bot replicas."""

    __tablename__ = "target_locks"

    target: Mapped[str] = mapped_column(String(512), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Any constant: the PostgreSQL advisory lock every replica takes to create or migrate.
SCHEMA_LOCK_KEY = 7_660_101


@contextmanager
def schema_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction for schema work, one replica at a time.

    On PostgreSQL an advisory lock held until commit serialises replicas starting at the
    same moment (DDL is transactional there, so the second sees the first's tables).
    """
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        yield conn


def add_missing_columns(conn: Connection, metadata: MetaData) -> list[str]:
    """Additive schema migration: columns a newer release added to existing tables.

    Tables are created by ``create_all``; a column added later is created here (nullable,
    so old rows stay valid). Nothing is ever dropped or altered.
    """
    added: list[str] = []
    inspector = inspect(conn)
    existing_tables = set(inspector.get_table_names())
    for table in metadata.sorted_tables:
        if table.name not in existing_tables:
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
            added.append(f"{table.name}.{column.name}")
    return added


@dataclass(frozen=True)
class OpenedPost:
    post_id: int
    fingerprints: list[str]


class Store:
    def __init__(self, database_url: str) -> None:
        connect_args = {"check_same_thread": False} if database_url.startswith("sqlite") else {}
        self.engine: Engine = create_engine(
            database_url, connect_args=connect_args, pool_pre_ping=True
        )
        with schema_transaction(self.engine) as conn:
            Base.metadata.create_all(conn)
            add_missing_columns(conn, Base.metadata)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._session()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    # --- alerts --------------------------------------------------------------------------

    def open_post(
        self,
        group_key: str,
        channel: str,
        runbook: str | None,
        alerts: list[tuple[str, str, str]],
        payload: dict[str, Any],
        lease: timedelta = timedelta(seconds=30),
    ) -> OpenedPost | None:
        """Claim the not-yet-open alerts ``(fingerprint, alertname, starts_at)`` for a new post.

        Returns None when every alert is already open on a post (nothing new to say).
        Claims race safely between replicas: a fingerprint belongs to one post only.
        """
        try:
            with self.session() as s, s.begin():
                known = set(
                    s.scalars(
                        select(AlertState.fingerprint).where(
                            AlertState.fingerprint.in_([a[0] for a in alerts])
                        )
                    )
                )
                fresh = [a for a in alerts if a[0] not in known]
                if not fresh:
                    return None
                post = AlertPost(
                    group_key=group_key,
                    runbook=runbook,
                    channel=channel,
                    payload=json.dumps(payload),
                    lease_until=utcnow() + lease,
                )
                s.add(post)
                s.flush()
                for fingerprint, alertname, starts_at in fresh:
                    s.add(
                        AlertState(
                            fingerprint=fingerprint,
                            post_id=post.id,
                            alertname=alertname,
                            starts_at=starts_at,
                        )
                    )
                s.flush()
                return OpenedPost(post.id, [a[0] for a in fresh])
        except IntegrityError:
            return None  # another replica claimed these alerts first; it posts them

    def set_post_ts(self, post_id: int, ts: str) -> None:
        with self.session() as s, s.begin():
            post = s.get(AlertPost, post_id)
            if post is not None:
                post.ts = ts

    def post(self, post_id: int) -> AlertPost | None:
        with self.session() as s:
            return s.get(AlertPost, post_id)

    def unposted(self) -> list[AlertPost]:
        """Posts claimed but never accepted by Slack (crash, outage): to post again."""
        with self.session() as s:
            return list(s.scalars(select(AlertPost).where(AlertPost.ts.is_(None))))

    def claim_unposted(self, lease: timedelta = timedelta(seconds=30)) -> list[AlertPost]:
        """Take the unposted posts whose lease ran out (their replica died, or Slack refused),
        each by one replica: a conditional update per row renews the lease for the taker."""
        now = utcnow()
        open_lease = or_(AlertPost.lease_until.is_(None), AlertPost.lease_until < now)
        claimed: list[AlertPost] = []
        for post in self.unposted():
            with self.session() as s, s.begin():
                result = s.execute(
                    update(AlertPost)
                    .where(AlertPost.id == post.id, AlertPost.ts.is_(None), open_lease)
                    .values(lease_until=now + lease)
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    claimed.append(post)
        return claimed

    def retry_post_at(self, post_id: int, at: datetime) -> None:
        """Slack did not take it: let any replica try again from ``at``."""
        with self.session() as s, s.begin():
            s.execute(update(AlertPost).where(AlertPost.id == post_id).values(lease_until=at))

    def resolve(self, fingerprints: list[str]) -> list[AlertPost]:
        """Close these alerts; return the posts whose every alert is now resolved."""
        closed: list[AlertPost] = []
        with self.session() as s, s.begin():
            states = list(
                s.scalars(select(AlertState).where(AlertState.fingerprint.in_(fingerprints)))
            )
            post_ids = {st.post_id for st in states}
            for st in states:
                s.delete(st)
            s.flush()
            for post_id in post_ids:
                remaining = s.scalar(
                    select(AlertState.fingerprint).where(AlertState.post_id == post_id).limit(1)
                )
                post = s.get(AlertPost, post_id)
                if remaining is None and post is not None and post.status != "resolved":
                    post.status = "resolved"
                    post.resolved_at = utcnow()
                    closed.append(post)
        return closed

    # --- action requests -----------------------------------------------------------------

    def create_action_request(
        self,
        *,
        kind: str,
        target: str,
        params: dict[str, Any],
        reason: str,
        runbook: str,
        channel: str | None,
        ttl: timedelta,
        cluster: str | None = None,
        scope: dict[str, str] | None = None,
        origin: dict[str, Any] | None = None,
    ) -> str:
        request_id = secrets.token_urlsafe(18)
        with self.session() as s, s.begin():
            s.add(
                ActionRequest(
                    id=request_id,
                    kind=kind,
                    target=target,
                    params=params,
                    reason=reason,
                    runbook=runbook,
                    channel=channel,
                    cluster=cluster,
                    scope=scope or {},
                    origin=origin or {},
                    expires_at=utcnow() + ttl,
                )
            )
        return request_id

    def action_request(self, request_id: str) -> ActionRequest | None:
        with self.session() as s:
            return s.get(ActionRequest, request_id)

    def transition(
        self, request_id: str, from_states: tuple[str, ...], to_state: str, **fields: Any
    ) -> bool:
        """Move a request between states atomically; False if another click got there first.

        A single conditional UPDATE: of any number of simultaneous clicks, on any number of
        bot replicas, exactly one sees a row change.
        """
        with self.session() as s, s.begin():
            result = s.execute(
                update(ActionRequest)
                .where(ActionRequest.id == request_id, ActionRequest.state.in_(from_states))
                .values(state=to_state, **fields)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def note(self, request_id: str, **fields: Any) -> None:
        """Record facts about a request that do not change its state (e.g. where it was shown)."""
        with self.session() as s, s.begin():
            s.execute(update(ActionRequest).where(ActionRequest.id == request_id).values(**fields))

    def lock_holder(self, target: str) -> TargetLock | None:
        with self.session() as s:
            return s.get(TargetLock, target)

    def lock_target(self, target: str, request_id: str) -> bool:
        try:
            with self.session() as s, s.begin():
                s.add(TargetLock(target=target, request_id=request_id))
            return True
        except IntegrityError:
            return False

    def unlock_target(self, target: str, request_id: str) -> None:
        with self.session() as s, s.begin():
            s.execute(
                delete(TargetLock).where(
                    TargetLock.target == target, TargetLock.request_id == request_id
                )
            )

    def expire_requests(self) -> list[str]:
        """Mark offered requests past their time as expired; the ids this call expired
        (each by one caller, however many replicas run this at once)."""
        now = utcnow()
        waiting = ("offered", "awaiting_approval")
        with self.session() as s:
            stale = list(
                s.scalars(
                    select(ActionRequest.id).where(
                        ActionRequest.state.in_(waiting), ActionRequest.expires_at < now
                    )
                )
            )
        return [
            request_id for request_id in stale if self.transition(request_id, waiting, "expired")
        ]

    # --- replay protection -----------------------------------------------------------------

    def first_sight(self, signature: str) -> bool:
        """Record a request signature; False when it was seen before (on any replica)."""
        try:
            with self.session() as s, s.begin():
                s.add(SeenRequest(signature=signature))
            return True
        except IntegrityError:
            return False

    def forget_seen(self, older_than: timedelta) -> int:
        """Drop signatures older than Slack's own freshness window: they cannot come back."""
        with self.session() as s, s.begin():
            result = s.execute(
                delete(SeenRequest).where(SeenRequest.seen_at < utcnow() - older_than)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    # --- verification re-checks -----------------------------------------------------------

    def schedule_verification(self, request_id: str, at: datetime, ref: str | None) -> None:
        """Persist a re-check (a restart of the bot does not forget it)."""
        with self.session() as s, s.begin():
            s.execute(
                update(ActionRequest)
                .where(ActionRequest.id == request_id)
                .values(verify_at=at, verify_ref=ref)
            )

    def claim_due_verifications(self, now: datetime | None = None) -> list[tuple[str, str | None]]:
        """Take the re-checks due by ``now``: ``(request id, ref)``, each handed to exactly one
        caller across bot replicas (a conditional UPDATE per row)."""
        now = now or utcnow()
        with self.session() as s:
            due = list(
                s.execute(
                    select(ActionRequest.id, ActionRequest.verify_ref).where(
                        ActionRequest.verify_at.is_not(None), ActionRequest.verify_at <= now
                    )
                )
            )
        claimed: list[tuple[str, str | None]] = []
        for request_id, ref in due:
            with self.session() as s, s.begin():
                result = s.execute(
                    update(ActionRequest)
                    .where(ActionRequest.id == request_id, ActionRequest.verify_at.is_not(None))
                    .values(verify_at=None)
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    claimed.append((request_id, ref))
        return claimed

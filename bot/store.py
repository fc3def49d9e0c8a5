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
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    and_,
    create_engine,
    delete,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.event import listen
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql import ColumnElement

import bot.incidents as incidents

GUARDED_TRIES = 5  # a conditional write of a post re-read this often when it changed meanwhile


def _as_read(post: AlertPost) -> tuple[ColumnElement[bool], ...]:
    """The post's row still as ``post`` read it: joins bump the version; a refresher's
    take and a put-back change only the digest."""
    return (
        AlertPost.id == post.id,
        AlertPost.version == post.version,
        AlertPost.digest.is_not_distinct_from(post.digest),
    )


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
    # An incident: later groups with the same runbook and scope join this post.
    incident_key: Mapped[str | None] = mapped_column(String(512), index=True)
    alerts_firing: Mapped[int | None] = mapped_column(Integer, default=0)
    alerts_resolved: Mapped[int | None] = mapped_column(Integer, default=0)
    # Bumped on every change; Slack shows ``shown_version``: the post needs an update
    # while they differ, paced by ``refresh_after`` (one replica, one update at a time).
    version: Mapped[int | None] = mapped_column(Integer, default=1)
    shown_version: Mapped[int | None] = mapped_column(Integer, default=0)
    refresh_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    digest: Mapped[str | None] = mapped_column(Text)  # JSON: alerts joined, not yet told


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


class OutgoingMessage(Base):
    """A Slack write, recorded before it is sent (see bot.ledger): nothing is lost when
    Slack is down or the bot dies mid-send, and ``key`` makes a re-send idempotent."""

    __tablename__ = "slack_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    method: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text)  # JSON of the Web API arguments
    revision: Mapped[int] = mapped_column(Integer, default=1)  # bumped by a newer content
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ts: Mapped[str | None] = mapped_column(String(32))  # what Slack answered
    error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


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


class Lease(Base):
    """Work only one replica may do at a time (the scheduler), held while renewed."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CanaryWatchRow(Base):
    """A canary watched phase by phase: where it stands, survived across restarts and run
    by the scheduler's one replica (:mod:`bot.canary.watches`)."""

    __tablename__ = "canary_watches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(320), index=True)  # NS/DEPLOYMENT
    cluster: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    started_by: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    phase: Mapped[int] = mapped_column(Integer)
    passing_since: Mapped[float | None] = mapped_column(Float)
    message_ts: Mapped[str | None] = mapped_column(String(32))  # the phase's message
    request_id: Mapped[str | None] = mapped_column(String(64))  # promote or rollback offered
    baseline: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


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


MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def migrate(conn: Connection) -> None:
    """Bring the schema to the newest version (Alembic, ``bot/migrations``), on ``conn``
    inside the caller's schema transaction: every replica may start at once."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


@dataclass(frozen=True)
class OpenedPost:
    post_id: int
    fingerprints: list[str]
    joined: bool = False  # the alerts joined an open incident's post (no new post)


class Store:
    def __init__(self, database_url: str) -> None:
        connect_args = {"check_same_thread": False} if database_url.startswith("sqlite") else {}
        self.engine: Engine = create_engine(
            database_url, connect_args=connect_args, pool_pre_ping=True
        )
        # A SQLite file in WAL mode: readers do not wait for the writer nor the writer for
        # them, and a commit appends to the log without syncing the database file
        # (synchronous=NORMAL: a power cut may lose the last commits, never consistency).
        # Not a database in memory: each connection has its own, with no file to share.
        url = self.engine.url
        database = url.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        if (
            url.get_backend_name() == "sqlite"
            and not in_memory
            and url.query.get("mode") != "memory"
        ):

            def _write_ahead_log(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                try:
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA synchronous=NORMAL")
                finally:
                    cursor.close()

            listen(self.engine, "connect", _write_ahead_log)
        with schema_transaction(self.engine) as conn:
            migrate(conn)
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
        incident: str | None = None,
        window: timedelta = timedelta(minutes=15),
    ) -> OpenedPost | None:
        """Claim the not-yet-open alerts ``(fingerprint, alertname, starts_at)``.

        They join the open post of the same group, or of the same ``incident`` (runbook
        and scope) opened within ``window``; else they open a new post. Returns None when
        every alert is already open (nothing new to say). Claims race safely between
        replicas: a fingerprint belongs to one post only.
        """
        try:
            with self.session() as s, s.begin():
                if self.engine.dialect.name == "postgresql":
                    # one claim per group and per incident at a time, across replicas
                    for key in sorted({group_key, incident or group_key}):
                        s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})
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
                same = AlertPost.group_key == group_key
                if incident is not None:
                    recent = AlertPost.created_at >= utcnow() - window
                    same = or_(same, and_(AlertPost.incident_key == incident, recent))
                post = s.scalars(
                    select(AlertPost)
                    .where(AlertPost.status == "firing", AlertPost.channel == channel, same)
                    .order_by(AlertPost.id)
                    .limit(1)
                ).first()
                fingerprints = {a[0] for a in fresh}
                if post is None:
                    post = AlertPost(
                        group_key=group_key,
                        runbook=runbook,
                        channel=channel,
                        payload=json.dumps(payload),
                        lease_until=utcnow() + lease,
                        incident_key=incident,
                        alerts_firing=len(fresh),
                        alerts_resolved=0,
                        version=1,
                        shown_version=0,
                    )
                    s.add(post)
                    s.flush()
                    joined = False
                else:
                    entries = incidents.digest_entries(payload, fingerprints)
                    for _ in range(GUARDED_TRIES):
                        joined_now = s.execute(
                            update(AlertPost)
                            .where(*_as_read(post))
                            .values(
                                payload=json.dumps(
                                    incidents.merge(json.loads(post.payload), payload)
                                ),
                                alerts_firing=(post.alerts_firing or 0) + len(fresh),
                                version=(post.version or 1) + 1,
                                digest=json.dumps(
                                    incidents.add_to_digest(
                                        incidents.digest_of(post.digest), entries
                                    )
                                ),
                            )
                            .execution_options(synchronize_session=False)
                        )
                        if joined_now.rowcount:  # type: ignore[attr-defined]
                            break
                        s.refresh(post)  # a refresher took its digest meanwhile: read again
                    else:
                        raise RuntimeError(f"alert post {post.id} kept changing; try again")
                    joined = True
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
                return OpenedPost(post.id, [a[0] for a in fresh], joined)
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
        """Close these alerts; return the posts whose every alert is now resolved.

        Posts still open count the resolutions and are marked for an update.
        """
        closed: list[AlertPost] = []
        with self.session() as s, s.begin():
            states = list(
                s.scalars(select(AlertState).where(AlertState.fingerprint.in_(fingerprints)))
            )
            by_post: dict[int, set[str]] = {}
            for st in states:
                by_post.setdefault(st.post_id, set()).add(st.fingerprint)
                s.delete(st)
            s.flush()
            for post_id, gone in by_post.items():
                post = s.get(AlertPost, post_id)
                if post is None:
                    continue
                post.alerts_firing = max((post.alerts_firing or 0) - len(gone), 0)
                post.alerts_resolved = (post.alerts_resolved or 0) + len(gone)
                post.payload = json.dumps(incidents.mark_resolved(json.loads(post.payload), gone))
                post.version = (post.version or 1) + 1
                remaining = s.scalar(
                    select(AlertState.fingerprint).where(AlertState.post_id == post_id).limit(1)
                )
                if remaining is None and post.status != "resolved":
                    post.status = "resolved"
                    post.resolved_at = utcnow()
                    closed.append(post)
        return closed

    def forget_resolved(self, older_than: timedelta) -> int:
        """Drop incidents' posts whose alerts all resolved more than ``older_than`` ago:
        nothing joins or updates them any more, and the table would grow with every
        incident for ever."""
        with self.session() as s, s.begin():
            result = s.execute(
                delete(AlertPost).where(
                    AlertPost.status == "resolved",
                    AlertPost.resolved_at < utcnow() - older_than,
                    # a state a race left behind would block the delete (foreign key)
                    ~select(AlertState.fingerprint)
                    .where(AlertState.post_id == AlertPost.id)
                    .exists(),
                )
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def claim_refresh(
        self, lease: timedelta = timedelta(seconds=30), now: datetime | None = None
    ) -> list[AlertPost]:
        """Posted posts whose Slack message is behind their state, at most one per channel,
        each taken by one replica and held for ``lease`` (or until ``mark_shown`` sets the
        next refresh): a slow update is never overtaken by a second one telling the same.

        The taker also takes the digest of alerts that joined (each returned post's
        ``digest``; the stored one is emptied in the same conditional update, which holds
        only while the post's version is the one read): a refresher whose hold ran out
        before it finished cannot have its digest told a second time by the next one."""
        now = now or utcnow()
        due = or_(AlertPost.refresh_after.is_(None), AlertPost.refresh_after < now)
        behind_now = and_(
            AlertPost.ts.is_not(None), AlertPost.version > AlertPost.shown_version, due
        )
        with self.session() as s:
            behind = list(
                s.scalars(
                    select(AlertPost)
                    .where(behind_now)
                    .order_by(AlertPost.refresh_after.is_not(None), AlertPost.refresh_after)
                    .limit(100)
                )
            )
        taken: list[AlertPost] = []
        channels: set[str] = set()
        for post in behind:
            if post.channel in channels:
                continue  # one update per channel per pass keeps under Slack's pace
            claimed = self._take(post, behind_now, now + lease)
            if claimed is not None:
                channels.add(post.channel)
                taken.append(claimed)
        return taken

    def _take(
        self, post: AlertPost, behind: ColumnElement[bool], until: datetime, tries: int = 3
    ) -> AlertPost | None:
        """``post`` held until ``until`` with its digest taken, if it is still behind and
        due; re-read when alerts joined it meanwhile (its version moved on)."""
        for _ in range(tries):
            with self.session() as s, s.begin():
                result = s.execute(
                    update(AlertPost)
                    .where(*_as_read(post), behind)
                    .values(refresh_after=until, digest=None)
                )
            if result.rowcount:  # type: ignore[attr-defined]
                return post
            with self.session() as s:
                again = s.scalar(select(AlertPost).where(AlertPost.id == post.id, behind))
            if again is None:
                return None  # shown or held by another replica meanwhile
            post = again
        return None

    def mark_shown(self, post_id: int, version: int, next_after: timedelta | None = None) -> None:
        """Slack shows ``version`` of the post; the refresher's hold (see
        ``claim_refresh``) ends, the next refresh ``next_after``."""
        with self.session() as s, s.begin():
            post = s.get(AlertPost, post_id)
            if post is None:
                return
            post.shown_version = max(post.shown_version or 0, version)
            if next_after is not None:
                post.refresh_after = utcnow() + next_after

    def put_back_digest(self, post_id: int, untold: incidents.Digest) -> None:
        """A digest a refresher took (see ``claim_refresh``) but did not say in the thread,
        put back in front of what joined since."""
        if not untold["count"]:
            return
        with self.session() as s, s.begin():
            for _ in range(GUARDED_TRIES):
                post = s.get(AlertPost, post_id, populate_existing=True)
                if post is None:
                    return
                digest = incidents.put_back(untold, incidents.digest_of(post.digest))
                result = s.execute(
                    update(AlertPost)
                    .where(*_as_read(post))
                    .values(digest=json.dumps(digest))
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    return
        raise RuntimeError(f"alert post {post_id} kept changing; its digest was not put back")

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

    def set_verify_ref(self, request_id: str, ref: str) -> None:
        """Where a still-pending re-check reports (a claimed one is left alone)."""
        with self.session() as s, s.begin():
            s.execute(
                update(ActionRequest)
                .where(ActionRequest.id == request_id, ActionRequest.verify_at.is_not(None))
                .values(verify_ref=ref)
            )

    def hold_lease(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Take or renew lease ``name`` for ``holder`` unless another holds it unexpired.

        One conditional UPDATE (or the INSERT of a first holder) decides, so two replicas
        can never both hold it; a dead holder's lease passes on when ``ttl`` runs out.
        """
        now = utcnow()
        with self.session() as s, s.begin():
            taken = s.execute(
                update(Lease)
                .where(Lease.name == name, or_(Lease.holder == holder, Lease.until < now))
                .values(holder=holder, until=now + ttl)
            )
            if taken.rowcount:  # type: ignore[attr-defined]
                return True
        try:
            with self.session() as s, s.begin():
                if s.get(Lease, name) is not None:
                    return False
                s.add(Lease(name=name, holder=holder, until=now + ttl))
            return True
        except IntegrityError:
            return False  # another replica inserted it first

    def release_lease(self, name: str, holder: str) -> None:
        with self.session() as s, s.begin():
            s.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))

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

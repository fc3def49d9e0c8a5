"""Watched canaries, kept in the shared database: a restart resumes each where it stood,
and every replica sees the same watches (the scheduler's one replica runs them).

A watch is *active* while ``watching``, ``promotable`` or ``rollback``; it ends
``done`` (every phase promoted), ``rolled_back`` or ``stopped`` (by a person). One
active watch per Deployment and cluster: starting it again returns the one under way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, cast

from sqlalchemy import select, update

from bot.canary.compare import Baseline
from bot.canary.watch import WatchState, WatchStatus
from bot.store import CanaryWatchRow, Store, utcnow

State = Literal["watching", "promotable", "rollback", "done", "rolled_back", "stopped"]
ACTIVE: tuple[State, ...] = ("watching", "promotable", "rollback")


@dataclass(frozen=True)
class Watch:
    id: int
    target: str  # NS/DEPLOYMENT
    cluster: str | None
    channel: str
    started_by: str
    state: State
    phase: int
    passing_since: float | None = None
    message_ts: str | None = None
    request_id: str | None = None
    baseline: Baseline | None = None
    summary: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def namespace(self) -> str:
        return self.target.split("/", 1)[0]

    @property
    def deployment(self) -> str:
        return self.target.split("/", 1)[1]

    @property
    def workload(self) -> str:
        return f"deployment/{self.target}"

    def machine(self) -> WatchState:
        """The phase state machine's view (a finished watch reads as done)."""
        status = cast(WatchStatus, self.state) if self.active else "done"
        return WatchState(self.phase, status, self.passing_since)

    def moved_to(self, state: WatchState) -> Watch:
        return replace(
            self, phase=state.phase, state=state.status, passing_since=state.passing_since
        )


def _aware(at: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes: they are UTC, as written
    return at if at is None or at.tzinfo else at.replace(tzinfo=UTC)


def _watch(row: CanaryWatchRow) -> Watch:
    return Watch(
        id=row.id,
        target=row.target,
        cluster=row.cluster,
        channel=row.channel,
        started_by=row.started_by,
        state=cast(State, row.state),
        phase=row.phase,
        passing_since=row.passing_since,
        message_ts=row.message_ts,
        request_id=row.request_id,
        baseline=Baseline.from_json(row.baseline) if row.baseline else None,
        summary=row.summary,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
    )


class Watches:
    def __init__(self, store: Store) -> None:
        self.store = store

    def start(
        self, target: str, cluster: str | None, channel: str, started_by: str
    ) -> tuple[Watch, bool]:
        """The active watch of ``target`` in ``cluster``, and whether it was made now."""
        with self.store.session() as s, s.begin():
            found = s.scalars(
                select(CanaryWatchRow).where(
                    CanaryWatchRow.target == target,
                    CanaryWatchRow.cluster.is_(None)
                    if cluster is None
                    else CanaryWatchRow.cluster == cluster,
                    CanaryWatchRow.state.in_(ACTIVE),
                )
            ).first()
            if found is not None:
                return _watch(found), False
            now = utcnow()
            row = CanaryWatchRow(
                target=target,
                cluster=cluster,
                channel=channel,
                started_by=started_by,
                state="watching",
                phase=0,
                summary="started; first evaluation pending",
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            s.flush()
            return _watch(row), True

    def get(self, watch_id: int) -> Watch | None:
        with self.store.session() as s:
            row = s.get(CanaryWatchRow, watch_id)
            return None if row is None else _watch(row)

    def active(self) -> list[Watch]:
        with self.store.session() as s:
            rows = s.scalars(
                select(CanaryWatchRow)
                .where(CanaryWatchRow.state.in_(ACTIVE))
                .order_by(CanaryWatchRow.id)
            )
            return [_watch(r) for r in rows]

    def recent(self, limit: int = 50) -> list[Watch]:
        """Active watches first, then the newest finished ones."""
        with self.store.session() as s:
            rows = list(
                s.scalars(select(CanaryWatchRow).order_by(CanaryWatchRow.id.desc()).limit(limit))
            )
        watches = [_watch(r) for r in rows]
        return sorted(watches, key=lambda w: (not w.active, -w.id))

    def save(self, watch: Watch) -> bool:
        """Write ``watch``'s state; False when it ended meanwhile (stopped by a person on
        another replica), which then wins."""
        with self.store.session() as s, s.begin():
            result = s.execute(
                update(CanaryWatchRow)
                .where(CanaryWatchRow.id == watch.id, CanaryWatchRow.state.in_(ACTIVE))
                .values(
                    state=watch.state,
                    phase=watch.phase,
                    passing_since=watch.passing_since,
                    message_ts=watch.message_ts,
                    request_id=watch.request_id,
                    baseline=watch.baseline.as_json() if watch.baseline else None,
                    summary=watch.summary,
                    updated_at=utcnow(),
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def stop(self, watch_id: int, by: str) -> Watch | None:
        """End an active watch; None when there is no such active watch."""
        with self.store.session() as s, s.begin():
            result = s.execute(
                update(CanaryWatchRow)
                .where(CanaryWatchRow.id == watch_id, CanaryWatchRow.state.in_(ACTIVE))
                .values(state="stopped", summary=f"stopped by {by}", updated_at=utcnow())
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return None
        return self.get(watch_id)

"""State store on SQLite and on a real PostgreSQL: deduplication holds across replicas."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, inspect, text

from bot.incidents import digest_of
from bot.store import MIGRATIONS, Base, Store, utcnow


def alerts(*fingerprints: str) -> list[tuple[str, str, str]]:
    return [(f, "VLLMQueueBacklog", "2026-11-28T10:00:00Z") for f in fingerprints]


def test_open_post_claims_each_alert_once(database_url: str) -> None:
    store = Store(database_url)
    first = store.open_post("g1", "C1", "queue_backlog", alerts("a", "b"), {"x": 1})
    assert first is not None and sorted(first.fingerprints) == ["a", "b"]
    assert store.open_post("g1", "C1", "queue_backlog", alerts("a", "b"), {}) is None
    more = store.open_post("g1", "C1", "queue_backlog", alerts("b", "c"), {})
    assert more is not None and more.fingerprints == ["c"]


def test_two_replicas_racing_post_once(database_url: str) -> None:
    replicas = [Store(database_url) for _ in range(2)]
    results: list[object] = []
    barrier = threading.Barrier(8)

    def claim(store: Store) -> None:
        barrier.wait()
        results.append(store.open_post("g", "C1", None, alerts("same"), {}))

    threads = [threading.Thread(target=claim, args=(replicas[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1


def test_resolve_closes_a_post_when_all_its_alerts_resolved(database_url: str) -> None:
    store = Store(database_url)
    opened = store.open_post("g", "C1", None, alerts("x", "y"), {})
    assert opened is not None
    store.set_post_ts(opened.post_id, "123.456")
    assert store.resolve(["x"]) == []
    (closed,) = store.resolve(["y"])
    assert closed.id == opened.post_id and closed.status == "resolved"
    assert store.unposted() == []
    # a resolved alert can fire again: a new post
    assert store.open_post("g", "C1", None, alerts("x"), {}) is not None


def test_unposted_posts_are_found_for_redrive(database_url: str) -> None:
    store = Store(database_url)
    opened = store.open_post("g", "C1", None, alerts("z"), {"k": "v"})
    assert opened is not None
    assert [p.id for p in store.unposted()] == [opened.post_id]


def test_action_requests_are_opaque_and_expire(database_url: str) -> None:
    store = Store(database_url)
    request_id = store.create_action_request(
        kind="scale",
        target="deployment/ns/vllm",
        params={"replicas": 9},
        reason="r",
        runbook="queue_backlog",
        channel="C1",
        ttl=timedelta(minutes=15),
    )
    assert len(request_id) >= 20 and "scale" not in request_id
    stored = store.action_request(request_id)
    assert stored is not None and stored.params == {"replicas": 9}
    assert store.action_request("nope") is None


def _request(store: Store, ttl: timedelta = timedelta(minutes=15)) -> str:
    return store.create_action_request(
        kind="drain",
        target="node/gpu-1",
        params={},
        reason="Xid 79",
        runbook="r",
        channel="C1",
        ttl=ttl,
    )


def test_twenty_simultaneous_clicks_execute_once(database_url: str) -> None:
    replicas = [Store(database_url) for _ in range(2)]
    request_id = _request(replicas[0])
    barrier = threading.Barrier(20)
    wins: list[bool] = []

    def click(store: Store) -> None:
        barrier.wait()
        wins.append(store.transition(request_id, ("offered",), "executing"))

    threads = [threading.Thread(target=click, args=(replicas[i % 2],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1 and len(wins) == 20
    stored = replicas[1].action_request(request_id)
    assert stored is not None and stored.state == "executing"


def test_one_action_per_target_at_a_time(database_url: str) -> None:
    store = Store(database_url)
    assert store.lock_target("node/gpu-1", "r1")
    assert not store.lock_target("node/gpu-1", "r2")
    store.unlock_target("node/gpu-1", "r2")  # not the holder: no effect
    assert not store.lock_target("node/gpu-1", "r2")
    store.unlock_target("node/gpu-1", "r1")
    assert store.lock_target("node/gpu-1", "r2")


def test_requests_expire(database_url: str) -> None:
    store = Store(database_url)
    old = _request(store, ttl=timedelta(seconds=-1))
    fresh = _request(store)
    assert store.expire_requests() == [old]
    assert not store.transition(old, ("offered",), "executing")
    assert store.transition(fresh, ("offered",), "executing")


def test_columns_added_by_a_newer_release_are_migrated(database_url: str) -> None:
    from sqlalchemy import inspect as inspect_schema

    engine = create_engine(database_url)
    with engine.begin() as conn:  # the action_requests table as an older release made it
        conn.execute(
            text(
                "CREATE TABLE action_requests (id VARCHAR(64) PRIMARY KEY, kind VARCHAR(32), "
                "target VARCHAR(512), params JSON, reason TEXT, runbook VARCHAR(64), "
                "channel VARCHAR(64), created_at TIMESTAMP, expires_at TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO action_requests (id, kind, target, params, reason, runbook) "
                "VALUES ('old', 'scale', 'deployment/ns/x', '{}', 'r', 'rb')"
            )
        )
    store = Store(database_url)
    columns = {c["name"] for c in inspect_schema(store.engine).get_columns("action_requests")}
    assert {"state", "cluster", "scope", "requested_by", "approved_by", "outcome"} <= columns
    old = store.action_request("old")
    assert old is not None and old.kind == "scale"
    engine.dispose()


def test_replicas_starting_together_on_an_empty_postgresql_all_start(
    database_url: str,
) -> None:
    """Schema creation, column migration and audit triggers run one replica at a time."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serves one replica; several starting at once is PostgreSQL's case")
    from bot.remediation.audit import AuditLog

    failures: list[BaseException] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        try:
            Store(database_url)
            AuditLog(database_url)
        except BaseException as exc:  # the test reports every failure, not the first
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    AuditLog(database_url).append("requested", kind="scale", target="deployment/a/b")
    assert AuditLog(database_url).verify().ok


def test_unposted_posts_are_taken_over_once_their_lease_ran_out(database_url: str) -> None:
    replicas = [Store(database_url) for _ in range(3)]
    held = replicas[0].open_post("g1", "C1", None, alerts("held"), {})
    orphan = replicas[0].open_post("g2", "C1", None, alerts("orphan"), {}, lease=timedelta(0))
    assert held is not None and orphan is not None
    claims: list[list[int]] = []
    barrier = threading.Barrier(len(replicas))

    def take(store: Store) -> None:
        barrier.wait()
        claims.append([p.id for p in store.claim_unposted()])

    threads = [threading.Thread(target=take, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the orphan goes to exactly one replica; the post still under lease to nobody
    assert sorted(claims, key=len) == [[], [], [orphan.post_id]]
    assert replicas[1].claim_unposted() == []  # the taker's lease holds now


def test_racing_replicas_expire_each_request_once(database_url: str) -> None:
    replicas = [Store(database_url) for _ in range(4)]
    ids = [
        replicas[0].create_action_request(
            kind="scale",
            target=f"deployment/ns/d{i}",
            params={},
            reason="r",
            runbook="",
            channel="C1",
            ttl=timedelta(seconds=-1),
        )
        for i in range(10)
    ]
    expired: list[str] = []
    barrier = threading.Barrier(len(replicas))

    def expire(store: Store) -> None:
        barrier.wait()
        expired.extend(store.expire_requests())

    threads = [threading.Thread(target=expire, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(expired) == sorted(ids)  # each once: one audit record each


def test_one_holder_of_the_scheduler_lease_and_it_passes_on_when_it_lapses(
    database_url: str,
) -> None:
    a, b = Store(database_url), Store(database_url)
    assert a.hold_lease("scheduler", "a", timedelta(seconds=30))
    assert not b.hold_lease("scheduler", "b", timedelta(seconds=30))
    assert a.hold_lease("scheduler", "a", timedelta(seconds=30))  # renewing
    assert a.hold_lease("scheduler", "a", timedelta(seconds=-1))  # …now lapsed
    assert b.hold_lease("scheduler", "b", timedelta(seconds=30))
    assert not a.hold_lease("scheduler", "a", timedelta(seconds=30))
    b.release_lease("scheduler", "b")  # a clean stop: no need to wait for the TTL
    assert a.hold_lease("scheduler", "a", timedelta(seconds=30))


def test_replicas_racing_for_the_lease_get_exactly_one_holder(database_url: str) -> None:
    replicas = [Store(database_url) for _ in range(2)]
    held: list[str] = []
    barrier = threading.Barrier(8)

    def take(i: int) -> None:
        barrier.wait()
        if replicas[i % 2].hold_lease("scheduler", f"r{i}", timedelta(seconds=30)):
            held.append(f"r{i}")

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(held) == 1, held


def test_groups_join_an_open_incident_and_tallies_follow_resolution(database_url: str) -> None:
    store = Store(database_url)
    group: dict[str, Any] = {"alerts": [], "commonLabels": {}}
    first = store.open_post("g1", "C1", "rb", alerts("a"), group, incident="rb|ns")
    joined = store.open_post("g2", "C1", "rb", alerts("b", "c"), group, incident="rb|ns")
    elsewhere = store.open_post("g3", "C2", "rb", alerts("d"), group, incident="rb|ns")
    assert first is not None and joined is not None and elsewhere is not None
    assert (joined.post_id, joined.joined) == (first.post_id, True)
    assert elsewhere.post_id != first.post_id and not elsewhere.joined  # another channel
    assert store.resolve(["a"]) == []
    post = store.post(first.post_id)
    assert post is not None and (post.alerts_firing, post.alerts_resolved) == (2, 1)
    assert (post.version or 0) > (post.shown_version or 0)  # Slack is behind: update due


def test_the_migrations_build_exactly_the_models_schema(database_url: str) -> None:
    """A model change without its migration fails here (alembic's own comparison)."""
    store = Store(database_url)
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == ScriptDirectory(str(MIGRATIONS)).get_current_head()
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], diff


def test_a_database_from_before_versioned_migrations_is_adopted_with_its_rows(
    database_url: str,
) -> None:
    """An early release made alert_posts with fewer columns and no version table: the
    baseline adds what is missing, keeps the rows, and records the version."""
    engine = create_engine(database_url)
    key = "SERIAL PRIMARY KEY" if engine.dialect.name == "postgresql" else "INTEGER PRIMARY KEY"
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE alert_posts (id {key}, group_key VARCHAR(512) NOT "
                "NULL, runbook VARCHAR(64), channel VARCHAR(64) NOT NULL, ts VARCHAR(32), "
                "status VARCHAR(16) NOT NULL, payload TEXT NOT NULL, created_at TIMESTAMP "
                "WITH TIME ZONE NOT NULL, resolved_at TIMESTAMP WITH TIME ZONE)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO alert_posts (group_key, channel, ts, status, payload, "
                "created_at) VALUES ('old', 'C1', '1.2', 'firing', '{}', CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
    store = Store(database_url)
    post = store.post(1)
    assert post is not None and (post.group_key, post.ts) == ("old", "1.2")
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None
    inspector = inspect(store.engine)
    columns = {c["name"] for c in inspector.get_columns("alert_posts")}
    assert {"incident_key", "digest", "lease_until"} <= columns
    indexes = {ix["name"] for ix in inspector.get_indexes("alert_posts")}
    assert {"ix_alert_posts_group_key", "ix_alert_posts_incident_key"} <= indexes
    opened = store.open_post("new", "C1", "rb", alerts("x"), {}, incident="rb|ns")
    assert opened is not None and not opened.joined


def _group(*fingerprints: str) -> dict[str, Any]:
    return {
        "alerts": [
            {"fingerprint": f, "labels": {"alertname": "X", "pod": f}} for f in fingerprints
        ],
        "commonLabels": {},
    }


def _posted_incident_with_joiners(store: Store) -> int:
    """A posted incident that alerts ``b`` and ``c`` joined: its thread owes them a line."""
    first = store.open_post("g1", "C1", "rb", alerts("a"), _group("a"), incident="rb|ns")
    assert first is not None
    store.set_post_ts(first.post_id, "1700000000.000100")
    joined = store.open_post("g2", "C1", "rb", alerts("b", "c"), _group("b", "c"), incident="rb|ns")
    assert joined is not None and joined.joined
    return first.post_id


def test_a_refresher_whose_hold_ran_out_leaves_nothing_to_tell_twice(database_url: str) -> None:
    """Regression: the digest stayed in the row until the teller marked it told, so a
    refresher slower than its 30-s hold had its joiners told again by the next one."""
    store = Store(database_url)
    _posted_incident_with_joiners(store)
    start = utcnow()
    (held,) = store.claim_refresh(now=start)
    assert [a["pod"] for a in digest_of(held.digest)["alerts"]] == ["b", "c"]
    assert store.claim_refresh(now=start + timedelta(seconds=1)) == []  # held
    (late,) = store.claim_refresh(now=start + timedelta(seconds=31))  # the hold ran out
    assert digest_of(late.digest) == {"count": 0, "alerts": []}


def test_a_digest_slack_did_not_take_is_told_on_the_next_refresh(database_url: str) -> None:
    store = Store(database_url)
    post_id = _posted_incident_with_joiners(store)
    (held,) = store.claim_refresh()
    untold = digest_of(held.digest)
    store.open_post("g3", "C1", "rb", alerts("d"), _group("d"), incident="rb|ns")  # meanwhile
    store.mark_shown(post_id, held.version or 1, next_after=timedelta(0))
    store.put_back_digest(post_id, untold)
    (again,) = store.claim_refresh(now=utcnow() + timedelta(seconds=1))
    assert digest_of(again.digest)["count"] == 3
    assert [a["pod"] for a in digest_of(again.digest)["alerts"]] == ["b", "c", "d"]


def test_long_resolved_posts_are_forgotten_and_open_ones_kept(database_url: str) -> None:
    store = Store(database_url)
    gone = store.open_post("g1", "C1", "rb", alerts("a"), _group("a"), incident="rb|a")
    firing = store.open_post("g2", "C1", "rb", alerts("b"), _group("b"), incident="rb|b")
    assert gone is not None and firing is not None
    assert [p.id for p in store.resolve(["a"])] == [gone.post_id]
    assert store.forget_resolved(timedelta(days=30)) == 0  # resolved just now: kept
    assert store.forget_resolved(timedelta(0)) == 1
    assert store.post(gone.post_id) is None and store.post(firing.post_id) is not None
    # the same alert firing again opens a new post
    again = store.open_post("g1", "C1", "rb", alerts("a"), _group("a"), incident="rb|a")
    assert again is not None and again.post_id != gone.post_id and not again.joined


def test_a_join_racing_a_refreshers_take_does_not_bring_the_taken_digest_back(
    database_url: str,
) -> None:
    """Regression: a join read the post, a refresher took its digest, and the join wrote
    the digest it had read plus its own alerts back: the taken ones were told twice."""
    store, refresher = Store(database_url), Store(database_url)
    _posted_incident_with_joiners(store)
    taken: list[Any] = []

    def take_first(*args: Any) -> None:  # between the join's read and its write
        statement = str(args[2]).lstrip().upper()
        if statement.startswith("UPDATE ALERT_POSTS") and not taken:
            taken.extend(refresher.claim_refresh())

    event.listen(store.engine, "before_cursor_execute", take_first)
    try:
        store.open_post("g3", "C1", "rb", alerts("d"), _group("d"), incident="rb|ns")
    finally:
        event.remove(store.engine, "before_cursor_execute", take_first)
    assert [[a["pod"] for a in digest_of(p.digest)["alerts"]] for p in taken] == [["b", "c"]]
    (later,) = refresher.claim_refresh(now=utcnow() + timedelta(seconds=31))
    assert [a["pod"] for a in digest_of(later.digest)["alerts"]] == ["d"]

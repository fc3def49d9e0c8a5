"""Readiness items as data (loader, file:line errors) and the pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.canary.watches import Watches
from bot.diagnosis.yaml_source import RunbookError
from bot.models import Scope
from bot.readiness import decide
from bot.readiness import items as kinds
from bot.readiness.evidence import (
    Attestation,
    CacheConfigs,
    Canaries,
    CanaryWatch,
    Capacity,
    Cluster,
    Missing,
    RollbackRun,
    Rules,
    ServingPod,
    Targets,
)
from bot.readiness.gather import canary_watches, rollbacks
from bot.readiness.items import load_items
from bot.readiness.scorecard import as_json, assemble
from bot.remediation.audit import AuditLog
from bot.store import Store

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_the_shipped_items_are_the_checklists_twenty_seventeen_critical() -> None:
    items = load_items()
    assert len(items) == 20 and sum(i.critical for i in items) == 17
    categories = {i.category for i in items}
    assert categories == {"infrastructure", "configuration", "monitoring", "testing", "operations"}
    assert all(sum(i.category == c for i in items) == 4 for c in categories)
    measured = {i.id for i in items if i.measure}
    assert len(measured) == 10


def test_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "mine.yaml"
    bad.write_text(
        "items:\n"
        "  - id: on_call\n"
        "    category: operations\n"
        "    title: On call\n"
        "    critical: true\n"
        "    attest: {expires_days: 30}\n"
        "    measure: {kind: runbooks, require: [x]}\n"
        "  - id: weird\n"
        "    category: x\n"
        "    title: y\n"
        "    critical: false\n"
        "    measure: {kind: telepathy}\n"
    )
    with pytest.raises(RunbookError) as caught:
        load_items([bad])
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(f"{bad}:2: items.0: give exactly one of measure")
    assert lines[1].startswith(f"{bad}:12: items.1.measure:")
    assert "capacity_headroom" in lines[1]


def test_a_team_adds_its_own_items_and_ids_stay_unique(tmp_path: Path) -> None:
    mine = tmp_path / "team.yaml"
    mine.write_text(
        "items:\n  - {id: multi_zone, category: x, title: t, critical: false,"
        " attest: {expires_days: 7}}\n"
    )
    with pytest.raises(RunbookError, match="'multi_zone' is also defined in"):
        load_items([kinds.DEFAULT_ITEMS_DIR, mine])


def test_capacity_headroom() -> None:
    rule = kinds.CapacityHeadroom(kind="capacity_headroom")
    ok = decide.capacity(rule, Capacity(peak_rps=24.0, served_rps=24.0, busy=0.6, replicas=4))
    assert ok.status == "pass"  # 4 x 10 req/s = 40 >= 24 x 1.3
    assert "capacity 40.0 req/s = 4 replicas x 10.00 req/s" in ok.evidence[1]
    short = decide.capacity(rule, Capacity(peak_rps=32.0, served_rps=32.0, busy=0.8, replicas=4))
    assert short.status == "fail"  # 40 < 41.6
    idle = decide.capacity(rule, Capacity(peak_rps=1.0, served_rps=0.1, busy=0.01, replicas=4))
    assert idle.status == "unknown"
    assert decide.capacity(rule, Missing("down")).evidence == ("down",)


def _pod(name: str, node: str, workload: str = "llama", args: tuple[str, ...] = ()) -> ServingPod:
    return ServingPod("inference", name, workload, node, True, args)


def test_zone_spread_per_workload() -> None:
    rule = kinds.ZoneSpread(kind="zone_spread")
    zones: dict[str, str | None] = {"n1": "a", "n2": "b", "n3": None}
    spread = Cluster((_pod("p1", "n1"), _pod("p2", "n2")), zones, ())
    assert decide.zones(rule, spread).status == "pass"
    lopsided = Cluster(
        (*spread.pods, _pod("q1", "n1", "qwen"), _pod("q2", "n3", "qwen")), zones, ()
    )
    d = decide.zones(rule, lopsided)
    assert d.status == "fail"
    assert d.evidence == (
        "llama: 2 zones (a, b)",
        "qwen: 1 zone (a)",
        "nodes without topology.kubernetes.io/zone: n3",
    )


def test_explicit_flag_in_either_spelling() -> None:
    assert decide.has_flag(("--max-model-len", "8192"), "--max-model-len")
    assert decide.has_flag(("--max-model-len=8192",), "--max-model-len")
    assert decide.has_flag(("--max_model_len=8192",), "--max-model-len")
    assert not decide.has_flag(("--max-num-seqs", "8"), "--max-model-len")


def test_cache_config() -> None:
    rule = kinds.CacheConfig(kind="cache_config", prefix_caching=True)
    good = CacheConfigs((("0.9", "True", 3), ("0.85", "True", 1)))
    assert decide.cache_config(rule, good).status == "pass"
    bad = CacheConfigs((("0.9", "True", 3), ("0.95", "False", 1)))
    d = decide.cache_config(rule, bad)
    assert d.status == "fail"
    assert d.evidence[1:] == ("1/4 replicas above 0.9", "prefix caching on on 3/4")


def test_scrape_coverage_against_the_cluster() -> None:
    rule = kinds.ScrapeCoverage(kind="scrape_coverage")
    cluster = Cluster((_pod("p1", "n1"), _pod("p2", "n2")), {}, ("n1", "n2"))
    up = Targets({"p1": True, "p2": True}, {"n1:9400": True, "n2:9400": True})
    assert decide.scrape(rule, up, cluster).status == "pass"
    unscraped = Targets({"p1": True}, {"n1:9400": True})
    d = decide.scrape(rule, unscraped, cluster)
    assert d.status == "fail"
    assert (
        "not scraped: p2" in d.evidence
        and "1 GPU nodes without a dcgm-exporter target" in d.evidence
    )
    alone = decide.scrape(rule, up, Missing("no kube"))
    assert alone.status == "pass" and "judged on up alone" in alone.evidence[0]


def test_alert_rules_follow_recording_rules() -> None:
    rule = kinds.AlertRules(
        kind="alert_rules", concerns={"latency": ["vllm:time_to_first_token_seconds"]}
    )
    rules = Rules(
        (("TTFT", "histogram_quantile(0.99, sum by (le) (vllm_chatops:ttft:rate5m)) > 3"),),
        {"vllm_chatops:ttft:rate5m": "rate(vllm:time_to_first_token_seconds_bucket[5m])"},
    )
    assert decide.alert_rules(rule, rules).status == "pass"
    assert decide.alert_rules(rule, Rules((), {})).status == "fail"


def test_rollback_duration_and_lookback() -> None:
    fast = kinds.Rollback(kind="rollback", max_seconds=60)
    run = RollbackRun(
        "dep", NOW - timedelta(days=1), NOW - timedelta(days=1) + timedelta(seconds=20), True, "ada"
    )
    assert decide.rollback(fast, (run,), NOW).status == "pass"
    old = RollbackRun("dep", NOW - timedelta(days=31), NOW - timedelta(days=31), True, "ada")
    assert decide.rollback(fast, (old,), NOW).status == "fail"
    unfinished = RollbackRun("dep", NOW - timedelta(hours=1), None, False, "ada")
    assert decide.rollback(kinds.Rollback(kind="rollback"), (unfinished,), NOW).status == "fail"


CANARY = kinds.CanaryPipeline(kind="canary")  # lookback_days 30
ROLLOUT = Canaries((("inference/llama", "canary"),))


def watch(
    n: int, state: str = "done", ended: datetime | None = NOW - timedelta(days=2)
) -> CanaryWatch:
    active = state in ("watching", "promotable", "rollback")
    started = NOW - timedelta(days=60 if ended is None else 3)
    return CanaryWatch(
        n, "inference/llama", None, state, active, started, None if active else ended
    )


def test_canary_passes_on_a_watch_alone() -> None:
    d = decide.canary(CANARY, Canaries(()), (watch(3, ended=NOW),), NOW)
    assert d.status == "pass"
    assert d.how.endswith("; found a canary watch")
    assert d.evidence == (
        "canary watch #3 of inference/llama, done 2026-11-30",
        "no Argo Rollout with a canary or blue-green strategy",
    )
    active = decide.canary(CANARY, Canaries(()), (watch(4, "watching", ended=None),), NOW)
    assert (active.status, active.evidence[0]) == (
        "pass",
        "canary watch #4 of inference/llama, watching since 2026-10-01",
    )


def test_canary_passes_on_a_rollout_alone() -> None:
    d = decide.canary(CANARY, ROLLOUT, (), NOW)
    assert d.status == "pass" and d.how.endswith("; found an Argo Rollout")
    assert d.evidence == (
        "Rollouts: inference/llama (canary)",
        "no canary watch active or finished since 2026-10-31",
    )
    both = decide.canary(CANARY, ROLLOUT, (watch(1, "rolled_back"),), NOW)
    assert both.how.endswith("; found a canary watch and an Argo Rollout")
    assert both.evidence == (
        "canary watch #1 of inference/llama, rolled back 2026-11-28",
        "Rollouts: inference/llama (canary)",
    )


def test_canary_fails_with_neither_and_an_old_watch_is_not_counted() -> None:
    old = watch(2, "stopped", ended=NOW - timedelta(days=31))
    d = decide.canary(CANARY, Canaries(()), (old,), NOW)
    assert d.status == "fail" and "found" not in d.how
    assert d.evidence == (
        "no canary watch active or finished since 2026-10-31",
        "no Argo Rollout with a canary or blue-green strategy",
    )
    longer = kinds.CanaryPipeline(kind="canary", lookback_days=45)
    assert decide.canary(longer, Canaries(()), (old,), NOW).status == "pass"
    shown = decide.canary(CANARY, Canaries(()), [watch(n) for n in range(5, 0, -1)], NOW)
    assert shown.evidence[3] == "and 2 more canary watches"


def test_canary_is_unknown_only_when_neither_source_is_read() -> None:
    kube, database = Missing("Kubernetes not configured"), Missing("no database")
    d = decide.canary(CANARY, kube, database, NOW)
    assert (d.status, d.evidence) == ("unknown", ("Kubernetes not configured", "no database"))
    # one source read: decided on it, and the other said unread
    d = decide.canary(CANARY, ROLLOUT, database, NOW)
    assert d.status == "pass" and d.how.startswith("measured (Kubernetes):")
    assert d.evidence == ("Rollouts: inference/llama (canary)", "no database")
    d = decide.canary(CANARY, Canaries(()), database, NOW)
    assert (d.status, d.evidence[-1]) == ("fail", "no database")
    d = decide.canary(CANARY, kube, (watch(3),), NOW)
    assert d.status == "pass" and d.how.startswith("measured (canary watches):")
    assert d.evidence[-1] == "Argo Rollouts not read (Kubernetes not configured)"
    assert decide.canary(CANARY, kube, (), NOW).status == "fail"


def test_canary_watches_are_read_in_the_scopes_cluster_and_namespace(tmp_path: Path) -> None:
    book = Watches(Store(f"sqlite:///{tmp_path / 'bot.db'}"))
    first, _ = book.start("inference/llama", None, "C1", "U1")
    book.start("inference/qwen", "prod", "C1", "U1")
    book.start("ml/llama", "prod", "C1", "U1")
    book.stop(first.id, "ada")
    everywhere = canary_watches(book, Scope())
    assert not isinstance(everywhere, Missing)
    assert [(w.target, w.active) for w in everywhere] == [
        ("ml/llama", True),
        ("inference/qwen", True),
        ("inference/llama", False),
    ]
    stopped = everywhere[-1]
    assert stopped.state == "stopped" and stopped.finished is not None
    assert stopped.finished.tzinfo is not None
    scoped = canary_watches(book, Scope(cluster="prod", labels={"namespace": "inference"}))
    assert not isinstance(scoped, Missing)
    assert [w.target for w in scoped] == ["inference/qwen"]
    assert canary_watches(book, Scope(cluster="staging")) == ()


def test_a_watch_started_without_a_cluster_counts_in_the_default_one(tmp_path: Path) -> None:
    """Regression: a scope naming the implicit cluster (`cluster=default`) did not find
    the watches started without one, which run there."""
    book = Watches(Store(f"sqlite:///{tmp_path / 'bot.db'}"))
    book.start("inference/llama", None, "C1", "U1")
    named = canary_watches(book, Scope(cluster="default"), default_cluster="default")
    assert not isinstance(named, Missing)
    assert [w.target for w in named] == ["inference/llama"]
    assert canary_watches(book, Scope(cluster="staging"), default_cluster="default") == ()


def test_unreadable_canary_watches_are_missing(tmp_path: Path) -> None:
    book = Watches(Store(f"sqlite:///{tmp_path / 'bot.db'}"))
    (tmp_path / "bot.db").unlink()
    (tmp_path / "bot.db").mkdir()  # the database file gone: the read fails
    book.store.engine.dispose()
    read = canary_watches(book, Scope())
    assert isinstance(read, Missing) and read.reason.startswith("canary watches not readable:")


def test_attestations_expire() -> None:
    rule = kinds.Attest(expires_days=30)
    att = Attestation(
        "on_call_rotation",
        "U1",
        "Ada",
        NOW - timedelta(days=3),
        NOW + timedelta(days=27),
        "https://rota",
    )
    d = decide.attested(rule, att, NOW)
    assert d.status == "attested" and d.evidence[:2] == (
        "by Ada on 2026-11-27 12:00 UTC",
        "https://rota",
    )
    assert decide.attested(rule, att, NOW + timedelta(days=28)).status == "unknown"
    assert decide.attested(rule, None, NOW).evidence == ("nobody has attested it",)


def test_scorecard_puts_critical_first_and_counts_attested() -> None:
    items = load_items()
    decisions = {i.id: decide.Decision("pass" if i.measure else "attested", "how") for i in items}
    card = assemble(items, decisions)
    assert [r.item.critical for r in card.rows] == [True] * 17 + [False] * 3
    assert card.ready and card.verdict == "17/17 critical pass (7 attested): ready"
    decisions["multi_zone"] = decide.Decision("fail", "how")
    decisions["on_call_rotation"] = decide.Decision("unknown", "how")
    doc = as_json(assemble(items, decisions))
    assert doc["verdict"] == "15/17 critical pass (6 attested): not ready"
    assert (doc["critical_passed"], doc["critical_total"]) == (15, 17)
    assert set(doc["items"][0]) == {
        "id",
        "category",
        "title",
        "critical",
        "status",
        "how",
        "evidence",
    }


def test_rollbacks_are_read_in_the_scopes_namespace(tmp_path: Path) -> None:
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    for event, at in (("executing", NOW), ("executed", NOW + timedelta(seconds=4))):
        audit.append(
            event,  # type: ignore[arg-type]  # the flow's event names
            request_id="r1",
            kind="rollback",
            target="deployment/ml/llama",
            namespace="ml",
            at=at,
        )
    since = NOW - timedelta(days=1)
    runs = rollbacks(audit, since, Scope(labels={"namespace": "ml"}))
    assert not isinstance(runs, Missing)
    (run,) = runs
    assert run.ok and run.finished is not None
    assert (run.finished - run.started).total_seconds() == 4.0
    assert rollbacks(audit, since, Scope(labels={"namespace": "prod"})) == ()

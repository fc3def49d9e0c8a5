"""Pure decisions: an item's rule and the evidence read → pass / fail / unknown, how it
was decided, and the facts that decided it. No I/O here."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from bot.readiness import items as rules
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

ItemStatus = Literal["pass", "fail", "unknown", "attested"]
SHOWN = 5  # offenders named in the evidence; the rest are counted
WATCHES_SHOWN = 3  # canary watches named in the evidence, active ones first


@dataclass(frozen=True)
class Decision:
    status: ItemStatus
    how: str
    evidence: tuple[str, ...] = ()


def _names(values: Sequence[str]) -> str:
    shown = ", ".join(values[:SHOWN])
    return shown + (f" and {len(values) - SHOWN} more" if len(values) > SHOWN else "")


def _unknown(how: str, missing: Missing) -> Decision:
    return Decision("unknown", how, (missing.reason,))


def capacity(rule: rules.CapacityHeadroom, ev: Capacity | Missing) -> Decision:
    how = (
        f"measured (Prometheus): peak demand over {rule.lookback} x {1 + rule.headroom:.2f} "
        "<= replicas x per-replica capacity (served req/s / GPU busy fraction)"
    )
    if isinstance(ev, Missing):
        return _unknown(how, ev)
    if ev.replicas < 1 or ev.peak_rps is None:
        return Decision("unknown", how, ("no vLLM request traffic in Prometheus",))
    if ev.busy is None or ev.busy < rule.min_busy:
        busy = "no GPU utilisation series" if ev.busy is None else f"GPUs {ev.busy:.0%} busy"
        return Decision("unknown", how, (f"{busy}: too idle to read capacity from utilisation",))
    per_replica = ev.served_rps / ev.replicas / min(1.0, ev.busy)
    fleet = per_replica * ev.replicas
    needed = ev.peak_rps * (1 + rule.headroom)
    facts = (
        f"peak demand {ev.peak_rps:.1f} req/s over {rule.lookback}; "
        f"needed {needed:.1f} req/s with {rule.headroom:.0%} headroom",
        f"capacity {fleet:.1f} req/s = {ev.replicas} replicas x {per_replica:.2f} req/s "
        f"({ev.served_rps:.1f} req/s served at {ev.busy:.0%} GPU busy)",
    )
    return Decision("pass" if fleet >= needed else "fail", how, facts)


def _serving(cluster: Cluster) -> list[ServingPod]:
    return [p for p in cluster.pods if p.node]


def zones(rule: rules.ZoneSpread, ev: Cluster | Missing) -> Decision:
    how = (
        f"measured (Kubernetes): each vLLM workload's pods on nodes in >= {rule.min_zones} "
        f"zones (node label {rule.zone_label})"
    )
    if isinstance(ev, Missing):
        return _unknown(how, ev)
    pods = _serving(ev)
    if not pods:
        return Decision("unknown", how, ("no scheduled vLLM pods found",))
    by_workload: dict[str, set[str]] = defaultdict(set)
    unlabelled: set[str] = set()
    for pod in pods:
        zone = ev.zones.get(pod.node)
        if zone:
            by_workload[pod.workload].add(zone)
        else:
            by_workload.setdefault(pod.workload, set())
            unlabelled.add(pod.node)
    facts = [
        f"{name}: {len(found)} zone{'s' * (len(found) != 1)}"
        + (f" ({', '.join(sorted(found))})" if found else "")
        for name, found in sorted(by_workload.items())
    ]
    if unlabelled:
        facts.append(f"nodes without {rule.zone_label}: {_names(sorted(unlabelled))}")
    ok = all(len(found) >= rule.min_zones for found in by_workload.values())
    return Decision("pass" if ok else "fail", how, tuple(facts))


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def cache_config(rule: rules.CacheConfig, ev: CacheConfigs | Missing) -> Decision:
    wants = []
    if rule.max_gpu_memory_utilization is not None:
        wants.append(f"gpu_memory_utilization <= {rule.max_gpu_memory_utilization:g}")
    if rule.prefix_caching is not None:
        wants.append(f"prefix caching {'on' if rule.prefix_caching else 'off'}")
    how = f"measured (Prometheus vllm:cache_config_info), every replica: {', '.join(wants)}"
    if isinstance(ev, Missing):
        return _unknown(how, ev)
    if not ev.groups:
        return Decision("unknown", how, ("no vllm:cache_config_info series: is vLLM scraped?",))
    total = sum(n for _, _, n in ev.groups)
    facts, ok = [], True
    if rule.max_gpu_memory_utilization is not None:
        limit = rule.max_gpu_memory_utilization
        over = [(g, n) for g, _, n in ev.groups if (_float(g) or 0.0) > limit]
        unreadable = [(g, n) for g, _, n in ev.groups if _float(g) is None]
        values = sorted({g for g, _, _ in ev.groups})
        facts.append(f"gpu_memory_utilization {'/'.join(values)} on {total} replicas")
        if over or unreadable:
            ok = False
            bad = sum(n for _, n in over + unreadable)
            facts.append(f"{bad}/{total} replicas above {limit:g}")
    if rule.prefix_caching is not None:
        wanted = "True" if rule.prefix_caching else "False"
        off = sum(n for _, p, n in ev.groups if p != wanted)
        facts.append(
            f"prefix caching {'on' if rule.prefix_caching else 'off'} on {total - off}/{total}"
        )
        ok = ok and off == 0
    return Decision("pass" if ok else "fail", how, tuple(facts))


def has_flag(args: Sequence[str], flag: str) -> bool:
    """``--flag VALUE`` or ``--flag=VALUE``; vLLM also accepts the underscore spelling."""
    spellings = {flag, flag.replace("-", "_").replace("__", "--", 1)}
    return any(a in spellings or a.split("=", 1)[0] in spellings for a in args)


def pod_arg(rule: rules.PodArg, ev: Cluster | Missing) -> Decision:
    how = f"measured (Kubernetes pod spec): every vLLM pod passes {rule.flag} explicitly"
    if isinstance(ev, Missing):
        return _unknown(how, ev)
    if not ev.pods:
        return Decision("unknown", how, ("no vLLM pods found",))
    without = sorted(f"{p.namespace}/{p.name}" for p in ev.pods if not has_flag(p.args, rule.flag))
    facts = [f"{len(ev.pods) - len(without)}/{len(ev.pods)} vLLM pods set {rule.flag}"]
    if without:
        facts.append(f"without it: {_names(without)}")
    return Decision("fail" if without else "pass", how, tuple(facts))


def scrape(
    rule: rules.ScrapeCoverage, targets: Targets | Missing, cluster: Cluster | Missing
) -> Decision:
    how = (
        f"measured (Prometheus up of jobs {rule.replica_job} and {rule.node_job}, against "
        "Kubernetes' ready vLLM pods and GPU nodes): every replica and node scraped and up"
    )
    if isinstance(targets, Missing):
        return _unknown(how, targets)
    facts: list[str] = []
    down = sorted(p for p, up in targets.replicas.items() if not up)
    down_nodes = sorted(i for i, up in targets.nodes.items() if not up)
    unscraped: list[str] = []
    extra_nodes = 0
    if isinstance(cluster, Cluster):
        ready = sorted(p.name for p in cluster.pods if p.ready)
        unscraped = [p for p in ready if p not in targets.replicas]
        extra_nodes = max(0, len(cluster.gpu_nodes) - len(targets.nodes))
        facts.append(
            f"{len(ready) - len(unscraped)}/{len(ready)} ready vLLM pods are scrape targets; "
            f"{len(targets.nodes)} node targets for {len(cluster.gpu_nodes)} GPU nodes"
        )
    else:
        facts.append(f"Kubernetes not read ({cluster.reason}): judged on up alone")
    up_replicas = len(targets.replicas) - len(down)
    facts.append(f"{up_replicas}/{len(targets.replicas)} replica targets up")
    facts.append(f"{len(targets.nodes) - len(down_nodes)}/{len(targets.nodes)} node targets up")
    if down:
        facts.append(f"replicas down: {_names(down)}")
    if down_nodes:
        facts.append(f"node exporters down: {_names(down_nodes)}")
    if unscraped:
        facts.append(f"not scraped: {_names(unscraped)}")
    if extra_nodes:
        facts.append(f"{extra_nodes} GPU nodes without a {rule.node_job} target")
    if not targets.replicas or not targets.nodes:
        empty = rule.replica_job if not targets.replicas else rule.node_job
        facts.append(f"no targets of job {empty}")
        return Decision("fail", how, tuple(facts))
    ok = not (down or down_nodes or unscraped or extra_nodes)
    return Decision("pass" if ok else "fail", how, tuple(facts))


def _expand(expr: str, recording: dict[str, str], depth: int = 3) -> str:
    """The expression with the recording rules it reads spelled out (a few levels)."""
    text = expr
    for _ in range(depth):
        used = [r for r in recording if re.search(rf"(?<![\w:]){re.escape(r)}(?![\w:])", text)]
        added = " ".join(recording[r] for r in used if recording[r] not in text)
        if not added:
            break
        text += " " + added
    return text


def alert_rules(rule: rules.AlertRules, ev: Rules | Missing) -> Decision:
    how = (
        "measured (Prometheus /api/v1/rules): a loaded alerting rule reading the metrics of "
        f"each of: {', '.join(rule.concerns)}"
    )
    if isinstance(ev, Missing):
        return _unknown(how, ev)
    expanded = [(name, _expand(expr, ev.recording)) for name, expr in ev.alerting]
    facts, ok = [], True
    for concern, patterns in rule.concerns.items():
        found = sorted(
            {name for name, text in expanded if any(re.search(p, text) for p in patterns)}
        )
        if found:
            facts.append(f"{concern}: {_names(found)}")
        else:
            ok = False
            facts.append(f"{concern}: no alerting rule")
    facts.append(f"{len(ev.alerting)} alerting rules loaded")
    return Decision("pass" if ok else "fail", how, tuple(facts))


def runbooks(rule: rules.Runbooks, loaded: frozenset[str] | Missing) -> Decision:
    how = f"measured (loaded runbooks): runbooks for {', '.join(rule.require)}"
    if isinstance(loaded, Missing):
        return _unknown(how, loaded)
    absent = [r for r in rule.require if r not in loaded]
    facts = [f"{len(rule.require) - len(absent)}/{len(rule.require)} loaded"]
    if absent:
        facts.append(f"missing: {', '.join(absent)}")
    return Decision("fail" if absent else "pass", how, tuple(facts))


def rollback(
    rule: rules.Rollback, runs: Sequence[RollbackRun] | Missing, now: datetime
) -> Decision:
    how = f"measured (audit log): a successful rollback in the last {rule.lookback_days} days"
    if rule.max_seconds is not None:
        how += f", the newest executed in under {rule.max_seconds:g} s (executing to executed)"
    if isinstance(runs, Missing):
        return _unknown(how, runs)
    since = now - timedelta(days=rule.lookback_days)
    recent = [r for r in runs if r.started >= since]
    done = sorted((r for r in recent if r.ok and r.finished), key=lambda r: r.started)
    failed = sum(not r.ok for r in recent)
    if not done:
        facts = [f"no successful rollback since {since:%Y-%m-%d}"]
        if failed:
            facts.append(f"{failed} failed rollback{'s' * (failed != 1)}")
        return Decision("fail", how, tuple(facts))
    newest = done[-1]
    assert newest.finished is not None
    took = (newest.finished - newest.started).total_seconds()
    facts = [
        f"{len(done)} successful rollback{'s' * (len(done) != 1)}, newest {newest.target} "
        f"by {newest.actor} at {newest.started:%Y-%m-%d %H:%M} UTC in {took:.1f} s"
    ]
    if failed:
        facts.append(f"{failed} failed")
    ok = rule.max_seconds is None or took < rule.max_seconds
    return Decision("pass" if ok else "fail", how, tuple(facts))


def _counts(watch: CanaryWatch, since: datetime) -> bool:
    """Active, or finished since ``since``."""
    ended = watch.finished or watch.started
    return watch.active or (ended is not None and ended >= since)


def _watch_fact(watch: CanaryWatch) -> str:
    where = f" in {watch.cluster}" if watch.cluster else ""
    when = watch.started if watch.active else watch.finished
    at = f"{' since' if watch.active else ''} {when:%Y-%m-%d}" if when else ""
    return f"canary watch #{watch.id} of {watch.target}{where}, {watch.state.replace('_', ' ')}{at}"


def canary(
    rule: rules.CanaryPipeline,
    rollouts: Canaries | Missing,
    watches: Sequence[CanaryWatch] | Missing,
    now: datetime,
) -> Decision:
    """Either source is enough to pass. One that could not be read is said so; the item
    is unknown only when neither could be."""
    sources = (("Kubernetes", rollouts), ("canary watches", watches))
    read = [name for name, ev in sources if not isinstance(ev, Missing)]
    how = (
        f"measured ({' and '.join(read or [name for name, _ in sources])}): an Argo Rollout "
        "with a canary or blue-green strategy, or a canary watch active or finished in the "
        f"last {rule.lookback_days} days"
    )
    if isinstance(rollouts, Missing) and isinstance(watches, Missing):
        return Decision("unknown", how, (rollouts.reason, watches.reason))
    found: list[str] = []  # what passes it
    facts: list[str] = []  # the facts of what was found
    absent: list[str] = []  # what was looked for and not found
    unread: list[str] = []  # the source that could not be read
    since = now - timedelta(days=rule.lookback_days)
    if isinstance(watches, Missing):
        unread.append(watches.reason)
    else:
        counted = [w for w in watches if _counts(w, since)]
        if counted:
            found.append("a canary watch")
            facts.extend(_watch_fact(w) for w in counted[:WATCHES_SHOWN])
            if len(counted) > WATCHES_SHOWN:
                facts.append(f"and {len(counted) - WATCHES_SHOWN} more canary watches")
        else:
            absent.append(f"no canary watch active or finished since {since:%Y-%m-%d}")
    if isinstance(rollouts, Missing):
        unread.append(f"Argo Rollouts not read ({rollouts.reason})")
    elif rollouts.rollouts:
        found.append("an Argo Rollout")
        shown = [f"{name} ({strategy})" for name, strategy in rollouts.rollouts]
        facts.append(f"Rollouts: {_names(shown)}")
    else:
        absent.append("no Argo Rollout with a canary or blue-green strategy")
    if found:
        how += f"; found {' and '.join(found)}"
    return Decision("pass" if found else "fail", how, (*facts, *absent, *unread))


def attested(rule: rules.Attest, attestation: Attestation | None, now: datetime) -> Decision:
    """What only a person can know: attested until the attestation expires."""
    how = f"attested by a person (valid {rule.expires_days} days), not measured"
    if attestation is None:
        return Decision("unknown", how, ("nobody has attested it",))
    who = attestation.by_name or attestation.by
    facts = [f"by {who} on {attestation.at:%Y-%m-%d %H:%M} UTC"]
    if attestation.link:
        facts.append(attestation.link)
    if attestation.expires <= now:
        facts.insert(0, f"attestation expired on {attestation.expires:%Y-%m-%d %H:%M} UTC")
        return Decision("unknown", how, tuple(facts))
    facts.append(f"expires {attestation.expires:%Y-%m-%d %H:%M} UTC")
    return Decision("attested", how, tuple(facts))

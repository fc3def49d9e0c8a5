"""The scorecard: every item decided, critical items first, and the verdict.

``evaluate`` gathers each kind of evidence once (items that share a source share the
read) and decides every item; ``assemble`` and ``as_json`` are pure.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bot.diagnosis.engine import resolve_scope
from bot.models import Scope
from bot.readiness import decide, gather
from bot.readiness import items as kinds
from bot.readiness.decide import Decision
from bot.readiness.evidence import Attestation, Cluster, Missing, Targets
from bot.readiness.items import Item
from bot.remediation.audit import AuditLog

T = TypeVar("T")
NO_WATCHES = Missing("canary watches not read: no database given")


@dataclass(frozen=True)
class Row:
    item: Item
    decision: Decision


@dataclass(frozen=True)
class Scorecard:
    rows: tuple[Row, ...]

    @property
    def critical(self) -> list[Row]:
        return [r for r in self.rows if r.item.critical]

    @property
    def critical_passed(self) -> int:
        return sum(r.decision.status in ("pass", "attested") for r in self.critical)

    @property
    def ready(self) -> bool:
        return self.critical_passed == len(self.critical)

    @property
    def verdict(self) -> str:
        attested = sum(r.decision.status == "attested" for r in self.critical)
        note = f" ({attested} attested)" if attested else ""
        state = "ready" if self.ready else "not ready"
        return f"{self.critical_passed}/{len(self.critical)} critical pass{note}: {state}"


def assemble(items: Sequence[Item], decisions: Mapping[str, Decision]) -> Scorecard:
    """Critical items first, each group in the items' own order."""
    ordered = sorted(items, key=lambda i: not i.critical)
    return Scorecard(tuple(Row(i, decisions[i.id]) for i in ordered))


def as_json(card: Scorecard) -> dict[str, Any]:
    return {
        "verdict": card.verdict,
        "critical_passed": card.critical_passed,
        "critical_total": len(card.critical),
        "items": [
            {
                "id": r.item.id,
                "category": r.item.category,
                "title": r.item.title,
                "critical": r.item.critical,
                "status": r.decision.status,
                "how": r.decision.how,
                "evidence": list(r.decision.evidence),
            }
            for r in card.rows
        ],
    }


@dataclass
class Sources:
    """Where evidence comes from; a source that cannot be used is ``Missing`` (why)."""

    scope: Scope
    prometheus: gather.PrometheusAPI | Missing
    kube: gather.KubeAPI | Missing
    audit: AuditLog | Missing
    runbooks: frozenset[str] | Missing
    watches: gather.WatchesAPI | Missing = NO_WATCHES  # the bot's canary watches
    window: str | None = None  # overrides the items' rate window
    lookback: str | None = None  # overrides the capacity item's lookback
    default_cluster: str | None = None  # where a watch started without a cluster runs
    _reads: dict[tuple[Any, ...], asyncio.Task[Any]] = field(default_factory=dict)

    def once(self, key: tuple[Any, ...], read: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        """One read per key however many items want it."""
        if key not in self._reads:
            self._reads[key] = asyncio.ensure_future(read())
        task: asyncio.Task[T] = self._reads[key]
        return task


def in_scope(cluster: Cluster, scope: Scope) -> Cluster:
    """The serving pods a ``deployment=`` or ``pod=`` scope names (namespace is read so)."""
    deployment, pod = scope.labels.get("deployment"), scope.labels.get("pod")
    pods = tuple(
        p
        for p in cluster.pods
        if (deployment is None or p.workload == deployment) and (pod is None or p.name == pod)
    )
    return replace(cluster, pods=pods)


def targets_in_scope(targets: Targets, scope: Scope) -> Targets:
    """Replica targets of the scope's Deployment or pod (pods are ``<deployment>-<hash>-<id>``)."""
    deployment, pod = scope.labels.get("deployment"), scope.labels.get("pod")
    replicas = {
        name: up
        for name, up in targets.replicas.items()
        if (
            deployment is None
            or re.fullmatch(rf"{re.escape(deployment)}-[a-z0-9]+-[a-z0-9]+", name)
        )
        and pod in (None, name)
    }
    return replace(targets, replicas=replicas)


async def _measure(rule: kinds.Measure, src: Sources, now: datetime) -> Decision:
    prom, kube, scope = src.prometheus, src.kube, src.scope
    namespace = scope.labels.get("namespace")

    async def cluster(image: str, zone_label: str) -> Any:
        if isinstance(kube, Missing):
            return kube
        found = await src.once(
            ("cluster", image, zone_label),
            lambda: gather.cluster(kube, namespace, image, zone_label),
        )
        return found if isinstance(found, Missing) else in_scope(found, scope)

    match rule:
        case kinds.CapacityHeadroom():
            window, lookback = src.window or rule.window, src.lookback or rule.lookback
            ev: Any = prom
            if not isinstance(prom, Missing):
                ev = await gather.capacity(prom, scope, window, lookback)
            if src.lookback:
                rule = rule.model_copy(update={"lookback": lookback})
            return decide.capacity(rule, ev)
        case kinds.ZoneSpread():
            return decide.zones(rule, await cluster(rule.image, rule.zone_label))
        case kinds.PodArg():
            return decide.pod_arg(rule, await cluster(rule.image, kinds.ZONE_LABEL))
        case kinds.CacheConfig():
            ev = prom if isinstance(prom, Missing) else await gather.cache_configs(prom, scope)
            return decide.cache_config(rule, ev)
        case kinds.ScrapeCoverage():
            if isinstance(prom, Missing):
                return decide.scrape(rule, prom, prom)
            up = await gather.targets(prom, scope, rule.replica_job, rule.node_job)
            if not isinstance(up, Missing):
                up = targets_in_scope(up, scope)
            return decide.scrape(rule, up, await cluster(rule.image, kinds.ZONE_LABEL))
        case kinds.AlertRules():
            if isinstance(prom, Missing):
                return decide.alert_rules(rule, prom)
            return decide.alert_rules(rule, await src.once(("rules",), lambda: gather.rules(prom)))
        case kinds.Runbooks():
            return decide.runbooks(rule, src.runbooks)
        case kinds.Rollback():
            audit = src.audit
            since = now - timedelta(days=rule.lookback_days)
            runs = audit if isinstance(audit, Missing) else gather.rollbacks(audit, since, scope)
            return decide.rollback(rule, runs, now)
        case kinds.CanaryPipeline():
            rollouts = kube if isinstance(kube, Missing) else await gather.canaries(kube, namespace)
            book = src.watches  # a database read, off the event loop
            watches = (
                book
                if isinstance(book, Missing)
                else await asyncio.to_thread(
                    gather.canary_watches, book, scope, src.default_cluster
                )
            )
            return decide.canary(rule, rollouts, watches, now)
    raise AssertionError(f"no decision for {rule!r}")  # pragma: no cover


async def evaluate(
    items: Sequence[Item],
    sources: Sources,
    attestations: Mapping[str, Attestation],
    now: datetime,
) -> Scorecard:
    if not isinstance(sources.prometheus, Missing):  # the data's labels, as a diagnosis reads them
        sources.scope = await resolve_scope(sources.scope, sources.prometheus)

    async def one(item: Item) -> Decision:
        if item.measure is not None:
            return await _measure(item.measure, sources, now)
        assert item.attest is not None
        return decide.attested(item.attest, attestations.get(item.id), now)

    decisions = await asyncio.gather(*(one(i) for i in items))
    return assemble(items, {i.id: d for i, d in zip(items, decisions, strict=True)})

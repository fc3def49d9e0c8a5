"""One canary comparison: the newest revision of a Deployment against the revision
before it, both serving, over the same window; each gate's verdict and the rollback
triggers. Prometheus is read through a :class:`MetricsSource` (two requests)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.canary.gates import GateVerdict, Reading, Trigger, judge, overall, triggers
from bot.canary.queries import REVISION, CanaryQueries
from bot.config import CanarySettings
from bot.diagnosis.checks.base import CheckContext
from bot.diagnosis.labels import detect
from bot.diagnosis.promql import window_seconds
from bot.models import Scope
from bot.sources.prometheus import MetricsError, MetricsSource, Sample

Status = Literal["pass", "fail", "wait", "unknown"]


@dataclass(frozen=True)
class Revision:
    replicaset: str
    created: float  # unix seconds
    replicas: int


@dataclass(frozen=True)
class Baseline:
    """The previous revision's last numbers, kept while both revisions served: once the
    new revision takes every pod (the last phase), its gates are judged against these."""

    replicaset: str
    values: dict[str, float]  # by gate metric
    requests: float | None = None

    def as_json(self) -> dict[str, object]:
        return {"replicaset": self.replicaset, "values": self.values, "requests": self.requests}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Baseline:
        values = data.get("values")
        requests = data.get("requests")
        return cls(
            str(data.get("replicaset", "")),
            {str(k): float(v) for k, v in values.items()} if isinstance(values, dict) else {},
            float(requests) if isinstance(requests, int | float) else None,
        )


@dataclass
class Comparison:
    namespace: str
    deployment: str
    window: str
    status: Status
    new: Revision | None = None
    old: Revision | None = None
    gates: list[GateVerdict] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    problem: str = ""  # why nothing could be compared
    queries: list[str] = field(default_factory=list)
    old_requests: float | None = None  # requests the previous revision served in the window
    from_baseline: bool = False  # the previous revision no longer serves: its last numbers

    def baseline(self) -> Baseline | None:
        """The previous revision's numbers of this comparison, to judge against later."""
        if self.old is None or self.from_baseline:
            return None
        values = {g.metric: g.old for g in self.gates if g.old is not None}
        return Baseline(self.old.replicaset, values, self.old_requests)

    @property
    def rollback(self) -> bool:
        """A rollback trigger tripped: go back now, whatever the gates say."""
        return any(t.tripped for t in self.triggers)


def revisions_of(created: Sequence[Sample], replicas: Sequence[Sample]) -> list[Revision]:
    """The Deployment's ReplicaSets that ask for replicas, newest first."""
    wanted = {s.labels.get("replicaset", ""): int(s.value) for s in replicas}
    found = [
        Revision(s.labels.get("replicaset", ""), s.value, wanted.get(s.labels["replicaset"], 0))
        for s in created
        if s.labels.get("replicaset")
    ]
    return sorted(
        (r for r in found if r.replicas > 0), key=lambda r: (r.created, r.replicaset), reverse=True
    )


def _by_revision(samples: Sequence[Sample]) -> dict[str, float]:
    return {
        s.labels.get(REVISION, ""): s.value
        for s in samples
        if not math.isnan(s.value) and not math.isinf(s.value)
    }


async def compare(
    metrics: MetricsSource,
    scope: Scope,
    namespace: str,
    deployment: str,
    config: CanarySettings,
    window: str | None = None,
    gates: Sequence[str] | None = None,
    baseline: Baseline | None = None,
) -> Comparison:
    """Compare ``namespace/deployment``'s newest serving revision with the one before it.

    ``scope`` carries the cluster and the label conventions; ``gates`` names the gates to
    judge (default: every configured gate). When the new revision alone serves (the
    canary's last phase), the previous revision's numbers come from ``baseline``. A
    Prometheus that cannot answer makes the comparison ``unknown`` with the reason, never
    an exception.
    """
    try:
        return await _compare(
            metrics, scope, namespace, deployment, config, window, gates, baseline
        )
    except MetricsError as exc:
        result = Comparison(namespace, deployment, window or config.window, "unknown")
        result.problem = f"Prometheus did not answer: {exc}"
        return result


async def _compare(
    metrics: MetricsSource,
    scope: Scope,
    namespace: str,
    deployment: str,
    config: CanarySettings,
    window: str | None = None,
    gates: Sequence[str] | None = None,
    baseline: Baseline | None = None,
) -> Comparison:
    window = window or config.window
    scope = await detect(scope.model_copy(update={"labels": {"namespace": namespace}}), metrics)
    ctx = CheckContext(
        metrics=metrics,
        scope=scope,
        window=window,
        params={},
    )
    q = CanaryQueries(ctx, namespace, deployment)
    result = Comparison(namespace, deployment, window, "unknown", queries=ctx.queries)
    created, replicas = await ctx.query_all(*q.revisions())
    serving = revisions_of(created, replicas)
    if not created:
        result.problem = (
            f"kube-state-metrics knows no ReplicaSet of Deployment {namespace}/{deployment}: "
            "is the name right, and is kube-state-metrics scraped (honor_labels: true)?"
        )
        return result
    alone = len(serving) == 1 and baseline is not None
    if alone and baseline is not None and serving[0].replicaset != baseline.replicaset:
        serving.append(Revision(baseline.replicaset, 0.0, 0))
        result.from_baseline = True
    if len(serving) < 2:
        only = serving[0].replicaset if serving else "none"
        result.problem = (
            f"one revision serves ({only}): no canary under way, nothing to compare with"
        )
        return result
    new, old = serving[0], serving[1]
    result.new, result.old = new, old
    short = config.rollback.window
    both = [new.replicaset] if result.from_baseline else [new.replicaset, old.replicaset]
    answers = await ctx.query_all(
        q.covered(both, window),
        q.errors(both, window),
        q.ttft(both, window),
        q.tpot(both, window),
        q.throughput(both, window),
        q.kv_usage(both, window),
        q.gpu_memory_trend(both, window),
        q.requests(both, window),
        q.covered([new.replicaset], short),
        q.errors([new.replicaset], short),
        q.ttft([new.replicaset], short),
        q.tpot([new.replicaset], short),
    )
    covered, *readings, served = (_by_revision(a) for a in answers[:8])
    metrics_read = ("error_rate", "ttft_p99", "tpot_p99", "throughput", "kv_usage")
    by_metric = dict(zip((*metrics_read, "gpu_memory_leak"), readings, strict=True))
    if result.from_baseline and baseline is not None:
        for metric, values in by_metric.items():
            if metric in baseline.values:
                values[old.replicaset] = baseline.values[metric]
        if baseline.requests is not None:
            served[old.replicaset] = baseline.requests
    result.old_requests = served.get(old.replicaset)
    window_s = window_seconds(window)
    new_covered = covered.get(new.replicaset, 0.0)
    for gate in config.gates:
        if gates is not None and gate.metric not in gates:
            continue
        values = by_metric[gate.metric]
        reading = Reading(
            values.get(new.replicaset),
            values.get(old.replicaset),
            new_covered,
            window_s,
            served.get(new.replicaset),
            served.get(old.replicaset),
        )
        result.gates.append(judge(gate, reading, config.min_requests))
    short_covered, errors, ttft, tpot = (_by_revision(a) for a in answers[8:])
    result.triggers = triggers(
        config.rollback,
        errors.get(new.replicaset),
        ttft.get(new.replicaset),
        tpot.get(new.replicaset),
        short_covered.get(new.replicaset, 0.0),
        window_seconds(short),
    )
    result.status = "fail" if result.rollback else overall(result.gates)
    return result

"""The canary gates as an Argo Rollouts ``AnalysisTemplate``: the rollout controller runs
the same PromQL as ``canary`` and enforces the gates itself, instead of the bot watching.

The Rollout passes the two revisions' pod-template hashes (``podTemplateHashValue:
Latest`` / ``Stable``); a Rollout's ReplicaSet is ``<rollout>-<hash>``. Each gate bound is
one metric with a ``successCondition``, first measured once the gate's window has passed
(``initialDelay``: never judged on a window the data does not fill); each rollback
trigger is one metric over the short window with a ``failureCondition`` and no failure
allowed, measured every ``evaluate_every_s`` so the rollout aborts within a minute.

A p99 gate is judged only once each revision served ``min_requests`` in the window; until
then its query answers ``-1`` (:data:`TOO_FEW`), which neither its success nor its failure
condition accepts: Argo records the measurement *inconclusive* and the rollout waits for a
person, instead of passing or failing on a handful of requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from bot.canary.gates import QUANTILES
from bot.canary.queries import CanaryQueries
from bot.config import CanaryGate, CanarySettings
from bot.diagnosis.checks.base import CheckContext
from bot.models import Scope
from bot.sources.prometheus import Sample

API_VERSION = "argoproj.io/v1alpha1"
NEW, OLD = "CANARYREPLICASET", "STABLEREPLICASET"  # stand-ins replaced by the Rollout's args
GATE_FAILURE_LIMIT = 2  # a gate may miss twice (noise); a third miss aborts
TOO_FEW = -1  # a p99 gate's answer while too few requests were served to judge it


class _NoMetrics:
    async def query(self, promql: str) -> list[Sample]:  # never called: queries are only built
        raise RuntimeError("an exported template queries nothing itself")


def _queries(namespace: str, name: str, window: str) -> CanaryQueries:
    scope = Scope(labels={"namespace": namespace})
    ctx = CheckContext(metrics=_NoMetrics(), scope=scope, window=window, params={})
    return CanaryQueries(ctx, namespace, name)


def _metric_query(q: CanaryQueries, metric: str, revisions: Sequence[str], window: str) -> str:
    build = {
        "error_rate": q.errors,
        "ttft_p99": q.ttft,
        "tpot_p99": q.tpot,
        "throughput": q.throughput,
        "kv_usage": q.kv_usage,
        "gpu_memory_leak": q.gpu_memory_trend,
    }[metric]
    return f"sum({build(revisions, window)})"


def _enough_requests(q: CanaryQueries, query: str, window: str, least: int) -> str:
    """``query`` while each revision served ``least`` requests in the window, else -1."""
    served = [f"sum({q.requests([rs], window)}) >= {least}" for rs in (NEW, OLD)]
    enough = " and on () ".join(f"({s})" for s in served)
    return f"(({query}) and on () {enough}) or on () vector({TOO_FEW})"


def _bounds(gate: CanaryGate) -> list[tuple[str, str, float]]:
    """(suffix, comparison of new with old, bound) for each bound the gate sets."""
    out = []
    if gate.max is not None:
        out.append(("max", "new", gate.max))
    if gate.max_ratio is not None:
        out.append(("ratio", "ratio", gate.max_ratio))
    if gate.min_ratio is not None:
        out.append(("floor", "ratio", gate.min_ratio))
    if gate.max_increase is not None:
        out.append(("increase", "difference", gate.max_increase))
    return out


def analysis_template(
    config: CanarySettings,
    namespace: str,
    name: str,
    gates: Sequence[str] | None = None,
    prometheus_url: str | None = None,
) -> dict[str, Any]:
    """The AnalysisTemplate ``<name>-canary-gates`` in ``namespace``."""
    address = prometheus_url or "http://prometheus-operated.monitoring.svc:9090"
    window, interval = config.window, f"{config.evaluate_every_s}s"
    q = _queries(namespace, name, window)
    new_rs = f"{name}-{{{{args.canary-hash}}}}"
    old_rs = f"{name}-{{{{args.stable-hash}}}}"

    def prometheus(query: str) -> dict[str, Any]:
        text = query.replace(NEW, new_rs).replace(OLD, old_rs)
        return {"prometheus": {"address": address, "query": text}}

    metrics: list[dict[str, Any]] = []
    for gate in config.gates:
        if gates is not None and gate.metric not in gates:
            continue
        new = _metric_query(q, gate.metric, [NEW], window)
        old = _metric_query(q, gate.metric, [OLD], window)
        judged = gate.metric in QUANTILES and config.min_requests > 0
        for suffix, how, bound in _bounds(gate):
            query = {"new": new, "ratio": f"{new} / {old}", "difference": f"{new} - {old}"}[how]
            op = ">=" if suffix == "floor" else "<="
            measured: dict[str, Any] = {
                "name": f"{gate.metric.replace('_', '-')}-{suffix}",
                "initialDelay": window,
                "interval": interval,
                "failureLimit": GATE_FAILURE_LIMIT,
                "successCondition": f"result[0] {op} {bound:g}",
            }
            if judged:
                query = _enough_requests(q, query, window, config.min_requests)
                miss = "<" if suffix == "floor" else ">"
                measured["successCondition"] = f"result[0] >= 0 && result[0] {op} {bound:g}"
                measured["failureCondition"] = f"result[0] >= 0 && result[0] {miss} {bound:g}"
            measured["provider"] = prometheus(query)
            metrics.append(measured)
    short, rb = config.rollback.window, config.rollback
    triggers = (
        ("error_rate", rb.error_rate),
        ("ttft_p99", rb.slo_factor * rb.ttft_slo_s),
        ("tpot_p99", rb.slo_factor * rb.tpot_slo_s),
    )
    for metric, limit in triggers:
        metrics.append(
            {
                "name": f"rollback-{metric.replace('_', '-')}",
                "initialDelay": short,
                "interval": interval,
                "failureLimit": 0,
                "failureCondition": f"result[0] > {limit:g}",
                "provider": prometheus(_metric_query(q, metric, [NEW], short)),
            }
        )
    return {
        "apiVersion": API_VERSION,
        "kind": "AnalysisTemplate",
        "metadata": {
            "name": f"{name}-canary-gates",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "vllm-chatops"},
        },
        "spec": {
            "args": [{"name": "canary-hash"}, {"name": "stable-hash"}],
            "metrics": metrics,
        },
    }


def as_yaml(template: dict[str, Any]) -> str:
    return yaml.safe_dump(template, sort_keys=False, width=100)

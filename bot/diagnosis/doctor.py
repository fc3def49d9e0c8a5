"""What the monitoring stack holds, and what stops a diagnosis from reading it.

``gather`` asks Prometheus (targets per job, vLLM metric-name generation, DCGM series,
GPU workload labels, the cluster label, loaded rule groups); ``examine`` is pure: facts in,
findings and problems out, each problem with its one-line fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.config import LabelConventions
from bot.diagnosis.alert_rules import GROUP_PREFIX
from bot.diagnosis.labels import cluster_values_query, conclude, detection_query
from bot.diagnosis.metric_names import GPU_UTIL, KV_USAGE
from bot.diagnosis.promql import with_conventions
from bot.diagnosis.runbooks import Runbook
from bot.models import Scope
from bot.sources.prometheus import MetricsError, Sample

NEW_NAME, OLD_NAME = KV_USAGE  # every replica exposes one of them: the generation marker


class PrometheusAPI(Protocol):
    async def query(self, promql: str) -> list[Sample]: ...

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any: ...


@dataclass(frozen=True)
class Facts:
    """What the data holds (or why it could not be read)."""

    prometheus: str
    unreachable: str | None = None
    targets: dict[str, tuple[int, int]] = field(default_factory=dict)  # job → (up, down)
    vllm_new: int = 0  # replicas exposing the current names
    vllm_old: int = 0  # replicas exposing pre-0.11 names
    gpus: int = 0
    conventions: LabelConventions = field(default_factory=LabelConventions)
    configured_gpu_labels: str = "auto"
    clusters: tuple[str, ...] = ()
    configured_clusters: tuple[str, ...] = ()
    rule_groups: tuple[str, ...] | None = None  # None: the rules API did not answer
    expected_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    what: str
    fix: str


@dataclass(frozen=True)
class Report:
    facts: Facts
    found: list[tuple[str, str]]  # (topic, what was found)
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def expected_groups(runbooks: Mapping[str, Runbook]) -> tuple[str, ...]:
    """The alert rule groups `rules export` writes for these runbooks."""
    return tuple(f"{GROUP_PREFIX}{rb_id}" for rb_id, rb in sorted(runbooks.items()) if rb.alerts)


def _count(rows: list[Sample]) -> int:
    return int(rows[0].value) if rows else 0


async def gather(
    api: PrometheusAPI,
    url: str,
    conventions: LabelConventions,
    expected_groups: tuple[str, ...],
    configured_clusters: tuple[str, ...] = (),
) -> Facts:
    """Facts from Prometheus: a few cheap queries and the rules API, concurrently."""
    label = conventions.cluster_label
    try:
        up, total, new, old, gpus, detected, clusters = await asyncio.gather(
            api.query("sum by (job) (up)"),
            api.query("count by (job) (up)"),
            api.query(f"count(count by (namespace, pod, instance, {label}) ({NEW_NAME}))"),
            api.query(f"count(count by (namespace, pod, instance, {label}) ({OLD_NAME}))"),
            api.query(f"count({GPU_UTIL})"),
            api.query(detection_query(label)),
            api.query(cluster_values_query(label)),
        )
    except MetricsError as exc:
        return Facts(prometheus=url, unreachable=str(exc), expected_groups=expected_groups)
    try:
        rules = await api.get("/api/v1/rules")
        groups: tuple[str, ...] | None = tuple(
            str(g.get("name", "")) for g in (rules or {}).get("groups", [])
        )
    except MetricsError:
        groups = None
    ups = {r.labels.get("job", ""): int(r.value) for r in up}
    targets: dict[str, tuple[int, int]] = {}
    for r in total:
        job = r.labels.get("job", "")
        targets[job] = (ups.get(job, 0), int(r.value) - ups.get(job, 0))
    # what the data uses, whatever is configured
    auto = conventions.model_copy(update={"gpu_workload_labels": "auto"})
    seen = conclude(with_conventions(Scope(), auto), detected).conventions
    return Facts(
        prometheus=url,
        targets=dict(sorted(targets.items())),
        vllm_new=_count(new),
        vllm_old=_count(old),
        gpus=_count(gpus),
        conventions=seen,
        configured_gpu_labels=conventions.gpu_workload_labels,
        clusters=tuple(sorted({r.labels[label] for r in clusters if r.labels.get(label)})),
        configured_clusters=configured_clusters,
        rule_groups=groups,
        expected_groups=expected_groups,
    )


def examine(f: Facts) -> Report:
    """Findings and problems from the facts (pure)."""
    if f.unreachable:
        fix = "start it, or point --prometheus / prometheus_url (PROMETHEUS_URL) at it"
        return Report(f, [("prometheus", f.unreachable)], [Problem(f.unreachable, fix)])
    found: list[tuple[str, str]] = [("prometheus", f.prometheus)]
    problems: list[Problem] = []
    for job, (up, down) in f.targets.items():
        found.append(("targets", f"job {job}: {up} up, {down} down"))
        if down:
            problems.append(
                Problem(
                    f"{down} of {up + down} targets of job {job} are down",
                    f"open Prometheus /targets?search={job} for the scrape error (up == 0)",
                )
            )
    if not f.targets:
        problems.append(Problem("Prometheus scrapes nothing", "add scrape jobs (rule_files aside)"))
    vllm = f.vllm_new + f.vllm_old
    if f.vllm_new and f.vllm_old:
        found.append(
            ("vLLM names", f"mixed: {f.vllm_new} replicas on current names, {f.vllm_old} on "
             "pre-0.11 names (fine: every check reads both)")
        )  # fmt: skip
    elif vllm:
        generation = "current (vLLM ≥ 0.11)" if f.vllm_new else "pre-0.11 (old names)"
        found.append(("vLLM names", f"{generation} on {vllm} replicas"))
    else:
        found.append(("vLLM names", "no vLLM series"))
        problems.append(
            Problem(
                f"no vLLM series ({NEW_NAME} nor {OLD_NAME})",
                "scrape each vLLM pod's /metrics (port 8000) with a ServiceMonitor or PodMonitor",
            )
        )
    if f.gpus:
        found.append(("DCGM", f"{f.gpus} GPUs"))
    else:
        found.append(("DCGM", "no DCGM series"))
        problems.append(
            Problem(
                f"no DCGM series ({GPU_UTIL}): GPU checks read nothing",
                "deploy dcgm-exporter (GPU Operator) and scrape it (port 9400, honorLabels as "
                "you like: both forms are read)",
            )
        )
    found.append(("labels", f.conventions.describe()))
    used = f.conventions.gpu_workload_labels  # detected from the data ("auto": no GPUs)
    if f.configured_gpu_labels not in ("auto", used) and used != "auto":
        problems.append(
            Problem(
                f"configured gpu_workload_labels: {f.configured_gpu_labels}, but the data uses "
                f"{used} labels: GPU checks read nothing",
                f"set labels.gpu_workload_labels: auto (or {used})",
            )
        )
    label = f.conventions.cluster_label
    if f.clusters:
        found.append(("clusters", f"label {label}: {', '.join(f.clusters)}"))
        missing = [c for c in f.configured_clusters if c not in f.clusters]
        if missing and f.configured_clusters != ("default",):
            problems.append(
                Problem(
                    f"configured cluster(s) {', '.join(missing)} are not values of label "
                    f"{label} ({', '.join(f.clusters)}): their recommendations are refused",
                    "name each configured cluster as the data's cluster label does",
                )
            )
    else:
        found.append(("clusters", f"no {label} label (one cluster, or set labels.cluster_label)"))
    if f.rule_groups is None:
        found.append(("rules", "the rules API did not answer"))
    else:
        ours = [g for g in f.expected_groups if g in f.rule_groups]
        found.append(("rules", f"{len(ours)}/{len(f.expected_groups)} vllm-chatops groups loaded"))
        missing_groups = [g for g in f.expected_groups if g not in f.rule_groups]
        if missing_groups:
            problems.append(
                Problem(
                    f"alerting rules not loaded: {', '.join(missing_groups[:3])}"
                    + (f" and {len(missing_groups) - 3} more" if len(missing_groups) > 3 else ""),
                    "vllm-chatops rules export -o vllm-chatops.rules.yml and list it under "
                    "rule_files (or --format prometheusrule | kubectl apply -f -)",
                )
            )
    return Report(f, found, problems)

"""Run a runbook's checks concurrently against Prometheus and conclude.

``diagnose`` streams: ``on_check`` is called as each check finishes (the Slack message
and the terminal progress update from it). A failing, slow or unreachable Prometheus
turns the affected checks into ``unknown`` with the reason; it never raises or hangs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.config import LabelConventions
from bot.diagnosis.checks import REGISTRY, CheckContext
from bot.diagnosis.decisions import SizingPolicy, evaluate, overall_status
from bot.diagnosis.labels import detect as detect_conventions
from bot.diagnosis.per_workload import fallbacks, labelled, scope_of, unwell, workloads_in
from bot.diagnosis.promql import (
    NODE_KEY,
    LabelledScope,
    ScopeError,
    check_window,
    conventions_of,
    dcgm,
    with_conventions,
)
from bot.diagnosis.recording import presence_query
from bot.diagnosis.runbooks import Runbook
from bot.diagnosis.shared_queries import SharedQueries
from bot.models import CheckResult, Diagnosis, Finding, RecommendedAction, Scope, status_rank
from bot.sources.prometheus import MetricsError, MetricsSource

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

OnCheck = Callable[[CheckResult, int, int], Awaitable[None] | None]


@dataclass(frozen=True)
class DiagnosisOptions:
    window: str = "5m"
    check_timeout_s: float = 20.0
    # Prometheus records per-replica rates for this window (see bot.diagnosis.recording).
    recorded_window: str | None = None
    # Without a recorded window: look whether Prometheus records this diagnosis' window.
    detect_recordings: bool = False
    sizing: SizingPolicy = field(default_factory=SizingPolicy)
    # check id → parameter overrides from configuration (win over the runbook's)
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # configured label conventions: global, and per cluster name
    conventions: LabelConventions = field(default_factory=LabelConventions)
    cluster_conventions: Mapping[str, LabelConventions] = field(default_factory=dict)

    def labelled(self, scope: Scope) -> Scope:
        """``scope`` with the configured conventions of its cluster (kept if it has some)."""
        if isinstance(scope, LabelledScope):
            return scope
        own = self.cluster_conventions.get(scope.cluster or "")
        return with_conventions(scope, own or self.conventions)


def options_from_settings(settings: Settings, window: str | None = None) -> DiagnosisOptions:
    """The diagnosis options a configuration asks for (``window`` overrides its own)."""
    return DiagnosisOptions(
        window=window or settings.diagnosis_window,
        check_timeout_s=2 * settings.query_timeout_s,
        recorded_window=settings.diagnosis_window if settings.recording_rules is True else None,
        detect_recordings=settings.recording_rules == "auto",
        sizing=SizingPolicy(headroom=settings.scale_headroom),
        overrides=settings.thresholds,
        conventions=settings.labels,
        cluster_conventions={c.name: c.labels for c in settings.clusters if c.labels},
    )


async def resolve_scope(scope: Scope, metrics: MetricsSource) -> Scope:
    """The data's label conventions (configured, else detected); and since vLLM series
    carry no node label, the pods on the scope's node, found through DCGM."""
    scope = await detect_conventions(scope, metrics)
    node = scope.labels.get(NODE_KEY)
    if node is None or scope.pods is not None:
        return scope
    pod = conventions_of(scope).gpu_label("pod")
    try:
        assigned = dcgm("DCGM_FI_DEV_GPU_UTIL", scope, assigned=True)
        rows = await metrics.query(f"group by ({pod}) ({assigned})")
    except MetricsError as exc:
        log.warning("cannot resolve pods on node %s: %s", node, exc)
        rows = []
    pods = tuple(sorted({r.labels[pod] for r in rows if r.labels.get(pod)}))
    return scope.model_copy(update={"pods": pods})


async def _recorded(options: DiagnosisOptions, metrics: MetricsSource) -> bool:
    """Whether Prometheus records per-replica rates for the diagnosis window (when asked)."""
    if not options.detect_recordings or options.recorded_window is not None:
        return False
    try:
        return bool(await metrics.query(presence_query(options.window)))
    except MetricsError as exc:
        log.warning("cannot tell whether recording rules are loaded: %s", exc)
        return False


async def run_check(
    check_id: str,
    params: Mapping[str, Any],
    scope: Scope,
    metrics: MetricsSource,
    options: DiagnosisOptions,
) -> CheckResult:
    check = REGISTRY[check_id]
    ctx = CheckContext(
        metrics=metrics,
        scope=scope,
        window=options.window,
        recorded_window=options.recorded_window,
        params=params,
    )
    started = time.monotonic()

    def failed(reason: str) -> CheckResult:
        return CheckResult(
            id=check.id,
            title=check.title,
            status="unknown",
            summary=reason,
            queries=list(ctx.queries),
        )

    try:
        result = await asyncio.wait_for(check.run(ctx), timeout=options.check_timeout_s)
    except MetricsError as exc:
        result = failed(str(exc))
    except TimeoutError:
        result = failed(f"timed out after {options.check_timeout_s:g}s waiting for Prometheus")
    except (ScopeError, TypeError, KeyError, ValueError) as exc:
        result = failed(f"cannot run: {exc}")
    except Exception as exc:  # a bug in one check must not sink the diagnosis
        log.exception("check %s failed", check.id)
        result = failed(f"check failed unexpectedly ({type(exc).__name__}); see the bot's log")
    return result.model_copy(update={"duration_s": round(time.monotonic() - started, 3)})


async def _run_checks(
    runbook: Runbook,
    scope: Scope,
    metrics: MetricsSource,
    options: DiagnosisOptions,
    on_check: OnCheck | None = None,
) -> dict[str, CheckResult]:
    """Every check of the runbook, concurrently, reporting each as it finishes."""
    tasks = [
        asyncio.ensure_future(
            run_check(
                ref.id, runbook.check_params(ref.id, options.overrides), scope, metrics, options
            )
        )
        for ref in runbook.checks
    ]
    results: dict[str, CheckResult] = {}
    try:
        for done, next_result in enumerate(asyncio.as_completed(tasks), start=1):
            result = await next_result
            results[result.id] = result
            if on_check is not None:
                outcome = on_check(result, done, len(tasks))
                if inspect.isawaitable(outcome):
                    await outcome
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return results


async def _workloads(scope: Scope, metrics: MetricsSource) -> set[str]:
    try:
        return await workloads_in(scope, metrics)
    except MetricsError as exc:  # then decide scope-wide, as without several workloads
        log.warning("cannot list the workloads in %s: %s", scope.describe(), exc)
        return set()


async def _decide_for(
    workload: str,
    runbook: Runbook,
    scope: Scope,
    metrics: MetricsSource,
    options: DiagnosisOptions,
) -> tuple[list[Finding], list[RecommendedAction]]:
    narrowed = scope_of(workload, scope)
    results = await _run_checks(runbook, narrowed, metrics, options)
    findings, actions = evaluate(runbook, results, narrowed, options.sizing)
    return labelled(workload, findings), actions


async def diagnose(
    runbook: Runbook,
    scope: Scope,
    metrics: MetricsSource,
    options: DiagnosisOptions | None = None,
    on_check: OnCheck | None = None,
) -> Diagnosis:
    options = options or DiagnosisOptions()
    check_window(options.window)
    started = time.monotonic()
    shared = SharedQueries(metrics)
    try:
        return await _diagnose(runbook, scope, shared, options, on_check, started)
    finally:
        await shared.aclose()


async def _diagnose(
    runbook: Runbook,
    scope: Scope,
    metrics: MetricsSource,
    options: DiagnosisOptions,
    on_check: OnCheck | None,
    started: float,
) -> Diagnosis:
    scope, recorded = await asyncio.gather(
        resolve_scope(options.labelled(scope), metrics), _recorded(options, metrics)
    )
    if recorded:
        options = dataclasses.replace(options, recorded_window=options.window)
    discovery = asyncio.ensure_future(_workloads(scope, metrics))
    try:
        results = await _run_checks(runbook, scope, metrics, options, on_check)
        # the checks' deadline bounds the listing too: without it, decide scope-wide
        left = started + options.check_timeout_s - time.monotonic()
        workloads = await asyncio.wait_for(discovery, timeout=max(left, 0.0))
    except TimeoutError:
        workloads = set()
    finally:
        discovery.cancel()
    ordered = [results[ref.id] for ref in runbook.checks]
    findings, actions = evaluate(runbook, results, scope, options.sizing)
    split = unwell(ordered, workloads, scope)
    try:  # one more check deadline at most, and only when some workloads look unwell
        decided = await asyncio.wait_for(
            asyncio.gather(*(_decide_for(w, runbook, scope, metrics, options) for w in split)),
            timeout=options.check_timeout_s,
        )
    except TimeoutError:
        log.warning("per-workload decisions in %s timed out: decided scope-wide", scope.describe())
        decided = []
    own = [f for workload_findings, _ in decided for f in workload_findings]
    if own:
        # Each unwell workload on its own data; the scope-wide view keeps its blind spots.
        findings = sorted(
            [*own, *(f for f in fallbacks(findings) if f.id == "blind_spots")],
            key=lambda f: -status_rank(f.severity),
        )
        merged: dict[tuple[str, str, str, str], RecommendedAction] = {}
        for _, workload_actions in decided:
            for a in workload_actions:
                change = str(a.params.get("change", ""))
                merged.setdefault((a.kind, a.target, change, a.cluster or ""), a)
        actions = list(merged.values())
    return Diagnosis(
        runbook=runbook.id,
        title=runbook.title,
        scope=scope,
        status=overall_status(ordered),
        checks=ordered,
        findings=findings,
        actions=actions,
        remediation=runbook.remediation,
        links={link.title: link.render(scope.labels) for link in runbook.links},
        workloads=split if own else [],
        duration_s=round(time.monotonic() - started, 3),
    )

"""What every check shares: its context, thresholds, formatting and the per-target pattern.

A check is an async function ``run(ctx) -> CheckResult``. It reads Prometheus only
through ``ctx.query`` (so the queries it ran are recorded), aggregates on the Prometheus
side, and reports ``unknown`` — saying why — when its metrics are missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.diagnosis.metric_names import KV_USAGE, RUNNING, WAITING
from bot.diagnosis.promql import (
    LABEL_NAME,
    WORKLOAD_KEYS,
    cluster_matchers,
    conventions_of,
    history_filled_query,
    history_query,
    rate_by,
    vllm_selector,
    window_seconds,
)
from bot.diagnosis.recording import BY_MODEL, QUANTILE, recording_for
from bot.models import CheckResult, Offender, Scope, Status
from bot.sources.prometheus import MetricsSource, Sample

TOP_K = 5
# Tags each part of a combined query (see CheckContext.query_all).
PART_LABEL = "vllm_chatops_part"
# A rate over a window the data fills less than this much is not reported as a number.
HISTORY_FILL = 0.9


# Labels that identify one vLLM replica and one GPU, in every variant seen in fleets.
def replica_identity(scope: Scope) -> str:
    """The labels that tell one vLLM replica from another (the cluster's too: names repeat
    across clusters)."""
    return f"namespace, pod, instance, {conventions_of(scope).cluster_label}"


def replica_labels(scope: Scope) -> str:
    """A replica's identity and the model it serves, for ``max by (…)`` over vLLM series."""
    return f"{replica_identity(scope)}, model_name"


KEPT_LABELS = ("cluster", "namespace", "pod", "instance", "model_name", "gpu", "UUID", "node")


@dataclass(frozen=True)
class Thresholds:
    warn: float
    crit: float
    above: bool = True  # True: higher is worse; False: lower is worse

    def status(self, value: float) -> Status:
        if self.above:
            return "crit" if value >= self.crit else "warn" if value >= self.warn else "ok"
        return "crit" if value <= self.crit else "warn" if value <= self.warn else "ok"

    @property
    def op(self) -> str:
        return ">=" if self.above else "<="


@dataclass
class CheckContext:
    metrics: MetricsSource
    scope: Scope
    window: str
    params: Mapping[str, Any]
    recorded_window: str | None = None  # recording rules exist for this window
    queries: list[str] = field(default_factory=list)

    async def query(self, promql: str) -> list[Sample]:
        self.queries.append(promql)
        return await self.metrics.query(promql)

    def _recorded_serves(self, keep: tuple[str, ...], by: str, extra: str = "") -> bool:
        """Whether series recorded for the window, keeping only ``keep``, answer for the
        scope, grouped ``by`` and filtered by ``extra``: else read the raw series."""
        if self.recorded_window != self.window or cluster_matchers(self.scope):
            return False  # recorded series keep no cluster label: fine unless filtered on
        wanted = {k for k in self.scope.labels if k not in ("cluster", "node", "deployment")}
        wanted |= (
            {"pod"} if self.scope.pods is not None or "deployment" in self.scope.labels else set()
        )
        wanted |= {m.split("=")[0].rstrip("!~") for m in extra.split(",") if m}
        wanted |= {x.strip() for x in by.split(",") if x.strip()} - {
            conventions_of(self.scope).cluster_label
        }
        return wanted <= set(keep) and all(LABEL_NAME.match(w) for w in wanted)

    def rate(self, metric: str | tuple[str, ...], by: str, extra: str = "") -> str:
        """``sum by (by) (rate(metric[window]))``, read from a recording rule when one exists.

        The recorded series keep only some labels: a scope or matcher on any other label
        falls back to the raw series, so the answer is the same either way.
        """
        recording = recording_for(metric)
        if recording is None or not self._recorded_serves(recording.keep, by, extra):
            return rate_by(metric, self.scope, self.window, by, extra)
        return (
            f"sum by ({by}) ({recording.name(self.window)}{{{vllm_selector(self.scope, extra)}}})"
        )

    def quantile(self, q: float, buckets: str | tuple[str, ...], by: str = "") -> str:
        """The ``q`` quantile of a histogram over the window, per ``by`` group (or over the
        scope), from the recorded per-replica quantile or per-model buckets where they serve.
        """
        recording = recording_for(buckets)
        if recording is not None and recording.histogram:
            selector = vllm_selector(self.scope, "")
            per_replica = tuple(k for k in recording.keep if k != "le")
            if by and q == QUANTILE and self._recorded_serves(per_replica, by):
                return f"max by ({by}) ({recording.quantile_name(self.window)}{{{selector}}})"
            if not by and self._recorded_serves(BY_MODEL, "le"):
                model = recording.by_model_name(self.window)
                return f"histogram_quantile({q}, sum by (le) ({model}{{{selector}}}))"
        return f"histogram_quantile({q}, {self.rate(buckets, f'{by}, le' if by else 'le')})"

    async def history_gap(self) -> str | None:
        """'not enough history (40 s of 300 s)' when the data does not fill the window.

        A rate (or a quantile of rates) over a window longer than the data reads low by
        the missing share, so it is not a fact yet. None when the window is filled, or
        when nothing in scope answers (the check's own queries say so).
        """
        if await self.query(history_filled_query(self.scope, self.window, HISTORY_FILL)):
            return None  # the usual case, answered cheaply; how much is missing costs more
        rows = await self.query(history_query(self.scope, self.window))
        if not rows:
            return None
        have, want = max(0.0, rows[0].value), window_seconds(self.window)
        if have >= HISTORY_FILL * want:
            return None
        return f"not enough history ({have:.0f} s of {want:.0f} s)"

    def too_new(self, what: str, gap: str) -> str:
        return (
            f"{what}: {gap} for a rate over {self.window}; wait, or diagnose with a shorter "
            "window (--window)"
        )

    async def query_all(self, *promql: str) -> list[list[Sample]]:
        """Several queries as one request; their answers in the same order.

        Each part is tagged with a label and the parts joined with ``or`` (distinct tags
        never match, so every series of every part is kept): one round trip and one
        evaluation where a check needs several views of the same series.
        """
        if len(promql) == 1:
            return [await self.query(promql[0])]
        joined = " or ".join(
            f'label_replace({q}, "{PART_LABEL}", "{i}", "", "")' for i, q in enumerate(promql)
        )
        answers: list[list[Sample]] = [[] for _ in promql]
        for row in await self.query(joined):
            labels = dict(row.labels)
            part = labels.pop(PART_LABEL, "")
            if part.isdigit() and int(part) < len(answers):
                answers[int(part)].append(Sample(labels, row.value))
        return answers

    def number(self, name: str) -> float:
        value = self.params[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"parameter {name!r} must be a number, got {value!r}")
        return float(value)

    def thresholds(self, above: bool = True) -> Thresholds:
        return Thresholds(self.number("warn"), self.number("crit"), above)


def parts_of(promql: str) -> list[str]:
    """The queries :meth:`CheckContext.query_all` combined into ``promql`` (itself if none)."""
    parts: list[str] = []
    rest = promql
    while rest.startswith("label_replace("):
        marker = f', "{PART_LABEL}", "{len(parts)}", "", "")'
        end = rest.find(marker)
        if end < 0:
            break
        parts.append(rest[len("label_replace(") : end])
        rest = rest[end + len(marker) :].removeprefix(" or ")
    return parts if parts and not rest else [promql]


CheckFn = Callable[[CheckContext], Awaitable[CheckResult]]


def slo_thresholds(params: Mapping[str, Any]) -> Thresholds:
    """Latency levels as multiples of an SLO (the checklist: warning 1.5x, critical 2x)."""
    slo = float(params["slo_s"])
    return Thresholds(slo * float(params["warn_factor"]), slo * float(params["crit_factor"]))


def plain_thresholds(params: Mapping[str, Any], above: bool = True) -> Thresholds:
    return Thresholds(float(params["warn"]), float(params["crit"]), above)


@dataclass(frozen=True)
class Check:
    """A check: its id, what it needs (defaults), how it runs, and its thresholds.

    ``thresholds`` turns parameters into the warn/crit levels, so alert rules exported
    from runbooks use exactly the levels the diagnosis applies.
    """

    id: str
    title: str
    run: CheckFn
    defaults: Mapping[str, Any]
    description: str = ""
    thresholds: Callable[[Mapping[str, Any]], Thresholds] | None = plain_thresholds
    # A context check explains signals other checks show (was a rollout to blame?); it
    # cannot show a fault alone, so its blindness leaves a diagnosis healthy, not unknown.
    context: bool = False


def is_context(check_id: str) -> bool:
    from bot.diagnosis.checks import REGISTRY  # the registry imports this module

    check = REGISTRY.get(check_id)
    return check is not None and check.context


def target_of(labels: Mapping[str, str]) -> dict[str, str]:
    """The identifying labels of a series, with DCGM's host label normalised to ``node``."""
    out = {k: labels[k] for k in KEPT_LABELS if labels.get(k)}
    host = labels.get("hostname") or labels.get("Hostname")
    if host:
        out["node"] = host
    return out


Target = Callable[[Mapping[str, str]], dict[str, str]]


def replica_target(scope: Scope) -> Target:
    """A vLLM series' target, its cluster read from the configured cluster label."""
    label = conventions_of(scope).cluster_label
    if label == "cluster":
        return target_of

    def target(labels: Mapping[str, str]) -> dict[str, str]:
        plain = {k: v for k, v in labels.items() if k != "cluster"}
        if labels.get(label):
            plain["cluster"] = labels[label]
        return target_of(plain)

    return target


def gpu_target(scope: Scope) -> Target:
    """A GPU series' target under the scope's conventions: ``pod``/``namespace`` are the
    workload's (``exported_*`` under honor_labels false, never the exporter's own pod) and
    ``node`` the configured node label's value."""
    conventions = conventions_of(scope)

    def target(labels: Mapping[str, str]) -> dict[str, str]:
        plain = {k: v for k, v in labels.items() if k not in WORKLOAD_KEYS}
        for key in WORKLOAD_KEYS:
            value = labels.get(conventions.gpu_label(key))
            if value:
                plain[key] = value
        if labels.get(conventions.cluster_label):
            plain["cluster"] = labels[conventions.cluster_label]
        out = target_of(plain)
        if conventions.node_label and labels.get(conventions.node_label):
            out["node"] = labels[conventions.node_label]
        return out

    return target


def target_clusters(pairs: Sequence[tuple[str, Mapping[str, str]]]) -> dict[str, list[str]]:
    """Fact ``target_clusters``: each action target a check names (``node/x``) → the
    clusters whose series named it, so an action acts only where its data came from."""
    out: dict[str, set[str]] = {}
    for name, target in pairs:
        if target.get("cluster"):
            out.setdefault(name, set()).add(target["cluster"])
    return {name: sorted(clusters) for name, clusters in sorted(out.items())}


def fmt(value: float | None, unit: str) -> str:
    """Human formatting of a value in its unit."""
    if value is None:
        return "n/a"
    if unit == "ratio":
        return f"{value * 100:.1f} %" if value < 0.1 else f"{value * 100:.0f} %"
    if unit == "%":
        return f"{value:.0f} %"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
    if unit == "°C":
        return f"{value:.0f} °C"
    if unit == "/min":
        return f"{value:.1f}/min"
    if unit == "tokens":
        return f"{value:,.0f} tokens"
    if unit == "req/s":
        return f"{value:.1f} req/s"
    return f"{value:g}{(' ' + unit) if unit else ''}"


def gpu_missing(scope: Scope, metric: str) -> str:
    """Why a GPU check read nothing, with the labels it looked for and where to look."""
    c = conventions_of(scope)
    return (
        f"no {metric} series in scope (GPU workload labels "
        f"{c.gpu_label('namespace')}/{c.gpu_label('pod')}): is dcgm-exporter scraped, with "
        "these labels? `vllm-chatops doctor` shows what the data holds"
    )


def unknown(ctx: CheckContext, check_id: str, title: str, reason: str) -> CheckResult:
    return CheckResult(
        id=check_id, title=title, status="unknown", summary=reason, queries=list(ctx.queries)
    )


def offenders_from(
    samples: Sequence[Sample], thresholds: Thresholds, target: Target = target_of
) -> list[Offender]:
    ordered = sorted(samples, key=lambda s: s.value, reverse=thresholds.above)[:TOP_K]
    return [
        Offender(target=target(s.labels), value=s.value, status=thresholds.status(s.value))
        for s in ordered
    ]


@dataclass(frozen=True)
class PerTarget:
    """Result of the per-target pattern: worst few targets and how many cross each level."""

    offenders: list[Offender]
    total: int
    warn: int  # at warn level or worse
    crit: int

    @property
    def status(self) -> Status:
        return "crit" if self.crit else "warn" if self.warn else "ok"

    @property
    def worst(self) -> float:
        return self.offenders[0].value


async def per_target(
    ctx: CheckContext, expr: str, thresholds: Thresholds, target: Target = target_of
) -> PerTarget | None:
    """Two queries whatever the fleet size: the worst ``TOP_K`` targets, and level counts.

    ``expr`` must yield one series per target. None when it yields nothing.
    """
    pick = "topk" if thresholds.above else "bottomk"
    op = thresholds.op
    levels = (
        f'count_values("level", ({expr} {op} bool {thresholds.warn:g})'
        f" + ({expr} {op} bool {thresholds.crit:g}))"
    )
    top, counted = await ctx.query_all(f"{pick}({TOP_K}, {expr})", levels)
    if not top:
        return None
    by_level = {int(float(s.labels.get("level", "0"))): int(s.value) for s in counted}
    return PerTarget(
        offenders=offenders_from(top, thresholds, target),
        total=sum(by_level.values()),
        warn=by_level.get(1, 0) + by_level.get(2, 0),
        crit=by_level.get(2, 0),
    )


def per_target_of(
    samples: Sequence[Sample], thresholds: Thresholds, target: Target = target_of
) -> PerTarget | None:
    """:func:`per_target` over values already read (one a target). None when there are none."""
    if not samples:
        return None
    statuses = [thresholds.status(s.value) for s in samples]
    return PerTarget(
        offenders=offenders_from(samples, thresholds, target),
        total=len(samples),
        warn=sum(st != "ok" for st in statuses),
        crit=statuses.count("crit"),
    )


# The instant vLLM gauges checks read per replica: one selector, one query a diagnosis.
GAUGES: tuple[str, ...] = (*KV_USAGE, WAITING, RUNNING)


def gauges_query(scope: Scope) -> str:
    """Every replica's value of every gauge in :data:`GAUGES` (one sample a replica each)."""
    names = f'__name__=~"{"|".join(GAUGES)}"'
    return f"max by (__name__, {replica_labels(scope)}) ({{{vllm_selector(scope, names)}}})"


async def replica_gauge(ctx: CheckContext, metric: str | tuple[str, ...]) -> list[Sample]:
    """Each replica's ``metric`` (the first of its names the replica exposes).

    Read from :func:`gauges_query`, which every gauge check of a diagnosis sends alike,
    so Prometheus selects the replicas' gauges once rather than once (or thrice) a check.
    """
    names = (metric,) if isinstance(metric, str) else metric
    unknown_names = set(names) - set(GAUGES)
    if unknown_names:
        raise ValueError(f"not an instant gauge read per replica: {sorted(unknown_names)}")
    chosen: dict[tuple[tuple[str, str], ...], tuple[int, Sample]] = {}
    for row in await ctx.query(gauges_query(ctx.scope)):
        name = row.labels.get("__name__", "")
        if name not in names:
            continue
        labels = {k: v for k, v in row.labels.items() if k != "__name__"}
        key, rank = tuple(sorted(labels.items())), names.index(name)
        if key not in chosen or rank < chosen[key][0]:
            chosen[key] = (rank, Sample(labels, row.value))
    return [sample for _, sample in chosen.values()]


def level_summary(
    what: str, result: PerTarget, thresholds: Thresholds, unit: str, noun: str = "replicas"
) -> str:
    """'KV cache 97 % on 2/8 replicas (critical ≥ 95 %)' or 'KV cache at most 43 % …'."""
    worst = fmt(result.worst, unit)
    if result.crit:
        return (
            f"{what} {worst} — critical on {result.crit}/{result.total} {noun} "
            f"(critical {thresholds.op} {fmt(thresholds.crit, unit)})"
        )
    if result.warn:
        return (
            f"{what} {worst} — warning on {result.warn}/{result.total} {noun} "
            f"(warning {thresholds.op} {fmt(thresholds.warn, unit)})"
        )
    best_or_worst = "at most" if thresholds.above else "at least"
    return f"{what} {best_or_worst} {worst} across {result.total} {noun}"


async def gauge_check(
    ctx: CheckContext,
    *,
    check_id: str,
    title: str,
    what: str,
    expr: str = "",
    gauge: str | tuple[str, ...] = (),
    unit: str,
    missing: str,
    noun: str = "replicas",
    above: bool = True,
    rates: bool = False,
    target: Target | None = None,
) -> CheckResult:
    """The common shape: one series per target, thresholds, worst offenders.

    The values are ``expr``'s, or a per-replica ``gauge``'s (see :func:`replica_gauge`).
    ``rates``: ``expr`` is a rate over the window, so the window must hold enough history.
    """
    thresholds = ctx.thresholds(above)
    target = target or replica_target(ctx.scope)
    if gauge:
        result = per_target_of(await replica_gauge(ctx, gauge), thresholds, target)
    elif rates:
        gap, result = await asyncio.gather(
            ctx.history_gap(), per_target(ctx, expr, thresholds, target)
        )
        if gap:
            return unknown(ctx, check_id, title, ctx.too_new(what, gap))
    else:
        result = await per_target(ctx, expr, thresholds, target)
    if result is None:
        return unknown(ctx, check_id, title, missing)
    return CheckResult(
        id=check_id,
        title=title,
        status=result.status,
        value=result.worst,
        unit=unit,
        summary=level_summary(what, result, thresholds, unit, noun),
        offenders=result.offenders,
        queries=list(ctx.queries),
        facts={"targets": result.total, "warn": result.warn, "crit": result.crit},
    )


def stats_query(expr: str, **aggregations: str) -> str:
    """Several fleet-level aggregates of ``expr`` in one query, tagged by a ``stat`` label."""
    parts = [
        f'label_replace({agg}({expr}), "stat", "{name}", "", "")'
        for name, agg in aggregations.items()
    ]
    return " or ".join(parts)


def stats(samples: Sequence[Sample]) -> dict[str, float]:
    return {s.labels["stat"]: s.value for s in samples if "stat" in s.labels}


async def quantile_check(
    ctx: CheckContext,
    *,
    check_id: str,
    title: str,
    what: str,
    fleet_expr: str,
    per_target_expr: str,
    thresholds: Thresholds,
    unit: str,
    missing: str,
    facts: Mapping[str, Any] | None = None,
) -> CheckResult:
    """A fleet-wide quantile judged against thresholds, plus the worst targets.

    Two queries, never a per-target count: quantiles over histograms are the expensive
    queries on a large fleet. One bad replica in a healthy fleet is a warning, not an
    outage; the fleet-wide value decides critical.
    """
    gap, (fleet, top) = await asyncio.gather(
        ctx.history_gap(), ctx.query_all(fleet_expr, f"topk({TOP_K}, {per_target_expr})")
    )
    if gap:
        return unknown(ctx, check_id, title, ctx.too_new(what, gap))
    if not fleet and not top:
        return unknown(ctx, check_id, title, missing)
    offenders = offenders_from(top, thresholds, replica_target(ctx.scope))
    value = fleet[0].value if fleet else offenders[0].value
    status = thresholds.status(value)
    summary = f"{what} {fmt(value, unit)} fleet-wide"
    if status != "ok":
        level = thresholds.crit if status == "crit" else thresholds.warn
        summary += f" ({'critical' if status == 'crit' else 'warning'} ≥ {fmt(level, unit)})"
    elif any(o.status != "ok" for o in offenders):
        status = "warn"
        summary += f"; {offenders[0].name()} at {fmt(offenders[0].value, unit)}"
    if status != "ok" and offenders:
        summary += f"; worst {offenders[0].name()} {fmt(offenders[0].value, unit)}"
    return CheckResult(
        id=check_id,
        title=title,
        status=status,
        value=value,
        unit=unit,
        summary=summary,
        offenders=offenders,
        queries=list(ctx.queries),
        facts=dict(facts or {}),
    )


def slo_quantile_check(
    check_id: str, title: str, what: str, buckets: str | tuple[str, ...], slo_s: float
) -> Check:
    """A latency percentile (fleet-wide, and the worst replicas) judged against an SLO."""
    names = (buckets,) if isinstance(buckets, str) else buckets
    missing = " (nor ".join(names) + ")" * (len(names) - 1)

    async def run(ctx: CheckContext) -> CheckResult:
        q = ctx.number("quantile")
        return await quantile_check(
            ctx,
            check_id=check_id,
            title=title,
            what=f"p{q * 100:g} {what}",
            fleet_expr=ctx.quantile(q, buckets),
            per_target_expr=ctx.quantile(q, buckets, replica_labels(ctx.scope)),
            thresholds=slo_thresholds(ctx.params),
            unit="s",
            missing=f"no {missing} samples in scope over {ctx.window}",
            facts={"slo_s": ctx.number("slo_s")},
        )

    return Check(
        check_id,
        title,
        run,
        {"slo_s": slo_s, "warn_factor": 1.5, "crit_factor": 2.0, "quantile": 0.99},
        thresholds=slo_thresholds,
    )

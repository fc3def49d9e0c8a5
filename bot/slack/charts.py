"""Charts for Slack: a check's key series over the last hour, rendered to a PNG (pure).

Nothing here touches the network or matplotlib's global state: each call builds its own
``Figure`` drawn by the Agg canvas (pyplot keeps global figures and is not thread-safe;
the bot renders in worker threads). Bad input never raises: NaN and infinite points are
dropped, and a chart with nothing left to draw becomes a "no data" image.

``CHARTS`` holds, per check id, a PromQL template for the series worth seeing. Templates
contain ``{sel}`` where the scope's label matchers go (``fill`` puts them there with a
plain string replacement, so PromQL's own braces need no escaping). Renamed vLLM metrics
are read under either name, merged per replica with ``or``, so mixed-version fleets chart
whole.
"""

from __future__ import annotations

import io
import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MultipleLocator, PercentFormatter, ScalarFormatter

SEL = "{sel}"
MAX_SERIES = 8
DPI = 100
MAX_PX = 4096
LABEL_CHARS = 32
THRESHOLD_COLOR = "#d62728"
# tab10 without its red (kept for the threshold) and grey: eight distinct series colours.
COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
)
# A gap longer than this many typical steps breaks the line (a replica was down).
GAP_STEPS = 3.0
# Time-axis tick spacings (seconds); each divides a day, so ticks fall on round UTC times.
TICK_STEPS = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]  # (unix seconds, value)


@dataclass(frozen=True)
class ChartSpec:
    title: str
    unit: str  # as in bot.diagnosis.checks.base.fmt: "s", "ratio", "°C", "/min", "requests", …
    query: str  # PromQL template with ``{sel}``; see ``fill``
    threshold: float | None = None
    threshold_label: str = ""


def fill(query: str, selector: str) -> str:
    """``query`` with every ``{sel}`` replaced by ``selector`` (label matchers, maybe empty).

    Templates put ``{sel}`` last inside a selector's braces (``m{a="b",{sel}}``): with an
    empty selector that leaves a trailing comma, which PromQL accepts.
    """
    return query.replace(SEL, selector.strip())


# --- the chart table -------------------------------------------------------------------

_REPLICA = "namespace, pod, instance"  # labels that tell vLLM replicas apart
_API = 'handler=~"/v1/.*"'


def _m(metric: str, extra: str = "") -> str:
    """A series selector template: ``metric{extra,{sel}}``."""
    return metric + "{" + (extra + "," if extra else "") + SEL + "}"


def _rate(metric: str, extra: str = "", by: str = "") -> str:
    inner = f"rate({_m(metric, extra)}[1m])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def _stat(expr: str, name: str) -> str:
    """``expr`` tagged with ``stat="name"`` (the legend label of that line)."""
    return f'label_replace({expr}, "stat", "{name}", "", "")'


def _p99(per_replica_buckets: str, name: str) -> str:
    return _stat(f"histogram_quantile(0.99, sum by (le) ({per_replica_buckets}))", name)


_TTFT = _p99("rate(" + _m("vllm:time_to_first_token_seconds_bucket") + "[1m])", "p99 fleet")
# Each replica's buckets from whichever name it exposes (one exposing both counts once).
_TPOT = _p99(
    " or ".join(
        _rate(name, by=f"{_REPLICA}, le")
        for name in (
            "vllm:inter_token_latency_seconds_bucket",
            "vllm:time_per_output_token_seconds_bucket",
        )
    ),
    "p99 fleet",
)
_WAITING = _m("vllm:num_requests_waiting")
_KV = "(" + _m("vllm:kv_cache_usage_perc") + " or " + _m("vllm:gpu_cache_usage_perc") + ")"
# dcgm-exporter ≤ 4.5 spells the host label `Hostname`, later ones `hostname`.
_HOST = (
    "label_replace(label_replace("
    + _m("DCGM_FI_DEV_GPU_TEMP")
    + ', "host", "$1", "Hostname", "(.+)"), "host", "$1", "hostname", "(.+)")'
)
# Server errors (HTTP 5xx on the OpenAI API) per replica; engine outcomes where a replica
# has no HTTP metrics — the same measure as the error_rate check.
_HTTP = "http_requests_total"
_HTTP_5XX = f'{_API},status="5xx"'
_ENGINE = "vllm:request_success_total"
_ENGINE_FAILED = 'finished_reason=~"error|abort"'


def _ratio(by: str = "") -> str:
    http = f"({_rate(_HTTP, _HTTP_5XX, by)} / {_rate(_HTTP, _API, by)})"
    engine = f"({_rate(_ENGINE, _ENGINE_FAILED, by)} / {_rate(_ENGINE, by=by)})"
    return f"({http} or {engine})"


_PREEMPTIONS = "vllm:num_preemptions_total"

CHARTS: dict[str, ChartSpec] = {
    "ttft_p99": ChartSpec("TTFT p99", "s", _TTFT),
    "tpot_p99": ChartSpec("TPOT p99", "s", _TPOT),
    "queue_depth": ChartSpec(
        "Requests waiting",
        "requests",
        _stat(f"max({_WAITING})", "worst replica") + " or " + _stat(f"sum({_WAITING})", "fleet"),
    ),
    "kv_cache_usage": ChartSpec("KV-cache usage", "ratio", _stat(f"max({_KV})", "worst replica")),
    "gpu_temperature": ChartSpec(
        "GPU temperature (hottest GPU per host)", "°C", f"max by (host) ({_HOST})"
    ),
    "error_rate": ChartSpec(
        "Server error rate",
        "ratio",
        _stat(f"max({_ratio(_REPLICA)})", "worst replica") + " or " + _stat(_ratio(), "fleet"),
    ),
    "preemption_rate": ChartSpec(
        "Preemptions per minute",
        "/min",
        _stat(f"max({_rate(_PREEMPTIONS, by=_REPLICA)}) * 60", "worst replica")
        + " or "
        + _stat(f"{_rate(_PREEMPTIONS)} * 60", "fleet"),
    ),
}


# --- query results → series ------------------------------------------------------------


class Labelled(Protocol):
    """One range-query series: ``bot.sources.prometheus.RangeSeries`` has this shape."""

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def points(self) -> Sequence[tuple[float, float]]: ...


def _finite(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for point in points:
        try:
            t, v = float(point[0]), float(point[1])
        except (TypeError, ValueError, IndexError):
            continue
        if math.isfinite(t) and math.isfinite(v):
            out.append((t, v))
    out.sort(key=lambda p: p[0])
    return out


def label_series(items: Sequence[Labelled], default_label: str = "value") -> list[Series]:
    """Range-query series → chart series, named by what tells them apart, biggest first.

    A ``stat`` label (set by the ``CHARTS`` queries) is the name; otherwise the labels
    whose values differ between the series (``__name__`` aside); else ``default_label``.
    Ordered by peak value, so the lines ``render_png`` folds away are the quietest.
    """
    label_sets = [{k: v for k, v in item.labels.items() if k != "__name__"} for item in items]
    keys = sorted({k for labels in label_sets for k in labels})
    varying = [k for k in keys if len({labels.get(k, "") for labels in label_sets}) > 1]
    out: list[Series] = []
    for item, labels in zip(items, label_sets, strict=True):
        if "stat" in labels:
            name = labels["stat"]
        elif varying:
            name = " ".join(labels.get(k, "") or "-" for k in varying)
        else:
            name = default_label
        out.append(Series(name, _finite(item.points)))

    def peak(series: Series) -> float:
        return max((v for _, v in series.points), default=-math.inf)

    return sorted(out, key=lambda s: (-peak(s), s.label))


# --- rendering -------------------------------------------------------------------------


def _shorten(label: str) -> str:
    label = " ".join(label.split()) or "(unnamed)"
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _xy(points: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Times and values, with a NaN (a break in the line) across each gap in the data."""
    steps = [b[0] - a[0] for a, b in itertools.pairwise(points)]
    positive = [s for s in steps if s > 0]
    gap = GAP_STEPS * statistics.median(positive) if positive else math.inf
    xs: list[float] = []
    ys: list[float] = []
    for i, (t, v) in enumerate(points):
        if i and t - points[i - 1][0] > gap:
            xs.append(xs[-1])
            ys.append(math.nan)
        xs.append(t)
        ys.append(v)
    return xs, ys


def _value_text(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value * 100:.3g} %"
    if unit == "s":
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    return f"{value:.4g} {unit}".strip()


def _y_axis(ax: Axes, unit: str, peak: float) -> None:
    """Tick format and axis label for the unit: ratios as %, seconds as s or ms."""
    if unit == "ratio":
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        ax.set_ylabel("%")
    elif unit == "s" and peak < 1.0:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v * 1000:.4g}"))
        ax.set_ylabel("ms")
    else:
        formatter = ScalarFormatter(useOffset=False)
        formatter.set_scientific(False)
        ax.yaxis.set_major_formatter(formatter)
        ax.set_ylabel("per minute" if unit == "/min" else unit)


def _time_axis(ax: Axes, times: Sequence[float]) -> None:
    """Unix seconds on x, ticked every round minute/hour step and labelled HH:MM UTC."""
    start, end = min(times), max(times)
    if end - start < 60:  # a lone point or a few seconds: show a minute around them
        pad = (60 - (end - start)) / 2
        start, end = start - pad, end + pad
    ax.set_xlim(start, end)
    span = end - start
    step = next((s for s in TICK_STEPS if span / s <= 7), span / 6)
    pattern = "%H:%M:%S" if step < 60 else "%H:%M" if span <= 86400 else "%m-%d %H:%M"
    ax.xaxis.set_major_locator(MultipleLocator(step))

    def label(x: float, _pos: int | None) -> str:
        try:
            return datetime.fromtimestamp(x, UTC).strftime(pattern)
        except (OverflowError, OSError, ValueError):
            return ""

    ax.xaxis.set_major_formatter(FuncFormatter(label))


def _canvas(width_px: int, height_px: int) -> Figure:
    if not (0 < width_px <= MAX_PX and 0 < height_px <= MAX_PX):
        raise ValueError(f"chart size {width_px}x{height_px} px is outside 1..{MAX_PX}")
    figure = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" text chunk: the same chart gives the same bytes across matplotlib builds.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _no_data(title: str, width_px: int, height_px: int) -> bytes:
    figure = _canvas(width_px, height_px)
    ax = figure.add_subplot()
    ax.set_axis_off()
    ax.set_title(title, loc="left", fontsize=11)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=14, color="#888888")
    return _png(figure)


def render_png(
    title: str,
    unit: str,
    series: Sequence[Series],
    threshold: float | None = None,
    threshold_label: str = "",
    width_px: int = 900,
    height_px: int = 360,
) -> bytes:
    """A PNG line chart of ``series`` over time (HH:MM UTC), ``width_px`` by ``height_px``.

    At most ``MAX_SERIES`` lines, the rest counted in the legend as "+N more". A finite
    ``threshold`` is drawn as a dashed red line, labelled, and kept in view. Non-finite
    points are dropped; with nothing left the image says "no data". Raises only for a
    size outside 1..4096 px.
    """
    cleaned = [(s, pts) for s in series if (pts := _finite(s.points))]
    if not cleaned:
        return _no_data(title, width_px, height_px)
    shown, hidden = cleaned[:MAX_SERIES], len(cleaned) - MAX_SERIES
    if threshold is not None and not math.isfinite(threshold):
        threshold = None

    figure = _canvas(width_px, height_px)
    ax = figure.add_subplot()
    ax.set_title(title, loc="left", fontsize=11)
    for i, (s, pts) in enumerate(shown):
        xs, ys = _xy(pts)
        ax.plot(
            xs,
            ys,
            color=COLORS[i % len(COLORS)],
            linewidth=1.6,
            marker="o" if len(pts) == 1 else None,
            markersize=4,
            label=_shorten(s.label),
        )

    values = [v for _, pts in shown for _, v in pts] + (
        [threshold] if threshold is not None else []
    )
    peak = max(abs(v) for v in values)
    if threshold is not None:
        label = threshold_label or f"threshold {_value_text(threshold, unit)}"
        ax.axhline(threshold, color=THRESHOLD_COLOR, linestyle="--", linewidth=1.2)
        ax.annotate(
            _shorten(label),
            xy=(1.0, threshold),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=8,
            color=THRESHOLD_COLOR,
        )
    if min(values) >= 0:
        # From zero, with headroom above the peak (and the threshold's label).
        ax.set_ylim(bottom=0.0, top=peak * 1.12 if peak > 0 else 1.0)

    _time_axis(ax, [t for _, pts in shown for t, _ in pts])
    ax.set_xlabel("UTC", fontsize=8)
    _y_axis(ax, unit, peak)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#e5e5e5", linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    handles = list(ax.get_legend_handles_labels()[0])
    if hidden > 0:
        handles.append(Line2D([], [], linestyle="none", label=f"+{hidden} more"))
    figure.legend(
        handles=handles, loc="outside right upper", fontsize=8, frameon=False, handlelength=1.5
    )
    return _png(figure)

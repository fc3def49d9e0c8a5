"""Charts: valid PNGs whatever the input, and chart queries a real Prometheus answers.

PNGs are checked with the standard library only: signature, every chunk's CRC, the IHDR
size, and the image data inflating to exactly one filtered row per pixel row.
"""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fleet_stack import FleetStack, eventually, require_binary
from matplotlib.figure import Figure

from bot.diagnosis.checks import REGISTRY
from bot.slack.charts import (
    CHARTS,
    MAX_SERIES,
    SEL,
    ChartSpec,
    Series,
    _time_axis,
    _y_axis,
    fill,
    label_series,
    render_png,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BYTES_PER_PIXEL = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type → channels (8-bit depth)
NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
SCOPE = 'namespace="inference"'


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, after checking it decodes: CRCs, IHDR, inflated data size."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG signature"
    offset, chunks, idat = 8, [], b""
    header: tuple[int, int, int, int] | None = None
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append(kind)
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            header = (width, height, depth, colour)
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND", chunks
    assert header is not None
    width, height, depth, colour = header
    assert depth == 8 and colour in BYTES_PER_PIXEL, header
    raw = zlib.decompress(idat)
    assert len(raw) == height * (1 + width * BYTES_PER_PIXEL[colour]), "truncated image data"
    return width, height


def line(label: str, values: Sequence[float], step: float = 15.0) -> Series:
    start = NOW - step * len(values)
    return Series(label, [(start + i * step, v) for i, v in enumerate(values)])


def wave(label: str, level: float, n: int = 240) -> Series:
    return line(label, [level + 0.1 * math.sin(i / 9) for i in range(n)])


# --- rendering -------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(900, 360), (640, 240), (1200, 500), (333, 211)])
def test_png_decodes_at_the_requested_size(width: int, height: int) -> None:
    png = render_png("TTFT p99", "s", [wave("p99 fleet", 0.5)], 0.8, "", width, height)
    assert png_size(png) == (width, height)


def test_default_size_and_same_input_same_bytes() -> None:
    series = [wave("worst replica", 0.6), wave("fleet", 0.3)]
    first = render_png("KV-cache usage", "ratio", series, threshold=0.95)
    assert png_size(first) == (900, 360)
    assert render_png("KV-cache usage", "ratio", series, threshold=0.95) == first


def test_no_points_gives_the_placeholder_image() -> None:
    placeholder = render_png("Queue", "requests", [])
    assert png_size(placeholder) == (900, 360)
    empty_series = [Series("a", []), Series("b", [])]
    assert render_png("Queue", "requests", empty_series) == placeholder
    nothing_finite = [Series("a", [(NOW, math.nan), (NOW + 1, math.inf), (math.nan, 1.0)])]
    assert render_png("Queue", "requests", nothing_finite, threshold=200) == placeholder
    assert png_size(render_png("Queue", "requests", [], width_px=400, height_px=200)) == (400, 200)
    assert render_png("Queue", "requests", [line("x", [1.0, 2.0])]) != placeholder


def test_nan_and_inf_points_are_dropped() -> None:
    clean = line("p99", [0.2, 0.3, 0.25, 0.4, 0.35, 0.3])
    dirty_points = list(clean.points)
    dirty_points.insert(2, (NOW - 40, math.nan))
    dirty_points.insert(4, (NOW - 20, math.inf))
    dirty_points.insert(5, (NOW - 10, -math.inf))
    dirty_points.append((math.inf, 0.3))
    dirty_points.append((math.nan, math.nan))
    dirty = Series("p99", dirty_points)
    assert render_png("TTFT", "s", [dirty]) == render_png("TTFT", "s", [clean])


def test_points_in_any_order_and_a_lone_point() -> None:
    ordered = line("a", [1.0, 3.0, 2.0, 5.0])
    shuffled = Series("a", [ordered.points[i] for i in (2, 0, 3, 1)])
    assert render_png("Q", "requests", [shuffled]) == render_png("Q", "requests", [ordered])
    assert png_size(render_png("Q", "requests", [Series("a", [(NOW, 4.0)])])) == (900, 360)
    assert png_size(render_png("Q", "requests", [line("flat zero", [0.0] * 30)])) == (900, 360)
    assert png_size(render_png("Q", "requests", [line("negative", [-1.0, 2.0, -3.0])]))


def test_more_than_eight_series_fold_into_a_note() -> None:
    many = [wave(f"host-{i:02d}", 60 + i) for i in range(13)]
    shown_only = render_png("GPU temperature", "°C", many[:MAX_SERIES])
    folded_5 = render_png("GPU temperature", "°C", many)
    folded_4 = render_png("GPU temperature", "°C", many[:12])
    assert png_size(folded_5) == (900, 360)
    # The extra lines are not drawn, but the "+N more" note is.
    assert len({shown_only, folded_4, folded_5}) == 3
    # A series without points is neither drawn nor counted.
    padded = [*many[:MAX_SERIES], Series("empty", []), Series("nan", [(NOW, math.nan)])]
    assert render_png("GPU temperature", "°C", padded) == shown_only


def test_threshold_line_is_drawn() -> None:
    series = [wave("worst replica", 0.5)]
    without = render_png("KV", "ratio", series)
    with_line = render_png("KV", "ratio", series, threshold=0.95)
    labelled = render_png("KV", "ratio", series, threshold=0.95, threshold_label="critical")
    assert png_size(with_line) == png_size(without)
    assert len({without, with_line, labelled}) == 3
    # A threshold that is not a number is ignored, not an error.
    assert render_png("KV", "ratio", series, threshold=math.nan) == without
    assert render_png("KV", "ratio", series, threshold=math.inf) == without


def test_threshold_far_above_the_data_is_kept_in_view() -> None:
    figure_low = render_png("Queue", "requests", [line("q", [1.0, 2.0, 3.0])], threshold=200)
    figure_near = render_png("Queue", "requests", [line("q", [1.0, 2.0, 3.0])], threshold=3.5)
    assert figure_low != figure_near


def y_axis(unit: str, peak: float, locs: Sequence[float] = (0.0, 0.25, 0.5)) -> tuple[str, str]:
    """The axis label, and how the tick at ``locs[1]`` reads."""
    ax = Figure().add_subplot()
    _y_axis(ax, unit, peak)
    formatter = ax.yaxis.get_major_formatter()
    formatter.set_locs(list(locs))
    return ax.get_ylabel(), formatter(locs[1], 1)


def test_y_axis_units() -> None:
    assert y_axis("ratio", 0.5) == ("%", "25%")
    assert y_axis("s", 0.8) == ("ms", "250")
    assert y_axis("s", 4.0) == ("s", "0.25")
    assert y_axis("°C", 80, (60, 70, 80)) == ("°C", "70")
    # Big counts read in full: no offset, no scientific notation.
    assert y_axis("requests", 2e7, (1e7, 1.5e7, 2e7)) == ("requests", "15000000")


def test_time_axis_is_hh_mm_utc() -> None:
    ax = Figure().add_subplot()
    _time_axis(ax, [NOW - 3600, NOW])
    formatter = ax.xaxis.get_major_formatter()
    assert formatter(NOW, 0) == "22:13"
    assert ax.get_xlim() == (NOW - 3600, NOW)
    ticks = [t for t in ax.xaxis.get_major_locator()() if NOW - 3600 <= t <= NOW]
    assert 3 <= len(ticks) <= 8
    assert all(t % 600 == 0 for t in ticks)  # round UTC times
    ax = Figure().add_subplot()
    _time_axis(ax, [NOW])
    assert ax.get_xlim() == (NOW - 30, NOW + 30)
    assert ax.xaxis.get_major_formatter()(NOW, 0) == "22:13:20"


def test_renders_concurrently_in_worker_threads() -> None:
    jobs = [(f"chart {i}", [wave("a", i), wave("b", i + 0.5)], float(i + 1)) for i in range(8)]
    serial = [render_png(title, "s", series, threshold) for title, series, threshold in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda job: render_png(job[0], "s", job[1], job[2]), jobs * 3))
    assert parallel == serial * 3


@pytest.mark.parametrize(("width", "height"), [(0, 360), (900, -1), (10_000, 360)])
def test_absurd_sizes_are_refused(width: int, height: int) -> None:
    with pytest.raises(ValueError, match="chart size"):
        render_png("T", "s", [wave("a", 1.0)], width_px=width, height_px=height)


# --- query results → series ------------------------------------------------------------


@dataclass(frozen=True)
class Ranged:
    """The shape of ``bot.sources.prometheus.RangeSeries``."""

    labels: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)


def test_series_named_by_stat_then_by_differing_labels() -> None:
    stats = label_series(
        [
            Ranged({"stat": "fleet"}, [(NOW, 5.0)]),
            Ranged({"stat": "worst replica"}, [(NOW, 9.0), (NOW + 1, math.nan)]),
        ]
    )
    assert [(s.label, list(s.points)) for s in stats] == [
        ("worst replica", [(NOW, 9.0)]),
        ("fleet", [(NOW, 5.0)]),
    ]
    hosts = label_series(
        [
            Ranged({"__name__": "x", "host": "node-a", "job": "dcgm"}, [(NOW, 60.0)]),
            Ranged({"__name__": "y", "host": "node-b", "job": "dcgm"}, [(NOW, 70.0)]),
            Ranged({"__name__": "z", "host": "node-c", "job": "dcgm"}, []),
        ]
    )
    assert [s.label for s in hosts] == ["node-b", "node-a", "node-c"]
    alone = label_series([Ranged({"job": "vllm"}, [(NOW, 1.0)])], default_label="TTFT p99")
    assert [s.label for s in alone] == ["TTFT p99"]
    assert label_series([]) == []


# --- the chart table -------------------------------------------------------------------


def test_charts_cover_check_ids_with_a_selector_placeholder() -> None:
    assert set(CHARTS) == {
        "ttft_p99",
        "tpot_p99",
        "queue_depth",
        "kv_cache_usage",
        "gpu_temperature",
        "error_rate",
        "preemption_rate",
    }
    assert set(CHARTS) <= set(REGISTRY)
    for check_id, spec in CHARTS.items():
        assert isinstance(spec, ChartSpec)
        assert SEL in spec.query, check_id
        assert spec.threshold is None, "thresholds come from the check at render time"
        filled = fill(spec.query, SCOPE)
        assert SEL not in filled and "{{" not in filled and "}}" not in filled, filled
        assert filled.count("(") == filled.count(")"), check_id
        assert filled.count("{") == filled.count("}") == spec.query.count(SEL), check_id


def test_fill_substitutes_every_placeholder_verbatim() -> None:
    assert (
        fill('a{{sel}} / b{x="1",{sel}}', 'pod=~"p-.*"') == 'a{pod=~"p-.*"} / b{x="1",pod=~"p-.*"}'
    )
    assert fill("a{{sel}}", "") == "a{}"
    assert fill("a{{sel}}", '  ns="{sel}" ') == 'a{ns="{sel}"}'  # inserted text is not re-read


def test_renamed_metrics_are_read_under_both_names() -> None:
    assert "vllm:inter_token_latency_seconds_bucket" in CHARTS["tpot_p99"].query
    assert "vllm:time_per_output_token_seconds_bucket" in CHARTS["tpot_p99"].query
    assert "vllm:kv_cache_usage_perc" in CHARTS["kv_cache_usage"].query
    assert "vllm:gpu_cache_usage_perc" in CHARTS["kv_cache_usage"].query
    assert '"Hostname"' in CHARTS["gpu_temperature"].query
    assert '"hostname"' in CHARTS["gpu_temperature"].query


def test_a_chart_renders_with_its_checks_critical_level() -> None:
    for check_id, spec in CHARTS.items():
        check = REGISTRY[check_id]
        assert check.thresholds is not None
        crit = check.thresholds(check.defaults).crit
        png = render_png(spec.title, spec.unit, [wave("worst replica", crit * 0.7)], crit)
        assert png_size(png) == (900, 360), check_id


SELECTORS = ["", SCOPE, 'namespace="inference",pod=~"llama-.*|qwen-.*"']


@pytest.mark.prometheus
def test_promtool_parses_every_filled_query(tmp_path: Path) -> None:
    promtool = require_binary("promtool", shutil.which("promtool"))
    rules = [
        {"record": f"chart:{check_id}:{i}", "expr": fill(spec.query, selector)}
        for check_id, spec in CHARTS.items()
        for i, selector in enumerate(SELECTORS)
    ]
    path = tmp_path / "charts.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "charts", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout + done.stderr


# --- against a real Prometheus scraping a mixed-version fleet --------------------------


def query_range(stack: FleetStack, promql: str, seconds: float = 60) -> list[dict[str, Any]]:
    end = time.time()
    response = httpx.get(
        f"{stack.prometheus.url}/api/v1/query_range",
        params={"query": promql, "start": end - seconds, "end": end, "step": "1s"},
        timeout=30.0,
    )
    body = response.json()
    assert body["status"] == "success", (promql, body)
    assert body["data"]["resultType"] == "matrix"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def to_ranged(result: Sequence[Mapping[str, Any]]) -> list[Ranged]:
    return [
        Ranged(dict(item["metric"]), [(float(t), float(v)) for t, v in item["values"]])
        for item in result
    ]


@pytest.mark.prometheus
@pytest.mark.slow
def test_prometheus_answers_every_chart_and_it_renders(mixed_fleet: FleetStack) -> None:
    for check_id, spec in CHARTS.items():
        promql = fill(spec.query, SCOPE)
        mixed_fleet.prometheus.query(promql)  # raises unless status is success

        def sampled(promql: str = promql) -> list[dict[str, Any]]:
            result = query_range(mixed_fleet, promql)
            assert result and any(item["values"] for item in result), f"no samples: {promql}"
            return result

        result = eventually(sampled, timeout_s=30)
        if check_id == "gpu_temperature":  # both host-label spellings become `host`
            hosts = {item["metric"].get("host") for item in result}
            assert hosts == {n.name for n in mixed_fleet.simulator.fleet.nodes}, hosts
        series = label_series(to_ranged(result), default_label=spec.title)
        assert any(s.points for s in series), f"{check_id}: only NaN samples"
        check = REGISTRY[check_id]
        assert check.thresholds is not None
        crit = check.thresholds(check.defaults).crit
        png = render_png(spec.title, spec.unit, series, crit, f"critical {crit:g}")
        assert png_size(png) == (900, 360), check_id


@pytest.mark.prometheus
@pytest.mark.slow
def test_every_chart_reads_old_and_new_vllm_replicas(mixed_fleet: FleetStack) -> None:
    replicas = mixed_fleet.simulator.fleet.replicas
    legacy = next((r for r in replicas if r.legacy), None)
    current = next((r for r in replicas if not r.legacy), None)
    assert legacy is not None and current is not None, "the fixture fleet mixes vLLM versions"
    for replica in (legacy, current):
        selector = f'namespace="{replica.namespace}",pod="{replica.pod}"'
        for check_id, spec in CHARTS.items():
            promql = fill(spec.query, selector)

            def non_empty(promql: str = promql, why: str = f"{check_id} {replica.pod}") -> None:
                assert mixed_fleet.prometheus.query(promql), (why, promql)

            eventually(non_empty, timeout_s=30)

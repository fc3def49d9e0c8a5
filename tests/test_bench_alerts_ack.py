"""`vllm-chatops bench` sections alerts and ack, in quick mode, against the real binaries."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from fleet_stack import require_binary

from bot.bench import ack, alerts
from bot.bench.options import BenchOptions
from bot.bench.report import Figure
from bot.console.incoming_webhooks import WebhookPost
from bot.simulator.alertmanager_runner import find_alertmanager
from bot.simulator.prometheus_runner import find_prometheus

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]


def _sane(figures: Sequence[Figure], n: int) -> None:
    for figure in figures:
        assert figure.timing is not None, figure.name
        assert figure.timing.n == n, figure.name
        assert 0 < figure.timing.median <= figure.timing.p99, figure.name


def test_alerts_section(tmp_path: Path) -> None:
    require_binary("prometheus", find_prometheus())
    require_binary("prometheus-alertmanager", find_alertmanager())
    options = BenchOptions.quick_run(tmp_path, alerts=3)  # one alert at a time: a few suffice
    section = alerts.run(options, lambda _: None)
    names = [f.name for f in section.figures]
    assert len(names) == 3 and "Alertmanager" in names[0]
    assert names[1].startswith("bot: first post") and "diagnosis" in names[2]
    _sane(section.figures, options.alerts)
    am, first, full = (f.timing for f in section.figures)
    assert am is not None and first is not None and full is not None
    # the same alerts of the same run: a diagnosis completes after its alert post lands
    assert full.median >= first.median
    compared = section.figures[1]
    assert compared.ratio is not None and compared.met is not None and compared.goal
    assert f"{am.p99 * 1000:.0f} ms" in compared.versus


def test_ack_section(tmp_path: Path) -> None:
    require_binary("prometheus", find_prometheus())
    require_binary("prometheus-alertmanager", find_alertmanager())
    options = BenchOptions.quick_run(tmp_path)
    section = ack.run(options, lambda _: None)
    assert [f.name.split(" (")[0] for f in section.figures] == [
        "ack: slash command",
        "ack: button click",
        "ack: modal submission",
        "ack: all three kinds at once",
    ]
    *single, mixed = section.figures
    _sane(single, options.concurrency)
    _sane([mixed], 3 * options.concurrency)
    for figure in section.figures:
        assert figure.ratio is not None and figure.met is not None
        assert "Prometheus answering at once" in figure.versus


def test_each_alert_reads_only_what_arrived_after_it() -> None:
    posts = [
        WebhookPost("/services/T/B/S", {"text": str(i)}, at) for i, at in enumerate([1, 2, 2, 5])
    ]
    assert [p.body["text"] for p in alerts.since_then(posts, 2.0)] == ["1", "2", "3"]
    assert alerts.since_then(posts, 6.0) == []
    assert alerts.since_then(posts, 0.0) == posts

"""A simulated fleet in its own process, scraped by a real Prometheus with the rules loaded.

The simulator runs in a separate process so that, in the measuring process, it does not
compete for the interpreter with what is measured.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from bot.bench.options import Progress
from bot.diagnosis.alert_rules import render_rules_yaml
from bot.diagnosis.metric_names import RUNNING
from bot.diagnosis.promql import window_seconds
from bot.diagnosis.recording import RECORDINGS
from bot.diagnosis.runbooks import load_runbooks
from bot.simulator.processes import spawn, terminate
from bot.simulator.prometheus_runner import PrometheusRunner, free_port


class FleetError(RuntimeError):
    """The simulator or Prometheus did not come up; the message says where to look."""


def _wait(what: str, ready: object, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if callable(ready) and ready():
                return
        except (httpx.HTTPError, KeyError, IndexError, ValueError):
            pass
        time.sleep(0.5)
    raise FleetError(f"{what} not ready after {timeout_s:.0f} s; log: {log}")


def _targets(simulator_url: str) -> int:
    return sum(
        len(group["targets"])
        for sd in ("vllm", "dcgm")
        for group in httpx.get(f"{simulator_url}/sd/{sd}", timeout=10).json()
    )


@contextmanager
def simulated_fleet(
    work_dir: Path,
    replicas: int,
    progress: Progress,
    *,
    window: str,
    scrape_interval_s: float,
    scenario: str = "fleet_scale",
    gpus_per_replica: int = 1,
    legacy_fraction: float = 0.3,
) -> Iterator[str]:
    """Yield the URL of a Prometheus holding a full ``window`` of the fleet's data, its
    rules (alerts, and recordings for ``window``) loaded."""
    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    simulator_url = f"http://127.0.0.1:{port}"
    with ExitStack() as cleanup:
        log_path = work_dir / f"simulator-{replicas}.log"
        log = cleanup.enter_context(log_path.open("wb"))
        progress(f"{replicas} replicas: starting the simulator")
        process = spawn(
            [
                sys.executable, "-m", "bot", "simulate", "--listen", f"127.0.0.1:{port}",
                "--replicas", str(replicas), "--gpus-per-replica", str(gpus_per_replica),
                "--scenario", scenario, "--legacy-fraction", str(legacy_fraction), "--seed", "5",
            ],
            log,
        )  # fmt: skip
        cleanup.callback(terminate, process)
        _wait("the simulator", lambda: _targets(simulator_url) > 0, 120, log_path)
        targets = _targets(simulator_url)
        rules = work_dir / "rules.yml"
        rules.write_text(render_rules_yaml(load_runbooks(), None, None, window))
        progress(f"{replicas} replicas: Prometheus scraping {targets} targets")
        prometheus = cleanup.enter_context(
            PrometheusRunner(simulator_url, scrape_interval_s=scrape_interval_s, rule_files=[rules])
        )
        up = f"count(up == 1) >= {targets}"
        _wait("Prometheus' scrapes", lambda: prometheus.query(up), 300, prometheus.log_path)
        # a full window of samples (and of recorded rates), so every check reads a fact
        age = int(window_seconds(window) + 2 * scrape_interval_s)
        progress(f"{replicas} replicas: waiting for {age} s of history")
        full = f"count({RUNNING} offset {age}s)"
        recorded = f"count({RECORDINGS[0].name(window)} offset {age // 2}s)"

        def filled() -> bool:
            return bool(prometheus.query(full) and prometheus.query(recorded))

        _wait("history", filled, age + 120, prometheus.log_path)
        yield prometheus.url

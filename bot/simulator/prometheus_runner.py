"""Run a real ``prometheus`` binary against the simulator (demo command and test harness)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bot.simulator.processes import spawn, terminate
from bot.simulator.server import scrape_config
from bot.simulator.serving import StartStop


class PrometheusError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_or_free(port: int, host: str = "127.0.0.1") -> int:
    """``port`` if nothing listens there, else a free one (the demo must not fail on 9090)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return free_port(host)
    return port


def find_prometheus() -> str | None:
    return shutil.which("prometheus")


class PrometheusRunner(StartStop):
    """Start Prometheus on a free loopback port scraping ``simulator_url``; stop it on exit.

    ``honor_labels=False`` scrapes dcgm-exporter as kube-prometheus-stack does; a dict of
    cluster → simulator URL makes one Prometheus hold several clusters' series.
    """

    def __init__(
        self,
        simulator_url: str | dict[str, str],
        *,
        honor_labels: bool = True,
        scrape_interval_s: float = 1.0,
        binary: str | None = None,
        rule_files: list[Path] | None = None,
        port: int | None = None,
        retention: str = "2h",
        alertmanagers: list[str] | None = None,
    ) -> None:
        found = binary or find_prometheus()
        if not found:
            raise PrometheusError(
                "the 'prometheus' binary is not installed; on Debian: apt-get install prometheus"
            )
        self.binary = found
        self.simulator_url = simulator_url  # or cluster name → URL (one cluster label each)
        self.honor_labels = honor_labels
        self.scrape_interval_s = scrape_interval_s
        self.rule_files = rule_files or []
        self.port = port or free_port()
        self.retention = retention
        self.alertmanagers = alertmanagers or []
        self._dir = Path(tempfile.mkdtemp(prefix="vllm-chatops-prom-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self._dir / "prometheus.log"

    def config(self) -> dict[str, Any]:
        config = scrape_config(
            self.simulator_url, self.scrape_interval_s, honor_labels=self.honor_labels
        )
        if self.rule_files:
            config["rule_files"] = [str(p) for p in self.rule_files]
        if self.alertmanagers:
            hosts = [a.removeprefix("http://").rstrip("/") for a in self.alertmanagers]
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": hosts}]}]}
        return config

    def start(self, timeout_s: float = 60.0) -> PrometheusRunner:
        config_path = self._dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        log = self.log_path.open("wb")
        self._process = spawn(
            [
                self.binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--storage.tsdb.retention.time={self.retention}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            log,
        )
        self._wait(lambda c: c.get("/-/ready").status_code == 200, timeout_s, "ready")
        return self

    def _wait(self, ready: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise PrometheusError(
                        f"prometheus exited with {self._process.returncode}: "
                        + self.log_path.read_text(errors="replace")[-2000:]
                    )
                try:
                    if ready(client):
                        return
                except (httpx.HTTPError, KeyError, IndexError, ValueError):
                    pass
                time.sleep(0.2)
        raise PrometheusError(f"prometheus not {what} after {timeout_s:.0f}s; log: {self.log_path}")

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; returns the result vector (raises on a Prometheus error)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=30.0)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"query failed: {promql}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for_targets(self, expected: int, timeout_s: float = 90.0) -> None:
        """Wait until ``expected`` targets have been scraped at least twice (up or not)."""

        def ready(client: httpx.Client) -> bool:
            r = client.get(
                "/api/v1/query",
                params={"query": "count(count_over_time(up[1m]) >= 2)"},
            )
            result = r.json()["data"]["result"]
            return bool(result) and int(float(result[0]["value"][1])) >= expected

        self._wait(ready, timeout_s, f"scraping {expected} targets")

    def stop(self) -> None:
        terminate(self._process)
        shutil.rmtree(self._dir, ignore_errors=True)

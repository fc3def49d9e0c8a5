"""What a benchmark run measures and how long it takes (``vllm-chatops bench`` options)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Progress = Callable[[str], None]

SECTIONS = ("alerts", "diagnosis", "ack", "startup", "throughput")


@dataclass(frozen=True)
class BenchOptions:
    work_dir: Path  # logs, databases and configs of the processes started
    sections: tuple[str, ...] = SECTIONS
    quick: bool = False  # the CI smoke: every section, few repetitions, small fleets
    replicas: tuple[int, ...] = (4, 100, 1000)
    repetitions: int = 20
    concurrency: int = 50  # simultaneous slash commands, clicks and submissions
    prometheus_delay_s: float = 5.0  # how slowly Prometheus answers during the ack section
    alerts: int = 200  # alerts routed through Alertmanager in the alert section
    soak_s: float = 600.0  # the memory soak
    postgres_url: str | None = None  # also measure alert intake on PostgreSQL
    window: str = "1m"  # the diagnosis window; the fleet holds this much history first
    scrape_interval_s: float = 5.0

    @classmethod
    def quick_run(cls, work_dir: Path, **overrides: object) -> BenchOptions:
        """Every section in a couple of minutes: proves the benchmark still runs."""
        values: dict[str, object] = {
            "quick": True,
            "replicas": (4,),
            "repetitions": 3,
            "concurrency": 10,
            "prometheus_delay_s": 2.0,
            "alerts": 10,
            "soak_s": 20.0,
            "window": "20s",
            "scrape_interval_s": 2.0,
        }
        values.update(overrides)
        return cls(work_dir=work_dir, **values)  # type: ignore[arg-type]

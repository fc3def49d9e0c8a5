"""Simulator CPU and memory while a real Prometheus scrapes a large fleet.

    .venv/bin/python benchmarks/simulator_scale.py --replicas 1000 --interval 15 --seconds 120

Starts `vllm-chatops simulate` as its own process, a Prometheus scraping it, waits until
every target has been scraped twice, then samples the simulator's CPU time and RSS from
/proc over the measuring window and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bot.simulator.prometheus_runner import PrometheusRunner, free_port

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument("--gpus-per-replica", type=int, default=4)
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--scenario", default="fleet_scale")
    args = parser.parse_args()

    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "bot", "simulate", f"--listen=127.0.0.1:{port}",
         f"--replicas={args.replicas}", f"--gpus-per-replica={args.gpus_per_replica}",
         f"--scenario={args.scenario}", "--legacy-fraction=0.3"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                index = httpx.get(url + "/", timeout=1).json()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        targets = index["replicas"] + index["nodes"]
        with PrometheusRunner(url, scrape_interval_s=args.interval) as prom:
            prom.wait_for_targets(targets, timeout_s=6 * args.interval + 60)
            cpu0, t0 = cpu_seconds(sim.pid), time.monotonic()
            peak = rss_mib(sim.pid)
            while time.monotonic() - t0 < args.seconds:
                time.sleep(1)
                peak = max(peak, rss_mib(sim.pid))
            cpu = (cpu_seconds(sim.pid) - cpu0) / (time.monotonic() - t0)
            scrape = prom.query("avg(scrape_duration_seconds)")
            samples = prom.query("sum(scrape_samples_scraped)")
            print(json.dumps({
                "replicas": index["replicas"], "nodes": index["nodes"], "targets": targets,
                "interval_s": args.interval, "window_s": args.seconds,
                "simulator_cpu_cores": round(cpu, 3), "simulator_rss_mib_peak": round(peak, 1),
                "avg_scrape_duration_ms": round(float(scrape[0]["value"][1]) * 1000, 2),
                "samples_per_scrape_round": int(float(samples[0]["value"][1])),
            }))  # fmt: skip
    finally:
        sim.terminate()
        sim.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Diagnosis time on a large fleet against its slowest single query.

    .venv/bin/python benchmarks/diagnosis_scale.py --replicas 1000 --runbook high_latency

Serves `fleet_scale` (one replica under KV pressure among N, 30 % on old metric names),
has a real Prometheus scrape it every 5 s, then: runs the runbook's diagnosis (all
checks concurrently) several times, and runs every query it used on its own, one at a
time. Prints one JSON line: diagnosis wall time, slowest and summed single-query times,
the query count, and whether the needle replica was named.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bot.diagnosis.engine import DiagnosisOptions, diagnose
from bot.diagnosis.recording import recording_group
from bot.diagnosis.runbooks import load_runbooks
from bot.models import Scope
from bot.simulator.fleet import build_fleet
from bot.simulator.prometheus_runner import PrometheusRunner
from bot.simulator.server import Simulator, make_app
from bot.simulator.serving import BackgroundServer
from bot.sources.prometheus import PrometheusSource


async def timed(source: PrometheusSource, query: str) -> float:
    start = time.perf_counter()
    await source.query(query)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument("--runbook", default="high_latency")
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--recording", action="store_true", help="load and use recording rules")
    args = parser.parse_args()

    fleet = build_fleet(replicas=args.replicas, gpus_per_replica=1, legacy_fraction=0.3,
                        seed=5, now=time.time())  # fmt: skip
    sim = Simulator(fleet, "fleet_scale", 5)
    server = BackgroundServer(make_app(sim)).start()
    runbook = load_runbooks()[args.runbook]
    window = "1m"
    rules = Path(tempfile.mkdtemp()) / "recording.yml"
    rules.write_text(yaml.safe_dump({"groups": [recording_group(window)]}))
    try:
        with PrometheusRunner(
            server.url,
            scrape_interval_s=args.interval,
            rule_files=[rules] if args.recording else None,
        ) as prom:
            prom.wait_for_targets(len(fleet.replicas) + len(fleet.nodes), timeout_s=300)
            time.sleep(4 * args.interval)  # enough samples for the rate window
            source = PrometheusSource(prom.url, timeout_s=30)
            options = DiagnosisOptions(
                window=window,
                check_timeout_s=60,
                recorded_window=window if args.recording else None,
            )
            walls, last = [], None
            for _ in range(args.repeat):
                start = time.perf_counter()
                last = asyncio.run(diagnose(runbook, Scope(), source, options))
                walls.append(time.perf_counter() - start)
            assert last is not None
            queries = [q for c in last.checks for q in c.queries]
            # each query alone, best of two (a warm cache, as during the diagnosis)
            singles = [min(asyncio.run(timed(source, q)) for _ in range(2)) for q in queries]
            needle = sim.truth.faults[0].pod
            named = any(o.target.get("pod") == needle for c in last.checks for o in c.offenders)
            print(json.dumps({
                "replicas": len(fleet.replicas), "runbook": runbook.id,
                "recording_rules": args.recording,
                "checks": len(last.checks), "queries": len(queries),
                "diagnosis_s_median": round(statistics.median(walls), 3),
                "slowest_single_query_s": round(max(singles), 3),
                "sum_of_single_queries_s": round(sum(singles), 3),
                "ratio_to_slowest": round(statistics.median(walls) / max(singles), 2),
                "status": last.status, "needle_named": named,
                "slowest": sorted(((round(t, 3), q[:90]) for t, q in zip(singles, queries,
                                   strict=True)), reverse=True)[:6],
            }))  # fmt: skip
            source.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

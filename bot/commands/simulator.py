"""`simulate` and `demo`: the fleet simulator, alone or with a real Prometheus."""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time

from rich.console import Console
from rich.markup import escape

from bot.commands.common import EXIT_OK, EXIT_PROBLEM, UsageError, err
from bot.simulator.fleet import build_fleet
from bot.simulator.server import Simulator

FLEET_SCALE_DEFAULT_REPLICAS = 2000


def _fleet(args: argparse.Namespace) -> Simulator:
    replicas = args.replicas or (
        FLEET_SCALE_DEFAULT_REPLICAS if args.scenario == "fleet_scale" else 8
    )
    try:
        fleet = build_fleet(
            replicas=replicas,
            gpus_per_replica=args.gpus_per_replica,
            gpus_per_node=args.gpus_per_node,
            models=tuple(args.models or ("llama-3.1-70b-instruct",)),
            namespace=args.namespace,
            legacy_fraction=args.legacy_fraction,
            seed=args.seed,
            now=time.time(),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return Simulator(fleet, args.scenario, args.seed, ecc_counters=not args.no_ecc_counters)


def _print_truth(console: Console, sim: Simulator) -> None:
    console.print("[bold]Ground truth[/bold] (also GET /scenario):")
    console.print_json(json.dumps(sim.truth.model_dump()))


def cmd_simulate(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.simulator.server import make_app

    sim = _fleet(args)
    host, port = args.listen
    console = Console(soft_wrap=True)
    base = f"http://{host}:{port}"
    console.print(
        f"Simulating {len(sim.fleet.replicas)} replicas on {len(sim.fleet.nodes)} nodes, "
        f"scenario [bold]{sim.truth.scenario}[/bold], seed {sim.truth.seed}"
    )
    console.print(f"Service discovery: {base}/sd/vllm and {base}/sd/dcgm")
    console.print(f"Scrape config:     {base}/prometheus.yml")
    console.print(f'Switch scenario:   curl -XPOST {base}/scenario -d \'{{"scenario": "xid_48"}}\'')
    _print_truth(console, sim)
    web.run_app(make_app(sim), host=host, port=port, print=None, access_log=None)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.simulator.prometheus_runner import PrometheusError, PrometheusRunner, port_or_free
    from bot.simulator.server import make_app
    from bot.simulator.serving import BackgroundServer

    console = Console(soft_wrap=True)
    sim = _fleet(args)
    server = BackgroundServer(make_app(sim), port=port_or_free(args.simulator_port)).start()
    try:
        prometheus = PrometheusRunner(
            server.url,
            scrape_interval_s=args.scrape_interval,
            port=port_or_free(args.prometheus_port),
        ).start()
    except PrometheusError as exc:
        server.stop()
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        return EXIT_PROBLEM
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with console.status("waiting for the first scrapes…"):
            prometheus.wait_for_targets(len(sim.fleet.replicas) + len(sim.fleet.nodes))
        console.print(
            f"[green]Fleet simulator[/green]  {server.url}/  (scenario: {sim.truth.scenario})"
        )
        console.print(f"[green]Prometheus[/green]       {prometheus.url}/graph")
        console.print("Try these queries in Prometheus:")
        for q in (
            "sum by (pod) (vllm:num_requests_waiting)",
            "histogram_quantile(0.99, sum by (le) "
            "(rate(vllm:time_to_first_token_seconds_bucket[1m])))",
            "max by (Hostname, hostname, gpu) (DCGM_FI_DEV_XID_ERRORS) > 0",
        ):
            console.print(f"  {q}")
        body = json.dumps({"scenario": "kv_cache_pressure"})
        console.print(f"Inject a fault: curl -XPOST {server.url}/scenario -d '{body}'")
        _print_truth(console, sim)
        console.print("Ctrl-C to stop.")
        stop.wait(args.duration)
    finally:
        prometheus.stop()
        server.stop()
    return EXIT_OK

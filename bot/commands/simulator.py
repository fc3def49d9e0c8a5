"""`simulate`: the fleet simulator alone, for a Prometheus of your own."""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console

from bot.commands.common import EXIT_OK, UsageError
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

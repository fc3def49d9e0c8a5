"""Command line: ``vllm-chatops COMMAND …`` (also ``python -m bot``).

Exit codes: 0 success, 1 the job found or hit a problem, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from bot.config import ConfigError, load_settings
from bot.simulator.fleet import build_fleet
from bot.simulator.scenarios import SCENARIOS
from bot.simulator.server import Simulator

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
FLEET_SCALE_DEFAULT_REPLICAS = 2000

err = Console(stderr=True, soft_wrap=True)


class UsageError(Exception):
    pass


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (e.g. 127.0.0.1:9500), got {value!r}")
    return host.strip("[]"), int(port)


def _fraction(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {value!r}")
    return number


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return int(value)


def _add_fleet_arguments(p: argparse.ArgumentParser, default_replicas: int | None) -> None:
    p.add_argument(
        "--replicas",
        type=_positive_int,
        default=default_replicas,
        help=f"vLLM replicas (default 8; {FLEET_SCALE_DEFAULT_REPLICAS} for fleet_scale)",
    )
    p.add_argument("--gpus-per-replica", type=_positive_int, default=4, help="tensor parallel size")
    p.add_argument("--gpus-per-node", type=_positive_int, default=8)
    p.add_argument(
        "--scenario", default="healthy", choices=sorted(SCENARIOS), metavar="NAME",
        help="one of: " + ", ".join(sorted(SCENARIOS)),
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="same seed, same fleet and faults")
    p.add_argument(
        "--model", action="append", dest="models", metavar="NAME",
        help="served model name; repeat for several models (one Deployment each)",
    )  # fmt: skip
    p.add_argument("--namespace", default="inference")
    p.add_argument(
        "--legacy-fraction", type=_fraction, default=0.0, metavar="F",
        help="share of replicas/nodes serving pre-0.11 vLLM names and the old DCGM "
        "`Hostname` label (mixed-version fleet)",
    )  # fmt: skip
    p.add_argument(
        "--no-ecc-counters", action="store_true",
        help="omit DCGM_FI_DEV_ECC_*_VOL_TOTAL (off in dcgm-exporter's default counters)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vllm-chatops",
        description="Slack ChatOps for vLLM fleets: runbooks, live diagnosis, safe remediation.",
    )
    parser.add_argument(
        "--config", metavar="PATH", help="YAML settings file (or VLLM_CHATOPS_CONFIG)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = sub.add_parser("simulate", help="serve a simulated vLLM + DCGM fleet for Prometheus")
    sim.add_argument("--listen", type=_host_port, default=("127.0.0.1", 9500), metavar="HOST:PORT")
    _add_fleet_arguments(sim, None)

    demo = sub.add_parser(
        "demo", help="run the simulator and a real Prometheus scraping it; print where to look"
    )
    _add_fleet_arguments(demo, None)
    demo.add_argument("--scrape-interval", type=float, default=5.0, metavar="SECONDS")
    demo.add_argument("--prometheus-port", type=int, default=9090)
    demo.add_argument("--simulator-port", type=int, default=9500)
    demo.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS",
        help="stop after this long (default: run until Ctrl-C)",
    )  # fmt: skip

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    config_sub.add_parser("check", help="validate settings and print them (secrets redacted)")
    return parser


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
    from bot.simulator.server import BackgroundServer, make_app

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


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    data = settings.model_dump(mode="json")
    data["clusters"] = [c.model_dump(mode="json") for c in settings.effective_clusters()]
    Console(soft_wrap=True).print_json(json.dumps(data))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"simulate": cmd_simulate, "demo": cmd_demo, "config": cmd_config_check}
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {escape(str(exc))}", highlight=False)
        return EXIT_USAGE
    except UsageError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

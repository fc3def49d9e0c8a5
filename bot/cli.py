"""Command line: ``vllm-chatops COMMAND …`` (also ``python -m bot``).

Exit codes: 0 success, 1 the job found or hit a problem, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.markup import escape

from bot.bench.options import SECTIONS
from bot.commands.common import EXIT_OK, EXIT_USAGE, UsageError, err
from bot.config import ConfigError, load_settings
from bot.remediation.verbs import ACTION_VERBS
from bot.simulator.scenarios import SCENARIOS


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


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 < number <= 3600.0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds (0-3600], got {value!r}")
    return number


def _dns_label(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise argparse.ArgumentTypeError(
            f"expected a Kubernetes namespace (a DNS label, e.g. vllm-chatops), got {value!r}"
        )
    return value


def _add_fleet_arguments(p: argparse.ArgumentParser, default_replicas: int | None) -> None:
    p.add_argument(
        "--replicas",
        type=_positive_int,
        default=default_replicas,
        help="vLLM replicas (default 8; 2000 for fleet_scale)",
    )
    p.add_argument("--gpus-per-replica", type=_positive_int, default=4, help="tensor parallel size")
    p.add_argument("--gpus-per-node", type=_positive_int, default=8)
    p.add_argument(
        "--scenario",
        default="healthy",
        choices=sorted(SCENARIOS),
        metavar="NAME",
        help="one of: " + ", ".join(sorted(SCENARIOS)),
    )
    p.add_argument("--seed", type=int, default=0, help="same seed, same fleet and faults")
    p.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="served model name; repeat for several models (one Deployment each)",
    )
    p.add_argument("--namespace", default="inference")
    p.add_argument(
        "--legacy-fraction",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="share of replicas/nodes serving pre-0.11 vLLM names and the old DCGM "
        "`Hostname` label (mixed-version fleet)",
    )
    p.add_argument(
        "--no-ecc-counters",
        action="store_true",
        help="omit DCGM_FI_DEV_ECC_*_VOL_TOTAL (off in dcgm-exporter's default counters)",
    )


def _add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="the console's port (default 8080, or a free one when 8080 is taken)",
    )
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the bot's database and config, logs (default: a new temporary directory)",
    )
    p.add_argument("--scrape-interval", type=_positive_float, default=5.0, metavar="SECONDS")
    p.add_argument(
        "--verify-after",
        type=_positive_int,
        default=90,
        metavar="SECONDS",
        help="re-check this long after an action (default 90; production default 300)",
    )
    p.add_argument(
        "--duration",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="stop after this long (default: run until Ctrl-C)",
    )


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
        "demo",
        help="the whole product on one machine: fleet twin, Prometheus, Alertmanager, the bot "
        "and a Slack-style console in the browser",
    )
    _add_fleet_arguments(demo, None)
    _add_demo_arguments(demo)

    bench = sub.add_parser(
        "bench",
        help="measure alert delivery, diagnosis, acknowledgement, start-up and throughput "
        "against their limits in one run; write BENCHMARKS.md",
    )
    bench.add_argument(
        "--section",
        action="append",
        choices=SECTIONS,
        help="run only this section (repeatable; default: all, in this order)",
    )
    bench.add_argument(
        "--quick", action="store_true", help="few repetitions and small fleets (the CI smoke)"
    )
    bench.add_argument(
        "--replicas",
        type=_positive_int,
        action="append",
        help="fleet size for the diagnosis section (repeatable; default 4, 100 and 1000)",
    )
    bench.add_argument("--repetitions", type=_positive_int, help="per figure (default 20)")
    bench.add_argument(
        "--alerts", type=_positive_int, help="alerts through Alertmanager (default 200)"
    )
    bench.add_argument(
        "--concurrency",
        type=_positive_int,
        help="simultaneous commands, clicks and submissions (default 50)",
    )
    bench.add_argument(
        "--soak-minutes", type=_positive_float, help="memory soak length (default 10)"
    )
    bench.add_argument(
        "--postgres",
        metavar="URL",
        help="also measure alert intake on this PostgreSQL (postgresql+psycopg://…)",
    )
    bench.add_argument("--output", default="BENCHMARKS.md", metavar="PATH")

    serve = sub.add_parser("serve", help="run the Slack bot and the Alertmanager webhook")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)

    diag = sub.add_parser("diagnose", help="run a runbook's checks against Prometheus")
    diag.add_argument("runbook", help="runbook id (see `vllm-chatops runbooks list`)")
    diag.add_argument("--prometheus", metavar="URL", help="default: the cluster's prometheus_url")
    diag.add_argument(
        "--scope",
        action="append",
        metavar="KEY=VALUE",
        help="label matcher, repeatable: namespace= model_name= pod= node= deployment= cluster=",
    )
    diag.add_argument("--format", choices=("text", "json"), default="text")
    diag.add_argument("--window", metavar="DURATION", help="rate window (default 5m or config)")
    diag.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="deadline: every query and every check ends within it (default: the config's "
        "query_timeout_s per query, twice that per check)",
    )

    canary = sub.add_parser(
        "canary",
        help="canary gates: the newest revision's pods against the previous revision's "
        "(`canary NS/DEPLOYMENT`), or the gates as an Argo Rollouts AnalysisTemplate "
        "(`canary export-analysis NS/DEPLOYMENT`); `canary NS/DEPLOYMENT --watch --channel C` "
        "has the serving bot watch it phase by phase, `canary watches` lists the watches and "
        "`canary stop N` ends one",
    )
    canary.add_argument(
        "words", nargs="+", metavar="[export-analysis|watches|stop] NS/DEPLOYMENT|N"
    )
    canary.add_argument(
        "--watch",
        action="store_true",
        help="record a watch in the bot's database: the serving bot reads the gates every "
        "canary.evaluate_every_s, posts each phase in --channel and offers Promote",
    )
    canary.add_argument("--channel", metavar="ID", help="--watch: the Slack channel to post in")
    canary.add_argument("--by", metavar="NAME", help="--watch, stop: who (default: $USER)")
    canary.add_argument("--prometheus", metavar="URL", help="default: the cluster's prometheus_url")
    canary.add_argument("--cluster", metavar="NAME", help="a configured cluster")
    canary.add_argument("--window", metavar="DURATION", help="default: canary.window (10m)")
    canary.add_argument("--phase", metavar="NAME", help="judge this phase's gates (default: all)")
    canary.add_argument("--format", choices=("text", "json"), default="text")
    canary.add_argument("--timeout", type=_positive_float, metavar="SECONDS", help="per query")
    canary.add_argument("-o", "--output", metavar="FILE", help="export-analysis: write here")

    ready = sub.add_parser(
        "readiness",
        help="the production readiness scorecard: every item measured or attested, the verdict",
    )
    ready.add_argument("--prometheus", metavar="URL", help="default: the cluster's prometheus_url")
    ready.add_argument(
        "--scope", action="append", metavar="KEY=VALUE", help="label matcher, repeatable"
    )
    ready.add_argument("--format", choices=("text", "json"), default="text")
    ready.add_argument("--window", metavar="DURATION", help="rate window (default: the item's)")
    ready.add_argument("--lookback", metavar="DURATION", help="peak-demand lookback (default 7d)")
    ready.add_argument("--timeout", type=_positive_float, metavar="SECONDS", help="per query")
    ready_sub = ready.add_subparsers(dest="readiness_command", metavar="ACTION")
    attest = ready_sub.add_parser("attest", help="vouch for an item only a person can know")
    attest.add_argument("item", help="item id (see `vllm-chatops readiness`)")
    attest.add_argument("--by", metavar="WHO", help="who attests (default: the OS user)")
    attest.add_argument("--link", metavar="URL", help="evidence: a load-test report, a rota")
    attest.add_argument("--days", type=_positive_int, help="valid this long (default: the item's)")

    doctor = sub.add_parser(
        "doctor",
        help="what Prometheus holds (targets, metric names, labels, clusters, rules) and "
        "the fix for each problem",
    )
    doctor.add_argument("--prometheus", metavar="URL", help="default: prometheus_url")
    doctor.add_argument("--format", choices=("text", "json"), default="text")
    doctor.add_argument(  # also accepted after the command; SUPPRESS keeps a global one
        "--config", metavar="PATH", default=argparse.SUPPRESS, help="YAML settings file"
    )

    runbooks = sub.add_parser("runbooks", help="list, show and lint runbooks")
    rb_sub = runbooks.add_subparsers(dest="runbooks_command", required=True, metavar="ACTION")
    rb_sub.add_parser("list", help="the loaded runbooks")
    show = rb_sub.add_parser("show", help="one runbook: checks, rules, remediation")
    show.add_argument("id")
    show.add_argument("--format", choices=("text", "json"), default="text")
    lint = rb_sub.add_parser("lint", help="validate runbook files (default: the shipped ones)")
    lint.add_argument("paths", nargs="*", metavar="PATH")
    preview = rb_sub.add_parser(
        "preview",
        help="start the demo stack with this runbook, inject the scenario it catches and "
        "print the console's address of its alert post",
    )
    preview.add_argument("file", metavar="FILE", help="a runbook YAML file")
    preview.add_argument(
        "--scenario",
        choices=sorted(SCENARIOS),
        metavar="NAME",
        help="scenario to inject (default: the one whose ground truth names this runbook)",
    )
    _add_demo_arguments(preview)

    rules = sub.add_parser("rules", help="Prometheus alerting rules from the runbooks")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    export = rules_sub.add_parser("export", help="write alerting rules (YAML)")
    export.add_argument("--output", "-o", metavar="FILE", help="default: standard output")
    export.add_argument(
        "--for",
        dest="for_override",
        metavar="DURATION",
        help="override every rule's `for` (e.g. 0s in drills)",
    )
    export.add_argument(
        "--format",
        choices=("rules", "prometheusrule"),
        default="rules",
        help="rules: a Prometheus rule file; prometheusrule: a prometheus-operator "
        "PrometheusRule with the bot's own alerts added",
    )
    export.add_argument(
        "--namespace",
        default="vllm-chatops",
        type=_dns_label,
        help="the PrometheusRule's namespace (default vllm-chatops)",
    )

    audit = sub.add_parser("audit", help="the tamper-evident audit log of actions")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    audit_list = audit_sub.add_parser("list", help="recent records, newest first")
    audit_list.add_argument("n", nargs="?", type=_positive_int, default=20)
    audit_list.add_argument("--target", help="only records about this target")
    audit_sub.add_parser("verify", help="check the hash chain (exit 1 at the first broken record)")
    audit_export = audit_sub.add_parser("export", help="every record, oldest first")
    audit_export.add_argument("--format", choices=("jsonl",), default="jsonl")
    audit_export.add_argument("--output", "-o", metavar="FILE", help="default: standard output")

    act = sub.add_parser(
        "act",
        help="run a remediation (plan, permission, approval, audit) from the terminal",
        description="Same path as a Slack button: the live plan, the policy, the two-person "
        "rule and the audit log. Examples: act scale inference/llama 6 · act drain gpu-node-7 · "
        "act silence 'VLLMHighQueue{namespace=inference}' 2h · act approve REQUEST_ID",
    )
    act.add_argument(
        "verb",
        choices=(*ACTION_VERBS, "approve", "reject"),
        metavar="ACTION",
        help=f"one of: {', '.join(ACTION_VERBS)}; approve or reject a request awaiting approval",
    )
    act.add_argument("words", nargs="*", metavar="ARG", help="the action's arguments")
    act.add_argument("--cluster", help="configured cluster (default: the first)")
    act.add_argument(
        "--as", dest="as_user", metavar="USER", help="act as this user id (default: OS user)"
    )
    act.add_argument("--yes", "-y", action="store_true", help="confirm the plan without asking")

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    config_sub.add_parser("check", help="validate settings and print them (secrets redacted)")
    return parser


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    data = settings.model_dump(mode="json")
    data["clusters"] = [c.model_dump(mode="json") for c in settings.effective_clusters()]
    Console(soft_wrap=True).print_json(json.dumps(data))
    return EXIT_OK


# (command, subcommand) → "module:function"; only the module of the command run is imported
HANDLERS: dict[tuple[str, str | None], str] = {
    ("serve", None): "serve:cmd_serve",
    ("simulate", None): "simulator:cmd_simulate",
    ("demo", None): "demo:cmd_demo",
    ("bench", None): "bench:cmd_bench",
    ("diagnose", None): "diagnose:cmd_diagnose",
    ("canary", None): "canary:cmd_canary",
    ("doctor", None): "doctor:cmd_doctor",
    ("readiness", None): "readiness:cmd_readiness",
    ("readiness", "attest"): "readiness:cmd_readiness_attest",
    ("act", None): "act:cmd_act",
    ("runbooks", "list"): "runbooks:cmd_runbooks_list",
    ("runbooks", "show"): "runbooks:cmd_runbooks_show",
    ("runbooks", "lint"): "runbooks:cmd_runbooks_lint",
    ("runbooks", "preview"): "demo:cmd_runbooks_preview",
    ("rules", "export"): "runbooks:cmd_rules_export",
    ("audit", "list"): "audit:cmd_audit_list",
    ("audit", "verify"): "audit:cmd_audit_verify",
    ("audit", "export"): "audit:cmd_audit_export",
}


def _handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    key = (args.command, getattr(args, f"{args.command}_command", None))
    if key == ("config", "check"):
        return cmd_config_check
    module, function = HANDLERS[key].split(":")
    handler: Callable[[argparse.Namespace], int] = getattr(
        importlib.import_module(f"bot.commands.{module}"), function
    )
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _handler(args)(args)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {escape(str(exc))}", highlight=False)
        return EXIT_USAGE
    except UsageError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

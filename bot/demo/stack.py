"""The whole product on one machine: the fleet twin, real Prometheus and Alertmanager,
the bot as its own process, and the Slack-style console.

::

    simulator ◀─scrape── Prometheus ──alerts──▶ Alertmanager ──webhook──▶ bot (serve)
        ▲                    ▲                                          │  │
        │ fleet changes      └──────────── diagnosis queries ───────────┘  │ Web API
    Kubernetes stand-in ◀──────────────── actions ─────────────────────────┤
                                                                           ▼
                                     console (Slack Web API + web page) ──signed events──▶ bot

Used by ``vllm-chatops demo``, ``runbooks preview`` and the end-to-end browser tests.
Everything listens on 127.0.0.1; ``stop()`` ends every process and thread it started.
"""

from __future__ import annotations

import math
import os
import secrets
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

import yaml

from bot.console.app import Console
from bot.demo.settings import (
    ALERT_FOR,
    CLIENT_TIMEOUT_S,
    DIAGNOSIS_WINDOW,
    VERIFY_AFTER_S,
    DemoEndpoints,
    bot_settings,
)
from bot.diagnosis.alert_rules import render_rules_yaml
from bot.diagnosis.runbooks import DEFAULT_RUNBOOK_DIR, load_runbooks
from bot.simulator.alertmanager_runner import (
    DEFAULT_GROUP_BY,
    AlertmanagerRunner,
    find_alertmanager,
)
from bot.simulator.fleet import build_fleet
from bot.simulator.processes import spawn, terminate, wait_healthy
from bot.simulator.prometheus_runner import PrometheusError, PrometheusRunner, free_port
from bot.simulator.server import Simulator, make_app
from bot.simulator.serving import BackgroundServer
from bot.simulator.twin import FleetTwin

ProgressFn = Callable[[str], None]


def spare_nodes(opts: DemoOptions) -> int:
    """As many empty nodes as the fleet fills: room to double it, or to drain a node."""
    return math.ceil(opts.replicas * opts.gpus_per_replica / opts.gpus_per_node)


class DemoError(Exception):
    """A part of the stack could not start; the message says which and why."""


@dataclass
class DemoOptions:
    state_dir: Path
    replicas: int = 8
    gpus_per_replica: int = 4
    gpus_per_node: int = 8
    models: tuple[str, ...] = ("llama-3.1-70b-instruct", "qwen2.5-7b-instruct")
    namespace: str = "inference"
    scenario: str = "healthy"
    seed: int = 0
    legacy_fraction: float = 0.0
    console_port: int | None = None
    scrape_interval_s: float = 5.0
    startup_delay_s: float = 10.0
    verify_after_s: int = VERIFY_AFTER_S
    client_timeout_s: float = CLIENT_TIMEOUT_S
    runbooks_dir: Path | None = None
    # bench: Alertmanager also posts each alert with its own Slack notifier to the console,
    # grouped by these labels; the bot queries Prometheus through what ``prometheus_for_bot``
    # makes of its address (a proxy in front)
    alertmanager_slack: bool = False
    alertmanager_group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    prometheus_for_bot: Callable[[str], str] | None = None


@dataclass
class DemoStack:
    """Start with :meth:`start`, always :meth:`stop` (also after a failed start)."""

    options: DemoOptions
    simulator: Simulator | None = None
    twin: FleetTwin | None = None
    prometheus: PrometheusRunner | None = None
    alertmanager: AlertmanagerRunner | None = None
    console: Console | None = None
    bot_url: str = ""
    _bot: Popen[bytes] | None = None
    _cleanup: ExitStack = field(default_factory=ExitStack)

    @property
    def bot_log(self) -> Path:
        return self.options.state_dir / "bot.log"

    def start(self, progress: ProgressFn = lambda _: None) -> DemoStack:
        opts = self.options
        opts.state_dir.mkdir(parents=True, exist_ok=True)
        progress("fleet simulator and Kubernetes API stand-in")
        fleet = build_fleet(
            replicas=opts.replicas,
            gpus_per_replica=opts.gpus_per_replica,
            gpus_per_node=opts.gpus_per_node,
            models=opts.models,
            namespace=opts.namespace,
            legacy_fraction=opts.legacy_fraction,
            seed=opts.seed,
            spare_nodes=spare_nodes(opts),
            client_timeout_s=opts.client_timeout_s,
            now=time.time(),
        )
        self.simulator = Simulator(fleet, opts.scenario, opts.seed)
        server = BackgroundServer(make_app(self.simulator)).start()
        self._cleanup.callback(server.stop)
        self.twin = FleetTwin(self.simulator, startup_delay_s=opts.startup_delay_s).start()
        self._cleanup.callback(self.twin.stop)

        bot_port = free_port()
        self.bot_url = f"http://127.0.0.1:{bot_port}"
        signing_secret, alerts_token = secrets.token_hex(16), secrets.token_hex(16)

        progress("Alertmanager")
        binary = find_alertmanager()
        if binary is None:
            raise DemoError(
                "the 'prometheus-alertmanager' binary is not installed; run scripts/install.sh"
            )
        # the console's port is chosen now when Alertmanager must know its webhook address
        console_port = opts.console_port or (free_port() if opts.alertmanager_slack else None)
        self.alertmanager = AlertmanagerRunner(
            binary,
            f"{self.bot_url}/alerts",
            alerts_token,
            slack_url=(
                f"http://127.0.0.1:{console_port}/services/T0DEMO/B0ALERTMANAGER/demo"
                if opts.alertmanager_slack
                else None
            ),
            group_by=opts.alertmanager_group_by,
        )
        self._cleanup.callback(self.alertmanager.stop)
        self.alertmanager.start()

        progress("Prometheus (alert and recording rules loaded)")
        runbooks_dir = opts.runbooks_dir or DEFAULT_RUNBOOK_DIR
        rules = opts.state_dir / "rules.yml"
        rules.write_text(
            render_rules_yaml(load_runbooks(runbooks_dir), None, ALERT_FOR, DIAGNOSIS_WINDOW)
        )
        self.prometheus = PrometheusRunner(
            server.url,
            scrape_interval_s=opts.scrape_interval_s,
            rule_files=[rules],
            alertmanagers=[self.alertmanager.url],
        )
        self._cleanup.callback(self.prometheus.stop)
        try:
            self.prometheus.start()
        except PrometheusError as exc:
            raise DemoError(str(exc)) from exc

        progress("console")
        self.console = Console(
            f"{self.bot_url}/slack/events",
            signing_secret,
            simulator_url=server.url,
            prometheus_url=self.prometheus.url,
            alertmanager_url=self.alertmanager.url,
            port=console_port,
        ).start()
        self._cleanup.callback(self.console.stop)

        progress("the bot")
        bot_prometheus = self.prometheus.url
        if opts.prometheus_for_bot is not None:
            bot_prometheus = opts.prometheus_for_bot(bot_prometheus)
        endpoints = DemoEndpoints(
            slack_api_url=self.console.api_url,
            prometheus_url=bot_prometheus,
            alertmanager_url=self.alertmanager.url,
            kube_api_url=self.twin.kubernetes.url,
            kube_token=self.twin.token,
            channel=self.console.default_channel.id,
        )
        config = opts.state_dir / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                bot_settings(
                    endpoints,
                    signing_secret=signing_secret,
                    bot_token=self.console.bot_token,
                    alerts_token=alerts_token,
                    state_dir=opts.state_dir,
                    runbooks_dir=opts.runbooks_dir,
                    verify_after_s=opts.verify_after_s,
                ),
                sort_keys=False,
            )
        )
        self._start_bot(config, bot_port)
        return self

    def _start_bot(self, config: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VLLM_CHATOPS"))}
        args = [sys.executable, "-m", "bot", "--config", str(config), "serve"]
        log = self.bot_log.open("ab")
        self._bot = spawn([*args, "--host", "127.0.0.1", "--port", str(port)], log, env=env)
        self._cleanup.callback(terminate, self._bot)
        self._cleanup.callback(log.close)
        wait_healthy(self.bot_url, self._bot, self.bot_log, error=DemoError)

    def wait_for_scrapes(self) -> None:
        assert self.prometheus is not None and self.simulator is not None
        fleet = self.simulator.fleet
        self.prometheus.wait_for_targets(len(fleet.replicas) + len(fleet.nodes))

    def stop(self) -> None:
        self._cleanup.close()

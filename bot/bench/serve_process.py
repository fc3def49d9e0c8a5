"""The real bot (``python -m bot --config FILE serve``) as a child process, for benchmarks.

Its Slack is a local :class:`~bot.console.workspace.Workspace`; Prometheus, Alertmanager
and Kubernetes point at a port nobody listens on, so a diagnosis ends at once in
"unknown" instead of waiting on a timeout and the figures measure the bot alone.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.console.workspace import Workspace
from bot.demo.settings import DemoEndpoints, bot_settings
from bot.simulator.processes import spawn, wait_healthy
from bot.simulator.prometheus_runner import free_port

CHANNEL = "C0BENCH01"
START_TIMEOUT_S = 60.0
# Variables that would override the config file (see bot.config): the child reads its file.
_OVERRIDING = ("SLACK_", "VLLM_CHATOPS", "DATABASE_URL", "PROMETHEUS_URL", "ALERTMANAGER_URL")


class BotStartError(RuntimeError):
    """The bot exited or did not answer ``/healthz`` in time (the log's tail attached)."""


@dataclass(frozen=True)
class ServedBot:
    url: str
    pid: int
    alerts_token: str
    signing_secret: str
    slack: Workspace
    database_url: str
    log: Path

    def rss_kib(self) -> int:
        """Resident memory now (``VmRSS`` in /proc), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for process {self.pid}")


def settings(slack: Workspace, database_url: str, state_dir: Path) -> dict[str, Any]:
    """The demo's complete settings, on ``database_url`` and with nothing behind Prometheus."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    endpoints = DemoEndpoints(
        slack_api_url=slack.api_url,
        prometheus_url=nowhere,
        alertmanager_url=nowhere,
        kube_api_url=nowhere,
        kube_token="bench",
        channel=CHANNEL,
    )
    config = bot_settings(
        endpoints,
        signing_secret=secrets.token_hex(16),
        bot_token=slack.token,
        alerts_token=secrets.token_hex(16),
        state_dir=state_dir,
    )
    config["database_url"] = database_url
    return config


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


@contextmanager
def served_bot(work_dir: Path, name: str, database_url: str) -> Iterator[ServedBot]:
    """Start a Slack workspace and the bot on ``database_url``; stop both on exit.

    ``name`` keeps this bot's config and log apart from others' in ``work_dir``.
    """
    state_dir = work_dir / name
    state_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        slack = Workspace().start()
        stack.callback(slack.stop)
        slack.add_channel(CHANNEL, "bench")
        config = settings(slack, database_url, state_dir)
        config_file = state_dir / "config.yaml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(_OVERRIDING)}
        port = free_port()
        log_path = state_dir / "bot.log"
        log = stack.enter_context(log_path.open("ab"))
        args = [sys.executable, "-m", "bot", "--config", str(config_file), "serve"]
        process = spawn([*args, "--host", "127.0.0.1", "--port", str(port)], log, env=env)
        # Killed, not asked to stop: a graceful stop waits up to 10 s for Slack writes still
        # paced out, and the store must hold every answered alert after a crash anyway.
        stack.callback(_kill, process)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, log_path, timeout_s=START_TIMEOUT_S, error=BotStartError)
        yield ServedBot(
            url=url,
            pid=process.pid,
            alerts_token=config["alerts_token"],
            signing_secret=config["slack_signing_secret"],
            slack=slack,
            database_url=database_url,
            log=log_path,
        )
